// What an OpenAI-compatible server (or a proxy in front of it) can send that must not stop the
// pool: durations no pause should honour, a stream with a byte order mark, a body that is not
// JSON, a panic while a stream is read; and initialize() finishing what the old pool accepted.
import OpenAI from 'openai'
import { OpenAIPool, openai } from '..'
import { eventually, rejectionOf } from './helpers'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { setTestFault } = require('../binding.js')

let server: any
/** Panics caught so far in this process (the counter is process-wide: other specs share it). */
const panicsSoFar = () => OpenAIPool.getStats().internalErrors
const chatBody = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'Hello' }] }

function useServer(options: Record<string, unknown> = {}) {
  OpenAIPool.initialize({ baseURL: server.url, apiKey: 'sk-test-hardening', retryDelay: 10, ...options })
  server.reset()
}

beforeAll(async () => {
  server = await startOpenAIStandIn()
})
afterAll(async () => {
  setTestFault([])
  await OpenAIPool.close()
  await server.close()
})

test('a response announcing a reset in 99999999h pauses the pool at most 60 s', async () => {
  useServer()
  const panics = panicsSoFar()
  server.enqueue({ headers: { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '99999999h' } })
  await expect(openai.chat.completions.create(chatBody)).resolves.toMatchObject({ object: 'chat.completion' })
  const paused = OpenAIPool.getQueueStatus().pausedForMs
  expect(paused).toBeGreaterThan(50_000)
  expect(paused).toBeLessThanOrEqual(60_000)
  expect(panicsSoFar()).toBe(panics)
})

test.each([['retry-after', '1e20'], ['retry-after-ms', '1e25'], ['retry-after', '-5'], ['retry-after', 'soon']])(
  'a 429 with %s: %s is a RateLimitError, and any pause is at most 60 s',
  async (header, value) => {
    useServer({ maxRetries: 0 })
    const panics = panicsSoFar()
    server.enqueue({ status: 429, headers: { [header]: value } })
    const err = await rejectionOf(openai.chat.completions.create(chatBody))
    expect(err).toBeInstanceOf(OpenAI.RateLimitError)
    expect(err).toMatchObject({ status: 429 })
    expect(OpenAIPool.getQueueStatus().pausedForMs).toBeLessThanOrEqual(60_000)
    expect(panicsSoFar()).toBe(panics)
  },
)

test('a stream whose body starts with a UTF-8 byte order mark is read whole, and its slot is freed', async () => {
  useServer()
  const panics = panicsSoFar()
  server.enqueue({ bom: true })
  const stream = await openai.chat.completions.create({ ...chatBody, stream: true as const })
  let text = ''
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
  expect(text).toBe('echo: Hello')
  expect(OpenAIPool.getQueueStatus().activeRequests).toBe(0)
  expect(panicsSoFar()).toBe(panics)
})

test('a panic while a stream is read answers INTERNAL and frees the slot at once (not after requestTimeout)', async () => {
  useServer({ maxConcurrentRequests: 1, requestTimeout: 60_000 })
  const stream = await openai.chat.completions.create({ ...chatBody, stream: true as const })
  const before = OpenAIPool.getStats().internalErrors
  setTestFault(['stream-read'])
  let err: any
  try {
    err = await rejectionOf((async () => {
      for await (const _chunk of stream) {
        // the first read panics
      }
    })())
  } finally {
    setTestFault([])
  }
  expect(err).toMatchObject({ code: 'INTERNAL' })
  expect(err.message).toMatch(/injected fault/)
  expect(OpenAIPool.getQueueStatus().activeRequests).toBe(0)
  expect(OpenAIPool.getStats().internalErrors).toBe(before + 1)
  // The one slot serves the next call.
  await expect(openai.chat.completions.create(chatBody)).resolves.toMatchObject({ object: 'chat.completion' })
})

test('a 200 whose body is not the JSON asked for rejects, the pool saying INVALID_RESPONSE', async () => {
  useServer()
  server.enqueue({ status: 200, raw: '<html>502 Bad Gateway</html>', headers: { 'content-type': 'text/html' } })
  const err = await rejectionOf(openai.chat.completions.create(chatBody))
  expect(err).toBeInstanceOf(OpenAI.APIConnectionError)
  expect(err.cause).toMatchObject({ code: 'INVALID_RESPONSE' })
  expect(err.cause.message).toMatch(/not JSON.*text\/html/)
  expect(OpenAIPool.getStats()).toMatchObject({ failedRequests: 1, activeRequests: 0 })
})

test('getPoolConfig() shows no secret of the baseURL', () => {
  const url = new URL(server.url)
  url.username = 'proxyuser'
  url.password = 'Proxy-Secret-91'
  OpenAIPool.initialize({ baseURL: `${url.toString()}?api-key=Key-Secret-92&region=eu`, apiKey: 'sk-Never-93' })
  const shown = JSON.stringify(OpenAIPool.getPoolConfig())
  for (const secret of ['proxyuser', 'Proxy-Secret-91', 'Key-Secret-92', 'sk-Never-93']) expect(shown).not.toContain(secret)
  expect(OpenAIPool.getPoolConfig().baseURL).toMatch(/^http:\/\/\*\*\*\*:\*\*\*\*@127\.0\.0\.1:\d+\/v1\?api-key=\*\*\*\*&region=eu$/)
})

test('initialize() lets the old pool run the calls it had queued', async () => {
  useServer({ maxConcurrentRequests: 1 })
  server.enqueue({ held: true })
  const calls = Array.from({ length: 6 }, (_, i) =>
    openai.chat.completions.create({ ...chatBody, messages: [{ role: 'user', content: `q${i}` }] }),
  )
  await eventually(() => server.state.inFlight === 1 && OpenAIPool.getQueueStatus().queueLength === 5)
  OpenAIPool.initialize({ baseURL: server.url, apiKey: 'sk-test-hardening', maxConcurrentRequests: 3 })
  expect(OpenAIPool.getQueueStatus().queueLength).toBe(0)
  server.release()
  const answers = await Promise.all(calls)
  expect(answers.map((a: any) => a.choices[0].message.content)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `echo: q${i}`))
})
