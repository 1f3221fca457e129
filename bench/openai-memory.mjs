// Memory per queued OpenAI request: 100,000 create() calls at maxConcurrentRequests 10 while
// the stand-in holds the 10 in flight, RSS and JS heap growth per waiting call; beside it, what
// the SDK itself holds per pending request (the same calls on a bare OpenAI whose fetch never
// answers), in a second process so that the two do not share a heap. Run by bench/run.mjs
// (--expose-gc); `node --expose-gc bench/openai-memory.mjs sdk` runs the second half alone.
import { createRequire } from 'node:module'
import { execFileSync } from 'node:child_process'

const require = createRequire(import.meta.url)
const N = 100_000
const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] }

function perCall(before, after) {
  return { rss: ((after.rss - before.rss) / N).toFixed(0), heap: ((after.heapUsed - before.heapUsed) / N).toFixed(0) }
}

if (process.argv[2] === 'sdk') {
  const OpenAI = require('openai')
  // Each pending fetch kept answerable, as a real transport keeps it: the SDK's state for the
  // request stays alive until its answer, as it does under the pool.
  const answers = []
  const sdk = new OpenAI({ apiKey: 'sk-bench', baseURL: 'http://never.invalid/v1', maxRetries: 0, timeout: 600_000, fetch: () => new Promise((resolve) => answers.push(resolve)) })
  global.gc?.()
  const before = process.memoryUsage()
  const pending = Array.from({ length: N }, () => sdk.chat.completions.create(body).catch(() => {}))
  await new Promise((r) => setTimeout(r, 200))
  global.gc?.()
  console.log(JSON.stringify(perCall(before, process.memoryUsage())))
  void [pending, answers]
  process.exit(0)
}

const { OpenAIPool, openai } = require('..')
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')
const server = await startOpenAIStandIn({ record: false })
OpenAIPool.initialize({ baseURL: server.url, apiKey: 'sk-bench', maxConcurrentRequests: 10, timeout: 600_000, requestTimeout: 600_000 })
server.state.latencyMs = 600_000
global.gc?.()
const before = process.memoryUsage()
const pending = Array.from({ length: N }, () => openai.chat.completions.create(body).catch(() => {}))
while (OpenAIPool.getQueueStatus().queueLength < N - 10) await new Promise((r) => setTimeout(r, 20))
global.gc?.()
const ours = perCall(before, process.memoryUsage())
const script = new URL(import.meta.url).pathname
const sdk = JSON.parse(execFileSync(process.execPath, ['--expose-gc', script, 'sdk'], { encoding: 'utf8' }).trim().split('\n').pop())
console.log(`\nopenai: ${N} create() calls queued behind maxConcurrentRequests 10: RSS +${ours.rss} B per queued call ` +
  `(JS heap ${ours.heap} B of it; the body's JSON is ${JSON.stringify(body).length} B); ` +
  `the SDK alone, its fetch pending: RSS +${sdk.rss} B per call (JS heap ${sdk.heap} B)`)
void pending
process.exit(0)
