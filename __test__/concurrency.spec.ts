// 200 concurrent callers on a pool of 5: everyone is served, the server never sees more than 5
// of our connections, and the gauges always add up.
import { DatabasePool } from '..'
import { connectionsOf, observer, uniqueName, taggedUrl } from './helpers'

const app = uniqueName('cp_conc')

beforeAll(() => {
  DatabasePool.initialize({ connectionString: taggedUrl(app), maxConnections: 5, minConnections: 0 })
})

afterAll(async () => {
  await DatabasePool.close()
})

test('200 concurrent callers on maxConnections 5 all complete within the bound', async () => {
  const watcher = await observer()
  const client = DatabasePool.getAdminClient()
  DatabasePool.resetStats()

  let running = true
  let peakServerConnections = 0
  let peakWaiting = 0
  let gaugesAlwaysAddUp = true
  const sampler = (async () => {
    while (running) {
      const stats = DatabasePool.getStats()
      peakWaiting = Math.max(peakWaiting, stats.waitingRequests)
      if (stats.activeConnections + stats.idleConnections !== stats.totalConnections) gaugesAlwaysAddUp = false
      if (stats.totalConnections > 5) gaugesAlwaysAddUp = false
      peakServerConnections = Math.max(peakServerConnections, await connectionsOf(watcher, app))
    }
  })()

  // pg_sleep gives each statement some work so that callers really overlap.
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      client.query<{ i: number }>('select $1::int as i, pg_sleep(0.002)', [i]).then((r) => r.rows[0].i),
    ),
  )
  running = false
  await sampler
  await watcher.end()

  expect(results).toEqual(Array.from({ length: 200 }, (_, i) => i))
  expect(peakServerConnections).toBeGreaterThan(0)
  expect(peakServerConnections).toBeLessThanOrEqual(5)
  expect(peakWaiting).toBeGreaterThan(0)
  expect(gaugesAlwaysAddUp).toBe(true)

  const stats = DatabasePool.getStats()
  expect(stats.totalQueries).toBe(200)
  expect(stats.successfulQueries).toBe(200)
  expect(stats.failedQueries).toBe(0)
  expect(stats.waitingRequests).toBe(0)
  expect(stats.activeConnections + stats.idleConnections).toBe(stats.totalConnections)
  expect(stats.totalConnections).toBeLessThanOrEqual(5)
})
