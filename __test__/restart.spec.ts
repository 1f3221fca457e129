// The server restarted under load (a fast shutdown, as `pg_ctl restart -m fast`: every session
// ends with 57P01, then the server comes back on the same port): every call settles, no result
// is wrong, service is back at once and the pool's gauges agree with the server afterwards.
// On a server of its own: restarting the shared one would disturb the other spec files.
import { ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import { createInterface, Interface } from 'node:readline'
import { Client } from 'pg'
import { DatabasePool } from '..'
import { uniqueName } from './helpers'

let child: ChildProcess
let lines: Interface
let embedded: { url: string; restart(): Promise<void> }

/** The next line the child prints that starts with `prefix`. */
async function lineStarting(prefix: string): Promise<string> {
  for (;;) {
    const [line] = (await once(lines, 'line')) as [string]
    if (line.startsWith(prefix)) return line
  }
}

beforeAll(async () => {
  child = spawn(process.execPath, [path.join(__dirname, 'setup', 'restartable-postgres.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] })
  lines = createInterface({ input: child.stdout! })
  const url = (await lineStarting('url ')).slice(4)
  embedded = {
    url,
    restart: async () => {
      const restarted = lineStarting('restarted')
      child.stdin!.write('restart\n')
      await restarted
    },
  }
}, 60_000)

afterAll(async () => {
  await DatabasePool.close()
  if (child) {
    const exited = once(child, 'exit')
    child.stdin!.end()
    await exited
  }
})

test('a restart under 50 callers: every call settles, 0 wrong results, service back within 2 s, gauges consistent', async () => {
  const app = uniqueName('cp_restart')
  const url = new URL(embedded.url)
  url.searchParams.set('application_name', app)
  DatabasePool.initialize({ connectionString: url.toString(), maxConnections: 10, minConnections: 2, connectionTimeout: 5000, retryDelay: 50 })
  const client = DatabasePool.getAdminClient()
  const startedAt = async () => (await client.query('select pg_postmaster_start_time()::text as t')).rows[0].t
  const firstStart = await startedAt()

  let running = true
  let ok = 0
  const wrong: string[] = []
  const codes = new Map<string, number>()
  const callers = Array.from({ length: 50 }, async (_, caller) => {
    for (let i = 0; running; i++) {
      const n = caller * 1_000_000 + i
      try {
        const { rows } = await client.query('select $1::int + 1 as v, $2::text as s', [n, `c${n}`])
        if (rows[0].v === n + 1 && rows[0].s === `c${n}`) ok++
        else wrong.push(JSON.stringify({ n, row: rows[0] }))
      } catch (err: any) {
        codes.set(err.code, (codes.get(err.code) ?? 0) + 1)
      }
    }
  })

  const okBefore = ok
  while (ok < okBefore + 500) await new Promise((r) => setImmediate(r))
  await embedded.restart()
  const back = Date.now()
  // Service is back: a statement succeeds, within 2 s of the server accepting connections.
  await client.query('select 1')
  const backWithinMs = Date.now() - back
  const okAfterRestart = ok
  while (ok < okAfterRestart + 500) await new Promise((r) => setImmediate(r))
  running = false
  await Promise.all(callers)

  console.log(`restart under load: ${ok} right results, failures by code: ${JSON.stringify(Object.fromEntries(codes))}, service back after ${backWithinMs} ms`)
  expect(await startedAt()).not.toBe(firstStart)
  expect(wrong).toEqual([])
  expect(backWithinMs).toBeLessThanOrEqual(2000)
  // Whatever failed, failed with a code: the session's end (57P01) or a lost connection.
  for (const code of codes.keys()) expect(['57P01', 'CONNECTION_FAILED', '57P03']).toContain(code)

  // Gauges: the pool's view matches itself and the server's.
  const stats = DatabasePool.getStats()
  expect(stats.totalConnections).toBeLessThanOrEqual(10)
  expect(stats.activeConnections + stats.idleConnections).toBe(stats.totalConnections)
  const watcher = new Client({ connectionString: embedded.url })
  await watcher.connect()
  try {
    // A connection the pool is still opening (or closing) is on one side before the other: the
    // two views must meet once it settles.
    const serverCount = async () =>
      (await watcher.query('select count(*)::int as n from pg_stat_activity where application_name = $1', [app])).rows[0].n
    let server = await serverCount()
    let pool = DatabasePool.getStats().totalConnections
    for (const deadline = Date.now() + 5000; server !== pool && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      server = await serverCount()
      pool = DatabasePool.getStats().totalConnections
    }
    expect(server).toBeLessThanOrEqual(10)
    expect(server).toBe(pool)
  } finally {
    await watcher.end()
  }
})
