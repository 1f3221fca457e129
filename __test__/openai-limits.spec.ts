// The OpenAI queue's budgets and priorities in one process: requestsPerMinute and
// tokensPerMinute (with a shortened window) make callers wait rather than fail, a response that
// says a budget is spent pauses every request until its reset, and priorities go first without
// starving anyone. Against the loopback stand-in, which records when each request arrives.
import { OpenAIPool, openai } from '..'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')

let server: any
beforeAll(async () => {
  server = await startOpenAIStandIn()
})
afterAll(async () => {
  await OpenAIPool.close()
  await server.close()
})

function useServer(options: Record<string, unknown>) {
  OpenAIPool.initialize({ baseURL: server.url, apiKey: 'sk-limits', retryDelay: 10, ...options })
  server.reset()
}

const chat = (content: string) => ({ model: 'gpt-4o', messages: [{ role: 'user' as const, content }] })
/** The SDK's per-request option that carries a priority: RequestInit's own `priority` field. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const priority = (p: string): any => ({ fetchOptions: { priority: p } })

/** The most arrivals within any span of `spanMs`. */
function busiestSpan(arrivals: number[], spanMs: number): number {
  const sorted = [...arrivals].sort((a, b) => a - b)
  let most = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i] - sorted[j] >= spanMs) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}

test('requestsPerMinute: callers wait for the window instead of failing, and no window holds more', async () => {
  const WINDOW = 400
  useServer({ requestsPerMinute: 5, rateLimitWindowMs: WINDOW, maxConcurrentRequests: 10 })
  const started = Date.now()
  const replies = await Promise.all(Array.from({ length: 15 }, (_, i) => openai.chat.completions.create(chat(`r${i}`))))
  expect(replies.map((r: any) => r.choices[0].message.content)).toEqual(Array.from({ length: 15 }, (_, i) => `echo: r${i}`))
  // 15 requests at 5 per window need two further windows. (The server sees arrivals after we
  // send, late by a connection setup for the first ones and by whatever else a loaded CI
  // machine runs; a span of half the window absorbs that, and would still hold all 15 at once
  // without the budget.)
  expect(Date.now() - started).toBeGreaterThanOrEqual(2 * WINDOW)
  expect(busiestSpan(server.state.arrivals, WINDOW / 2)).toBeLessThanOrEqual(5)
  expect(OpenAIPool.getPoolConfig()).toMatchObject({ requestsPerMinute: 5, rateLimitWindowMs: WINDOW })
})

test('tokensPerMinute: requests are estimated with the tokenizer, those that do not fit wait, usage corrects the count', async () => {
  const WINDOW = 400
  // Each request: "Hello, world!" is 11 tokens for gpt-4o (4 + 3 framing + 1 role + 3 priming);
  // the stand-in's usage says 12. A budget of 25 fits two per window.
  useServer({ tokensPerMinute: 25, rateLimitWindowMs: WINDOW, maxConcurrentRequests: 10 })
  const started = Date.now()
  const replies = await Promise.all(Array.from({ length: 6 }, () => openai.chat.completions.create(chat('Hello, world!'))))
  expect(replies).toHaveLength(6)
  expect(Date.now() - started).toBeGreaterThanOrEqual(2 * WINDOW)
  expect(busiestSpan(server.state.arrivals, WINDOW / 2)).toBeLessThanOrEqual(2)
  // A request larger than the whole budget still goes, once the window is empty.
  const big = await openai.chat.completions.create({ ...chat('Hello, world!'), max_tokens: 1000 })
  expect(big.choices[0].message.content).toBe('echo: Hello, world!')
})

test('a response saying the request budget is spent pauses every request until its reset', async () => {
  useServer({ maxConcurrentRequests: 10 })
  server.enqueue({ headers: { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '500ms' } })
  // The pause begins when that response arrives, after this moment: a safe lower bound.
  const sentAt = Date.now()
  const first = await openai.chat.completions.create(chat('spent'))
  expect(first.choices[0].message.content).toBe('echo: spent')
  expect(OpenAIPool.getQueueStatus().pausedForMs).toBeGreaterThan(0)
  const arrivalsBefore = server.state.arrivals.length
  await Promise.all(Array.from({ length: 3 }, (_, i) => openai.chat.completions.create(chat(`after${i}`))))
  const later = server.state.arrivals.slice(arrivalsBefore)
  expect(later).toHaveLength(3)
  // Nothing was sent during the pause.
  for (const at of later) expect(at).toBeGreaterThanOrEqual(sentAt + 500)
  expect(OpenAIPool.getQueueStatus().pausedForMs).toBe(0)
})

test('a 429 pauses everyone, not only the request that is retried', async () => {
  useServer({ maxConcurrentRequests: 10 })
  server.enqueue({ status: 429, headers: { 'retry-after-ms': '300' }, body: { error: { message: 'slow down', type: 'requests', param: null, code: 'rate_limit_exceeded' } } })
  // The pause begins when the 429 arrives, after this moment: a safe lower bound.
  const sentAt = Date.now()
  const limited = openai.chat.completions.create(chat('limited'))
  await new Promise<void>((resolve) => {
    const check = () => (OpenAIPool.getStats().rateLimitedRequests === 1 ? resolve() : setImmediate(check))
    check()
  })
  const other = await openai.chat.completions.create(chat('other'))
  expect(other.choices[0].message.content).toBe('echo: other')
  // `other` was sent once the 429 was counted, which is after the pause began: it reached the
  // server only when the pause was over.
  const otherArrival = server.state.arrivals[server.state.contents.indexOf('other')]
  expect(otherArrival).toBeGreaterThanOrEqual(sentAt + 300)
  expect((await limited).choices[0].message.content).toBe('echo: limited')
})

test('priorities: a high request queued after 100 low ones goes next; FIFO within a priority', async () => {
  useServer({ maxConcurrentRequests: 1 })
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  // Saturate the one slot with a callback that waits for the gate.
  let holding = false
  const holder = OpenAIPool.executeRequest(
    () => {
      holding = true
      return gate
    },
    null,
    { priority: 'low' },
  )
  await new Promise<void>((resolve) => {
    const check = () => (holding ? resolve() : setImmediate(check))
    check()
  })
  const lows = Array.from({ length: 100 }, (_, i) =>
    openai.chat.completions.create(chat(`low${i}`), priority('low')),
  )
  const high = openai.chat.completions.create(chat('high'), priority('high'))
  await new Promise<void>((resolve) => {
    const check = () => (OpenAIPool.getQueueStatus().queueLength === 101 ? resolve() : setImmediate(check))
    check()
  })
  expect(OpenAIPool.getQueueStatus().byPriority).toEqual({ high: 1, normal: 0, low: 100 })
  release()
  await Promise.all([holder, high, ...lows])
  // The order the server received them in (the order promises settle in JS is libuv's).
  expect(server.state.contents[0]).toBe('high')
  expect(server.state.contents.slice(1)).toEqual(Array.from({ length: 100 }, (_, i) => `low${i}`))
})

test('aging: a low request completes under a steady stream of high ones', async () => {
  useServer({ maxConcurrentRequests: 1, priorityAgingMs: 50 })
  server.state.latencyMs = 5
  let lowDone = false
  let highsDone = 0
  const low = openai.chat.completions.create(chat('low'), priority('low')).then(() => {
    lowDone = true
  })
  // Three high requests always waiting: each one that finishes is replaced, until the low one is done.
  const stream = async () => {
    while (!lowDone && highsDone < 1000) {
      await openai.chat.completions.create(chat('high'), priority('high'))
      highsDone++
    }
  }
  await Promise.all([low, stream(), stream(), stream()])
  server.state.latencyMs = 0
  expect(lowDone).toBe(true)
  expect(highsDone).toBeLessThan(1000)
})

test('a priority that is not high, normal or low is refused', async () => {
  useServer({})
  await expect(openai.chat.completions.create(chat('x'), priority('urgent'))).rejects.toMatchObject({ cause: { code: 'INVALID_ARGUMENT' } })
  expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 0 })
})
