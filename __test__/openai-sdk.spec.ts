// The exported `openai` is openai-node's OpenAI, every method unchanged, every request through the
// pool: responses (plain and streamed), images, multipart uploads (audio, files), moderations,
// .withResponse(), the SDK's own error classes, abort signals, and a backend's own OpenAI client
// joining the pool's queue with OpenAIPool.fetch.
import OpenAI from 'openai'
import { OpenAIPool, openai } from '..'
import { eventually, rejectionOf } from './helpers'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')

const API_KEY = 'sk-test-sdk-spec-51'
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

const chat = (content: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] })

test('responses.create: plain (output_text) and streamed (every event, in order), its tokens counted', async () => {
  useServer()
  const plain = await openai.responses.create({ model: 'gpt-4o-mini', input: 'hello there' })
  expect(plain.output_text).toBe('echo: hello there')
  const stream = await openai.responses.create({ model: 'gpt-4o-mini', input: 'hello there', stream: true })
  const events: any[] = []
  for await (const event of stream) events.push(event)
  // The bare SDK over the network sees the very same events.
  const bare = new OpenAI({ apiKey: API_KEY, baseURL: server.url })
  const theirs: any[] = []
  for await (const event of await bare.responses.create({ model: 'gpt-4o-mini', input: 'hello there', stream: true })) theirs.push(event)
  expect(events).toEqual(theirs)
  expect(events[0].type).toBe('response.created')
  expect(events.at(-1).type).toBe('response.completed')
  expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i))
  expect(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('')).toBe('echo: hello there')
  // 10 tokens each: the plain response's usage and the stream's response.completed.
  expect(OpenAIPool.getStats()).toMatchObject({ totalRequests: 2, successfulRequests: 2, totalTokensUsed: 20 })
  expect(OpenAIPool.getQueueStatus().activeRequests).toBe(0)
})

test('images.generate, moderations.create, and multipart uploads: audio.transcriptions.create with a File, files.create', async () => {
  useServer()
  const image = await openai.images.generate({ model: 'gpt-image-1', prompt: 'a cat' })
  expect(image.data![0].b64_json).toBe(Buffer.from('png').toString('base64'))
  const moderation = await openai.moderations.create({ input: 'hello' })
  expect(moderation.results[0].flagged).toBe(false)
  const audio = Buffer.from([0x52, 0x49, 0x46, 0x46, 0, 1, 2, 255])
  const transcription = await openai.audio.transcriptions.create({ model: 'whisper-1', file: new File([audio], 'clip.wav', { type: 'audio/wav' }) })
  expect(transcription.text).toBe('heard clip.wav (8 bytes)')
  const file = await openai.files.create({ file: new File(['{"a":1}\n'], 'batch.jsonl'), purpose: 'batch' })
  expect(file).toMatchObject({ id: 'file-standin', filename: 'batch.jsonl', bytes: 8 })
  // The bytes arrived as sent, in a multipart body the SDK built.
  const [upload] = server.state.uploads
  expect(upload.path).toBe('/v1/audio/transcriptions')
  expect(Buffer.compare(upload.parts.file.bytes, audio)).toBe(0)
  expect(upload.parts.model).toBe('whisper-1')
  expect(OpenAIPool.getStats().requestsByModel).toMatchObject({ 'gpt-image-1': 1, 'whisper-1': 1 })
})

test(".withResponse() gives the server's response and headers", async () => {
  useServer()
  const { data, response, request_id } = await openai.chat.completions.create(chat('x')).withResponse()
  expect(data.object).toBe('chat.completion')
  expect(response).toBeInstanceOf(Response)
  expect(response.headers.get('x-ratelimit-limit-requests')).toBe('500')
  expect(request_id).toBe('req_1')
  const raw = await openai.models.list().asResponse()
  expect(raw.status).toBe(200)
})

test('a 429 is OpenAI.RateLimitError with status, headers and requestID', async () => {
  useServer({ maxRetries: 0 })
  server.enqueue({ status: 429, body: { error: { message: 'Rate limit reached', type: 'requests', param: null, code: 'rate_limit_exceeded' } } })
  const err = await rejectionOf(openai.chat.completions.create(chat('x')))
  expect(err).toBeInstanceOf(OpenAI.RateLimitError)
  expect(err).toMatchObject({ status: 429, code: 'rate_limit_exceeded', requestID: 'req_1' })
  expect(err.headers.get('x-request-id')).toBe('req_1')
})

test('a 429 with retry-after-ms is retried once by the pool, and the caller sees success', async () => {
  useServer()
  server.enqueue({ status: 429, headers: { 'retry-after-ms': '20' } })
  const reply = await openai.chat.completions.create(chat('again'))
  expect(reply.choices[0].message.content).toBe('echo: again')
  expect(server.state.requests).toBe(2)
  expect(OpenAIPool.getStats()).toMatchObject({ retries: 1, rateLimitedRequests: 1, successfulRequests: 1, failedRequests: 0 })
  // The SDK itself did not retry: its attempts would have carried a retry count.
  expect(server.state.paths).toEqual(['POST /v1/chat/completions', 'POST /v1/chat/completions'])
})

test('at maxConcurrentRequests 2, 20 calls mixing responses, chat, embeddings and images never put more than 2 at the server', async () => {
  useServer({ maxConcurrentRequests: 2 })
  server.state.latencyMs = 15
  const calls = Array.from({ length: 20 }, (_, i) => {
    switch (i % 4) {
      case 0:
        return openai.responses.create({ model: 'gpt-4o-mini', input: `r${i}` })
      case 1:
        return openai.chat.completions.create(chat(`c${i}`))
      case 2:
        return openai.embeddings.create({ model: 'text-embedding-3-small', input: `e${i}` })
      default:
        return openai.images.generate({ model: 'gpt-image-1', prompt: `i${i}` })
    }
  })
  await Promise.all(calls)
  server.state.latencyMs = 0
  expect(server.state.requests).toBe(20)
  expect(server.state.peakInFlight).toBe(2)
  expect(OpenAIPool.getStats().successfulRequests).toBe(20)
})

test('aborting a queued request takes it out of the queue; aborting a running one frees its slot', async () => {
  useServer({ maxConcurrentRequests: 1 })
  server.enqueue({ held: true })
  const running = openai.models.list()
  await eventually(() => server.state.inFlight === 1)
  const controller = new AbortController()
  const queued = openai.models.list({ signal: controller.signal })
  await eventually(() => OpenAIPool.getQueueStatus().queueLength === 1)
  controller.abort()
  expect(await rejectionOf(queued)).toBeInstanceOf(OpenAI.APIUserAbortError)
  expect(OpenAIPool.getQueueStatus()).toMatchObject({ queueLength: 0, activeRequests: 1 })
  server.release()
  await running
  expect(server.state.requests).toBe(1)

  server.enqueue({ hang: true })
  const hanging = new AbortController()
  const stuck = openai.models.list({ signal: hanging.signal })
  await eventually(() => server.state.inFlight === 1)
  hanging.abort()
  expect(await rejectionOf(stuck)).toBeInstanceOf(OpenAI.APIUserAbortError)
  await eventually(() => OpenAIPool.getQueueStatus().activeRequests === 0)
  await expect(openai.models.list()).resolves.toMatchObject({ object: 'list' })
})

test('new OpenAI({ fetch: OpenAIPool.fetch }) shares the pool: its cap, its stats; its own key goes out', async () => {
  useServer({ maxConcurrentRequests: 2 })
  const mine = new OpenAI({ apiKey: 'sk-backend-own', baseURL: server.url, fetch: OpenAIPool.fetch, maxRetries: 0 })
  server.state.latencyMs = 10
  await Promise.all([
    ...Array.from({ length: 5 }, (_, i) => mine.chat.completions.create(chat(`mine${i}`))),
    ...Array.from({ length: 5 }, (_, i) => openai.chat.completions.create(chat(`ours${i}`))),
  ])
  server.state.latencyMs = 0
  expect(server.state.peakInFlight).toBe(2)
  expect(OpenAIPool.getStats().successfulRequests).toBe(10)
  expect(server.state.authorization.filter((a: string) => a === 'Bearer sk-backend-own')).toHaveLength(5)
  expect(server.state.authorization.filter((a: string) => a === `Bearer ${API_KEY}`)).toHaveLength(5)
})

test('executeRequest gives fn an OpenAI bound to its slot; a priority goes through fetchOptions', async () => {
  useServer({ maxConcurrentRequests: 1 })
  const result = await OpenAIPool.executeRequest(async (client) => {
    expect(client).toBeInstanceOf(OpenAI)
    const reply = await client.responses.create({ model: 'gpt-4o-mini', input: 'in slot' })
    return reply.output_text
  }, 'gpt-4o-mini')
  expect(result).toBe('echo: in slot')
  const high = await openai.chat.completions.create(chat('urgent'), { fetchOptions: { priority: 'high' } })
  expect(high.choices[0].message.content).toBe('echo: urgent')
})
