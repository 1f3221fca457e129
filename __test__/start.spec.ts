// `npm start` on this checkout with no environment: it starts its own PostgreSQL and OpenAI
// stand-in, prints the dashboard URL with a token, serves the monitoring routes with that token
// (and only with it) while its demo traffic moves the counters, and stops cleanly on SIGTERM.
import { spawn, ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { eventually } from './helpers'

const ROOT = join(__dirname, '..')
let child: ChildProcess | undefined

// npm does not pass signals on to the script it runs: signal the whole process group, as a
// terminal's Ctrl-C does.
function signalGroup(proc: ChildProcess, signal: NodeJS.Signals) {
  try {
    process.kill(-proc.pid!, signal)
  } catch {
    // already gone
  }
}

afterAll(() => {
  if (child && child.exitCode === null) signalGroup(child, 'SIGKILL')
})

/** Everything the process prints, kept as it arrives. */
function collectOutput(proc: ChildProcess): string[] {
  const output: string[] = []
  proc.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()))
  proc.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()))
  return output
}

/**
 * Resolves with the first match of `pattern` in the output; rejects when the output ends first
 * ('close': every process holding the pipes, npm and the backend it started, has exited).
 */
function printed(proc: ChildProcess, pattern: RegExp, output: string[]): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = pattern.exec(output.join(''))
      if (!match) return
      proc.stdout!.off('data', check)
      resolve(match)
    }
    proc.stdout!.on('data', check)
    proc.once('close', (code) => reject(new Error(`npm start ended (${code}) before printing ${pattern}:\n${output.join('')}`)))
    check()
  })
}

test('npm start serves the dashboard and the stats API with the printed token, with no environment set', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0' }
  for (const name of ['DATABASE_URL', 'OPENAI_API_KEY', 'OPENAI_BASE_URL', 'CONNECTIONS_API_TOKEN', 'DEMO_TRAFFIC']) delete env[name]

  const started = Date.now()
  child = spawn('npm', ['start'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const output = collectOutput(child)
  const [, dashboardUrl, token] = await printed(child, /Dashboard: (http:\/\/\S+\/api\/connections\/dashboard\?token=(\S+))/, output)
  console.log(`npm start printed the dashboard URL after ${Date.now() - started} ms`)

  const banner = output.join('')
  expect(banner).toMatch(/EMBEDDED PostgreSQL/)
  expect(banner).toMatch(/LOCAL STAND-IN/)

  const origin = new URL(dashboardUrl).origin
  const statsUrl = `${origin}/api/connections/stats`
  expect((await fetch(statsUrl)).status).toBe(401)

  const res = await fetch(statsUrl, { headers: { Authorization: `Bearer ${token}` } })
  expect(res.status).toBe(200)
  const body = await res.json()
  expect(body).toMatchObject({
    success: true,
    data: {
      database: { stats: { totalQueries: expect.any(Number) }, config: { maxConnections: 10 } },
      openai: { stats: { totalRequests: expect.any(Number) }, queue: { maxConcurrent: 10 } },
    },
  })

  const page = await fetch(dashboardUrl)
  expect(page.status).toBe(200)
  expect(await page.text()).toContain('<title>connection-pools dashboard</title>')

  // The demo traffic reaches both pools through the example's own endpoints.
  await eventually(async () => {
    const now = await (await fetch(statsUrl, { headers: { Authorization: `Bearer ${token}` } })).json()
    return now.data.database.stats.totalQueries > 0 && now.data.openai.stats.totalRequests > 0
  }, 20000)
  const users = await (await fetch(`${origin}/api/users`)).json()
  expect(users.data.map((u: any) => u.name)).toContain('Ada Lovelace')

  // Ctrl-C: the backend closes its pools and stops the PostgreSQL and stand-in it started.
  const closed = new Promise((resolve) => child!.once('close', resolve))
  signalGroup(child, 'SIGINT')
  await closed
  expect(output.join('')).toContain('stopped: pools closed, local services stopped')
  await expect(fetch(statsUrl)).rejects.toThrow()
})
