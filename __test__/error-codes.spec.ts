// Every code that index.d.ts lists in `ConnectionPoolErrorCode`, provoked from the outside as a
// backend would meet it: each rejection is a ConnectionPoolError with that code and a message.
// The list is read from index.d.ts itself, so a code added there without a case here (or a case
// whose code is no longer listed) fails the first test; and the codes the sources raise are
// checked against the list, so no code reaches a caller unlisted.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Client } from 'pg'
import { ConnectionPoolError, DatabasePool, OpenAIPool } from '..'
import { baseUrl, blackhole, eventually, rejectionOf, taggedUrl, uniqueName } from './helpers'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { setTestFault } = require('../binding.js')
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')

const root = path.resolve(__dirname, '..')

/** The string literals of `export type <name> =` in index.d.ts. */
function listedCodes(name: string): string[] {
  const text = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8')
  const start = text.indexOf(`export type ${name} =`)
  const end = text.indexOf('\n\n', start)
  return [...text.slice(start, end).matchAll(/^\s*\| '([A-Z_]+)'/gm)].map((m) => m[1])
}

let standIn: any
const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
const post = (url: string, init: Record<string, unknown> = {}) =>
  OpenAIPool.fetch(`${url}/chat/completions`, { method: 'POST', body: chat, headers: { 'content-type': 'application/json', accept: 'application/json' }, ...init })
const openaiPool = (config: Record<string, unknown> = {}) =>
  OpenAIPool.initialize({ baseURL: standIn.url, apiKey: 'sk-codes', maxRetries: 0, ...config })
const dbPool = (config: Record<string, unknown> = {}) =>
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_codes')), ...config })

/** Runs `script` in a fresh Node whose `require` cannot find `missing`; the last line it prints. */
function withoutPackage(missing: string, script: string): Promise<string> {
  const hide = `const M = require('module'); const load = M._load; M._load = function (request, ...rest) { if (request === ${JSON.stringify(missing)}) throw new Error("Cannot find module '${missing}'"); return load.call(this, request, ...rest) };`
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', hide + script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (chunk) => (out += chunk))
    child.on('exit', () => resolve(out.trim().split('\n').pop() ?? ''))
  })
}

/** How each listed code is met. Each returns the rejection (or thrown error) it provoked. */
const provoke: Record<string, () => Promise<any>> = {
  INVALID_CONFIG: async () => {
    try {
      DatabasePool.initialize({ maxConnections: -1 } as any)
    } catch (err) {
      return err
    }
  },
  INVALID_ARGUMENT: async () => {
    dbPool()
    return rejectionOf(DatabasePool.getAdminClient().query('select $1::text', [Symbol('x') as any]))
  },
  POOL_TIMEOUT: async () => {
    dbPool({ maxConnections: 1, connectionTimeout: 200 })
    const admin = DatabasePool.getAdminClient()
    let release = () => {}
    let entered = () => {}
    const inside = new Promise<void>((resolve) => (entered = resolve))
    // A transaction holds the one connection until it is released.
    const held = admin.transaction(async (tx) => {
      await tx.query('select 1')
      entered()
      await new Promise<void>((resolve) => (release = resolve))
    })
    await inside
    const err = await rejectionOf(admin.query('select 1'))
    release()
    await held
    return err
  },
  POOL_CLOSED: async () => {
    dbPool()
    await DatabasePool.close()
    return rejectionOf(DatabasePool.getAdminClient().query('select 1'))
  },
  CONNECTION_FAILED: async () => {
    const { port, server } = await blackhole()
    server.close()
    DatabasePool.initialize({ connectionString: `postgres://nobody@127.0.0.1:${port}/none`, connectionTimeout: 2000, maxRetries: 0 })
    return rejectionOf(DatabasePool.getAdminClient().query('select 1'))
  },
  INVALID_TOKEN: async () => {
    dbPool({ jwtSecret: 'error-codes-secret-of-at-least-32-characters' })
    try {
      DatabasePool.getUserClient({ accessToken: 'a.b.c' })
    } catch (err) {
      return err
    }
  },
  UNSUPPORTED_TYPE: async () => {
    dbPool()
    return rejectionOf(DatabasePool.getAdminClient().query(`select '(1,2)'::point as p`))
  },
  STATEMENT_TIMEOUT: async () => {
    dbPool({ statementTimeout: 100 })
    return rejectionOf(DatabasePool.getAdminClient().query('select pg_sleep(5)'))
  },
  STATEMENT_REFUSED: async () => {
    dbPool()
    return rejectionOf(DatabasePool.getAdminClient().query('begin'))
  },
  MISSING_DEPENDENCY: async () => {
    const line = await withoutPackage(
      'openai',
      `try { require('.').openai.chat } catch (err) { console.log(JSON.stringify({ name: err.name, code: err.code, message: err.message })) }`,
    )
    // The child's error, rebuilt here from what it printed (its class was the child's own).
    const reported = JSON.parse(line)
    if (reported.name !== 'ConnectionPoolError') throw new Error(`the child threw ${line}`)
    return new ConnectionPoolError(reported.code, reported.message)
  },
  QUEUE_FULL: async () => {
    openaiPool({ maxConcurrentRequests: 1, maxQueueSize: 1 })
    standIn.enqueue({ held: true })
    const running = post(standIn.url)
    const queued = post(standIn.url)
    // The first is at the server (held there) and the second waits for its slot.
    await eventually(() => standIn.state.inFlight === 1 && OpenAIPool.getQueueStatus().queueLength === 1)
    const err = await rejectionOf(post(standIn.url))
    standIn.release()
    await Promise.all([running, queued])
    return err
  },
  TIMEOUT: async () => {
    openaiPool({ timeout: 200 })
    standIn.enqueue({ hang: true })
    return rejectionOf(post(standIn.url))
  },
  INVALID_RESPONSE: async () => {
    openaiPool()
    standIn.enqueue({ status: 200, raw: '<html>502 Bad Gateway</html>', headers: { 'content-type': 'text/html' } })
    return rejectionOf(post(standIn.url))
  },
  SLOT_RELEASED: async () => {
    openaiPool()
    let kept: any
    await OpenAIPool.executeRequest(async (client) => {
      kept = client
    })
    // The SDK reports the refused fetch as its APIConnectionError, the pool's error its cause.
    const err = await rejectionOf(kept.chat.completions.create(JSON.parse(chat)))
    expect(err.constructor.name).toBe('APIConnectionError')
    return err.cause
  },
  INTERNAL: async () => {
    dbPool({ maxConnections: 1 })
    const admin = DatabasePool.getAdminClient()
    await admin.query('select 1')
    setTestFault(['statement'])
    try {
      return await rejectionOf(admin.query('select 1'))
    } finally {
      setTestFault([])
    }
  },
}

beforeAll(async () => {
  standIn = await startOpenAIStandIn()
})

afterEach(() => standIn.reset())

afterAll(async () => {
  await DatabasePool.close()
  await OpenAIPool.close()
  await standIn.close()
})

test('this spec has a case for exactly the codes index.d.ts lists', () => {
  expect(Object.keys(provoke).sort()).toEqual(listedCodes('ConnectionPoolErrorCode').sort())
})

test.each(Object.keys(provoke))('%s is a ConnectionPoolError with that code and a message', async (code) => {
  const err = await provoke[code]()
  expect(err).toBeInstanceOf(ConnectionPoolError)
  expect(err).toMatchObject({ name: 'ConnectionPoolError', code })
  expect(typeof err.message).toBe('string')
  expect(err.message.length).toBeGreaterThan(10)
})

test('the pools are healthy after every one of them', async () => {
  dbPool()
  await expect(DatabasePool.getAdminClient().query('select 1 as one')).resolves.toMatchObject({ rows: [{ one: 1 }] })
  openaiPool()
  await expect(post(standIn.url).then((r: Response) => r.status)).resolves.toBe(200)
  // The server saw no connection of ours left behind by the cases above.
  const watcher = new Client({ connectionString: baseUrl() })
  await watcher.connect()
  const { rows } = await watcher.query(`select count(*)::int as n from pg_stat_activity where application_name like 'cp_codes%' and state = 'active' and pid <> pg_backend_pid()`)
  await watcher.end()
  expect(rows[0].n).toBe(0)
})

test('every code the sources raise is listed in index.d.ts', () => {
  const listed = new Set(listedCodes('ConnectionPoolErrorCode'))
  const raised = new Set<string>()
  const read = (dir: string, ext: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) return read(full, ext)
      return entry.name.endsWith(ext) ? [fs.readFileSync(full, 'utf8')] : []
    })
  for (const text of read(path.join(root, 'lib'), '.js')) {
    for (const m of text.matchAll(/new ConnectionPoolError\(\s*'([A-Z_]+)'/g)) raised.add(m[1])
  }
  // Rust's one list of codes (error::Code), which both pools' errors take theirs from.
  const errors = fs.readFileSync(path.join(root, 'src/error.rs'), 'utf8')
  const rustCodes = [...errors.matchAll(/Code::\w+ => "([A-Z_]+)",/g)].map((m) => m[1])
  expect(rustCodes.length).toBeGreaterThan(10)
  for (const code of rustCodes) raised.add(code)
  for (const text of read(path.join(root, 'src'), '.rs')) {
    // No code written as a bare string where an error is made.
    for (const m of text.matchAll(/(?:ApiError::local|Chunk::Failed)\(\s*(?:"[A-Za-z]+",\s*)?"([A-Z_]+)"/g)) raised.add(`bare string ${m[1]}`)
  }
  // ABORTED is the native side's word for an abort, which the facade turns into the platform's
  // AbortError before any caller sees it.
  raised.delete('ABORTED')
  expect([...raised].filter((code) => !listed.has(code)).sort()).toEqual([])
  expect(raised.size).toBeGreaterThan(10)
  // And the other way: every listed code is one the sources raise (MISSING_DEPENDENCY in JS).
  expect([...listed].filter((code) => !raised.has(code)).sort()).toEqual([])
})
