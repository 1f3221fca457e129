// The workload `bench/profile.sh` records: connection-pools alone, single-row primary-key selects
// from 50 callers for PROFILE_MS (default 5000) against an embedded PostgreSQL (or DATABASE_URL).
// Prints the rate and the client CPU per statement so that a profile can be read against them.
import { createRequire } from 'node:module'
import { startEmbeddedPostgres } from '../scripts/embedded-postgres.mjs'

const require = createRequire(import.meta.url)
const { DatabasePool } = require('..')
const CALLERS = Number(process.env.PROFILE_CALLERS ?? 50)
const MS = Number(process.env.PROFILE_MS ?? 5000)

const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres({ password: 'profile-pw' })
DatabasePool.initialize({ connectionString: process.env.DATABASE_URL ?? embedded.url, maxConnections: 10, minConnections: 10 })
const client = DatabasePool.getAdminClient()
await client.query('drop table if exists profile_users')
await client.query('create table profile_users as select g as id, $1 || g as name from generate_series(1, 10000) g', ['user '])
await client.query('alter table profile_users add primary key (id)')
let n = 0
const end = Date.now() + MS
const cpu = process.cpuUsage()
await Promise.all(Array.from({ length: CALLERS }, async () => {
  while (Date.now() < end) await client.query('select id, name from profile_users where id = $1', [(n++ % 10000) + 1])
}))
const used = process.cpuUsage(cpu)
console.log(`${(n / (MS / 1000)).toFixed(0)} statements/s, ${((used.user + used.system) / n).toFixed(1)} µs client CPU per statement`)
await client.query('drop table profile_users')
await DatabasePool.close()
if (embedded) await embedded.stop()
