// The cost of telemetry when nobody observes: client CPU per single-row statement of one build,
// in a process of its own. Run it against two builds in turn (a checkout of the commit before
// and this one, each `npm run build`), alternating, and compare the medians:
//
//   for r in 1 2 3 4 5 6 7; do for dir in /tmp/before "$PWD"; do
//     echo "$dir $(node bench/experiments/unobserved-cost.mjs "$dir")"; done; done
//
// DATABASE_URL must point at a server with bench_users (npm run bench creates it).
import { createRequire } from 'node:module'
import { measure as measureCalls } from '../measure.mjs'

const require = createRequire(import.meta.url)
const { DatabasePool } = require(process.argv[2] ?? '../..')
const ONE = 'select id, email, name, score, active, created_at from bench_users where id = $1'
DatabasePool.initialize({ connectionString: process.env.DATABASE_URL, maxConnections: 10, minConnections: 10 })
const client = DatabasePool.getAdminClient()

const measure = (callers, ms) => measureCalls((i) => client.query(ONE, [(i % 10_000) + 1]), callers, ms)
await measure(10, 800)
console.log(JSON.stringify({ one: await measure(1, 2000), ten: await measure(10, 2000) }))
await DatabasePool.close()
