// Memory per queued OpenAI request: 100,000 create() calls at maxConcurrentRequests 10 while
// the stand-in holds the 10 in flight, RSS and JS heap growth per waiting call. Run by
// bench/run.mjs in a process of its own (--expose-gc).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { OpenAIPool, openai } = require('..')
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')
const N = 100_000

const server = await startOpenAIStandIn({ record: false })
OpenAIPool.initialize({ baseURL: server.url, apiKey: 'sk-bench', maxConcurrentRequests: 10, timeout: 600_000, requestTimeout: 600_000 })
server.state.latencyMs = 600_000
const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] }
global.gc?.()
const before = process.memoryUsage()
const pending = Array.from({ length: N }, () => openai.chat.completions.create(body).catch(() => {}))
while (OpenAIPool.getQueueStatus().queueLength < N - 10) await new Promise((r) => setTimeout(r, 20))
global.gc?.()
const after = process.memoryUsage()
console.log(`\nopenai: ${N} create() calls queued behind maxConcurrentRequests 10: ` +
  `RSS +${((after.rss - before.rss) / N).toFixed(0)} B per queued call ` +
  `(JS heap ${((after.heapUsed - before.heapUsed) / N).toFixed(0)} B of it; the body's JSON is ${JSON.stringify(body).length} B)`)
void pending
process.exit(0)
