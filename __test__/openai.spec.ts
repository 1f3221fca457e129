// OpenAIPool against an OpenAI-compatible server on loopback (scripts/openai-stand-in.js): the
// exported `openai` is openai-node itself over the pool, the queue caps what is in flight,
// retries honour Retry-After, errors are the SDK's own classes, slots are freed on every path,
// and the bare SDK sees the same JSON.
import OpenAI from 'openai'
import { OpenAIPool, openai, testOpenAIConnection } from '..'
import { eventually, rejectionOf } from './helpers'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** V8's gc(), without starting Node with --expose-gc. */
function exposedGc(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc')
}

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')

const API_KEY = 'sk-test-NeverShown-4242'
let server: any

function useServer(options: Record<string, unknown> = {}) {
  OpenAIPool.initialize({ baseURL: server.url, apiKey: API_KEY, retryDelay: 10, ...options })
  server.reset()
}

beforeAll(async () => {
  server = await startOpenAIStandIn()
})
afterAll(async () => {
  await OpenAIPool.close()
  await server.close()
})

const chatBody = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'Hello' }] }

test('the seed usage example runs as written', async () => {
  useServer()
  const client = OpenAIPool.getClient()
  const result = await OpenAIPool.executeRequest(
    (client) =>
      client.chat.completions.create({
        model: 'gpt-3.5-turbo',
        messages: [{ role: 'user', content: 'Hello' }],
      }),
    'gpt-3.5-turbo',
  )
  const stats = OpenAIPool.getStats()
  const queue = OpenAIPool.getQueueStatus()
  const health = await OpenAIPool.healthCheck()

  expect(client).toBe(openai)
  expect(result.choices[0].message.content).toBe('echo: Hello')
  expect(stats).toMatchObject({ totalRequests: 1, successfulRequests: 1, averageTokensUsed: 12, totalTokensUsed: 12 })
  expect(stats.requestsByModel).toEqual({ 'gpt-3.5-turbo': 1 })
  expect(stats.rateLimit).toEqual({
    limitRequests: 500,
    remainingRequests: 499,
    resetRequestsMs: 120,
    limitTokens: 30000,
    remainingTokens: 29988,
    resetTokensMs: 360000,
  })
  expect(queue).toEqual({ queueLength: 0, activeRequests: 0, maxConcurrent: 10, byPriority: { high: 0, normal: 0, low: 0 }, pausedForMs: 0 })
  expect(health.healthy).toBe(true)
  await expect(testOpenAIConnection()).resolves.toBe(true)
})

test('the exported client is an OpenAI of the openai package, and answers as the bare SDK does', async () => {
  useServer()
  expect(openai).toBeInstanceOf(OpenAI)
  expect(OpenAIPool.getClient()).toBe(openai)
  const sdk = new OpenAI({ apiKey: API_KEY, baseURL: server.url })
  const embedBody = { model: 'text-embedding-3-small', input: ['a', 'b'] }
  expect(await openai.chat.completions.create(chatBody)).toEqual(await sdk.chat.completions.create(chatBody))
  expect(await openai.embeddings.create(embedBody)).toEqual(await sdk.embeddings.create(embedBody))
  const ours = []
  for await (const model of openai.models.list()) ours.push(model)
  const theirs = []
  for await (const model of sdk.models.list()) theirs.push(model)
  expect(ours).toEqual(theirs)
  // The pool adds the configured key in Rust; the SDK's own placeholder never reaches the server.
  expect(server.state.authorization.every((h: string) => h === `Bearer ${API_KEY}`)).toBe(true)
})

test('200 executeRequest calls on 10 slots: at most 10 in flight, at most 10 connections, queue drains to 0/0', async () => {
  useServer({ maxConcurrentRequests: 10 })
  server.state.latencyMs = 50
  const connectionsBefore = server.state.connections
  let sawBacklog = false
  let running = true
  const sampler = (async () => {
    while (running) {
      const q = OpenAIPool.getQueueStatus()
      if (q.queueLength > 0 && q.activeRequests === 10) sawBacklog = true
      expect(q.activeRequests).toBeLessThanOrEqual(10)
      await new Promise((r) => setImmediate(r))
    }
  })()
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      OpenAIPool.executeRequest((c) => c.chat.completions.create({ ...chatBody, messages: [{ role: 'user', content: `n${i}` }] }), 'gpt-4o-mini'),
    ),
  )
  running = false
  await sampler
  server.state.latencyMs = 0

  expect(results.map((r: any) => r.choices[0].message.content)).toEqual(Array.from({ length: 200 }, (_, i) => `echo: n${i}`))
  expect(server.state.peakInFlight).toBeLessThanOrEqual(10)
  expect(server.state.peakInFlight).toBeGreaterThanOrEqual(8)
  expect(server.state.connections - connectionsBefore).toBeLessThanOrEqual(10)
  expect(sawBacklog).toBe(true)
  expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 10 })
  expect(OpenAIPool.getStats().successfulRequests).toBe(200)
})

test('connections are capped at maxConcurrentRequests: 3000 back-to-back calls never hold a fifth open', async () => {
  // With 0 ms service the next caller gets a slot the moment a body is read, before hyper has put
  // that connection back in its idle pool: the race that used to open an extra connection.
  useServer({ maxConcurrentRequests: 4 })
  const openBefore = server.state.peakOpenConnections
  const calls = Array.from({ length: 3000 }, (_, i) => openai.chat.completions.create({ ...chatBody, messages: [{ role: 'user', content: `c${i}` }] }))
  const results = await Promise.all(calls)

  expect(results[2999].choices[0].message.content).toBe('echo: c2999')
  expect(server.state.peakInFlight).toBeLessThanOrEqual(4)
  expect(server.state.peakOpenConnections - openBefore).toBeLessThanOrEqual(4)
  expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 4 })
})

describe('retries', () => {
  const rateLimited = { status: 429, headers: { 'retry-after-ms': '150' }, body: { error: { message: 'Rate limit reached', type: 'requests', param: null, code: 'rate_limit_exceeded' } } }

  test('two 429s with retry-after-ms 150: success on the third attempt, no earlier than 300 ms after the first', async () => {
    useServer({ retryDelay: 1 })
    server.enqueue(rateLimited, rateLimited)
    const result = await openai.chat.completions.create(chatBody)
    expect(result.choices[0].message.content).toBe('echo: Hello')
    expect(server.state.requests).toBe(3)
    expect(server.state.arrivals[2] - server.state.arrivals[0]).toBeGreaterThanOrEqual(300)
    expect(OpenAIPool.getStats()).toMatchObject({ rateLimitedRequests: 2, retries: 2, successfulRequests: 1 })
  })

  test('insufficient_quota fails at once; 401 is not retried', async () => {
    useServer()
    server.enqueue({ status: 429, body: { error: { message: 'You exceeded your current quota', type: 'insufficient_quota', param: null, code: 'insufficient_quota' } } })
    const quota = await rejectionOf(openai.chat.completions.create(chatBody))
    expect(quota).toBeInstanceOf(OpenAI.RateLimitError)
    expect(quota).toMatchObject({ status: 429, code: 'insufficient_quota', type: 'insufficient_quota' })
    expect(server.state.requests).toBe(1)

    server.enqueue({ status: 401, body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } } })
    const auth = await rejectionOf(openai.models.list())
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError)
    expect(auth).toMatchObject({ status: 401, code: 'invalid_api_key', requestID: 'req_2' })
    expect(server.state.requests).toBe(2)
  })

  test('persistent 500s fail after exactly maxRetries + 1 attempts', async () => {
    useServer({ maxRetries: 3, retryDelay: 1 })
    server.enqueue(...Array.from({ length: 10 }, () => ({ status: 500 })))
    const err = await rejectionOf(openai.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }))
    expect(err).toBeInstanceOf(OpenAI.InternalServerError)
    expect(err).toMatchObject({ status: 500 })
    expect(server.state.requests).toBe(4)
    expect(OpenAIPool.getStats().retries).toBe(3)
  })
})

test('a server that never answers gives APIConnectionTimeoutError; the slot is free afterwards', async () => {
  useServer({ requestTimeout: 200, maxRetries: 0, maxConcurrentRequests: 1 })
  server.enqueue({ hang: true })
  const err = await rejectionOf(openai.models.list())
  expect(err).toBeInstanceOf(OpenAI.APIConnectionTimeoutError)
  expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 1 })
  await expect(openai.models.list()).resolves.toMatchObject({ object: 'list' })
})

test('executeRequest at maxConcurrentRequests 1: requests inside fn use its slot (no deadlock)', async () => {
  useServer({ maxConcurrentRequests: 1 })
  const result = await OpenAIPool.executeRequest(async (client) => {
    expect(OpenAIPool.getQueueStatus().activeRequests).toBe(1)
    const first = await client.models.list()
    const [a, b] = await Promise.all([client.chat.completions.create(chatBody), client.embeddings.create({ model: 'x', input: 'y' })])
    expect(client).toBeInstanceOf(OpenAI)
    return [first.object, a.object, b.object]
  })
  expect(result).toEqual(['list', 'chat.completion', 'list'])
  expect(OpenAIPool.getQueueStatus().activeRequests).toBe(0)
})

test('maxQueueSize rejects beyond it with QUEUE_FULL', async () => {
  useServer({ maxConcurrentRequests: 1, maxQueueSize: 1 })
  server.state.latencyMs = 100
  const first = openai.models.list()
  await eventually(() => OpenAIPool.getQueueStatus().activeRequests === 1)
  const second = openai.models.list()
  await eventually(() => OpenAIPool.getQueueStatus().queueLength === 1)
  const third = await rejectionOf(openai.models.list())
  expect(third).toBeInstanceOf(OpenAI.APIConnectionError)
  expect(third.cause).toMatchObject({ code: 'QUEUE_FULL' })
  await Promise.all([first, second])
  server.state.latencyMs = 0
})

test('close() rejects queued calls with POOL_CLOSED and lets the in-flight one finish', async () => {
  useServer({ maxConcurrentRequests: 1 })
  server.state.latencyMs = 100
  const inFlight = openai.models.list()
  await eventually(() => OpenAIPool.getQueueStatus().activeRequests === 1)
  const queued = openai.models.list()
  await eventually(() => OpenAIPool.getQueueStatus().queueLength === 1)
  const closing = OpenAIPool.close()
  expect((await rejectionOf(queued)).cause).toMatchObject({ code: 'POOL_CLOSED' })
  await expect(inFlight).resolves.toMatchObject({ object: 'list' })
  await closing
  expect((await rejectionOf(openai.models.list())).cause).toMatchObject({ code: 'POOL_CLOSED' })
  server.state.latencyMs = 0
})

test('1000 mixed calls leave no slot or queue place behind', async () => {
  useServer({ maxConcurrentRequests: 5, requestTimeout: 100, maxRetries: 1, retryDelay: 1 })
  const kinds = ['ok', '429', '500', 'hang', 'throw'] as const
  const calls = Array.from({ length: 1000 }, (_, i) => {
    const kind = kinds[i % kinds.length]
    if (kind === '429') server.enqueue({ status: 429, headers: { 'retry-after-ms': '1' } })
    if (kind === '500') server.enqueue({ status: 500 })
    if (kind === 'hang') server.enqueue({ hang: true })
    if (kind === 'throw') {
      return OpenAIPool.executeRequest(async () => {
        throw new Error('callback failed')
      }).catch((e) => e.message)
    }
    return openai.models.list().then(() => 'ok', (e) => e.constructor.name)
  })
  const outcomes = await Promise.all(calls)
  expect(outcomes).toContain('ok')
  expect(outcomes).toContain('callback failed')
  expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 5 })
  expect(OpenAIPool.getStats().activeRequests).toBe(0)
})

test('the API key appears in no config, stat or error', async () => {
  useServer()
  server.enqueue({ status: 401 })
  const err = await rejectionOf(openai.models.list())
  const everything = JSON.stringify([OpenAIPool.getPoolConfig(), OpenAIPool.getStats(), err.message, { ...err }, await OpenAIPool.healthCheck()])
  expect(everything).not.toContain(API_KEY)
  expect(OpenAIPool.getPoolConfig().hasApiKey).toBe(true)
})

test('bad options are refused with INVALID_CONFIG', () => {
  for (const bad of [{ maxConcurrentRequests: 0 }, { timeout: '60s' }, { baseURL: 'ftp://x' }, { maxConcurentRequests: 3 }]) {
    expect(() => OpenAIPool.initialize(bad as any)).toThrow(expect.objectContaining({ code: 'INVALID_CONFIG' }))
  }
})

describe('streaming', () => {
  test('a stream yields the chunks in order, as the official SDK sees them; usage feeds the stats', async () => {
    useServer()
    const body = { ...chatBody, stream: true as const, stream_options: { include_usage: true } }
    const ours: any[] = []
    for await (const chunk of await openai.chat.completions.create(body)) ours.push(chunk)
    const sdk = new OpenAI({ apiKey: API_KEY, baseURL: server.url })
    const theirs: any[] = []
    for await (const chunk of await sdk.chat.completions.create(body)) theirs.push(chunk)
    expect(ours).toEqual(theirs)
    expect(ours.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('echo: Hello')
    expect(ours[ours.length - 1].usage.total_tokens).toBe(12)
    expect(OpenAIPool.getStats()).toMatchObject({ totalRequests: 1, successfulRequests: 1, totalTokensUsed: 12 })
    expect(OpenAIPool.getQueueStatus().activeRequests).toBe(0)
  })

  test('breaking out after the first chunk aborts the request and frees the slot at once', async () => {
    useServer({ maxConcurrentRequests: 1 })
    server.state.chunkDelayMs = 200
    const stream = await openai.chat.completions.create({ ...chatBody, stream: true })
    expect(OpenAIPool.getQueueStatus().activeRequests).toBe(1)
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk')
      break
    }
    expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 1 })
    await eventually(() => server.state.streamsAborted === 1)
    server.state.chunkDelayMs = 0
    await expect(openai.models.list()).resolves.toMatchObject({ object: 'list' })
  })

  test('20 streams opened at 10 slots and dropped unread give their slots back once collected', async () => {
    // requestTimeout is long here, so only garbage collection can free them.
    useServer({ maxConcurrentRequests: 10, requestTimeout: 60_000 })
    const gc = exposedGc()
    let opened = 0
    const openAndDrop = async () => {
      await openai.chat.completions.create({ ...chatBody, stream: true })
      opened++
    }
    const all = Promise.all(Array.from({ length: 20 }, openAndDrop))
    await eventually(() => {
      gc()
      return opened === 20 && OpenAIPool.getQueueStatus().activeRequests === 0
    }, 20_000)
    await all
    expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 10 })
    const reply = await openai.chat.completions.create(chatBody)
    expect(reply.choices[0].message.content).toBe('echo: Hello')
  })

  test('a stream read once and then left alone frees its slot after requestTimeout; a late read hears why', async () => {
    useServer({ maxConcurrentRequests: 1, requestTimeout: 300 })
    // One event per read: the SDK decodes whatever a read brings, so chunks that arrived together
    // would be served from its buffer rather than from the (closed) stream.
    server.state.chunkDelayMs = 50
    const stream = await openai.chat.completions.create({ ...chatBody, stream: true })
    const chunks = stream[Symbol.asyncIterator]()
    expect((await chunks.next()).done).toBe(false)
    // The only slot is the stream's; this request gets it once the stream has idled out.
    const reply = await openai.chat.completions.create(chatBody)
    expect(reply.choices[0].message.content).toBe('echo: Hello')
    const late = await rejectionOf(chunks.next())
    expect(late).toMatchObject({ code: 'TIMEOUT' })
    expect(late.message).toContain('without a read')
    server.state.chunkDelayMs = 0
    expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 1 })
  })

  test('a stream that goes quiet fails with APITimeoutError and frees its slot', async () => {
    useServer({ requestTimeout: 150, maxConcurrentRequests: 1 })
    server.enqueue({ hangAfterChunks: 1 })
    const chunks: any[] = []
    const err = await rejectionOf(
      (async () => {
        for await (const chunk of await openai.chat.completions.create({ ...chatBody, stream: true })) chunks.push(chunk)
      })(),
    )
    expect(chunks).toHaveLength(1)
    expect(err).toMatchObject({ code: 'TIMEOUT' })
    expect(err.message).toMatch(/timed out/)
    expect(OpenAIPool.getQueueStatus().activeRequests).toBe(0)
  })

  test('a stream is retried before its first byte (a 429 first, then the stream)', async () => {
    useServer({ retryDelay: 1 })
    server.enqueue({ status: 429, headers: { 'retry-after-ms': '5' } })
    const chunks: any[] = []
    for await (const chunk of await openai.chat.completions.create({ ...chatBody, stream: true })) chunks.push(chunk)
    expect(chunks.length).toBeGreaterThan(2)
    expect(OpenAIPool.getStats()).toMatchObject({ rateLimitedRequests: 1, retries: 1, successfulRequests: 1 })
  })
})
