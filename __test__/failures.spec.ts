// Failures a pool must survive: bad statements, an exhausted pool, connections killed under it,
// and a database that is not there. Each caller gets a typed error; the pool keeps serving.
import { DatabasePool, DatabaseError, ConnectionPoolError } from '..'
import {
  blackhole,
  closedPort,
  connectionsOf,
  databasePassword,
  eventually,
  observer,
  rejectionOf,
  taggedUrl,
  uniqueName,
} from './helpers'

const app = uniqueName('cp_fail')
const table = uniqueName('fail_items')

function useMainPool(options: Record<string, unknown> = {}) {
  DatabasePool.initialize({ connectionString: taggedUrl(app), minConnections: 0, ...options })
}

beforeAll(async () => {
  useMainPool()
  await DatabasePool.getAdminClient().query(`create table ${table} (id int primary key, name text)`)
  await DatabasePool.getAdminClient().query(`insert into ${table} values (1, 'one')`)
})

afterAll(async () => {
  useMainPool()
  await DatabasePool.getAdminClient().query(`drop table if exists ${table}`)
  await DatabasePool.close()
})

describe('a failing statement', () => {
  beforeEach(() => useMainPool({ maxConnections: 1 }))

  test('rejects with its SQLSTATE and leaves the connection usable', async () => {
    const client = DatabasePool.getAdminClient()
    const pidBefore = (await client.query('select pg_backend_pid() as pid')).rows[0].pid
    DatabasePool.resetStats()

    const syntax = await rejectionOf(client.query('selec 1'))
    expect(syntax).toBeInstanceOf(DatabaseError)
    expect(syntax.code).toBe('42601')
    expect(syntax.position).toBe(1)

    const duplicate = await rejectionOf(client.query(`insert into ${table} values ($1, $2)`, [1, 'again']))
    expect(duplicate.code).toBe('23505')
    expect(duplicate.detail).toBe('Key (id)=(1) already exists.')
    expect(duplicate.constraint).toBe(`${table}_pkey`)
    expect(duplicate.table).toBe(table)

    const badParam = await rejectionOf(client.query(`select * from ${table} where id = $1`, ['one']))
    expect(badParam.code).toBe('22P02')
    expect(badParam.message).toMatch(/invalid input syntax for type integer/)

    const badJson = await rejectionOf(client.query('select $1::jsonb', ['{not json']))
    expect(badJson.code).toBe('22P02')

    const undefinedColumn = await rejectionOf(client.query(`select nope from ${table}`))
    expect(undefinedColumn.code).toBe('42703')
    expect(undefinedColumn.hint === undefined || typeof undefinedColumn.hint === 'string').toBe(true)

    // Same single connection, still usable, and nothing was written by the failures.
    const after = await client.query(`select pg_backend_pid() as pid, count(*)::int as n from ${table}`)
    expect(after.rows[0]).toEqual({ pid: pidBefore, n: 1 })

    const stats = DatabasePool.getStats()
    expect(stats.failedQueries).toBe(5)
    expect(stats.successfulQueries).toBe(1)
    expect(stats.totalQueries).toBe(6)
  })

  test('a failed statement inside a transaction-less batch does not poison the next caller', async () => {
    const client = DatabasePool.getAdminClient()
    await rejectionOf(client.query('select 1/0'))
    await expect(client.query('select 2 as two')).resolves.toEqual({ rows: [{ two: 2 }], rowCount: 1 })
  })
})

test('a caller that cannot get a connection in time gets POOL_TIMEOUT; the next one is served', async () => {
  useMainPool({ maxConnections: 1, connectionTimeout: 300 })
  DatabasePool.resetStats()
  const client = DatabasePool.getAdminClient()
  // Open the pool's one connection before the lock: a backend still starting up can itself
  // queue behind an exclusive lock, before it has its application_name.
  await client.query('select 1')
  const watcher = await observer()
  await watcher.query('begin')
  await watcher.query(`lock table ${table} in access exclusive mode`)

  // The only connection blocks on the lock...
  const holder = client.query<{ n: number }>(`select count(*)::int as n from ${table}`)
  await eventually(async () => {
    const { rows } = await watcher.query(
      `select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`,
      [app],
    )
    return rows[0].n === 1
  })

  // ...so the next caller waits connectionTimeout and gives up.
  const timedOut = await rejectionOf(client.query('select 1'))
  expect(timedOut).toBeInstanceOf(ConnectionPoolError)
  expect(timedOut.code).toBe('POOL_TIMEOUT')
  expect(DatabasePool.getStats().acquireTimeouts).toBe(1)

  await watcher.query('commit')
  await watcher.end()
  await expect(holder).resolves.toEqual({ rows: [{ n: 1 }], rowCount: 1 })
  await expect(client.query('select 3 as three')).resolves.toEqual({ rows: [{ three: 3 }], rowCount: 1 })
  expect(DatabasePool.getStats().waitingRequests).toBe(0)
})

test('after pg_terminate_backend on every pool connection, the next queries succeed', async () => {
  useMainPool({ maxConnections: 4 })
  const client = DatabasePool.getAdminClient()
  const watcher = await observer()

  // Open all four connections.
  await Promise.all(Array.from({ length: 16 }, () => client.query('select pg_sleep(0.01)')))
  await eventually(async () => (await connectionsOf(watcher, app)) === 4)
  const { rows: killed } = await watcher.query(
    'select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = $1',
    [app],
  )
  expect(killed).toHaveLength(4)
  await eventually(async () => (await connectionsOf(watcher, app)) === 0)

  DatabasePool.resetStats()
  for (let i = 0; i < 6; i++) {
    await expect(client.query('select $1::int as i', [i])).resolves.toEqual({ rows: [{ i }], rowCount: 1 })
  }
  const parallel = await Promise.all(Array.from({ length: 12 }, (_, i) => client.query('select $1::int as i', [i])))
  expect(parallel.map((r) => r.rows[0].i)).toEqual(Array.from({ length: 12 }, (_, i) => i))
  expect(DatabasePool.getStats().failedQueries).toBe(0)
  await watcher.end()
})

describe('an unreachable database', () => {
  test('healthCheck resolves healthy: false within connectionTimeout when connections are refused', async () => {
    const port = await closedPort()
    DatabasePool.initialize({ connectionString: `postgres://app:pw-not-here@127.0.0.1:${port}/db`, connectionTimeout: 500 })
    const started = Date.now()
    const health = await DatabasePool.healthCheck()
    const elapsed = Date.now() - started
    expect(health.healthy).toBe(false)
    expect(health.message).toMatch(/^Database unhealthy/)
    expect(health.message).not.toContain('pw-not-here')
    expect(elapsed).toBeLessThan(500 + 2000)

    const err = await rejectionOf(DatabasePool.getAdminClient().query('select 1'))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.message).not.toContain('pw-not-here')
  })

  test('healthCheck resolves healthy: false within connectionTimeout when the server never answers', async () => {
    const { port, server } = await blackhole()
    DatabasePool.initialize({ connectionString: `postgres://app:pw-not-here@127.0.0.1:${port}/db`, connectionTimeout: 500 })
    const started = Date.now()
    const health = await DatabasePool.healthCheck()
    expect(health.healthy).toBe(false)
    expect(Date.now() - started).toBeLessThan(500 + 2000)
    await DatabasePool.close()
    server.close()
  })

  test('healthCheck resolves healthy: true with the response time when it is up', async () => {
    useMainPool()
    const health = await DatabasePool.healthCheck()
    expect(health.healthy).toBe(true)
    expect(typeof health.responseTime).toBe('number')
    expect(health.message).toContain(`${Math.round(health.responseTime!)}ms`)
  })
})

test('a wrong password is refused as CONNECTION_FAILED naming the cause and its SQLSTATE, and the password appears nowhere', async () => {
  const password = databasePassword()
  if (password === null) return // a passwordless server (trust auth) cannot refuse one
  const url = new URL(taggedUrl(app))
  url.password = 'Wrong-Secret-42'
  DatabasePool.initialize({ connectionString: url.toString(), connectionTimeout: 2000 })
  const err = await rejectionOf(DatabasePool.getAdminClient().query('select 1'))
  // Issue 24: a refused login is CONNECTION_FAILED (the connection could not be opened), its
  // message naming the step, the server's words and the SQLSTATE.
  expect(err.code).toBe('CONNECTION_FAILED')
  expect(err.message).toMatch(/authentication failed: password authentication failed for user .*\(28P01\)/)
  const everything = JSON.stringify([err.message, err.detail, err.hint, DatabasePool.getPoolConfig(), DatabasePool.getStats()])
  expect(everything).not.toContain('Wrong-Secret-42')
  expect(everything).not.toContain(password)
})
