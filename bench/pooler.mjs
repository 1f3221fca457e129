// Throughput through a transaction pooler: a real PgBouncer (pool_mode = transaction,
// default_pool_size = 3) in front of the bench's server, against the same pool going direct.
// Our pool goes through it on its one-flight path (pooler: 'transaction'); the peers in the forms
// that work there: pg with unnamed statements, postgres.js with prepare: false. Run by
// bench/run.mjs in a process of its own (DATABASE_URL set; the table bench_users exists), because
// DatabasePool is one per process and is re-initialized between the two modes. Prints one table.
import { createRequire } from 'node:module'
import { measure } from './measure.mjs'
import { pgbouncerBinary, startPgBouncer } from '../scripts/pgbouncer.mjs'

const require = createRequire(import.meta.url)
const { DatabasePool } = require('..')
const pg = require('pg')
const postgres = require('postgres')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const CELL_MS = Number(process.env.BENCH_MS ?? 1500)
const POOL = Number(process.env.BENCH_POOL ?? 10)
const CALLERS = 50
const url = process.env.DATABASE_URL
const ONE = 'select id, email, name, score, active, created_at from bench_users where id = $1'
const id = (i) => (i % 10_000) + 1

if (!pgbouncerBinary()) {
  console.log('pooler: pgbouncer is not installed (apt-get install pgbouncer); skipped')
  process.exit(0)
}
const bouncer = await startPgBouncer({ databaseUrl: url, poolMode: 'transaction', poolSize: 3 })

const drivers = {
  'connection-pools, direct': async () => {
    DatabasePool.initialize({ connectionString: url, maxConnections: POOL, minConnections: POOL })
    const client = DatabasePool.getAdminClient()
    await client.query(ONE, [1])
    return { call: (i) => client.query(ONE, [id(i)]), end: () => DatabasePool.close() }
  },
  // The one-flight path without PgBouncer: what the protocol change costs by itself.
  'connection-pools one-flight, direct': async () => {
    DatabasePool.initialize({ connectionString: url, pooler: 'transaction', maxConnections: POOL, minConnections: POOL })
    const client = DatabasePool.getAdminClient()
    await client.query(ONE, [1])
    return { call: (i) => client.query(ONE, [id(i)]), end: () => DatabasePool.close() }
  },
  'connection-pools, via PgBouncer': async () => {
    DatabasePool.initialize({ connectionString: bouncer.url, pooler: 'transaction', maxConnections: POOL, minConnections: POOL })
    const client = DatabasePool.getAdminClient()
    await client.query(ONE, [1])
    return { call: (i) => client.query(ONE, [id(i)]), end: () => DatabasePool.close() }
  },
  'pg (unnamed), via PgBouncer': async () => {
    const pool = new pg.Pool({ connectionString: bouncer.url, max: POOL })
    return { call: (i) => pool.query(ONE, [id(i)]), end: () => pool.end() }
  },
  'postgres.js (prepare: false), via PgBouncer': async () => {
    const sql = postgres(bouncer.url, { max: POOL, prepare: false, onnotice: () => {} })
    return { call: (i) => sql.unsafe(ONE, [id(i)]), end: () => sql.end() }
  },
}

const results = Object.fromEntries(Object.keys(drivers).map((name) => [name, []]))
const names = Object.keys(drivers)
for (let round = 0; round < ROUNDS; round++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(round + k) % names.length]
    const driver = await drivers[name]()
    results[name].push(await measure(driver.call, CALLERS, CELL_MS))
    await driver.end()
  }
  process.stderr.write(`pooler round ${round + 1}/${ROUNDS} done\n`)
}
await bouncer.stop()

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
console.log(`\nsingle-row pk select, ${CALLERS} callers, pool ${POOL}: through PgBouncer 1.x (transaction mode, 3 server connections) and direct`)
console.log(`${'driver'.padEnd(44)}${'q/s'.padStart(9)}${'CPU µs'.padStart(9)}   this ÷ ours direct`)
const ref = median(results['connection-pools, direct'].map((r) => r.qps))
for (const name of names) {
  const qps = median(results[name].map((r) => r.qps))
  const cpu = median(results[name].map((r) => r.cpuUs))
  console.log(`${name.padEnd(44)}${qps.toFixed(0).padStart(9)}${cpu.toFixed(1).padStart(9)}   ${(qps / ref).toFixed(2)}×`)
}
