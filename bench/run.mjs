// npm run bench: connection-pools against pg and postgres.js, side by side, in one run.
//
// Every driver gets the same server, the same pool size and the same statements. Each
// (shape, callers) cell is measured for every driver in each round, in a rotating order, and
// the report shows the median of the rounds: the machine is small and noisy, so single runs lie.
// Environment: DATABASE_URL (default: an embedded PostgreSQL), BENCH_ROUNDS (5), BENCH_MS (1500),
// BENCH_POOL (10), BENCH_ONLY (run only cells whose "shape callers" contains it).
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import os from 'node:os'
import { readdirSync, readFileSync } from 'node:fs'
import { startEmbeddedPostgres } from '../scripts/embedded-postgres.mjs'

const require = createRequire(import.meta.url)
const { DatabasePool, OpenAIPool, openai } = require('..')
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')
const OpenAI = require('openai')
const undici = require('undici')
const pg = require('pg')
const postgres = require('postgres')
const { PostgrestClient } = require('@supabase/postgrest-js')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const CELL_MS = Number(process.env.BENCH_MS ?? 1500)
const POOL = Number(process.env.BENCH_POOL ?? 10)
const ROWS = 10_000

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const percentile = (sorted, p) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]

/**
 * Context switches of every thread of this process so far (Linux: voluntary and involuntary, as
 * `perf stat -e context-switches` counts them), or null where /proc is not there.
 */
function contextSwitches() {
  try {
    let total = 0
    for (const task of readdirSync('/proc/self/task')) {
      const status = readFileSync(`/proc/self/task/${task}/status`, 'utf8')
      for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) total += Number(m[1])
    }
    return total
  } catch {
    return null
  }
}

/**
 * Runs `call` from `callers` concurrent loops for `ms`; returns queries/s, p50 and p99 in ms, the
 * client's CPU per call in µs (process.cpuUsage: user + system time of every thread of this
 * process, Node's and the addon's tokio workers alike; the server is another process), and the
 * process's context switches per call.
 */
async function measure(call, callers, ms) {
  const latencies = []
  const end = performance.now() + ms
  let n = 0
  const loop = async () => {
    while (performance.now() < end) {
      const started = performance.now()
      await call(n++)
      latencies.push(performance.now() - started)
    }
  }
  const cpuBefore = process.cpuUsage()
  const switchesBefore = contextSwitches()
  const started = performance.now()
  await Promise.all(Array.from({ length: callers }, loop))
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpuBefore)
  const switches = switchesBefore === null ? null : contextSwitches() - switchesBefore
  latencies.sort((a, b) => a - b)
  return {
    qps: (latencies.length / elapsed) * 1000,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuUs: (cpu.user + cpu.system) / latencies.length,
    switches: switches === null ? NaN : switches / latencies.length,
  }
}

async function main() {
  let embedded = null
  let url = process.env.DATABASE_URL
  if (!url) {
    embedded = await startEmbeddedPostgres({ password: 'bench-pw' })
    url = embedded.url
  }

  DatabasePool.initialize({ connectionString: url, maxConnections: POOL, minConnections: POOL })
  const ours = DatabasePool.getAdminClient()
  const pgPool = new pg.Pool({ connectionString: url, max: POOL })
  pgPool.on('error', () => {}) // the embedded server's shutdown at the end
  const sql = postgres(url, { max: POOL, onnotice: () => {} })

  await ours.query('drop table if exists bench_users')
  await ours.query(`create table bench_users (
    id int primary key, email text not null, name text not null, score float8 not null,
    active bool not null, created_at timestamptz not null)`)
  await ours.query(
    `insert into bench_users
     select g, 'user' || g || '@example.com', 'User ' || g, g * 1.5, g % 2 = 0, now() - g * interval '1 minute'
     from generate_series(1, $1::int) g`,
    [ROWS],
  )
  await ours.query('analyze bench_users')
  // The roles the user client switches to, as on Supabase.
  await ours.query(`DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
  await ours.query('grant select on bench_users to anon')
  // Embedding: 10 parents with 10 children each, fetched whole.
  await ours.query('drop table if exists bench_children')
  await ours.query('drop table if exists bench_parents')
  await ours.query('create table bench_parents (id int primary key, name text not null)')
  await ours.query(`create table bench_children (id int primary key,
    parent_id int not null references bench_parents, note text not null)`)
  await ours.query(`insert into bench_parents select g, 'parent ' || g from generate_series(1, 100) g`)
  await ours.query(`insert into bench_children select g, (g - 1) / 10 + 1, 'note ' || g from generate_series(1, 1000) g`)
  await ours.query('create index on bench_children (parent_id)')
  await ours.query('analyze bench_parents, bench_children')

  const ONE = 'select id, email, name, score, active, created_at from bench_users where id = $1'
  const MANY = 'select id, email, name, score, active, created_at from bench_users where id <= $1'
  const id = (i) => (i % ROWS) + 1

  const shapes = {
    // pg in its fastest ordinary form, named prepared statements, and its default (unnamed) one.
    'single-row pk select': {
      'connection-pools': (i) => ours.query(ONE, [id(i)]),
      'pg (named)': (i) => pgPool.query({ name: 'bench_one', text: ONE, values: [id(i)] }),
      'pg (unnamed)': (i) => pgPool.query(ONE, [id(i)]),
      'postgres.js': (i) => sql.unsafe(ONE, [id(i)], { prepare: true }),
    },
    '1000-row select': {
      'connection-pools': () => ours.query(MANY, [1000]),
      'pg (named)': () => pgPool.query({ name: 'bench_many', text: MANY, values: [1000] }),
      'pg (unnamed)': () => pgPool.query(MANY, [1000]),
      'postgres.js': () => sql.unsafe(MANY, [1000], { prepare: true }),
    },
  }
  const cells = []
  for (const [shape, drivers] of Object.entries(shapes)) {
    for (const callers of [1, 10, 50]) cells.push({ shape, callers, drivers })
  }
  cells.push({
    shape: 'executeQuery vs bare (single-row)',
    callers: 10,
    drivers: {
      'connection-pools': (i) => ours.query(ONE, [id(i)]),
      'executeQuery(...)': (i) => DatabasePool.executeQuery(() => ours.query(ONE, [id(i)]), true),
    },
  })
  // The builder against our raw path and postgres.js, on the statements it generates.
  const THREE = 'select id, email, name from bench_users where id = $1'
  const bare = new PostgrestClient('http://bench.invalid', {
    retry: false,
    fetch: (url) =>
      ours.query(THREE, [Number(url.slice(url.lastIndexOf('eq.') + 3))]).then((r) => {
        const text = JSON.stringify(r.rows)
        return { ok: true, status: 200, statusText: 'OK', headers: { get: () => null }, text: () => Promise.resolve(text) }
      }),
  })
  cells.push({
    shape: "builder from('bench_users').select('id,email,name').eq('id', n)",
    callers: 10,
    drivers: {
      'connection-pools': (i) => ours.from('bench_users').select('id,email,name').eq('id', id(i)),
      'raw query()': (i) => ours.query(THREE, [id(i)]),
      'postgres.js': (i) => sql.unsafe(THREE, [id(i)], { prepare: true }),
      // The bound postgrest-js itself sets: the same builder chain, its fetch answered by the
      // same statement through query() with no request grammar, SQL building or PostgREST reply.
      'postgrest-js→query()': (i) => bare.from('bench_users').select('id,email,name').eq('id', id(i)),
    },
  })
  cells.push({
    shape: "builder 1000-row select('*').lte('id', 1000)",
    callers: 10,
    drivers: {
      'connection-pools': () => ours.from('bench_users').select('*').lte('id', 1000),
      'raw query()': () => ours.query('select * from bench_users where id <= $1', [1000]),
      'postgres.js': () => sql.unsafe('select * from bench_users where id <= $1', [1000], { prepare: true }),
    },
  })
  // Embedding against the SQL PostgREST would run, written by hand and sent through query().
  const EMBED_SQL = `select p.id, p.name, coalesce((select json_agg(c) from (select id, note from bench_children
    where parent_id = p.id) c), '[]') as bench_children from bench_parents p where p.id <= $1`
  cells.push({
    shape: "builder embedding select('id, name, bench_children(id, note)'), 10 parents × 10 children",
    callers: 10,
    drivers: {
      'connection-pools': () => ours.from('bench_parents').select('id, name, bench_children(id, note)').lte('id', 10),
      'hand SQL query()': () => ours.query(EMBED_SQL, [10]),
    },
  })
  // The user client runs each statement under the token's role and claims (set_config(..., true)
  // and the statement under one Sync), as PostgREST does; the admin client as the login role.
  const anon = DatabasePool.getUserClient()
  cells.push({
    shape: 'user client (anon, RLS) vs admin client, single-row builder',
    callers: 50,
    drivers: {
      'connection-pools': (i) => anon.from('bench_users').select('id,email,name').eq('id', id(i)),
      'admin client': (i) => ours.from('bench_users').select('id,email,name').eq('id', id(i)),
    },
  })
  cells.push({
    shape: 'user client (anon, RLS) vs admin client, single-row query()',
    callers: 50,
    drivers: {
      'connection-pools': (i) => anon.query(THREE, [id(i)]),
      'admin client': (i) => ours.query(THREE, [id(i)]),
    },
  })

  // Sanity: every driver returns the same rows before anything is timed.
  const check = [await ours.query(ONE, [7]), await pgPool.query(ONE, [7]), await sql.unsafe(ONE, [7])]
  if (check.some((r) => (r.rows ?? r).length !== 1)) throw new Error('drivers disagree on the test row')
  const chain = (client) => client.from('bench_users').select('id,email,name').eq('id', 7)
  const [built, bound] = [await chain(ours), await chain(bare)]
  if (built.error || JSON.stringify(built.data) !== JSON.stringify(bound.data)) {
    throw new Error('the builder and postgrest-js over query() disagree on the test row')
  }

  console.log(`connection-pools bench: pool ${POOL}, ${ROUNDS} rounds × ${CELL_MS} ms per cell, ` +
    `${os.cpus().length} CPUs, Node ${process.version}, server ${embedded ? 'embedded-postgres' : 'DATABASE_URL'}`)
  const only = process.env.BENCH_ONLY
  if (only) cells.splice(0, cells.length, ...cells.filter((c) => `${c.shape} ${c.callers}`.includes(only)))
  const results = cells.map(() => ({}))
  for (let round = 0; round < ROUNDS; round++) {
    for (const [c, cell] of cells.entries()) {
      const names = Object.keys(cell.drivers)
      const order = names.map((_, k) => names[(k + round) % names.length])
      for (const name of order) {
        await measure(cell.drivers[name], cell.callers, 200) // warm-up
        const r = await measure(cell.drivers[name], cell.callers, CELL_MS)
        ;(results[c][name] ??= []).push(r)
      }
    }
    process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`)
  }

  const fmt = (x, d = 0) => x.toFixed(d).padStart(9)
  for (const [c, cell] of cells.entries()) {
    console.log(`\n${cell.shape}, ${cell.callers} caller${cell.callers > 1 ? 's' : ''}`)
    console.log(`${'driver'.padEnd(20)}${'q/s'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'CPU µs'.padStart(9)}${'cs/call'.padStart(9)}` +
      '   q/s ratio, CPU ratio (first row ÷ this row)')
    const summary = {}
    for (const [name, runs] of Object.entries(results[c])) {
      summary[name] = {
        qps: median(runs.map((r) => r.qps)),
        p50: median(runs.map((r) => r.p50)),
        p99: median(runs.map((r) => r.p99)),
        cpuUs: median(runs.map((r) => r.cpuUs)),
        switches: median(runs.map((r) => r.switches)),
      }
    }
    const first = summary['connection-pools']
    for (const [name, s] of Object.entries(summary)) {
      const ratio = name === 'connection-pools'
        ? ''
        : `   ${(first.qps / s.qps).toFixed(2)}×, ${(first.cpuUs / s.cpuUs).toFixed(2)}×`
      console.log(`${name.padEnd(20)}${fmt(s.qps)}${fmt(s.p50, 3)}${fmt(s.p99, 3)}${fmt(s.cpuUs, 1)}${fmt(s.switches, 2)}${ratio}`)
    }
  }

  if (!only || only.includes('burst')) await burstMemory(url)
  if (!only || only.includes('pooler')) await childBench('pooler.mjs', url)
  if (!only || only.includes('telemetry')) await childBench('telemetry.mjs', url)
  if (!only || only.includes('openai')) {
    await childBench('openai-shared.mjs', url)
    await childBench('openai-memory.mjs', url, ['--expose-gc'])
  }
  await benchOpenAI(only)

  const step = (what) => process.env.BENCH_DEBUG && process.stderr.write(`${what}\n`)
  step('drop'); await ours.query('drop table if exists bench_users, bench_children, bench_parents')
  step('close'); await DatabasePool.close()
  step('pg'); await pgPool.end()
  step('postgres.js'); await sql.end()
  step('embedded'); if (embedded) await embedded.stop()
}

/**
 * OpenAI: the exported client (openai-node over the pool's fetch), the bare SDK over its own
 * fetch, a bare undici Pool (the transport's limit) and the SDK over a fetch that answers at once
 * with a canned Response (the SDK's own CPU floor: no network, no server) against the loopback
 * stand-in with 0 ms and 20 ms service time; each driver gets its own server so that the TCP
 * connections it opened can be counted.
 */
async function benchOpenAI(only) {
  const MAX = 10
  const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] }
  const json = JSON.stringify(body)
  const cells = []
  for (const serviceMs of [0, 20]) for (const callers of [10, 100]) cells.push({ serviceMs, callers })
  const selected = cells.filter((c) => !only || `openai ${c.serviceMs}ms ${c.callers}`.includes(only))
  if (selected.length === 0) {
    // Nothing of OpenAI asked for: close what was opened, or the pool keeps the process alive.
    await OpenAIPool.close()
    return
  }
  // Each stand-in runs in a process of its own, so that the CPU measured is the client's alone.
  const names = ['connection-pools', 'openai SDK', 'bare undici']
  const servers = {}
  for (const serviceMs of new Set(selected.map((c) => c.serviceMs))) {
    for (const name of names) servers[`${name} ${serviceMs}`] = await remoteStandIn(serviceMs)
  }
  const clients = {}
  for (const serviceMs of new Set(selected.map((c) => c.serviceMs))) {
    const url = (name) => servers[`${name} ${serviceMs}`].url
    clients[serviceMs] = {
      poolConfig: { baseURL: url('connection-pools'), apiKey: 'sk-bench', maxConcurrentRequests: MAX, maxRetries: 0 },
      sdk: new OpenAI({ baseURL: url('openai SDK'), apiKey: 'sk-bench', maxRetries: 0 }),
      bare: new undici.Pool(new URL(url('bare undici')).origin, { connections: MAX }),
    }
  }
  // The answer the stand-in gives, canned with the headers it sends (those any fetch hands the
  // SDK: content type, request id, the six rate-limit headers, date; not the hop-by-hop ones):
  // what the SDK costs by itself on that answer.
  const anyServer = Object.values(servers)[0].url
  const sample = await fetch(`${anyServer}/chat/completions`, { method: 'POST', body: json, headers: { 'content-type': 'application/json' } })
  const canned = await sample.text()
  const hopByHop = new Set(['connection', 'keep-alive', 'transfer-encoding'])
  const cannedHeaders = [...sample.headers].filter(([name]) => !hopByHop.has(name))
  const floor = new OpenAI({
    baseURL: 'http://canned.invalid/v1',
    apiKey: 'sk-bench',
    maxRetries: 0,
    fetch: async () => new Response(canned, { status: 200, headers: cannedHeaders }),
  })
  const driversFor = ({ sdk, bare }) => ({
    'connection-pools': () => OpenAIPool.getClient().chat.completions.create(body),
    'openai SDK': () => sdk.chat.completions.create(body),
    'bare undici': async () => {
      const res = await bare.request({ path: '/v1/chat/completions', method: 'POST', body: json, headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' } })
      return res.body.json()
    },
    'SDK, canned fetch': () => floor.chat.completions.create(body),
  })
  const results = selected.map(() => ({}))
  // OpenAIPool is the process's one pool: the cells of one service time run together, on a
  // pool pointed at that service time's stand-in (initialized once, so that the connections
  // it opened can be counted).
  for (const serviceMs of new Set(selected.map((c) => c.serviceMs))) {
    OpenAIPool.initialize(clients[serviceMs].poolConfig)
    for (let round = 0; round < ROUNDS; round++) {
      for (const [c, cell] of selected.entries()) {
        if (cell.serviceMs !== serviceMs) continue
        const drivers = driversFor(clients[cell.serviceMs])
        const names = Object.keys(drivers)
        for (const name of names.map((_, k) => names[(k + round) % names.length])) {
          await measure(drivers[name], cell.callers, 200)
          const r = await measure(drivers[name], cell.callers, CELL_MS)
          ;(results[c][name] ??= []).push(r)
        }
      }
      process.stderr.write(`openai ${serviceMs} ms, round ${round + 1}/${ROUNDS} done\n`)
    }
  }
  for (const [c, cell] of selected.entries()) {
    console.log(`\nopenai chat.completions.create, ${cell.serviceMs} ms service time, ${cell.callers} callers`)
    console.log(`${'driver'.padEnd(20)}${'req/s'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'CPU µs'.padStart(9)}   req/s ratio (first row ÷ this row)`)
    const summary = {}
    for (const [name, runs] of Object.entries(results[c])) {
      summary[name] = {
        qps: median(runs.map((r) => r.qps)),
        p50: median(runs.map((r) => r.p50)),
        p99: median(runs.map((r) => r.p99)),
        cpuUs: median(runs.map((r) => r.cpuUs)),
        switches: median(runs.map((r) => r.switches)),
      }
    }
    const first = summary['connection-pools'].qps
    for (const [name, s] of Object.entries(summary)) {
      const ratio = name === 'connection-pools' ? '' : `   ${(first / s.qps).toFixed(2)}×`
      console.log(`${name.padEnd(20)}${s.qps.toFixed(0).padStart(9)}${s.p50.toFixed(3).padStart(9)}${s.p99.toFixed(3).padStart(9)}${s.cpuUs.toFixed(1).padStart(9)}${ratio}`)
    }
    const overFloor = summary['connection-pools'].cpuUs - summary['SDK, canned fetch'].cpuUs
    console.log(`client CPU over the SDK's own floor: ${overFloor.toFixed(1)} µs per request`)
  }
  console.log('\nTCP connections each driver opened over the whole OpenAI run (by service time):')
  for (const [name, server] of Object.entries(servers)) console.log(`  ${name.padEnd(22)} ${(await server.state()).connections}`)
  await OpenAIPool.close()
  for (const { bare } of Object.values(clients)) await bare.close()
  for (const server of Object.values(servers)) server.close()
}

/** The OpenAI stand-in in a process of its own: its URL, its counts, and a way to stop it. */
async function remoteStandIn(latencyMs) {
  const { spawn } = await import('node:child_process')
  const script = new URL('../scripts/openai-stand-in.js', import.meta.url).pathname
  const child = spawn(process.execPath, [script, String(latencyMs)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
      if (out.includes('\n')) resolve(out.split('\n')[0])
    })
    child.on('exit', (code) => reject(new Error(`the stand-in exited with ${code}`)))
  })
  const { url, control } = JSON.parse(line)
  return { url, state: async () => (await fetch(control)).json(), close: () => child.kill() }
}

/**
 * Memory under a burst (bench/burst.mjs), in a fresh process so that the other cells' garbage
 * does not blur its RSS.
 */
async function burstMemory(url) {
  const { execFileSync } = await import('node:child_process')
  const script = new URL('./burst.mjs', import.meta.url).pathname
  const out = execFileSync(process.execPath, ['--expose-gc', script], {
    env: { ...process.env, DATABASE_URL: url, BENCH_POOL: String(POOL) },
    encoding: 'utf8',
  })
  process.stdout.write(`\n${out}`)
}

/** A bench script of its own process (bench/<name>), its output appended to the report. */
async function childBench(name, url, nodeFlags = []) {
  const { execFileSync } = await import('node:child_process')
  const script = new URL(`./${name}`, import.meta.url).pathname
  const out = execFileSync(process.execPath, [...nodeFlags, script], {
    env: { ...process.env, DATABASE_URL: url, BENCH_POOL: String(POOL) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  process.stdout.write(out)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
