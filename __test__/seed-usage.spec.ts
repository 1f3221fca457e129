// The seed's "Database Pool Usage" example, as written, with query() in place of the
// Supabase call; and the backward-compatible names of the seed's database.ts.
import { DatabasePool, supabaseAdmin, supabase, testConnection, checkDatabaseHealth } from '..'
import { taggedUrl, uniqueName } from './helpers'

const table = uniqueName('seed_users')

beforeAll(async () => {
  DatabasePool.initialize({ connectionString: taggedUrl('cp_test_seed'), minConnections: 0 })
  const admin = DatabasePool.getAdminClient()
  await admin.query(`create table ${table} (id serial primary key, email text not null)`)
  await admin.query(`insert into ${table} (email) values ($1), ($2)`, ['a@example.com', 'b@example.com'])
})

afterAll(async () => {
  await DatabasePool.getAdminClient().query(`drop table if exists ${table}`)
  await DatabasePool.close()
})

test('the seed usage example runs as written', async () => {
  DatabasePool.resetStats()

  // Get client (singleton)
  const client = DatabasePool.getAdminClient()

  // Execute query with monitoring
  const result = await DatabasePool.executeQuery(() => client.query(`select * from ${table} order by id`), true)

  // Get statistics
  const stats = DatabasePool.getStats()
  const summary = {
    totalQueries: stats.totalQueries,
    averageResponseTime: stats.averageResponseTime,
    successRate: (stats.successfulQueries / stats.totalQueries) * 100,
  }

  // Health check
  const health = await DatabasePool.healthCheck()

  expect(result.rows.map((r) => r.email)).toEqual(['a@example.com', 'b@example.com'])
  expect(result.rowCount).toBe(2)
  expect(summary.totalQueries).toBe(1)
  expect(summary.successRate).toBe(100)
  expect(summary.averageResponseTime).toBeGreaterThan(0)
  expect(health.healthy).toBe(true)
  expect(health.message).toMatch(/^Database healthy \(response time: \d+ms\)$/)
})

test('clients are singletons and the seed names are the same clients', () => {
  expect(DatabasePool.getAdminClient()).toBe(DatabasePool.getAdminClient())
  expect(DatabasePool.getUserClient()).toBe(DatabasePool.getUserClient())
  expect(supabaseAdmin).toBe(DatabasePool.getAdminClient())
  expect(supabase).toBe(DatabasePool.getUserClient())
  expect(supabaseAdmin).not.toBe(supabase)
})

test('testConnection and checkDatabaseHealth use the pool', async () => {
  await expect(testConnection()).resolves.toBe(true)
  const health = await checkDatabaseHealth()
  expect(health.healthy).toBe(true)
  expect(health.stats).not.toBeNull()
})

test('getPoolConfig shows the seed defaults for options not given', () => {
  const config = DatabasePool.getPoolConfig()
  expect(config).toMatchObject({
    maxConnections: 20,
    minConnections: 0,
    connectionTimeout: 30000,
    idleTimeout: 60000,
    maxRetries: 3,
    retryDelay: 1000,
  })
})
