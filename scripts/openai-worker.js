// One process of the shared-limits specs and bench: an OpenAIPool driven by line commands on stdin, each
// answered by one JSON line on stdout. Commands:
//   init <json>            OpenAIPool.initialize(json)
//   run <count> <callers>  `count` chat requests from `callers` concurrent loops; answers
//                          { ok, errors, codes, elapsedMs, medianWaitMs }
//   stats                  { stats, queue }
'use strict'
const { createInterface } = require('node:readline')
const { OpenAIPool, openai } = require('..')

async function run(count, callers) {
  let next = 0
  let ok = 0
  const waits = []
  const codes = {}
  const loop = async () => {
    while (next < count) {
      const n = next++
      const started = Date.now()
      try {
        await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `p${process.pid}-${n}` }] })
        ok++
        waits.push(Date.now() - started)
      } catch (err) {
        codes[err.code ?? err.name] = (codes[err.code ?? err.name] ?? 0) + 1
      }
    }
  }
  const started = Date.now()
  await Promise.all(Array.from({ length: callers }, loop))
  const elapsedMs = Date.now() - started
  waits.sort((a, b) => a - b)
  return { ok, errors: count - ok, codes, elapsedMs, medianWaitMs: waits.length ? waits[waits.length >> 1] : null }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', async (line) => {
  const [command, ...rest] = line.trim().split(' ')
  try {
    let answer
    if (command === 'init') {
      OpenAIPool.initialize(JSON.parse(rest.join(' ')))
      answer = { initialized: true }
    } else if (command === 'run') {
      answer = await run(Number(rest[0]), Number(rest[1]))
    } else if (command === 'stats') {
      answer = { stats: OpenAIPool.getStats(), queue: OpenAIPool.getQueueStatus() }
    } else {
      answer = { error: `unknown command ${command}` }
    }
    process.stdout.write(JSON.stringify({ command, ...answer }) + '\n')
  } catch (err) {
    process.stdout.write(JSON.stringify({ command, error: String(err && err.message) }) + '\n')
  }
})
lines.on('close', async () => {
  await OpenAIPool.close()
  process.exit(0)
})
