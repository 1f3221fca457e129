// Lifecycle: importing and initializing open nothing, the first use connects, close() drains,
// initialize() replaces the pool, bad config is refused, and Node exits on its own.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { DatabasePool, ConnectionPoolError } from '..'
import { connectionsOf, databasePassword, eventually, observer, rejectionOf, taggedUrl, uniqueName } from './helpers'

const packageRoot = path.resolve(__dirname, '..')

afterAll(() => DatabasePool.close())

test('initializing opens no connection; the first use connects and fills minConnections', async () => {
  const app = uniqueName('cp_lazy')
  const watcher = await observer()
  DatabasePool.initialize({ connectionString: taggedUrl(app), minConnections: 3 })
  DatabasePool.getStats()
  DatabasePool.getPoolConfig()
  expect(await connectionsOf(watcher, app)).toBe(0)
  expect(DatabasePool.getStats().totalConnections).toBe(0)

  await DatabasePool.getAdminClient().query('select 1')
  await eventually(async () => (await connectionsOf(watcher, app)) >= 3)
  // The server lists a backend from its login on; the pool counts it once it is ready.
  await eventually(() => DatabasePool.getStats().totalConnections >= 3)
  await watcher.end()
})

test('idle connections above minConnections are closed after idleTimeout', async () => {
  const app = uniqueName('cp_idle')
  const watcher = await observer()
  DatabasePool.initialize({ connectionString: taggedUrl(app), minConnections: 1, maxConnections: 4, idleTimeout: 300 })
  await Promise.all(Array.from({ length: 8 }, () => DatabasePool.getAdminClient().query('select pg_sleep(0.02)')))
  expect(await connectionsOf(watcher, app)).toBeGreaterThan(1)
  await eventually(async () => (await connectionsOf(watcher, app)) === 1, 15000)
  expect(DatabasePool.getStats().totalConnections).toBe(1)
  await watcher.end()
})

test('close() lets running statements finish, then refuses new ones with POOL_CLOSED', async () => {
  const app = uniqueName('cp_close')
  const watcher = await observer()
  DatabasePool.initialize({ connectionString: taggedUrl(app), minConnections: 0 })
  const running = DatabasePool.getAdminClient().query('select pg_sleep(0.2), 7 as seven')
  // Running on the server (a connection that merely exists may still be logging in, with the
  // statement waiting for it: close() fails waiting statements).
  await eventually(async () => {
    const { rows } = await watcher.query(
      "select count(*)::int as n from pg_stat_activity where application_name = $1 and state = 'active' and query like 'select pg_sleep%'",
      [app],
    )
    return rows[0].n === 1
  })
  const closing = DatabasePool.close()

  await expect(running).resolves.toMatchObject({ rows: [{ seven: 7 }] })
  await closing
  // Every session has sent Terminate and closed its socket; the server drops a backend from
  // pg_stat_activity a moment after it sees that.
  await eventually(async () => (await connectionsOf(watcher, app)) === 0, 5000)

  const err = await rejectionOf(DatabasePool.getAdminClient().query('select 1'))
  expect(err).toBeInstanceOf(ConnectionPoolError)
  expect(err.code).toBe('POOL_CLOSED')
  expect((await DatabasePool.healthCheck()).healthy).toBe(false)
  expect(DatabasePool.getStats().totalConnections).toBe(0)

  // initialize() opens a new pool.
  DatabasePool.initialize({ connectionString: taggedUrl(app), minConnections: 0 })
  await expect(DatabasePool.getAdminClient().query('select 1 as one')).resolves.toMatchObject({ rows: [{ one: 1 }] })
  await watcher.end()
})

test('initialize() again replaces the pool; the old one drains and closes', async () => {
  const first = uniqueName('cp_first')
  const second = uniqueName('cp_second')
  const watcher = await observer()
  DatabasePool.initialize({ connectionString: taggedUrl(first), minConnections: 0 })
  const slow = DatabasePool.getAdminClient().query('select pg_sleep(0.2), 1 as done')
  await eventually(async () => (await connectionsOf(watcher, first)) === 1)

  DatabasePool.initialize({ connectionString: taggedUrl(second), minConnections: 0, maxConnections: 7 })
  expect(DatabasePool.getPoolConfig().maxConnections).toBe(7)
  await DatabasePool.getAdminClient().query('select 1')
  await expect(slow).resolves.toMatchObject({ rows: [{ done: 1 }] })
  await eventually(async () => (await connectionsOf(watcher, first)) === 0)
  expect(await connectionsOf(watcher, second)).toBeGreaterThan(0)
  await watcher.end()
})

describe('config validation', () => {
  test.each([
    [{ maxConnections: 0 }, /maxConnections/],
    [{ maxConnections: '10' }, /wrong type/],
    [{ maxConnections: 2.5 }, /whole number/],
    [{ minConnections: 9, maxConnections: 3 }, /minConnections/],
    [{ connectionTimeout: -1 }, /connectionTimeout/],
    [{ connectionTimeout: Number.NaN }, /wrong type/],
    [{ idleTimeout: Infinity }, /wrong type/],
    [{ maxRetrys: 3 }, /unknown option 'maxRetrys'/],
    [{ anonRole: 'anon; drop role x' }, /anonRole/],
    [{ connectionString: 'mysql://root:Hunter2-secret@db/app' }, /postgres:\/\//],
    [{ connectionString: 'postgres://u:Hunter2-secret@[::1' }, /not a valid URL/],
  ])('%p is refused with INVALID_CONFIG', (config, message) => {
    let thrown: any
    try {
      DatabasePool.initialize(config as any)
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(ConnectionPoolError)
    expect(thrown.code).toBe('INVALID_CONFIG')
    expect(thrown.message).toMatch(message)
    expect(thrown.message).not.toContain('Hunter2-secret')
  })

  test('a refused config leaves the current pool in place', async () => {
    const app = uniqueName('cp_keep')
    DatabasePool.initialize({ connectionString: taggedUrl(app), maxConnections: 3 })
    expect(() => DatabasePool.initialize({ maxConnections: -1 })).toThrow()
    expect(DatabasePool.getPoolConfig().maxConnections).toBe(3)
    await expect(DatabasePool.getAdminClient().query('select 1 as ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] })
  })

  test('non-object configs are refused', () => {
    for (const bad of [null, 5, 'postgres://x', [1]]) {
      expect(() => DatabasePool.initialize(bad as any)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }))
    }
  })
})

test('getPoolConfig and getStats never show the password', async () => {
  const url = new URL(taggedUrl(uniqueName('cp_mask')))
  url.password = url.password || 'Never-Shown-77'
  DatabasePool.initialize({ connectionString: url.toString() })
  const config = DatabasePool.getPoolConfig()
  const password = decodeURIComponent(url.password)
  expect(config.connectionString).toContain(':****@')
  expect(JSON.stringify(config)).not.toContain(password)
  expect(JSON.stringify(DatabasePool.getStats())).not.toContain(password)
  if (databasePassword() !== null) {
    await DatabasePool.getAdminClient().query('select 1')
    expect(JSON.stringify(await DatabasePool.healthCheck())).not.toContain(password)
  }
})

function runNode(script: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], {
      cwd: packageRoot,
      env: { ...process.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('exit', (code) => resolve({ code, output }))
  })
}

test.each([
  ['without close()', ''],
  ['with close()', 'await DatabasePool.close();'],
])('the Node process exits on its own after the last query, %s', async (_label, closing) => {
  const { code, output } = await runNode(`
    const { DatabasePool } = require('.');
    (async () => {
      DatabasePool.initialize({ minConnections: 2 });
      const { rows } = await DatabasePool.getAdminClient().query('select 41 + 1 as answer');
      console.log('answer', rows[0].answer);
      ${closing}
    })().catch((err) => { console.error(err); process.exit(3) });
  `)
  expect(output).toContain('answer 42')
  expect(code).toBe(0)
})

test('requiring the package opens nothing and needs no configuration', async () => {
  const { code, output } = await runNode(`
    delete process.env.DATABASE_URL;
    const pkg = require('.');
    console.log(Object.keys(pkg).sort().join(','));
  `)
  expect(code).toBe(0)
  expect(output).toContain('DatabasePool')
  expect(output).toContain('supabaseAdmin')
})
