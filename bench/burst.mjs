// Memory under a burst: 50,000 statements issued at once while every connection of the pool is
// blocked (another session holds a table lock), so that all but a pipeline's worth per
// connection wait in the pool. Prints the process's RSS growth per waiting statement, then lets
// them all finish. Run by bench/run.mjs in a process of its own (DATABASE_URL set).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { DatabasePool } = require('..')
const pg = require('pg')
const BURST = 50_000
const POOL = Number(process.env.BENCH_POOL ?? 10)
const url = process.env.DATABASE_URL

DatabasePool.initialize({ connectionString: url, maxConnections: POOL, minConnections: POOL })
const client = DatabasePool.getAdminClient()
await client.query('create table if not exists bench_burst (id int primary key)')
const blocker = new pg.Client({ connectionString: url })
await blocker.connect()
await blocker.query('begin')
await blocker.query('lock table bench_burst in access exclusive mode')
global.gc?.()
const before = process.memoryUsage()
const pending = Array.from({ length: BURST }, (_, i) => client.query('select id from bench_burst where id = $1', [i]))
// Let every call reach the native side and the pool's queue.
await new Promise((resolve) => setTimeout(resolve, 500))
const waiting = DatabasePool.getStats().waitingRequests
global.gc?.()
const after = process.memoryUsage()
await blocker.query('commit')
await Promise.all(pending)
await blocker.end()
await client.query('drop table bench_burst')
await DatabasePool.close()
const perStatement = (after.rss - before.rss) / BURST
console.log(`burst: ${BURST} statements issued against ${POOL} blocked connections; ${waiting} waiting in the pool`)
console.log(`  RSS +${((after.rss - before.rss) / 1048576).toFixed(1)} MB = ${perStatement.toFixed(0)} B per statement` +
  ` (JS heap ${((after.heapUsed - before.heapUsed) / BURST).toFixed(0)} B of it; SQL text ${'select id from bench_burst where id = $1'.length} B, one int parameter)`)
