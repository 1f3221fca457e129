'use strict'
// OpenAIPool: the seed's static API over the native OpenAI pool, and `openai`, an `OpenAI` of the
// `openai` package itself whose `fetch` hands every request to the pool: the queue, priorities,
// budgets, limits shared through Redis, pauses, retries that honour retry-after, accounting and
// keep-alive connections all happen in Rust, under every SDK method unchanged (responses, chat,
// embeddings, images, audio, files, streams, `.withResponse()`). The SDK's own retries are off,
// so attempts are not multiplied; its errors are its own classes, built from the responses.

const { NativeOpenAiPool } = require('../binding.js')
const { ConnectionPoolError } = require('./errors')
const { createNativePool, retire, healthReport } = require('./native')
const { submissionsOf } = require('./submissions')
const { readRequest, fetchError, nativeStream, toResponse, underSignal, abortError } = require('./fetch')
const { EventEmitter } = require('node:events')
const { observed, withTraceHeaders } = require('./telemetry')
const { current: telemetryPools } = require('./telemetry-metrics')
const { traceOpenAI, watchStream } = require('./trace-openai')
const { LeakWatcher, captureCaller, leakThreshold } = require('./leaks')

/** 'leak' and 'release' (leakDetectionThreshold): `OpenAIPool.on(event, listener)`. */
const events = new EventEmitter()
const leaks = new LeakWatcher(events, 'openai')

let current = null

/** The base URL the SDK is given, by native pool (the configured one, as the SDK reads it). */
const sdkBaseUrls = new WeakMap()

/**
 * The key the SDK is given: a placeholder, taken off every request, so that the pool adds the
 * real one in Rust (it never lives in a JS object). A client of your own with its own key
 * keeps it: its `Authorization` goes out as it set it.
 */
const KEY_ADDED_BY_THE_POOL = 'sk-connection-pools-adds-the-configured-key'
const PLACEHOLDER_AUTHORIZATION = `Bearer ${KEY_ADDED_BY_THE_POOL}`

/** Header text (`name\nvalue\n…`) without the placeholder's Authorization. */
function withoutPlaceholder(text) {
  const at = text.indexOf(`\n${PLACEHOLDER_AUTHORIZATION}\n`)
  if (at === -1) return text
  const start = text.lastIndexOf('\n', at - 1) + 1
  return text.slice(0, start) + text.slice(at + PLACEHOLDER_AUTHORIZATION.length + 2)
}

function pool() {
  if (current === null) OpenAIPool.initialize()
  return current
}

/** The SDK, loaded on first use: importing this package must not need it loaded. */
function sdk() {
  try {
    return require('openai')
  } catch (err) {
    throw new ConnectionPoolError('MISSING_DEPENDENCY', `the openai package is not installed: npm install openai (${err.message})`)
  }
}

/** A RequestInit `priority` ('high' | 'low' | 'auto') or the pool's own ('normal'), or null. */
function priorityOf(init) {
  const priority = init?.priority
  return priority === undefined || priority === null ? null : String(priority)
}

/** The model of a multipart body (a FormData's `model` field); a JSON body's is read in Rust. */
function multipartModel(body) {
  if (body && typeof body.get === 'function' && typeof FormData !== 'undefined' && body instanceof FormData) {
    const model = body.get('model')
    return typeof model === 'string' ? model : null
  }
  return null
}

/**
 * A fetch that hands each request to the current native pool (or to the slot of an
 * executeRequest callback, `slot`). Rejects as fetch does for a failed request: an AbortError
 * when `init.signal` aborted (a queued request leaves the queue, a running one is dropped), the
 * pool's refusals (QUEUE_FULL, POOL_CLOSED, TIMEOUT) as errors keeping that code.
 */
function poolFetch(slot = null) {
  // Not async: a request costs the caller one promise, the one the pool's reply settles.
  return function fetch(input, init = {}) {
    let native
    try {
      native = pool()
    } catch (err) {
      return Promise.reject(err)
    }
    const signal = init.signal ?? (typeof input === 'object' ? input.signal : undefined)
    if (signal?.aborted) return Promise.reject(abortError(signal))
    // A stream it answers with is watched from here (leakDetectionThreshold).
    const caller = captureCaller(leakThreshold(native), fetch)
    const request = readRequest(input, init)
    if (typeof request.then === 'function') return request.then((read) => observedSend(native, read, init, slot, signal, caller))
    return observedSend(native, request, init, slot, signal, caller)
  }
}

/** `send`, traced when someone observes. */
function observedSend(native, request, init, slot, signal, caller) {
  if (!observed('openai')) return send(native, request, init, slot, signal, caller, null)
  return traceOpenAI(request, multipartModel(init.body), priorityOf(init), (seen) =>
    send(native, { ...request, headers: withTraceHeaders(request.headers) }, init, slot, signal, caller, seen),
  )
}

/**
 * Submits one request. An abort of `signal` tells the native side, which takes the request out
 * of the queue (or drops it) and answers it as aborted: the one promise settles either way.
 */
function send(native, request, init, slot, signal, caller, seen) {
  let id = 0
  const replied = submissionsOf(native).submit((submissionId) => {
    id = submissionId
    const headers = withoutPlaceholder(request.headers)
    native.submitFetch(submissionId, request.method, request.url, headers, request.text, request.bytes, multipartModel(init.body), slot, priorityOf(init))
  })
  return underSignal(replied, signal, () => native.abortFetch(id)).then((reply) => {
    if (seen !== null) seen.reply = reply
    return answer(native, reply, signal, caller, seen)
  })
}

/** The native reply as the Response fetch resolves to, or its error thrown. */
function answer(native, reply, signal, caller, seen = null) {
  if (reply.error) throw explained(fetchError(reply.error, signal))
  if (reply.stream === undefined) return toResponse(reply, null)
  const stream = reply.stream
  // Open until its last chunk is read or it is cancelled, however that happens.
  const hold = leaks.watch('stream', leakThreshold(native), caller)
  // Observed: its span and metrics end with it, with the usage its last event reports.
  const watched = seen === null ? null : watchStream(seen)
  const cancel = () => {
    hold.release()
    watched?.end(null)
    native.cancelStream(stream)
  }
  // The SDK aborts its signal when a stream's reader stops early: the request stops with it.
  if (signal) signal.addEventListener('abort', cancel, { once: true })
  return toResponse(reply, () =>
    nativeStream(
      () =>
        native.nextBytes(stream).then((chunk) => {
          if (chunk.done || chunk.error) {
            hold.release()
            watched?.end(chunk.error ?? null)
          } else watched?.feed(chunk.bytes)
          return chunk
        }),
      cancel,
    ),
  )
}

/**
 * A wait for a slot that timed out, with the stack that took the oldest slot or stream still
 * held, when leak detection is on: the pool's message says how the queue stood, this says who.
 */
function explained(err) {
  if (err.code !== 'TIMEOUT' || !err.message.includes('waiting for a free slot')) return err
  return leaks.withOldest(err, (oldest) => `the oldest ${oldest.kind} still held (${oldest.ageMs} ms) was taken here`)
}

/** `OpenAIPool.fetch`: give it to an OpenAI client of your own to join the pool's queue and limits. */
const sharedFetch = poolFetch()

/** An `OpenAI` over the pool's fetch, with the pool's key and base URL, and no retries of its own. */
function pooledClient(native, fetch) {
  const OpenAI = /** @type {any} */ (sdk())
  const config = native.config()
  return new OpenAI({
    apiKey: KEY_ADDED_BY_THE_POOL,
    baseURL: sdkBaseUrls.get(native),
    organization: config.organization ?? null,
    project: config.project ?? null,
    maxRetries: 0,
    fetch,
  })
}

/**
 * The `openai` export: the SDK client, made on first use from the current pool (so
 * `OpenAIPool.initialize()` before first use sets its key and URL). Every property reads the
 * client through, so `openai.responses.create(...)` is the SDK's own.
 */
let sharedClient = null
let sharedClientPool = null

function client() {
  const native = pool()
  if (sharedClient === null || sharedClientPool !== native) {
    sharedClient = pooledClient(native, sharedFetch)
    sharedClientPool = native
  }
  return sharedClient
}

const openai = new Proxy(
  {},
  {
    get: (_target, name) => {
      const target = client()
      const value = Reflect.get(target, name, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
    has: (_target, name) => name in client(),
    getPrototypeOf: () => Object.getPrototypeOf(client()),
    ownKeys: () => Reflect.ownKeys(client()),
    getOwnPropertyDescriptor: (_target, name) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(client(), name)
      return descriptor === undefined ? undefined : { ...descriptor, configurable: true }
    },
    set: (_target, name, value) => Reflect.set(client(), name, value),
  },
)

class OpenAIPool {
  /**
   * Validates `config` and replaces the current pool; the previous one runs the calls it
   * accepted (queued ones included), then closes.
   */
  static initialize(config = {}) {
    const next = createNativePool(NativeOpenAiPool, config, {
      OPENAI_API_KEY: process.env.OPENAI_API_KEY,
      OPENAI_BASE_URL: process.env.OPENAI_BASE_URL,
      OPENAI_ORG_ID: process.env.OPENAI_ORG_ID,
      OPENAI_PROJECT_ID: process.env.OPENAI_PROJECT_ID,
      CONNECTION_POOLS_REDIS_URL: process.env.CONNECTION_POOLS_REDIS_URL,
    })
    // Its replies come back through its Submissions, made now (before the first submission).
    submissionsOf(next)
    // The SDK needs the real base URL to build request URLs (getPoolConfig() shows it masked).
    sdkBaseUrls.set(next, config.baseURL ?? process.env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1')
    const previous = current
    current = next
    retire(previous)
  }

  /** The `openai` export: an OpenAI client of the openai package, every request through the pool. */
  static getClient() {
    return openai
  }

  /** A fetch for an OpenAI client of your own: `new OpenAI({ fetch: OpenAIPool.fetch, maxRetries: 0 })`. */
  static get fetch() {
    return sharedFetch
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
    const caller = captureCaller(leakThreshold(native), OpenAIPool.executeRequest)
    const slot = idOf(await native.acquireSlot(model ?? null, priorityOf(options)))
    const hold = leaks.watch('slot', leakThreshold(native), caller)
    try {
      return await fn(client().withOptions({ fetch: poolFetch(slot), maxRetries: 0 }))
    } finally {
      native.releaseSlot(slot)
      hold.release()
    }
  }

  /**
   * Listens to the pool's events: 'leak' (an executeRequest slot or a stream held past
   * leakDetectionThreshold: `{ pool, kind, ageMs, thresholdMs, site, stack }`) and 'release'
   * (it ended: `{ pool, kind, heldMs, site }`).
   */
  static on(event, listener) {
    events.on(event, listener)
    return OpenAIPool
  }

  static off(event, listener) {
    events.off(event, listener)
    return OpenAIPool
  }

  /** The leak warnings in force now (slots and streams past leakDetectionThreshold). */
  static getLeaks() {
    return leaks.current()
  }

  static getStats() {
    const { rateLimit: limits, lastRequestTime, ...stats } = pool().stats()
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

/** A native `{ id, error }` reply: the id, or its error thrown (as fetch's failures are). */
function idOf(reply) {
  if (reply.error) throw fetchError(reply.error)
  return reply.id
}

/** The seed's openai.ts helper: true when the API answers. */
async function testOpenAIConnection() {
  return (await OpenAIPool.healthCheck()).healthy
}

telemetryPools.openai = () => current

module.exports = {
  /** The current native pool (created from the environment if none); for the monitoring router. */
  nativePool: pool,
  OpenAIPool,
  openai,
  testOpenAIConnection,
}
