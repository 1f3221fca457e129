'use strict'
// OpenTelemetry's metrics of both pools, in the semantic conventions' names: the instruments of
// the registered meter provider, the pools' gauges observed at each collection, and the
// connection timings Rust keeps while a meter provider is registered (db/engine/timings.rs),
// recorded after each reply batch and before each collection.

const { VERSION, metering, otel } = require('./otel')
const { submissionsOf } = require('./submissions')

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
  if (!metering()) return null
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
    http: {
      requestDuration: histogram('http.client.request.duration', 's', 'Duration of HTTP client requests.', HTTP_SECONDS),
    },
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
    info = {
      name: config.poolName,
      database: config.database,
      attributes,
      pool: { 'db.client.connection.pool.name': config.poolName },
      /** Whether Rust keeps its timings for us, and replies carry statements' waits. */
      timed: false,
      waits: false,
      /** Calls described once per statement (lib/trace-db.js). */
      calls: new Map(),
    }
    databaseInfo.set(native, info)
  }
  return info
}

/**
 * `native`'s telemetry description, having started keeping its connection timings if a meter
 * provider is registered; they are recorded after every reply batch (`afterDrain`) and before
 * every collection.
 */
function watchDatabase(native) {
  const info = databaseOf(native)
  if (info.timed || !metering() || native.closed || !native.hasConnectionString) return info
  info.timed = true
  native.setTelemetry(true)
  const submissions = submissionsOf(native)
  submissions.afterDrain = () => recordTimings(native, submissions)
  return info
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

module.exports = { meters, databaseOf, watchDatabase, current }
