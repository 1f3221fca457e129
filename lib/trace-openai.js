'use strict'
// What an OpenAI request looks like to telemetry (lib/telemetry.js), in the GenAI semantic
// conventions: `{gen_ai.operation.name} {gen_ai.request.model}` spans with the provider, models
// and token usage, and the `gen_ai.client.*` metrics. Never a prompt, a completion or a key:
// the body is read only for its model, id and usage. Built only when someone observes.

const { channels, traceCall } = require('./telemetry')

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
  const usage = body?.usage
  const input = usage?.input_tokens ?? usage?.prompt_tokens
  const output = usage?.output_tokens ?? usage?.completion_tokens
  if (typeof input === 'number') attributes['gen_ai.usage.input_tokens'] = input
  if (typeof output === 'number') attributes['gen_ai.usage.output_tokens'] = output
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
  const seen = { reply: null }
  const call = {
    name: requestModel === null ? operation : `${operation} ${requestModel}`,
    attributes: base,
    contextOf: () => ({ operation, model: requestModel, method: request.method, path: url.pathname, priority, poolName: 'openai' }),
    outcome: (response) => {
      const attributes = seen.reply === null ? {} : answerAttributes(seen.reply)
      const failure = response.status >= 400 ? { type: String(response.status), message: `status ${response.status}`, status: null } : null
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

module.exports = { traceOpenAI, operationOf }
