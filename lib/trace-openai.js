'use strict'
// What an OpenAI request looks like to telemetry (lib/telemetry.js), in the GenAI semantic
// conventions: `{gen_ai.operation.name} {gen_ai.request.model}` spans with the provider, models
// and token usage, and the `gen_ai.client.*` metrics. Never a prompt, a completion or a key:
// the body is read only for its model, id and usage. Built only when someone observes.

const { channels, traceCall, statusFailure } = require('./telemetry')

/** API paths as the conventions' operation names (the Responses API is a chat). */
const OPERATIONS = [
  ['/chat/completions', 'chat'],
  ['/responses', 'chat'],
  ['/completions', 'text_completion'],
  ['/embeddings', 'embeddings'],
  ['/images/', 'generate_content'],
  ['/audio/', 'generate_content'],
  ['/moderations', 'moderations'],
]

function operationOf(path) {
  for (const [suffix, operation] of OPERATIONS) if (path.includes(suffix)) return operation
  return path.split('/').filter(Boolean).pop() ?? 'request'
}

/** `"model": "…"` of a JSON body, without parsing the whole prompt. */
const MODEL_FIELD = /"model"\s*:\s*"((?:[^"\\]|\\.)*)"/

/** Token counts in the conventions' names, from a `usage` object. */
function usageAttributes(usage, attributes) {
  const input = usage?.input_tokens ?? usage?.prompt_tokens
  const output = usage?.output_tokens ?? usage?.completion_tokens
  if (typeof input === 'number') attributes['gen_ai.usage.input_tokens'] = input
  if (typeof output === 'number') attributes['gen_ai.usage.output_tokens'] = output
}

const STREAM_ID = /"id"\s*:\s*"((?:[^"\\]|\\.)*)"/
const INPUT_TOKENS = /"(?:input_tokens|prompt_tokens)"\s*:\s*(\d+)/
const OUTPUT_TOKENS = /"(?:output_tokens|completion_tokens)"\s*:\s*(\d+)/

/** The model and id of a stream's first event, and the usage of its last one (server-sent events). */
function streamAttributes(stream) {
  const attributes = {}
  const model = MODEL_FIELD.exec(stream.head)?.[1]
  const id = STREAM_ID.exec(stream.head)?.[1]
  if (model !== undefined) attributes['gen_ai.response.model'] = model
  if (id !== undefined) attributes['gen_ai.response.id'] = id
  const at = stream.tail.lastIndexOf('"usage"')
  if (at !== -1) {
    const usage = stream.tail.slice(at)
    const input = INPUT_TOKENS.exec(usage)?.[1]
    const output = OUTPUT_TOKENS.exec(usage)?.[1]
    if (input !== undefined) attributes['gen_ai.usage.input_tokens'] = Number(input)
    if (output !== undefined) attributes['gen_ai.usage.output_tokens'] = Number(output)
  }
  return attributes
}

/**
 * Watches a streamed answer for telemetry: its first bytes (model, id) and last ones (usage),
 * and when it ends, however that is (last chunk, error, cancel). `seen.streamed` resolves then.
 */
function watchStream(seen) {
  const decoder = new TextDecoder()
  let head = ''
  let tail = ''
  let ended = false
  let resolve
  seen.streamed = new Promise((r) => (resolve = r))
  return {
    feed(bytes) {
      const text = decoder.decode(bytes, { stream: true })
      if (head.length < 4096) head += text
      tail = (tail + text).slice(-16384)
    },
    end(error) {
      if (ended) return
      ended = true
      seen.stream = { head, tail, error }
      resolve()
    },
  }
}

/** The model, id and token usage of a JSON answer, as span attributes (empty when none). */
function answerAttributes(reply) {
  const attributes = {}
  if (typeof reply.body !== 'string' || reply.status >= 400) return attributes
  let body
  try {
    body = JSON.parse(reply.body)
  } catch {
    return attributes
  }
  if (typeof body?.model === 'string') attributes['gen_ai.response.model'] = body.model
  if (typeof body?.id === 'string') attributes['gen_ai.response.id'] = body.id
  usageAttributes(body?.usage, attributes)
  return attributes
}

/**
 * Runs one request traced. `send(seen)` submits it and resolves to its Response, having put
 * the native reply in `seen.reply`; `model` is a multipart body's model, when it has one.
 */
function traceOpenAI(request, model, priority, send) {
  const url = new URL(request.url)
  const operation = operationOf(url.pathname)
  const requestModel = model ?? MODEL_FIELD.exec(request.text ?? '')?.[1] ?? null
  const base = { 'gen_ai.provider.name': 'openai', 'gen_ai.operation.name': operation }
  if (requestModel !== null) base['gen_ai.request.model'] = requestModel
  base['server.address'] = url.hostname
  base['server.port'] = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
  const seen = { reply: null, streamed: null, stream: null }
  const call = {
    name: requestModel === null ? operation : `${operation} ${requestModel}`,
    attributes: base,
    contextOf: () => ({ operation, model: requestModel, method: request.method, path: url.pathname, priority, poolName: 'openai' }),
    until: () => seen.streamed,
    outcome: (response) => {
      const attributes = seen.stream !== null ? streamAttributes(seen.stream) : seen.reply === null ? {} : answerAttributes(seen.reply)
      // The wait for a slot (the queue, budgets and pauses), as the pool measured it.
      if (typeof seen.reply?.queuedMs === 'number') attributes['connection_pools.queue.wait_time'] = seen.reply.queuedMs / 1000
      const streamError = seen.stream?.error ?? null
      const failure =
        statusFailure(response.status, 400) ??
        (streamError === null ? null : { type: streamError.code ?? 'STREAM_ERROR', message: streamError.message ?? 'the stream failed', status: null })
      return { failure, attributes }
    },
    record: (made, seconds, failure, attributes) => record(made, seconds, failure, base, attributes ?? {}),
  }
  return traceCall(channels.openai, call, () => send(seen))
}

function record(made, seconds, failure, base, answer) {
  const attributes = { ...base }
  if (answer['gen_ai.response.model'] !== undefined) attributes['gen_ai.response.model'] = answer['gen_ai.response.model']
  made.genai.operationDuration.record(seconds, failure === null ? attributes : { ...attributes, 'error.type': failure.type })
  for (const [type, key] of [['input', 'gen_ai.usage.input_tokens'], ['output', 'gen_ai.usage.output_tokens']]) {
    if (answer[key] !== undefined) made.genai.tokenUsage.record(answer[key], { ...attributes, 'gen_ai.token.type': type })
  }
}

module.exports = { traceOpenAI, operationOf, watchStream }
