// The workload `PROFILE_TARGET=openai bench/profile.sh` records: the exported `openai` client
// (openai-node over the pool) making chat.completions.create calls from PROFILE_CALLERS (100)
// callers for PROFILE_MS (5000) against the stand-in in a process of its own (0 ms service time),
// maxConcurrentRequests 10. Prints the rate, the client CPU per request, and how it splits by
// thread (Node's, V8's GC helpers, tokio's workers; from /proc) with context switches per request.
// PROFILE_FLOOR=1: the SDK alone over a fetch that answers at once with the stand-in's answer and
// headers (its own CPU floor), for the same split. bench/experiments/ has patches that take
// parts of the pool away (see bench/RESULTS.md).
import { createRequire } from 'node:module'
import { spawn } from 'node:child_process'
import fs from 'node:fs'

const require = createRequire(import.meta.url)
const CALLERS = Number(process.env.PROFILE_CALLERS ?? 100)
const MS = Number(process.env.PROFILE_MS ?? 5000)
const FLOOR = process.env.PROFILE_FLOOR === '1'

/** CPU (µs) and context switches of each kind of thread of this process, from /proc. */
function threads() {
  const out = {}
  for (const tid of fs.readdirSync('/proc/self/task')) {
    const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    const comm = tid === String(process.pid) ? 'node' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const kind = comm === 'node' && tid !== String(process.pid) ? 'V8 helpers' : comm
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const status = fs.readFileSync(`/proc/self/task/${tid}/status`, 'utf8')
    const switches = Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]) + Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)[1])
    const t = (out[kind] ??= { cpuUs: 0, switches: 0 })
    t.cpuUs += (Number(fields[11]) + Number(fields[12])) * (1e6 / 100) // utime + stime, 100 Hz ticks
    t.switches += switches
  }
  return out
}

const child = spawn(process.execPath, [new URL('../scripts/openai-stand-in.js', import.meta.url).pathname, '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
const { url } = JSON.parse(await new Promise((resolve) => child.stdout.once('data', (d) => resolve(String(d).split('\n')[0]))))
const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello' }] }
let client
let close = async () => {}
if (FLOOR) {
  const OpenAI = require('openai')
  const sample = await fetch(`${url}/chat/completions`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  const canned = await sample.text()
  const headers = [...sample.headers].filter(([name]) => !['connection', 'keep-alive', 'transfer-encoding'].includes(name))
  client = new OpenAI({ baseURL: 'http://canned.invalid/v1', apiKey: 'sk-profile', maxRetries: 0, fetch: async () => new Response(canned, { status: 200, headers }) })
} else {
  const { OpenAIPool, openai } = require('..')
  OpenAIPool.initialize({ baseURL: url, apiKey: 'sk-profile', maxConcurrentRequests: 10, maxRetries: 0 })
  client = openai
  close = () => OpenAIPool.close()
}
for (let i = 0; i < 2000; i++) await client.chat.completions.create(body)
let n = 0
const end = Date.now() + MS
const before = threads()
const cpu = process.cpuUsage()
await Promise.all(Array.from({ length: CALLERS }, async () => {
  while (Date.now() < end) {
    await client.chat.completions.create(body)
    n++
  }
}))
const used = process.cpuUsage(cpu)
const after = threads()
console.log(`${FLOOR ? 'SDK floor' : 'openai'}: ${(n / (MS / 1000)).toFixed(0)} requests/s, ${((used.user + used.system) / n).toFixed(1)} µs client CPU per request`)
for (const [kind, t] of Object.entries(after)) {
  const cpuUs = (t.cpuUs - (before[kind]?.cpuUs ?? 0)) / n
  const switches = (t.switches - (before[kind]?.switches ?? 0)) / n
  console.log(`  ${kind.padEnd(16)} ${cpuUs.toFixed(1).padStart(6)} µs, ${switches.toFixed(2)} context switches per request`)
}
await close()
child.kill()
