'use strict'
// Telemetry that costs nothing until someone observes:
// - OpenTelemetry through `@opentelemetry/api` only, as libraries do: the backend registers the
//   SDK; with none registered the hot paths ask one question (`observed`) and go on.
// - Node's diagnostics_channel TracingChannels `connection-pools:query` (every statement,
//   builder request and transaction) and `connection-pools:openai` (every OpenAI request), so
//   that any APM subscribes without patching.
// Names, attributes and the channels' context objects follow OpenTelemetry's semantic
// conventions for databases and GenAI clients; docs/monitoring.md lists them.

const diagnostics = require('node:diagnostics_channel')
const { performance } = require('node:perf_hooks')

/** This package's version, the instrumentation scope's version. */
const VERSION = JSON.parse(require('node:fs').readFileSync(require('node:path').join(__dirname, '..', 'package.json'), 'utf8')).version
/** Where every copy of the API (major version 1) keeps the registered providers. */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')

const channels = {
  query: diagnostics.tracingChannel('connection-pools:query'),
  openai: diagnostics.tracingChannel('connection-pools:openai'),
  http: diagnostics.tracingChannel('connection-pools:http'),
}

function listened(channel) {
  return (
    channel.start.hasSubscribers ||
    channel.end.hasSubscribers ||
    channel.asyncStart.hasSubscribers ||
    channel.asyncEnd.hasSubscribers ||
    channel.error.hasSubscribers
  )
}

/** Whether a tracer or meter provider is registered with any copy of the API. */
function otelRegistered() {
  const registered = globalThis[OTEL_GLOBAL]
  return registered !== undefined && (registered.trace !== undefined || registered.metrics !== undefined)
}

/** The hot paths' one question: does anyone observe calls of `family` ('query' | 'openai' | 'http')? */
function observed(family) {
  return otelRegistered() || listened(channels[family])
}

let otelApi = null
function otel() {
  if (otelApi === null) otelApi = require('@opentelemetry/api')
  return otelApi
}

/** Whether a tracer provider is registered (spans are made). */
function tracing() {
  return globalThis[OTEL_GLOBAL]?.trace !== undefined
}

function tracer() {
  if (!tracing()) return null
  return otel().trace.getTracer('connection-pools', VERSION)
}

// Bucket boundaries the semantic conventions advise.
const DB_SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]
const POOL_SECONDS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]
const GENAI_SECONDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
const HTTP_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const GENAI_TOKENS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]

/** The pools telemetry reports on: each module's current native pool, or null. */
const current = { database: () => null, openai: () => null }

/** The instruments of the registered meter provider (made again when another is registered). */
let instruments = null

function meters() {
  if (globalThis[OTEL_GLOBAL]?.metrics === undefined) return null
  const provider = otel().metrics.getMeterProvider()
  if (instruments === null || instruments.provider !== provider) instruments = createInstruments(provider)
  return instruments
}

function createInstruments(provider) {
  const meter = provider.getMeter('connection-pools', VERSION)
  const histogram = (name, unit, description, boundaries) =>
    meter.createHistogram(name, { unit, description, advice: { explicitBucketBoundaries: boundaries } })
  const gauge = (name, unit, description) => meter.createObservableUpDownCounter(name, { unit, description })
  const made = {
    provider,
    db: {
      operationDuration: histogram('db.client.operation.duration', 's', 'Duration of database client operations.', DB_SECONDS),
      createTime: histogram('db.client.connection.create_time', 's', 'The time it took to create a new connection.', POOL_SECONDS),
      waitTime: histogram('db.client.connection.wait_time', 's', 'The time it took to obtain an open connection from the pool.', POOL_SECONDS),
      useTime: histogram('db.client.connection.use_time', 's', 'The time between borrowing a connection and returning it to the pool.', POOL_SECONDS),
      timeouts: meter.createCounter('db.client.connection.timeouts', { unit: '{timeout}', description: 'The number of connection timeouts that have occurred trying to obtain a connection from the pool.' }),
      count: gauge('db.client.connection.count', '{connection}', 'The number of connections that are currently in state described by the state attribute.'),
      max: gauge('db.client.connection.max', '{connection}', 'The maximum number of open connections allowed.'),
      idleMax: gauge('db.client.connection.idle.max', '{connection}', 'The maximum number of idle open connections allowed.'),
      idleMin: gauge('db.client.connection.idle.min', '{connection}', 'The minimum number of idle open connections allowed.'),
      pending: gauge('db.client.connection.pending_requests', '{request}', 'The number of current pending requests for an open connection.'),
    },
    genai: {
      operationDuration: histogram('gen_ai.client.operation.duration', 's', 'GenAI operation duration.', GENAI_SECONDS),
      tokenUsage: histogram('gen_ai.client.token.usage', '{token}', 'Number of input and output tokens used.', GENAI_TOKENS),
      queued: gauge('connection_pools.openai.queue.size', '{request}', 'OpenAI requests waiting for a slot.'),
      active: gauge('connection_pools.openai.requests.active', '{request}', 'OpenAI requests holding a slot.'),
      remaining: gauge('connection_pools.openai.rate_limit.remaining', '{request}', "What the API's last x-ratelimit-remaining-* headers said is left (connection_pools.rate_limit.kind: requests | tokens)."),
    },
  }
  made.http = {
    requestDuration: histogram('http.client.request.duration', 's', 'Duration of HTTP client requests.', HTTP_SECONDS),
  }
  const { db, genai } = made
  meter.addBatchObservableCallback((result) => observeDatabase(result, db), [db.count, db.max, db.idleMax, db.idleMin, db.pending])
  meter.addBatchObservableCallback((result) => observeOpenAI(result, genai), [genai.queued, genai.active, genai.remaining])
  return made
}

/** What a database pool is called in telemetry, by native pool. */
const databaseInfo = new WeakMap()

function databaseOf(native) {
  let info = databaseInfo.get(native)
  if (info === undefined) {
    const config = native.config()
    const attributes = { 'db.system.name': 'postgresql', 'db.namespace': config.database }
    if (config.serverAddress !== '') {
      attributes['server.address'] = config.serverAddress
      attributes['server.port'] = config.serverPort
    }
    info = { name: config.poolName, database: config.database, attributes, pool: { 'db.client.connection.pool.name': config.poolName }, timed: false }
    databaseInfo.set(native, info)
  }
  return info
}

/**
 * Starts keeping `native`'s connection timings once a meter provider is registered; they are
 * recorded after every reply batch (`afterDrain`) and before every collection.
 */
function watchDatabase(native, submissions) {
  if (meters() === null || native.closed || !native.hasConnectionString) return
  const info = databaseOf(native)
  if (info.timed) return
  info.timed = true
  native.setTelemetry(true)
  submissions.afterDrain = () => recordTimings(native, submissions)
}

function recordTimings(native, submissions = null) {
  const made = meters()
  if (made === null) {
    // The meter provider went away (disabled): stop keeping what nobody will record.
    native.setTelemetry(false)
    databaseOf(native).timed = false
    if (submissions !== null) submissions.afterDrain = null
    return
  }
  const { create, wait, immediate, used, timeouts } = native.takePoolTimings()
  const attributes = databaseOf(native).pool
  for (const seconds of create) made.db.createTime.record(seconds, attributes)
  for (const seconds of wait) made.db.waitTime.record(seconds, attributes)
  for (let i = 0; i < immediate; i++) made.db.waitTime.record(0, attributes)
  for (const seconds of used) made.db.useTime.record(seconds, attributes)
  if (timeouts > 0) made.db.timeouts.add(timeouts, attributes)
}

function observeDatabase(result, db) {
  const native = current.database()
  if (native === null || native.closed || !native.hasConnectionString) return
  const info = databaseOf(native)
  if (info.timed) recordTimings(native)
  const stats = native.stats()
  const config = native.config()
  const idle = stats.idleConnections
  result.observe(db.count, idle, { ...info.pool, 'db.client.connection.state': 'idle' })
  result.observe(db.count, stats.totalConnections - idle, { ...info.pool, 'db.client.connection.state': 'used' })
  result.observe(db.max, config.maxConnections, info.pool)
  result.observe(db.idleMax, config.maxConnections, info.pool)
  result.observe(db.idleMin, config.minConnections, info.pool)
  result.observe(db.pending, stats.waitingRequests, info.pool)
}

function observeOpenAI(result, genai) {
  const native = current.openai()
  if (native === null || native.closed) return
  const { activeRequests, rateLimit } = native.stats()
  const attributes = { 'gen_ai.provider.name': 'openai' }
  result.observe(genai.queued, native.queueStatus().queueLength, attributes)
  result.observe(genai.active, activeRequests, attributes)
  for (const [kind, left] of [['requests', rateLimit.remainingRequests], ['tokens', rateLimit.remainingTokens]]) {
    if (left !== null && left !== undefined) result.observe(genai.remaining, left, { ...attributes, 'connection_pools.rate_limit.kind': kind })
  }
}

/**
 * Runs `run()` (a promise) as one observed call: a CLIENT span under the caller's active span
 * (its context active while `run` starts, so calls made inside are its children), the
 * channel's start/end/asyncStart/asyncEnd (and error) around it, and `record` of the duration.
 * `call` (often shared by calls of the same statement: nothing here writes to it) gives `name`,
 * `attributes`, `contextOf()` (the channel's context object, made per call),
 * `outcome(result)` (`{ failure: { type, message } | null, attributes }`) and
 * `record(made, seconds, failure, attributes)`; `until(result)`, if given, may return a promise
 * the call ends with (a stream's last chunk) instead of with the result.
 */
function traceCall(channel, call, run) {
  const activeTracer = tracer()
  const made = meters()
  const publish = listened(channel)
  if (activeTracer === null && !publish) return made === null ? run() : timed(call, made, run)
  const span =
    activeTracer === null ? null : activeTracer.startSpan(call.name, { kind: otel().SpanKind.CLIENT, attributes: call.attributes }, otel().context.active())
  const started = performance.now()
  const context = publish ? call.contextOf() : null
  const settle = (result, error) => {
    const { failure, attributes } = error === null ? call.outcome(result) : { failure: failureOf(error), attributes: null }
    if (publish) {
      if (failure !== null) {
        context.error = error ?? Object.assign(new Error(failure.message), { code: failure.type })
        channel.error.publish(context)
      } else context.result = result
      channel.asyncStart.publish(context)
      channel.asyncEnd.publish(context)
    }
    if (span !== null) endSpan(span, failure, error, attributes)
    if (made !== null) call.record(made, (performance.now() - started) / 1000, failure, attributes)
  }
  const start = () => {
    let promise
    try {
      promise = span === null ? run() : otel().context.with(otel().trace.setSpan(otel().context.active(), span), run)
    } catch (err) {
      promise = Promise.reject(err)
    }
    if (publish) channel.end.publish(context)
    return promise.then(
      (result) => {
        // A streamed answer is resolved at its headers and ends with its last chunk.
        const streaming = call.until?.(result) ?? null
        if (streaming === null) settle(result, null)
        else streaming.then(() => settle(result, null))
        return result
      },
      (err) => {
        settle(undefined, err)
        throw err
      },
    )
  }
  return publish ? channel.start.runStores(context, start) : start()
}

/** Metrics alone: the duration and the outcome, nothing else made per call. */
function timed(call, made, run) {
  const started = performance.now()
  let promise
  try {
    promise = run()
  } catch (err) {
    promise = Promise.reject(err)
  }
  const finish = (result) => {
    const { failure, attributes } = call.outcome(result)
    call.record(made, (performance.now() - started) / 1000, failure, attributes)
  }
  return promise.then(
    (result) => {
      const streaming = call.until?.(result) ?? null
      if (streaming === null) finish(result)
      else streaming.then(() => finish(result))
      return result
    },
    (err) => {
      call.record(made, (performance.now() - started) / 1000, failureOf(err), null)
      throw err
    },
  )
}

/**
 * `headerText` (`name\nvalue\n…`, lib/fetch.js) with the active context's propagation headers
 * (W3C `traceparent`, with the propagator the backend registered) added, so that the service
 * called sees the span as its parent. Unchanged without a tracer or a propagator.
 */
function withTraceHeaders(headerText) {
  if (globalThis[OTEL_GLOBAL]?.trace === undefined) return headerText
  let text = headerText
  otel().propagation.inject(otel().context.active(), null, {
    set: (_carrier, name, value) => {
      if (!/[\r\n]/.test(name) && !/[\r\n]/.test(value)) text += `${name}\n${value}\n`
    },
  })
  return text
}

/** A rejection as `{ type, message, status }`: its code (a SQLSTATE is also the status). */
function failureOf(error) {
  const code = typeof error?.code === 'string' ? error.code : null
  return {
    type: code ?? error?.name ?? 'Error',
    message: String(error?.message ?? error),
    status: code !== null && /^[0-9A-Z]{5}$/.test(code) ? code : null,
  }
}

function endSpan(span, failure, error, attributes) {
  if (attributes !== null) span.setAttributes(attributes)
  if (failure !== null) {
    span.setAttribute('error.type', failure.type)
    if (failure.status) span.setAttribute('db.response.status_code', failure.status)
    span.setStatus({ code: otel().SpanStatusCode.ERROR, message: failure.message })
    if (error !== null) span.recordException(error)
  }
  span.end()
}

module.exports = { channels, observed, tracing, traceCall, watchDatabase, databaseOf, current, meters, listened, withTraceHeaders }
