'use strict'
// OpenAIPool: the seed's static API over the native OpenAI pool, and an openai-node-shaped
// client (chat.completions.create, embeddings.create, models.list) whose every request passes the
// pool's queue. Bodies and results are the public API's JSON.

const { NativeOpenAiPool } = require('../binding.js')
const { ConnectionPoolError } = require('./errors')
const { createNativePool, retire, healthReport } = require('./native')
const { Submissions } = require('./submissions')

/** An OpenAI API error, named as openai-node names it (RateLimitError, NotFoundError, ...). */
class OpenAIError extends Error {
  constructor(fields) {
    super(fields.message)
    this.name = fields.name ?? 'APIError'
    this.status = fields.status ?? undefined
    this.code = fields.code ?? null
    this.type = fields.type ?? null
    this.param = fields.param ?? null
    this.requestId = fields.requestId ?? null
  }
}

let current = null

function pool() {
  if (current === null) OpenAIPool.initialize()
  return current
}

/** A submitted request's reply object: its body, or its error thrown. */
function replyBody(reply) {
  if (reply.error) throw new OpenAIError(reply.error)
  return reply.body
}

/**
 * The client. `slot` is set for the client handed to an executeRequest callback: its requests
 * use the callback's slot instead of queueing again.
 */
class OpenAIClient {
  constructor(slot = null, model = null) {
    this._slot = slot
    this._model = model
    const request = (method, path, body, options) => this._request(method, path, body, options)
    this.chat = {
      completions: {
        /**
         * POST /chat/completions. With `stream: true` it resolves to an async iterable of chunks;
         * leaving the loop early aborts the request and frees its slot. `options.priority`:
         * 'high' | 'normal' | 'low' (default 'normal').
         */
        create: (body, options) =>
          body && body.stream ? this._stream('chat/completions', body, options) : request('POST', 'chat/completions', body, options),
      },
    }
    this.embeddings = {
      /** POST /embeddings */
      create: (body, options) => request('POST', 'embeddings', body, options),
    }
    this.models = {
      /** GET /models: resolves to the API's list object; iterate `data`. */
      list: (options) => request('GET', 'models', undefined, options),
    }
  }

  async _stream(path, body, options) {
    const native = pool()
    const id = idOf(await native.openStream(path, JSON.stringify(body), modelOf(body, this._model), this._slot, priorityOf(options)))
    return new ChatCompletionStream(native, id)
  }

  _request(method, path, body, options) {
    let native
    try {
      native = pool()
    } catch (err) {
      return Promise.reject(err)
    }
    const json = body === undefined ? null : JSON.stringify(body)
    const model = modelOf(body, this._model)
    const priority = priorityOf(options)
    return native.submissions
      .submit((id) => native.submitRequest(id, method, path, json, model, this._slot, priority))
      .then(replyBody)
  }
}

/** A request's priority option (openai-node's request options may carry other keys: ignored). */
function priorityOf(options) {
  return options && options.priority != null ? String(options.priority) : null
}

/** The model a request counts against: its body's, else the one executeRequest was given. */
function modelOf(body, fallback) {
  return body && typeof body.model === 'string' ? body.model : fallback
}

/**
 * A stream object that becomes unreachable without having been read to the end (the caller
 * threw before its `for await`, or dropped it) gives its request and slot back when collected.
 * (Rust also drops a stream nobody reads for `requestTimeout`, for references kept but unread.)
 */
const abandonedStreams = new FinalizationRegistry(({ native, id }) => native.cancelStream(id))

/** The chunks of a streamed completion, as openai-node's Stream: `for await (const chunk of stream)`. */
class ChatCompletionStream {
  constructor(native, id) {
    this._native = native
    this._id = id
    this._ended = false
    this.controller = { abort: () => this._end() }
    abandonedStreams.register(this, { native, id }, this)
  }

  _end() {
    if (!this._ended) {
      this._ended = true
      abandonedStreams.unregister(this)
      this._native.cancelStream(this._id)
    }
  }

  [Symbol.asyncIterator]() {
    return {
      next: async () => {
        if (this._ended) return { done: true, value: undefined }
        const reply = JSON.parse(await this._native.nextChunk(this._id))
        if (reply.error) {
          this._ended = true
          abandonedStreams.unregister(this)
          throw new OpenAIError(reply.error)
        }
        if (reply.done) {
          this._ended = true
          abandonedStreams.unregister(this)
          return { done: true, value: undefined }
        }
        return { done: false, value: reply.chunk }
      },
      // Called when the loop is left early (break, return, throw): stop the request now.
      return: async () => {
        this._end()
        return { done: true, value: undefined }
      },
    }
  }
}

const sharedClient = new OpenAIClient()

class OpenAIPool {
  /** Validates `config` and replaces the current pool; the previous one drains in the background. */
  static initialize(config = {}) {
    const next = createNativePool(NativeOpenAiPool, config, {
      OPENAI_API_KEY: process.env.OPENAI_API_KEY,
      OPENAI_BASE_URL: process.env.OPENAI_BASE_URL,
      OPENAI_ORG_ID: process.env.OPENAI_ORG_ID,
      OPENAI_PROJECT_ID: process.env.OPENAI_PROJECT_ID,
      CONNECTION_POOLS_REDIS_URL: process.env.CONNECTION_POOLS_REDIS_URL,
    })
    next.submissions = new Submissions(next)
    const previous = current
    current = next
    retire(previous)
  }

  /** The OpenAI client, a singleton. */
  static getClient() {
    return sharedClient
  }

  /**
   * Waits for a slot, runs `fn(client)` holding it (requests made with that client use the same
   * slot: no second wait), releases it however `fn` ends, and returns `fn`'s result.
   * `options.priority`: 'high' | 'normal' | 'low' (default 'normal').
   */
  static async executeRequest(fn, model, options) {
    if (typeof fn !== 'function') {
      throw new ConnectionPoolError('INVALID_ARGUMENT', 'executeRequest(fn, model): fn must be a function')
    }
    const native = pool()
    const slot = idOf(await native.acquireSlot(model ?? null, priorityOf(options)))
    try {
      return await fn(new OpenAIClient(slot, model ?? null))
    } finally {
      native.releaseSlot(slot)
    }
  }

  static getStats() {
    const { rateLimitJson, lastRequestTime, ...stats } = pool().stats()
    const limits = JSON.parse(rateLimitJson)
    return {
      ...stats,
      lastRequestTime: lastRequestTime ?? null,
      rateLimit: {
        limitRequests: limits.limitRequests ?? null,
        remainingRequests: limits.remainingRequests ?? null,
        resetRequestsMs: limits.resetRequestsMs ?? null,
        limitTokens: limits.limitTokens ?? null,
        remainingTokens: limits.remainingTokens ?? null,
        resetTokensMs: limits.resetTokensMs ?? null,
      },
    }
  }

  static getPoolConfig() {
    const config = pool().config()
    return {
      ...config,
      organization: config.organization ?? null,
      project: config.project ?? null,
      maxQueueSize: config.maxQueueSize ?? null,
      requestsPerMinute: config.requestsPerMinute ?? null,
      tokensPerMinute: config.tokensPerMinute ?? null,
      limitKey: config.limitKey ?? null,
      leaseMs: config.leaseMs ?? null,
    }
  }

  static getQueueStatus() {
    return pool().queueStatus()
  }

  static resetStats() {
    pool().resetStats()
  }

  /** Lists models with a short deadline; never rejects. */
  static healthCheck() {
    return healthReport('OpenAI', pool, OpenAIPool.getStats)
  }

  /** Stops admitting, rejects queued calls with POOL_CLOSED, lets in-flight ones finish within `timeout`. */
  static async close() {
    if (current !== null) await current.close()
  }
}

/** A native `{ id, error }` reply: the id, or its error thrown. */
function idOf(reply) {
  if (reply.error) throw new OpenAIError(reply.error)
  return reply.id
}

/** The seed's openai.ts helper: true when the API answers. */
async function testOpenAIConnection() {
  return (await OpenAIPool.healthCheck()).healthy
}

module.exports = {
  /** The current native pool (created from the environment if none); for the monitoring router. */
  nativePool: pool,
  OpenAIPool,
  OpenAIClient,
  OpenAIError,
  openai: sharedClient,
  testOpenAIConnection,
}
