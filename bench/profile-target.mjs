// The workload `bench/profile.sh` records: connection-pools alone, single-row primary-key selects
// from 50 callers for PROFILE_MS (default 5000) against an embedded PostgreSQL (or DATABASE_URL).
// PROFILE_SHAPE picks the path: raw (query(), the default), builder (the admin client's builder)
// anon (the same builder on an anonymous user client, role and claims per statement), embed
// (10 parents × 10 children through the builder) or embed-sql (the same by hand through query()).
// Prints the rate and the client CPU per statement so that a profile can be read against them.
import { createRequire } from 'node:module'
import { startEmbeddedPostgres } from '../scripts/embedded-postgres.mjs'

const require = createRequire(import.meta.url)
const { DatabasePool } = require('..')
const CALLERS = Number(process.env.PROFILE_CALLERS ?? 50)
const MS = Number(process.env.PROFILE_MS ?? 5000)
const SHAPE = process.env.PROFILE_SHAPE ?? 'raw'

const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres({ password: 'profile-pw' })
DatabasePool.initialize({ connectionString: process.env.DATABASE_URL ?? embedded.url, maxConnections: 10, minConnections: 10 })
const client = DatabasePool.getAdminClient()
await client.query('drop table if exists profile_users')
await client.query('create table profile_users as select g as id, $1 || g as name from generate_series(1, 10000) g', ['user '])
await client.query('alter table profile_users add primary key (id)')
await client.query(`DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
await client.query('grant select on profile_users to anon')
await client.query('drop table if exists profile_children')
await client.query('create table profile_children as select g as id, (g - 1) / 10 + 1 as parent_id, $1 || g as note from generate_series(1, 1000) g', ['note '])
await client.query('alter table profile_children add primary key (id)')
await client.query('alter table profile_children add foreign key (parent_id) references profile_users (id)')
await client.query('create index on profile_children (parent_id)')
await client.query('grant select on profile_children to anon')
DatabasePool.reloadSchema()
const anon = DatabasePool.getUserClient()
const EMBED_SQL = `select p.id, p.name, coalesce((select json_agg(c) from (select id, note from profile_children
  where parent_id = p.id) c), '[]') as profile_children from profile_users p where p.id between $1 and $1 + 9`
const statements = {
  raw: (k) => client.query('select id, name from profile_users where id = $1', [k]),
  builder: (k) => client.from('profile_users').select('id,name').eq('id', k),
  anon: (k) => anon.from('profile_users').select('id,name').eq('id', k),
  // 10 parents × 10 children, by the builder and by hand.
  embed: (k) => client.from('profile_users').select('id, name, profile_children(id, note)').gte('id', k % 90 + 1).lte('id', k % 90 + 10),
  'embed-sql': (k) => client.query(EMBED_SQL, [k % 90 + 1]),
}
const statement = statements[SHAPE]
if (!statement) throw new Error(`PROFILE_SHAPE must be one of ${Object.keys(statements).join(', ')}`)
let n = 0
const end = Date.now() + MS
const cpu = process.cpuUsage()
await Promise.all(Array.from({ length: CALLERS }, async () => {
  while (Date.now() < end) await statement((n++ % 10000) + 1)
}))
const used = process.cpuUsage(cpu)
console.log(`${SHAPE}: ${(n / (MS / 1000)).toFixed(0)} statements/s, ${((used.user + used.system) / n).toFixed(1)} µs client CPU per statement`)
await client.query('drop table profile_children')
await client.query('drop table profile_users')
await DatabasePool.close()
if (embedded) await embedded.stop()
