'use strict'
// The seed's monitoring routes (connections.routes.ts) as a mountable Express router, plus
// Prometheus /metrics and the live /dashboard page, all behind one auth guard.
//
// Every answer is `{ success: true, data }` or `{ success: false, error: { message } }`.
// Configs are copied field by field from an allow-list, so a connection string, a password or an
// API key can never reach a response, whatever the pools' configs grow to hold.

const { ConnectionPoolError } = require('./errors')
const database = require('./database')
const openai = require('./openai')
const { renderMetrics, METRICS_CONTENT_TYPE } = require('../binding.js')
const { createAuthGuard } = require('./auth')
const { dashboardPage } = require('./dashboard')

const { DatabasePool } = database
const { OpenAIPool } = openai

function loadExpress() {
  try {
    return require('express')
  } catch {
    throw new ConnectionPoolError('MISSING_DEPENDENCY', 'createConnectionsRouter needs express (a peer dependency): npm install express')
  }
}

function pick(source, keys) {
  const out = {}
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key]
  return out
}

const DATABASE_CONFIG_KEYS = ['maxConnections', 'minConnections', 'connectionTimeout', 'idleTimeout', 'maxRetries', 'retryDelay']
const OPENAI_CONFIG_KEYS = ['maxConcurrentRequests', 'requestTimeout', 'maxRetries', 'retryDelay', 'timeout', 'maxQueueSize']

function databaseSection() {
  return { stats: DatabasePool.getStats(), config: pick(DatabasePool.getPoolConfig(), DATABASE_CONFIG_KEYS) }
}

function openaiSection() {
  return {
    stats: OpenAIPool.getStats(),
    config: pick(OpenAIPool.getPoolConfig(), OPENAI_CONFIG_KEYS),
    queue: OpenAIPool.getQueueStatus(),
  }
}

/** The OpenAI pool's budgets, pause, queue per priority and shared-limit state (the dashboard's tiles). */
function openaiLimits() {
  const config = OpenAIPool.getPoolConfig()
  const queue = OpenAIPool.getQueueStatus()
  return {
    requestsPerMinute: config.requestsPerMinute,
    tokensPerMinute: config.tokensPerMinute,
    rateLimitWindowMs: config.rateLimitWindowMs,
    pausedForMs: queue.pausedForMs,
    byPriority: queue.byPriority,
    shared: config.limitKey !== null,
    limitKey: config.limitKey,
    leaseMs: config.leaseMs,
    sharedLimitFallbacks: OpenAIPool.getStats().sharedLimitFallbacks,
  }
}

/** 503 when a pool is not configured or closed (the service is unavailable), else 500. */
function statusFor(err) {
  const code = err?.code
  return code === 'INVALID_CONFIG' || code === 'POOL_CLOSED' ? 503 : 500
}

function fail(res, status, message, data) {
  const body = { success: false, error: { message } }
  if (data !== undefined) body.data = data
  res.status(status).json(body)
}

/** Wraps a handler returning `data` (or a promise of it) into the envelope. */
function answer(handler) {
  return async (req, res) => {
    try {
      res.json({ success: true, data: await handler(req) })
    } catch (err) {
      fail(res, statusFor(err), err?.message ?? String(err))
    }
  }
}

/**
 * Health answers 200 when healthy, 503 with the same data when not (load balancers read the
 * status). Every handler catches its own errors: Express 4 does not catch rejected promises.
 */
function health(check) {
  return async (_req, res) => {
    try {
      const result = await check()
      if (result.healthy) res.json({ success: true, data: result })
      else fail(res, 503, result.message, result)
    } catch (err) {
      fail(res, 500, err?.message ?? String(err))
    }
  }
}

/** The pools that exist or can be created from the environment; a misconfigured one is left out. */
function nativeOrNull(module) {
  try {
    return module.nativePool()
  } catch {
    return null
  }
}

/**
 * @param {{ authenticate?: Function, token?: string }} [options]
 */
function createConnectionsRouter(options = {}) {
  if (options === null || typeof options !== 'object') {
    throw new ConnectionPoolError('INVALID_CONFIG', 'createConnectionsRouter(options): options must be an object')
  }
  const express = loadExpress()
  const guard = createAuthGuard(options, (req) => req.method === 'GET' && req.path === '/dashboard')
  const router = express.Router()

  router.use((_req, res, next) => {
    // Monitoring answers are live and may be private: never cached, never referred.
    res.set('Cache-Control', 'no-store').set('Referrer-Policy', 'no-referrer')
    next()
  })
  router.use(guard)

  router.get('/stats', answer(() => ({ database: databaseSection(), openai: openaiSection() })))
  router.get('/database/stats', answer(databaseSection))
  router.get('/database/health', health(() => DatabasePool.healthCheck()))
  router.post(
    '/database/reset-stats',
    answer(() => {
      DatabasePool.resetStats()
      return { message: 'Database statistics reset', stats: DatabasePool.getStats() }
    }),
  )
  router.get('/openai/stats', answer(openaiSection))
  router.get('/openai/health', health(() => OpenAIPool.healthCheck()))
  router.get('/openai/queue', answer(() => OpenAIPool.getQueueStatus()))
  router.get('/openai/limits', answer(openaiLimits))
  // Leak warnings in force (leakDetectionThreshold): what is held past it, since when, by whom.
  router.get('/leaks', answer(() => ({ database: DatabasePool.getLeaks(), openai: OpenAIPool.getLeaks() })))
  router.post(
    '/openai/reset-stats',
    answer(() => {
      OpenAIPool.resetStats()
      return { message: 'OpenAI statistics reset', stats: OpenAIPool.getStats() }
    }),
  )
  router.all(['/database/reset-stats', '/openai/reset-stats'], (_req, res) => {
    res.set('Allow', 'POST')
    fail(res, 405, 'Method not allowed: use POST')
  })

  router.get('/metrics', (_req, res) => {
    res.set('Content-Type', METRICS_CONTENT_TYPE).send(renderMetrics(nativeOrNull(database), nativeOrNull(openai)))
  })

  router.get('/dashboard', (_req, res) => {
    const page = dashboardPage()
    // Replaces any app-wide policy for this one response: the page needs its inline scripts.
    res.set('Content-Security-Policy', page.contentSecurityPolicy)
    res.set('Content-Type', 'text/html; charset=utf-8').send(page.html)
  })

  // Errors passed to next() by the backend's authenticate middleware or thrown by a handler.
  // An error that names its HTTP status was meant for the client and keeps its message (unless
  // http-errors marked it private); any other is a bug, whose message stays on the server.
  router.use((err, _req, res, _next) => {
    const status = err?.status ?? err?.statusCode
    if (Number.isInteger(status) && status >= 400 && status < 600 && err.expose !== false) {
      fail(res, status, String(err.message))
    } else {
      fail(res, Number.isInteger(status) && status >= 400 && status < 600 ? status : 500, 'Internal error')
    }
  })

  return router
}

module.exports = { createConnectionsRouter }
