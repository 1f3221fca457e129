// Stats that are true: every statement counts once wherever it ran, the latency window feeds
// the average and percentiles, resetStats() zeroes counters but not the live gauges.
import { DatabasePool } from '..'
import { rejectionOf, taggedUrl, uniqueName } from './helpers'

beforeAll(() => {
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_stats')), minConnections: 1, maxConnections: 3 })
})
afterAll(() => DatabasePool.close())

test('every statement counts exactly once, inside executeQuery or not', async () => {
  const client = DatabasePool.getAdminClient()
  await client.query('select 1') // connect first, so the gauges below are live
  DatabasePool.resetStats()
  const before = Date.now()

  await client.query('select 1')
  await client.query('select 2')
  await DatabasePool.getUserClient().query('select 3')
  const viaExecute = await DatabasePool.executeQuery(() => client.query('select 4 as four'), true)
  await DatabasePool.executeQuery(async () => {
    await client.query('select 5')
    await client.query('select 6')
  })
  await rejectionOf(DatabasePool.executeQuery(() => client.query('select * from no_such_table_xyz')))

  const stats = DatabasePool.getStats()
  expect(viaExecute.rows).toEqual([{ four: 4 }])
  expect(stats.totalQueries).toBe(7)
  expect(stats.successfulQueries).toBe(6)
  expect(stats.failedQueries).toBe(1)
  expect(stats.lastQueryTime).not.toBeNull()
  expect(stats.lastQueryTime!).toBeGreaterThanOrEqual(before)
  expect(stats.lastQueryTime!).toBeLessThanOrEqual(Date.now())
  expect(stats.averageResponseTime).toBeGreaterThan(0)
  expect(stats.p50ResponseTime).toBeGreaterThan(0)
  expect(stats.p50ResponseTime).toBeLessThanOrEqual(stats.p95ResponseTime)
  expect(stats.p95ResponseTime).toBeLessThanOrEqual(stats.p99ResponseTime)
})

test('health checks are not counted as statements', async () => {
  DatabasePool.resetStats()
  await DatabasePool.healthCheck()
  expect(DatabasePool.getStats().totalQueries).toBe(0)
})

test('resetStats zeroes counters and latencies; the connection gauges stay live', async () => {
  await DatabasePool.getAdminClient().query('select 1')
  const before = DatabasePool.getStats()
  expect(before.totalConnections).toBeGreaterThan(0)
  DatabasePool.resetStats()
  const after = DatabasePool.getStats()
  expect(after).toMatchObject({
    totalQueries: 0,
    successfulQueries: 0,
    failedQueries: 0,
    averageResponseTime: 0,
    p50ResponseTime: 0,
    p95ResponseTime: 0,
    p99ResponseTime: 0,
    lastQueryTime: null,
    acquireTimeouts: 0,
  })
  expect(after.totalConnections).toBe(before.totalConnections)
})

test('the latency window covers the last 1000 statements', async () => {
  DatabasePool.resetStats()
  const client = DatabasePool.getAdminClient()
  // 20 slow statements, then 1000 fast ones push every slow one out of the window.
  await Promise.all(Array.from({ length: 20 }, () => client.query('select pg_sleep(0.03)')))
  const withSlow = DatabasePool.getStats().p99ResponseTime
  for (let batch = 0; batch < 10; batch++) {
    await Promise.all(Array.from({ length: 100 }, () => client.query('select 1')))
  }
  const stats = DatabasePool.getStats()
  expect(stats.totalQueries).toBe(1020)
  expect(withSlow).toBeGreaterThanOrEqual(30)
  expect(stats.p99ResponseTime).toBeLessThan(withSlow)
})

test('executeQuery passes results and errors of plain functions through', async () => {
  await expect(DatabasePool.executeQuery(() => 5)).resolves.toBe(5)
  await expect(DatabasePool.executeQuery(async () => ({ data: [1], error: null }))).resolves.toEqual({ data: [1], error: null })
  const thrown = new Error('from fn')
  await expect(DatabasePool.executeQuery(() => { throw thrown })).rejects.toBe(thrown)
  await expect(DatabasePool.executeQuery(null as any)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
})
