// The monitoring router mounted the way the seed's server.ts mounts connectionsRoutes, over real
// HTTP: auth on every route, the seed's shapes, resets, /metrics parsed by Prometheus's own
// parser and checked against getStats(), and no secret in any response.
import express from 'express'
import type { Server } from 'node:http'
import { createConnectionsRouter, DatabasePool, OpenAIPool, supabaseAdmin, openai, ConnectionPoolError } from '..'
import { closedPort, databasePassword, eventually, rejectionOf, taggedUrl, uniqueName } from './helpers'
import { openMetricsParserAvailable, parseOpenMetrics, sampleValue } from './openmetrics'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')

const TOKEN = 'monitoring-token-Xq81-never-echoed'
const API_KEY = 'sk-test-RouterKey-5150'
const ROUTES: Array<[string, string]> = [
  ['GET', '/stats'],
  ['GET', '/database/stats'],
  ['GET', '/database/health'],
  ['POST', '/database/reset-stats'],
  ['GET', '/openai/stats'],
  ['GET', '/openai/health'],
  ['GET', '/openai/queue'],
  ['GET', '/openai/limits'],
  ['POST', '/openai/reset-stats'],
  ['GET', '/metrics'],
  ['GET', '/dashboard'],
]

let stand: any
let server: Server
let base: string
const bodies: string[] = []

async function listen(app: express.Express): Promise<{ server: Server; base: string }> {
  const s = await new Promise<Server>((resolve) => {
    const srv = app.listen(0, '127.0.0.1', () => resolve(srv))
  })
  const address = s.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { server: s, base: `http://127.0.0.1:${address.port}/api/connections` }
}

async function call(method: string, path: string, headers: Record<string, string> = {}, root = base) {
  const res = await fetch(root + path, { method, headers })
  const text = await res.text()
  bodies.push(text, JSON.stringify([...res.headers]))
  return { status: res.status, text, headers: res.headers, json: () => JSON.parse(text) }
}

const auth = { Authorization: `Bearer ${TOKEN}` }

beforeAll(async () => {
  stand = await startOpenAIStandIn()
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_router')), maxConnections: 4 })
  OpenAIPool.initialize({ baseURL: stand.url, apiKey: API_KEY, retryDelay: 5 })
  const app = express()
  app.use('/api/connections', createConnectionsRouter({ token: TOKEN }))
  ;({ server, base } = await listen(app))
})

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve))
  await DatabasePool.close()
  await OpenAIPool.close()
  await stand.close()
})

afterAll(() => {
  // Every body and header set any spec in this file received: none carries a secret.
  const everything = bodies.join('\n')
  const secrets = [API_KEY, TOKEN, databasePassword()].filter((s): s is string => !!s)
  for (const secret of secrets) expect(everything).not.toContain(secret)
  expect(everything).not.toMatch(/postgres(ql)?:\/\//)
})

test('every route answers 401 without credentials or with a wrong token', async () => {
  for (const [method, path] of ROUTES) {
    const attempts: Array<Record<string, string>> = [{}, { Authorization: 'Bearer not-the-token' }, { Authorization: `Basic ${TOKEN}` }]
    for (const headers of attempts) {
      const res = await call(method, path, headers)
      expect([method, path, res.status]).toEqual([method, path, 401])
      expect(res.json()).toEqual({ success: false, error: { message: expect.any(String) } })
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/)
    }
  }
  // ?token= is accepted by the dashboard page only, not by the API.
  expect((await call('GET', `/stats?token=${TOKEN}`)).status).toBe(401)
  expect((await call('GET', `/dashboard?token=${TOKEN}`)).status).toBe(200)
})

test('every route answers 200 with the token, in the seed envelope', async () => {
  for (const [method, path] of ROUTES) {
    const res = await call(method, path, auth)
    expect([method, path, res.status]).toEqual([method, path, 200])
    expect(res.headers.get('cache-control')).toBe('no-store')
    if (path === '/metrics' || path === '/dashboard') continue
    expect(res.json()).toMatchObject({ success: true, data: expect.any(Object) })
  }
})

test('GET /stats has the seed sample shape, with the configs trimmed to their seed fields', async () => {
  await supabaseAdmin.query('select 1')
  await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  const { data } = (await call('GET', '/stats', auth)).json()

  expect(Object.keys(data).sort()).toEqual(['database', 'openai'])
  expect(data.database.stats).toMatchObject({
    totalConnections: expect.any(Number),
    activeConnections: expect.any(Number),
    idleConnections: expect.any(Number),
    totalQueries: expect.any(Number),
    successfulQueries: expect.any(Number),
    failedQueries: expect.any(Number),
    averageResponseTime: expect.any(Number),
    lastQueryTime: expect.any(Number),
  })
  expect(data.database.config).toEqual({
    maxConnections: 4,
    minConnections: expect.any(Number),
    connectionTimeout: expect.any(Number),
    idleTimeout: expect.any(Number),
    maxRetries: expect.any(Number),
    retryDelay: expect.any(Number),
  })
  expect(data.openai.stats).toMatchObject({
    totalRequests: expect.any(Number),
    activeRequests: 0,
    successfulRequests: expect.any(Number),
    failedRequests: expect.any(Number),
    rateLimitedRequests: expect.any(Number),
    averageResponseTime: expect.any(Number),
    averageTokensUsed: expect.any(Number),
    lastRequestTime: expect.any(Number),
    requestsByModel: expect.objectContaining({ 'gpt-4o-mini': expect.any(Number) }),
  })
  expect(Object.keys(data.openai.config).sort()).toEqual(
    ['maxConcurrentRequests', 'maxQueueSize', 'maxRetries', 'requestTimeout', 'retryDelay', 'timeout'].sort(),
  )
  expect(data.openai.queue).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 10 })

  const dbOnly = (await call('GET', '/database/stats', auth)).json().data
  expect(Object.keys(dbOnly).sort()).toEqual(['config', 'stats'])
  const aiOnly = (await call('GET', '/openai/stats', auth)).json().data
  expect(Object.keys(aiOnly).sort()).toEqual(['config', 'queue', 'stats'])
  expect((await call('GET', '/openai/limits', auth)).json()).toEqual({
    success: true,
    data: {
      requestsPerMinute: null,
      tokensPerMinute: null,
      rateLimitWindowMs: 60000,
      pausedForMs: 0,
      byPriority: { high: 0, normal: 0, low: 0 },
      shared: false,
      limitKey: null,
      leaseMs: null,
      sharedLimitFallbacks: 0,
    },
  })
  expect((await call('GET', '/openai/queue', auth)).json()).toEqual({
    success: true,
    data: { queueLength: 0, activeRequests: 0, maxConcurrent: 10, byPriority: { high: 0, normal: 0, low: 0 }, pausedForMs: 0 },
  })
})

test('health routes answer the seed shape, and 503 when the pool is down', async () => {
  const db = (await call('GET', '/database/health', auth)).json()
  expect(db).toMatchObject({ success: true, data: { healthy: true, message: expect.stringMatching(/response time/), stats: expect.any(Object) } })
  const ai = (await call('GET', '/openai/health', auth)).json()
  expect(ai).toMatchObject({ success: true, data: { healthy: true } })

  DatabasePool.initialize({ connectionString: `postgres://nobody:${'hunter2-Db-Pass'}@127.0.0.1:${await closedPort()}/x`, connectionTimeout: 2000 })
  try {
    const down = await call('GET', '/database/health', auth)
    expect(down.status).toBe(503)
    expect(down.json()).toMatchObject({ success: false, error: { message: expect.any(String) }, data: { healthy: false } })
    expect(down.text).not.toContain('hunter2-Db-Pass')
  } finally {
    DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_router')), maxConnections: 4 })
  }
})

test('resets take effect and accept POST only', async () => {
  await supabaseAdmin.query('select 1')
  await openai.models.list()
  expect(DatabasePool.getStats().totalQueries).toBeGreaterThan(0)
  expect(OpenAIPool.getStats().totalRequests).toBeGreaterThan(0)

  for (const path of ['/database/reset-stats', '/openai/reset-stats']) {
    const wrongMethod = await call('GET', path, auth)
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get('allow')).toBe('POST')
    expect(wrongMethod.json()).toEqual({ success: false, error: { message: expect.any(String) } })
  }
  expect(DatabasePool.getStats().totalQueries).toBeGreaterThan(0)

  const db = (await call('POST', '/database/reset-stats', auth)).json()
  expect(db).toMatchObject({ success: true, data: { stats: { totalQueries: 0, failedQueries: 0 } } })
  expect(DatabasePool.getStats().totalQueries).toBe(0)
  const ai = (await call('POST', '/openai/reset-stats', auth)).json()
  expect(ai).toMatchObject({ success: true, data: { stats: { totalRequests: 0, requestsByModel: {} } } })
  expect(OpenAIPool.getStats().totalRequests).toBe(0)
})

const withParser = openMetricsParserAvailable() || process.env.CI ? test : test.skip
if (!openMetricsParserAvailable()) {
  console.warn('python3 with prometheus_client is missing: the /metrics parser specs are skipped (pip install prometheus_client)')
}

withParser('/metrics parses with the Prometheus parser and agrees with getStats()', async () => {
  DatabasePool.resetStats()
  OpenAIPool.resetStats()
  for (let i = 0; i < 5; i++) await supabaseAdmin.query('select $1::int as n', [i])
  await rejectionOf(supabaseAdmin.query('select * from no_such_table_for_metrics'))
  await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a' }] })
  await openai.embeddings.create({ model: 'text-embedding-3-small', input: 'b' })
  stand.enqueue({ status: 429, headers: { 'retry-after-ms': '1' }, body: { error: { message: 'slow down', type: 'rate_limit' } } })
  await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'c' }] })
  // The pool opens its minConnections (4 here) in the background; the scrape and getStats() must
  // read the same gauges, so wait until they have stopped moving.
  await eventually(() => DatabasePool.getStats().totalConnections === 4)

  const res = await call('GET', '/metrics', auth)
  expect(res.headers.get('content-type')).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8')
  const families = parseOpenMetrics(res.text)
  const db = DatabasePool.getStats()
  const ai = OpenAIPool.getStats()
  const queue = OpenAIPool.getQueueStatus()
  const v = (name: string, labels?: Record<string, string>) => sampleValue(families, name, labels)

  expect(db.totalQueries).toBe(6)
  expect(v('connection_pools_db_queries_total')).toBe(db.totalQueries)
  expect(v('connection_pools_db_query_failures_total')).toBe(db.failedQueries)
  expect(v('connection_pools_db_acquire_timeouts_total')).toBe(db.acquireTimeouts)
  expect(v('connection_pools_db_connections', { state: 'active' })).toBe(db.activeConnections)
  expect(v('connection_pools_db_connections', { state: 'idle' })).toBe(db.idleConnections)
  expect(v('connection_pools_db_connections_max')).toBe(4)
  expect(v('connection_pools_db_waiting_requests')).toBe(db.waitingRequests)
  expect(v('connection_pools_db_query_duration_seconds_count')).toBe(db.totalQueries)
  expect(v('connection_pools_db_query_duration_seconds_bucket', { le: '+Inf' })).toBe(db.totalQueries)
  const dbSum = v('connection_pools_db_query_duration_seconds_sum')!
  expect(dbSum * 1000).toBeCloseTo(db.averageResponseTime * db.totalQueries, 0)

  expect(ai.totalRequests).toBe(3)
  expect(v('connection_pools_openai_requests_total')).toBe(ai.totalRequests)
  expect(v('connection_pools_openai_request_failures_total')).toBe(ai.failedRequests)
  expect(v('connection_pools_openai_rate_limited_responses_total')).toBe(ai.rateLimitedRequests)
  expect(ai.rateLimitedRequests).toBe(1)
  expect(v('connection_pools_openai_retries_total')).toBe(ai.retries)
  expect(v('connection_pools_openai_tokens_total')).toBe(ai.totalTokensUsed)
  expect(ai.totalTokensUsed).toBeGreaterThan(0)
  for (const [model, count] of Object.entries(ai.requestsByModel)) {
    expect(v('connection_pools_openai_model_requests_total', { model })).toBe(count)
  }
  expect(v('connection_pools_openai_queue_length')).toBe(queue.queueLength)
  expect(v('connection_pools_openai_requests_in_flight')).toBe(queue.activeRequests)
  expect(v('connection_pools_openai_max_concurrent_requests')).toBe(queue.maxConcurrent)
  expect(v('connection_pools_openai_ratelimit_remaining_requests')).toBe(ai.rateLimit.remainingRequests)
  expect(v('connection_pools_openai_request_duration_seconds_count')).toBe(ai.totalRequests)

  const types = Object.fromEntries(families.map((f) => [f.name, f.type]))
  expect(types).toMatchObject({
    connection_pools_db_queries: 'counter',
    connection_pools_db_connections: 'gauge',
    connection_pools_db_query_duration_seconds: 'histogram',
    connection_pools_openai_request_duration_seconds: 'histogram',
    connection_pools_openai_tokens: 'counter',
  })
})

withParser('/metrics stays valid when a model name is hostile text', async () => {
  const model = 'evil"} 1\nconnection_pools_fake_total 9\\'
  await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] })
  const families = parseOpenMetrics((await call('GET', '/metrics', auth)).text)
  expect(families.find((f) => f.name.startsWith('connection_pools_fake'))).toBeUndefined()
  expect(sampleValue(families, 'connection_pools_openai_model_requests_total', { model })).toBe(1)
})

describe('auth configuration', () => {
  const saved = process.env.CONNECTIONS_API_TOKEN
  afterEach(() => {
    if (saved === undefined) delete process.env.CONNECTIONS_API_TOKEN
    else process.env.CONNECTIONS_API_TOKEN = saved
  })

  test('with neither authenticate nor a token, creating the router throws INVALID_CONFIG', () => {
    delete process.env.CONNECTIONS_API_TOKEN
    for (const options of [undefined, {}, { token: '' }]) {
      let err: any
      try {
        createConnectionsRouter(options)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(ConnectionPoolError)
      expect(err.code).toBe('INVALID_CONFIG')
    }
  })

  test('CONNECTIONS_API_TOKEN is the default token', async () => {
    process.env.CONNECTIONS_API_TOKEN = 'env-token-Zz9-also-secret'
    const app = express()
    app.use('/api/connections', createConnectionsRouter())
    const { server: s, base: root } = await listen(app)
    try {
      expect((await call('GET', '/openai/queue', {}, root)).status).toBe(401)
      expect((await call('GET', '/openai/queue', { Authorization: 'Bearer env-token-Zz9-also-secret' }, root)).status).toBe(200)
    } finally {
      await new Promise((resolve) => s.close(resolve))
    }
  })

  test("authenticate, the backend's own middleware, decides instead of a token", async () => {
    const app = express()
    const authenticate = (req: any, res: any, next: (err?: unknown) => void) => {
      if (req.headers['x-user'] === 'admin') return next()
      if (req.headers['x-user'] === 'broken') return next(Object.assign(new Error('session store down'), { status: 503 }))
      if (req.headers['x-user'] === 'buggy') return next(new Error('internal detail: password=hunter2'))
      res.status(403).json({ success: false, error: { message: 'Forbidden' } })
    }
    app.use('/api/connections', createConnectionsRouter({ authenticate, token: TOKEN }))
    const { server: s, base: root } = await listen(app)
    try {
      expect((await call('GET', '/openai/queue', { 'x-user': 'guest' }, root)).status).toBe(403)
      expect((await call('GET', '/openai/queue', { 'x-user': 'admin' }, root)).status).toBe(200)
      const broken = await call('GET', '/openai/queue', { 'x-user': 'broken' }, root)
      expect(broken.status).toBe(503)
      expect(broken.json()).toEqual({ success: false, error: { message: 'session store down' } })
      // An error without a status is a bug: 500, and its message stays on the server.
      const buggy = await call('GET', '/openai/queue', { 'x-user': 'buggy' }, root)
      expect(buggy.status).toBe(500)
      expect(buggy.json()).toEqual({ success: false, error: { message: 'Internal error' } })
    } finally {
      await new Promise((resolve) => s.close(resolve))
    }
  })
})

test('the router works the same under Express 4 (the oldest the peer range allows)', async () => {
  // A fresh copy of the package whose require('express') finds Express 4, as in a backend that
  // has Express 4 installed: the router itself is then built by Express 4.
  let pkg: any
  jest.isolateModules(() => {
    jest.doMock('express', () => jest.requireActual('express4'))
    pkg = require('..')
  })
  const express4 = jest.requireActual('express4')
  expect(express4.Router).not.toBe(express.Router)
  pkg.OpenAIPool.initialize({ baseURL: stand.url, apiKey: API_KEY })
  pkg.DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_router4')) })
  const router = pkg.createConnectionsRouter({ token: TOKEN })
  // Express 4 routers are functions whose prototype is express.Router itself.
  expect(Object.getPrototypeOf(router)).toBe(express4.Router)
  const app = express4()
  app.use('/api/connections', router)
  const { server: s, base: root } = await listen(app)
  try {
    expect((await call('GET', '/stats', {}, root)).status).toBe(401)
    const stats = await call('GET', '/stats', auth, root)
    expect(stats.status).toBe(200)
    expect(stats.json().data.openai.queue).toMatchObject({ queueLength: 0, activeRequests: 0, maxConcurrent: 10 })
    expect((await call('GET', '/openai/reset-stats', auth, root)).status).toBe(405)
    expect((await call('POST', '/openai/reset-stats', auth, root)).json().success).toBe(true)
    expect((await call('GET', '/metrics', auth, root)).text).toMatch(/# EOF\n$/)
    expect((await call('GET', `/dashboard?token=${TOKEN}`, {}, root)).status).toBe(200)
  } finally {
    await new Promise((resolve) => s.close(resolve))
    await pkg.DatabasePool.close()
    await pkg.OpenAIPool.close()
  }
})
