// The workload `PROFILE_TARGET=openai bench/profile.sh` records: the exported `openai` client
// (openai-node over the pool) making chat.completions.create calls from PROFILE_CALLERS (100)
// callers for PROFILE_MS (5000) against the stand-in in a process of its own (0 ms service time),
// maxConcurrentRequests 10. Prints the rate and the client CPU per request.
import { createRequire } from 'node:module'
import { spawn } from 'node:child_process'

const require = createRequire(import.meta.url)
const { OpenAIPool, openai } = require('..')
const CALLERS = Number(process.env.PROFILE_CALLERS ?? 100)
const MS = Number(process.env.PROFILE_MS ?? 5000)

const child = spawn(process.execPath, [new URL('../scripts/openai-stand-in.js', import.meta.url).pathname, '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
const { url } = JSON.parse(await new Promise((resolve) => child.stdout.once('data', (d) => resolve(String(d).split('\n')[0]))))
OpenAIPool.initialize({ baseURL: url, apiKey: 'sk-profile', maxConcurrentRequests: 10, maxRetries: 0 })
const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] }
for (let i = 0; i < 2000; i++) await openai.chat.completions.create(body)
let n = 0
const end = Date.now() + MS
const cpu = process.cpuUsage()
await Promise.all(Array.from({ length: CALLERS }, async () => {
  while (Date.now() < end) {
    await openai.chat.completions.create(body)
    n++
  }
}))
const used = process.cpuUsage(cpu)
console.log(`openai: ${(n / (MS / 1000)).toFixed(0)} requests/s, ${((used.user + used.system) / n).toFixed(1)} µs client CPU per request`)
await OpenAIPool.close()
child.kill()
