// An OpenAI-compatible HTTP server on loopback: the specs' and the benchmark's API, so that no test
// needs the internet or a key. It answers /v1/models, /v1/chat/completions, /v1/embeddings,
// /v1/responses (plain and streamed), /v1/images/generations, /v1/moderations, and the multipart
// /v1/audio/transcriptions and /v1/files the way the public API does (fixed ids and timestamps, so two clients get byte-equal JSON), and
// records what it saw: requests, their arrival times, the in-flight peak and TCP connections.
// A spec scripts failures with enqueue(): the next requests get those answers first.
'use strict'
const { createServer } = require('node:http')

const CREATED = 1_700_000_000

function chatCompletion(body) {
  const last = Array.isArray(body.messages) ? body.messages[body.messages.length - 1] : null
  const content = `echo: ${typeof last?.content === 'string' ? last.content : ''}`
  return {
    id: 'chatcmpl-standin',
    object: 'chat.completion',
    created: CREATED,
    model: body.model ?? 'unknown',
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
    system_fingerprint: 'fp_standin',
  }
}

const VECTOR = [0.125, -0.5, 0.75]

function embeddings(body) {
  const inputs = Array.isArray(body.input) ? body.input : [body.input]
  // The official SDK asks for base64 (little-endian float32) and decodes it; others get floats.
  const embedding = body.encoding_format === 'base64' ? Buffer.from(new Float32Array(VECTOR).buffer).toString('base64') : VECTOR
  return {
    object: 'list',
    data: inputs.map((_, index) => ({ object: 'embedding', index, embedding })),
    model: body.model ?? 'unknown',
    usage: { prompt_tokens: inputs.length * 2, total_tokens: inputs.length * 2 },
  }
}

/** The chunks of a streamed completion, as the API sends them (content split into words). */
function chatChunks(body) {
  const completion = chatCompletion(body)
  const includeUsage = Boolean(body.stream_options && body.stream_options.include_usage)
  const base = { id: completion.id, object: 'chat.completion.chunk', created: CREATED, model: completion.model, system_fingerprint: 'fp_standin' }
  const usage = includeUsage ? { usage: null } : {}
  const chunk = (delta, finish = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...usage })
  const words = completion.choices[0].message.content.split(/(?= )/)
  const chunks = [chunk({ role: 'assistant', content: '', refusal: null }), ...words.map((w) => chunk({ content: w })), chunk({}, 'stop')]
  if (includeUsage) chunks.push({ ...base, choices: [], usage: completion.usage })
  return chunks
}

/** A Responses API response (POST /v1/responses), as the API returns it. */
function response(body) {
  const input = typeof body.input === 'string' ? body.input : JSON.stringify(body.input ?? '')
  const text = `echo: ${input}`
  return {
    id: 'resp_standin',
    object: 'response',
    created_at: CREATED,
    status: 'completed',
    model: body.model ?? 'unknown',
    output: [{ type: 'message', id: 'msg_standin', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] }],
    usage: { input_tokens: 4, output_tokens: 6, total_tokens: 10 },
  }
}

/** The events of a streamed Responses API call, in the API's order: [type, payload]. */
function responseEvents(body) {
  const done = response(body)
  const text = done.output[0].content[0].text
  const inProgress = { ...done, status: 'in_progress', output: [], usage: null }
  const item = { type: 'message', id: 'msg_standin', status: 'in_progress', role: 'assistant', content: [] }
  const part = { type: 'output_text', text: '', annotations: [] }
  const events = [
    ['response.created', { response: inProgress }],
    ['response.in_progress', { response: inProgress }],
    ['response.output_item.added', { output_index: 0, item }],
    ['response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part }],
    ...text.split(/(?= )/).map((delta) => ['response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta }]),
    ['response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text }],
    ['response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: { ...part, text } }],
    ['response.output_item.done', { output_index: 0, item: done.output[0] }],
    ['response.completed', { response: done }],
  ]
  return events.map(([type, payload], sequence_number) => [type, { type, sequence_number, ...payload }])
}

/** The parts of a multipart/form-data body: name → { filename, bytes } or a text value. */
function multipart(body, contentType) {
  const boundary = /boundary=("?)([^";]+)\1/.exec(contentType ?? '')?.[2]
  const parts = {}
  if (!boundary) return parts
  const text = body.toString('latin1')
  for (const chunk of text.split(`--${boundary}`)) {
    const headerEnd = chunk.indexOf('\r\n\r\n')
    if (headerEnd === -1) continue
    const head = chunk.slice(0, headerEnd)
    const name = /name="([^"]*)"/.exec(head)?.[1]
    if (name === undefined) continue
    const value = chunk.slice(headerEnd + 4).replace(/\r\n$/, '')
    const filename = /filename="([^"]*)"/.exec(head)?.[1]
    parts[name] = filename === undefined ? Buffer.from(value, 'latin1').toString('utf8') : { filename, bytes: Buffer.from(value, 'latin1') }
  }
  return parts
}

const MODELS = {
  object: 'list',
  data: [
    { id: 'gpt-4o-mini', object: 'model', created: CREATED, owned_by: 'openai' },
    { id: 'text-embedding-3-small', object: 'model', created: CREATED, owned_by: 'openai' },
  ],
}

/**
 * @param {{ latencyMs?: number, record?: boolean }} options
 *   record: keep each request's arrival time, path and Authorization header in `state` (the
 *   specs read them); the long-running demo backend turns it off so memory stays flat
 */
async function startOpenAIStandIn({ latencyMs = 0, record = true } = {}) {
  const scripted = []
  /** Answers scripted with `held` wait here until `release()`. */
  const held = []
  const state = {
    latencyMs,
    requests: 0,
    inFlight: 0,
    peakInFlight: 0,
    connections: 0,
    /** The most TCP connections open at one time. */
    peakOpenConnections: 0,
    arrivals: [],
    paths: [],
    authorization: [],
    /** The last message's content of each chat request, in arrival order. */
    contents: [],
    /** Streams whose client went away before the last chunk. */
    streamsAborted: 0,
    /** Milliseconds between stream chunks. */
    chunkDelayMs: 0,
    /** Multipart requests: their path and parts (files as { filename, bytes }). */
    uploads: [],
  }
  const sockets = new Set()

  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', async () => {
      state.requests++
      state.inFlight++
      state.peakInFlight = Math.max(state.peakInFlight, state.inFlight)
      if (record) {
        state.arrivals.push(Date.now())
        state.paths.push(`${req.method} ${req.url}`)
        state.authorization.push(req.headers.authorization ?? null)
        try {
          const messages = JSON.parse(Buffer.concat(chunks).toString('utf8')).messages
          if (Array.isArray(messages)) state.contents.push(messages[messages.length - 1]?.content)
        } catch {}
      }
      let finished = false
      const finish = () => {
        if (!finished) {
          finished = true
          state.inFlight--
        }
      }
      res.on('close', finish)
      const script = scripted.shift()
      if (script?.hang) return // never answers; the client's timeout must end it
      if (script?.held) await new Promise((resolve) => held.push(resolve))
      const delay = script?.delayMs ?? state.latencyMs
      if (delay > 0) await new Promise((r) => setTimeout(r, delay))
      const headers = {
        'content-type': 'application/json',
        'x-request-id': `req_${state.requests}`,
        'x-ratelimit-limit-requests': '500',
        // Counts down and starts over: never 0 unless a scripted answer says so (a long run
        // must not look rate-limited to a client that pauses on remaining 0).
        'x-ratelimit-remaining-requests': String(500 - (state.requests % 500)),
        'x-ratelimit-reset-requests': '120ms',
        'x-ratelimit-limit-tokens': '30000',
        'x-ratelimit-remaining-tokens': '29988',
        'x-ratelimit-reset-tokens': '6m0s',
        ...(script?.headers ?? {}),
      }
      if (script?.status) {
        res.writeHead(script.status, headers)
        // `raw`: the body as given (a proxy's HTML page, a cut body), not JSON.
        if (script.raw !== undefined) res.end(script.raw)
        else res.end(JSON.stringify(script.body ?? { error: { message: `scripted ${script.status}`, type: 'server_error', param: null, code: null } }))
        return finish()
      }
      let body = {}
      const raw = Buffer.concat(chunks)
      const isMultipart = (req.headers['content-type'] ?? '').startsWith('multipart/form-data')
      try {
        body = isMultipart ? multipart(raw, req.headers['content-type']) : chunks.length ? JSON.parse(raw.toString('utf8')) : {}
        if (isMultipart) state.uploads.push({ path: req.url, parts: body })
      } catch {
        res.writeHead(400, headers)
        res.end(JSON.stringify({ error: { message: 'invalid JSON body', type: 'invalid_request_error', param: null, code: null } }))
        return finish()
      }
      const route = `${req.method} ${req.url}`
      if (route === 'POST /v1/responses' && body.stream) {
        res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        for (const [type, payload] of responseEvents(body)) {
          if (res.destroyed) return
          res.write(`event: ${type}\ndata: ${JSON.stringify(payload)}\n\n`)
          if (state.chunkDelayMs > 0) await new Promise((r) => setTimeout(r, state.chunkDelayMs))
        }
        res.end()
        return finish()
      }
      if (route === 'POST /v1/chat/completions' && body.stream) {
        res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
        const chunks = chatChunks(body)
        let completed = false
        res.on('close', () => {
          if (!completed) state.streamsAborted++
        })
        // `bom`: the body starts with a UTF-8 byte order mark (the SSE grammar allows one).
        if (script?.bom) res.write(Buffer.from([0xef, 0xbb, 0xbf]))
        for (const [i, chunk] of chunks.entries()) {
          if (res.destroyed) return
          res.write(`data: ${JSON.stringify(chunk)}\n\n`)
          if (script?.hangAfterChunks === i + 1) return // goes quiet mid-stream
          if (state.chunkDelayMs > 0) await new Promise((r) => setTimeout(r, state.chunkDelayMs))
        }
        completed = true
        res.end('data: [DONE]\n\n')
        return finish()
      }
      const file = (part) => (part && typeof part === 'object' ? part : { filename: '', bytes: Buffer.alloc(0) })
      const answer =
        route === 'GET /v1/models' ? MODELS
        : route === 'POST /v1/chat/completions' ? chatCompletion(body)
        : route === 'POST /v1/embeddings' ? embeddings(body)
        : route === 'POST /v1/responses' ? response(body)
        : route === 'POST /v1/images/generations' ? { created: CREATED, data: Array.from({ length: body.n ?? 1 }, () => ({ b64_json: Buffer.from('png').toString('base64') })) }
        : route === 'POST /v1/moderations' ? { id: 'modr-standin', model: body.model ?? 'omni-moderation-latest', results: [{ flagged: false, categories: {}, category_scores: {} }] }
        : route === 'POST /v1/audio/transcriptions' ? { text: `heard ${file(body.file).filename} (${file(body.file).bytes.length} bytes)` }
        : route === 'POST /v1/files' ? { id: 'file-standin', object: 'file', bytes: file(body.file).bytes.length, created_at: CREATED, filename: file(body.file).filename, purpose: body.purpose ?? 'assistants', status: 'processed' }
        : null
      if (answer === null) {
        res.writeHead(404, headers)
        res.end(JSON.stringify({ error: { message: `Unknown request URL: ${route}`, type: 'invalid_request_error', param: null, code: 'unknown_url' } }))
      } else {
        res.writeHead(200, headers)
        res.end(JSON.stringify(answer))
      }
      finish()
    })
  })
  server.on('connection', (socket) => {
    state.connections++
    sockets.add(socket)
    state.peakOpenConnections = Math.max(state.peakOpenConnections, sockets.size)
    socket.on('close', () => sockets.delete(socket))
  })
  server.keepAliveTimeout = 60_000
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()

  return {
    url: `http://127.0.0.1:${port}/v1`,
    state,
    /** The next requests get these answers, in order: { status, headers, body, raw, bom, delayMs, hang, held }. */
    enqueue: (...answers) => scripted.push(...answers),
    /** Lets every answer scripted `held` go on. */
    release: () => held.splice(0).forEach((resolve) => resolve()),
    /** Forgets counts and scripts (connections stay open). */
    reset() {
      scripted.length = 0
      Object.assign(state, { requests: 0, inFlight: 0, peakInFlight: 0, connections: sockets.size, peakOpenConnections: sockets.size, arrivals: [], paths: [], authorization: [], contents: [], streamsAborted: 0, chunkDelayMs: 0, uploads: [] })
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

module.exports = { startOpenAIStandIn }

// As a process of its own (the benchmark keeps its CPU apart from the client's):
// `node scripts/openai-stand-in.js [latencyMs]` prints its URL, and GET /__state answers its
// counts.
if (require.main === module) {
  startOpenAIStandIn({ latencyMs: Number(process.argv[2] ?? 0), record: false }).then((standIn) => {
    const { createServer: createControl } = require('node:http')
    const control = createControl((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ requests: standIn.state.requests, connections: standIn.state.connections, peakInFlight: standIn.state.peakInFlight }))
    })
    control.listen(0, '127.0.0.1', () => {
      console.log(JSON.stringify({ url: standIn.url, control: `http://127.0.0.1:${control.address().port}/__state` }))
    })
  })
}
