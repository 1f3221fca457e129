// OpenAI limits shared through Redis, measured: the cost of a shared slot over a local one
// (p50 added per request at 0 ms service time, 10 callers, one process), and the total
// throughput of 4 processes sharing maxConcurrentRequests 10 against 1 process with the same
// cap. Run by bench/run.mjs in a process of its own; skipped without redis-server.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'

const require = createRequire(import.meta.url)
const { OpenAIPool, openai } = require('..')
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')
const { startRedisServer, redisServerBinary } = require('../scripts/redis-server.js')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const CELL_MS = Number(process.env.BENCH_MS ?? 1500)
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

if (!redisServerBinary()) {
  console.log('\nopenai shared limits: redis-server is not installed; skipped')
  process.exit(0)
}
const server = await startOpenAIStandIn({ record: false })
const redis = await startRedisServer()
const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] }

async function latencies(config, callers, ms) {
  OpenAIPool.initialize(config)
  await openai.chat.completions.create(body)
  const samples = []
  const end = performance.now() + ms
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const t = performance.now()
        await openai.chat.completions.create(body)
        samples.push(performance.now() - t)
      }
    }),
  )
  await OpenAIPool.close()
  samples.sort((a, b) => a - b)
  return { p50: samples[samples.length >> 1], qps: samples.length / (ms / 1000) }
}

const local = { baseURL: server.url, apiKey: 'sk-bench', maxConcurrentRequests: 10, maxRetries: 0 }
const shared = { ...local, redisUrl: redis.url, limitKey: `bench-${process.pid}` }
const one = { local: [], shared: [] }
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, config] of round % 2 ? [['shared', shared], ['local', local]] : [['local', local], ['shared', shared]]) {
    one[name].push(await latencies(config, 10, CELL_MS))
  }
}
const p50 = { local: median(one.local.map((r) => r.p50)), shared: median(one.shared.map((r) => r.p50)) }
const qps = { local: median(one.local.map((r) => r.qps)), shared: median(one.shared.map((r) => r.qps)) }

/** `processes` workers sharing the cap, `perProcess` requests each from 100/processes callers. */
async function processesRun(processes, total) {
  const workers = Array.from({ length: processes }, () => {
    const child = spawn(process.execPath, [new URL('../scripts/openai-worker.js', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines = createInterface({ input: child.stdout })
    const send = (line) =>
      new Promise((resolve) => {
        lines.once('line', (text) => resolve(JSON.parse(text)))
        child.stdin.write(line + '\n')
      })
    return { child, send }
  })
  const config = { ...shared, limitKey: `bench-procs-${processes}-${Date.now()}` }
  await Promise.all(workers.map((w) => w.send(`init ${JSON.stringify(config)}`)))
  await Promise.all(workers.map((w) => w.send('run 20 10')))
  const started = performance.now()
  await Promise.all(workers.map((w) => w.send(`run ${total / processes} ${100 / processes}`)))
  const elapsed = performance.now() - started
  await Promise.all(workers.map((w) => new Promise((resolve) => (w.child.once('exit', resolve), w.child.stdin.end()))))
  return (total / elapsed) * 1000
}
const procs = { 1: [], 4: [] }
for (let round = 0; round < ROUNDS; round++) {
  procs[1].push(await processesRun(1, 4000))
  procs[4].push(await processesRun(4, 4000))
}

console.log('\nopenai limits shared through Redis (loopback stand-in, 0 ms service time, maxConcurrentRequests 10)')
console.log(`  one process, 10 callers: p50 ${p50.local.toFixed(3)} ms local slot, ${p50.shared.toFixed(3)} ms shared slot ` +
  `(+${(p50.shared - p50.local).toFixed(3)} ms per request); ${qps.local.toFixed(0)} vs ${qps.shared.toFixed(0)} req/s`)
console.log(`  100 callers sharing the cap: 1 process ${median(procs[1]).toFixed(0)} req/s, 4 processes ${median(procs[4]).toFixed(0)} req/s ` +
  `(${(median(procs[4]) / median(procs[1])).toFixed(2)}×)`)
await redis.close()
await server.close()
