// Observability: OpenTelemetry's metrics and spans through the real SDK's in-memory exporters,
// Node's TracingChannels, leak detection with the stack that took a transaction, timeouts that
// say how the pool was held, and connections retired past maxLifetime without a failed
// statement or a cut transaction. The first spec runs before any SDK is registered.
import diagnostics from 'node:diagnostics_channel'
import { context, metrics, propagation, trace, SpanKind } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { DatabasePool, OpenAIPool, createClient, openai, supabaseAdmin } from '..'
import { baseUrl, closedPort, eventually, observer, rejectionOf, signToken, taggedUrl, uniqueName } from './helpers'
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { nativePool } = require('../lib/database.js')
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { submissionsOf } = require('../lib/submissions.js')
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startSupabaseStandIn } = require('../scripts/supabase-stand-in.js')

const SECRET = 'value-never-recorded-7319'
let openaiServer: any

beforeAll(async () => {
  openaiServer = await startOpenAIStandIn()
})
afterAll(async () => {
  await DatabasePool.close()
  await OpenAIPool.close()
  await openaiServer.close()
})

/** A callback that waits inside until `release()`; `entered` resolves once it runs. */
function gated() {
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  let enter!: () => void
  const entered = new Promise<void>((resolve) => (enter = resolve))
  const inside = async () => {
    enter()
    await gate
  }
  return { inside, entered, release }
}

/** The events of `channel` as `[event, context]`, until `stop()`. */
function listen(name: string) {
  const seen: Array<[string, any]> = []
  const channel = diagnostics.tracingChannel(name)
  const handlers: any = {}
  for (const event of ['start', 'end', 'asyncStart', 'asyncEnd', 'error']) handlers[event] = (ctx: any) => seen.push([event, ctx])
  channel.subscribe(handlers)
  return { seen, stop: () => channel.unsubscribe(handlers) }
}

test('with no OpenTelemetry SDK and no channel subscriber, nothing is timed, kept or published', async () => {
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_otel_off')), maxConnections: 2 })
  const admin = DatabasePool.getAdminClient()
  for (let i = 0; i < 20; i++) await admin.query('select $1::int as n', [i])
  const native = nativePool()
  expect(submissionsOf(native).afterDrain).toBeNull()
  // The pool kept no timing: the only call that takes them finds none.
  native.setTelemetry(false)
  expect(native.takePoolTimings()).toEqual({ create: [], wait: [], immediate: 0, used: [], timeouts: 0, dropped: 0 })
})

test('a TracingChannel subscriber sees start, end, asyncStart, asyncEnd (and error) for each statement and request, in order', async () => {
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_channel')), maxConnections: 2, poolName: 'channel-pool' })
  OpenAIPool.initialize({ baseURL: openaiServer.url, apiKey: 'sk-channel' })
  const table = uniqueName('channel_t')
  const admin = DatabasePool.getAdminClient()
  await admin.query(`create table ${table} (id int, name text)`)
  const query = listen('connection-pools:query')
  const ai = listen('connection-pools:openai')
  try {
    await admin.query('select $1::text as v', [SECRET])
    await rejectionOf(admin.query(`select * from ${table}_missing`))
    await supabaseAdmin.from(table).select('*').eq('name', SECRET)
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: SECRET }] })
  } finally {
    query.stop()
    ai.stop()
  }
  const events = query.seen.map(([event, ctx]) => `${event}:${ctx.kind}:${ctx.operation}`)
  expect(events).toEqual([
    'start:statement:SELECT', 'end:statement:SELECT', 'asyncStart:statement:SELECT', 'asyncEnd:statement:SELECT',
    'start:statement:SELECT', 'end:statement:SELECT', 'error:statement:SELECT', 'asyncStart:statement:SELECT', 'asyncEnd:statement:SELECT',
    'start:request:SELECT', 'end:request:SELECT', 'asyncStart:request:SELECT', 'asyncEnd:request:SELECT',
  ])
  const [, failed] = query.seen.find(([event]) => event === 'error')!
  expect(failed.error.code).toBe('42P01')
  const [, request] = query.seen.find(([, ctx]) => ctx.kind === 'request')!
  expect(request).toMatchObject({ collection: table, poolName: 'channel-pool', result: { status: 200 } })
  expect(ai.seen.map(([event, ctx]) => `${event}:${ctx.operation}:${ctx.model}`)).toEqual([
    'start:chat:gpt-4o-mini', 'end:chat:gpt-4o-mini', 'asyncStart:chat:gpt-4o-mini', 'asyncEnd:chat:gpt-4o-mini',
  ])
  // The context objects carry no parameter value, filter value or prompt.
  for (const [, ctx] of [...query.seen, ...ai.seen]) {
    const { result, ...described } = ctx
    expect(JSON.stringify(described)).not.toContain(SECRET)
  }
  await admin.query(`drop table ${table}`)
})

test('POOL_TIMEOUT names the connections held by transactions and the callers waiting, and the stack of the oldest holder', async () => {
  DatabasePool.initialize({
    connectionString: taggedUrl(uniqueName('cp_timeout_msg')),
    maxConnections: 1,
    minConnections: 0,
    connectionTimeout: 300,
    leakDetectionThreshold: 60_000,
  })
  const admin = DatabasePool.getAdminClient()
  const { inside, entered, release } = gated()
  const held = admin.transaction(inside)
  await entered
  const failures = await Promise.all([1, 2, 3].map(() => rejectionOf(admin.query('select 1'))))
  release()
  await held
  // The first to give up saw all three waiting; each names the transaction holding the connection.
  expect(failures[0].message).toContain('1 of 1 connections open, 0 running 0 pipelined statements, 1 held by transactions; 3 callers waiting')
  for (const err of failures) {
    expect(err.code).toBe('POOL_TIMEOUT')
    expect(err.message).toMatch(/1 of 1 connections open, 0 running 0 pipelined statements, 1 held by transactions; [123] callers waiting/)
    expect(err.message).toMatch(/the oldest holder has had its connection for \d+ ms/)
    expect(err.message).toMatch(/the oldest open transaction \(\d+ ms\) was begun here:[\s\S]*telemetry\.spec\.ts/)
  }
})

test('QUEUE timeouts say how the queue stood; CONNECTION_FAILED names the cause', async () => {
  OpenAIPool.initialize({ baseURL: openaiServer.url, apiKey: 'sk-queue', maxConcurrentRequests: 1, timeout: 300, leakDetectionThreshold: 60_000 })
  const { inside, entered, release } = gated()
  const slot = OpenAIPool.executeRequest(inside)
  await entered
  const err = await rejectionOf(OpenAIPool.fetch(`${openaiServer.url}/models`))
  release()
  await slot
  expect(err.code).toBe('TIMEOUT')
  expect(err.message).toContain('waiting for a free slot: 1 of 1 requests in flight (maxConcurrent); 1 callers waiting')
  expect(err.message).toMatch(/the oldest slot still held \(\d+ ms\) was taken here:[\s\S]*telemetry\.spec\.ts/)

  const port = await closedPort()
  DatabasePool.initialize({ connectionString: `postgres://nobody:hunter2-secret@127.0.0.1:${port}/db`, connectionTimeout: 500, maxRetries: 0 })
  const refused = await rejectionOf(DatabasePool.getAdminClient().query('select 1'))
  expect(refused.code).toBe('CONNECTION_FAILED')
  expect(refused.message).toContain('(cause: unreachable)')
  expect(refused.message).not.toContain('hunter2')
})

test('leakDetectionThreshold: a transaction held past it emits one warning with the stack that began it, and its release a second event', async () => {
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_leak')), maxConnections: 2, leakDetectionThreshold: 100 })
  const admin = DatabasePool.getAdminClient()
  const leaks: any[] = []
  const warnings = jest.spyOn(process, 'emitWarning').mockImplementation(() => {})
  let leaked!: () => void
  const warned = new Promise<void>((resolve) => (leaked = resolve))
  const released = new Promise<any>((resolve) => DatabasePool.on('release', resolve))
  const onLeak = (leak: any) => {
    leaks.push(leak)
    leaked()
  }
  DatabasePool.on('leak', onLeak)
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  const held = admin.transaction(() => gate); const calledAt = new Error().stack!.split('\n')[1]
  await warned
  expect(DatabasePool.getLeaks()).toHaveLength(1)
  release()
  await held
  const ended = await released
  const line = /telemetry\.spec\.ts:(\d+)/.exec(calledAt)![1]
  expect(leaks).toHaveLength(1)
  expect(leaks[0]).toMatchObject({ pool: 'database', kind: 'transaction', thresholdMs: 100 })
  expect(leaks[0].ageMs).toBeGreaterThanOrEqual(100)
  expect(leaks[0].site).toContain(`telemetry.spec.ts:${line}`)
  expect(leaks[0].stack).toContain(`telemetry.spec.ts:${line}`)
  expect(ended).toMatchObject({ pool: 'database', kind: 'transaction', site: leaks[0].site })
  expect(ended.heldMs).toBeGreaterThanOrEqual(leaks[0].ageMs)
  const leakWarnings = warnings.mock.calls.filter(([, options]: any[]) => options?.code === 'CP_LEAK')
  warnings.mockRestore()
  expect(leakWarnings).toHaveLength(1)
  expect(leakWarnings[0][0]).toContain(`telemetry.spec.ts:${line}`)
  expect((leakWarnings[0][1] as any).detail).toContain(`telemetry.spec.ts:${line}`)
  expect(DatabasePool.getLeaks()).toHaveLength(0)
  DatabasePool.off('leak', onLeak)
})

test('leakDetectionThreshold on the OpenAI pool: a slot held by executeRequest and a stream left unread are reported, then released', async () => {
  OpenAIPool.initialize({ baseURL: openaiServer.url, apiKey: 'sk-leak', leakDetectionThreshold: 100 })
  const warnings = jest.spyOn(process, 'emitWarning').mockImplementation(() => {})
  const events: any[] = []
  const waitFor = (kind: string, event: string) => eventually(() => events.some((e) => e.kind === kind && e.event === event))
  const onLeak = (leak: any) => events.push({ event: 'leak', ...leak })
  const onRelease = (release: any) => events.push({ event: 'release', ...release })
  OpenAIPool.on('leak', onLeak).on('release', onRelease)
  try {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const slot = OpenAIPool.executeRequest(() => gate)
    await waitFor('slot', 'leak')
    release()
    await slot
    await waitFor('slot', 'release')
    const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a b c' }], stream: true })
    await waitFor('stream', 'leak')
    expect(OpenAIPool.getLeaks().map((l) => l.kind)).toEqual(['stream'])
    for await (const _chunk of stream) {
      // read to the end
    }
    await waitFor('stream', 'release')
  } finally {
    OpenAIPool.off('leak', onLeak).off('release', onRelease)
    warnings.mockRestore()
  }
  const slotLeak = events.find((e) => e.kind === 'slot' && e.event === 'leak')
  expect(slotLeak.site).toContain('telemetry.spec.ts')
  expect(events.filter((e) => e.event === 'leak').map((e) => e.kind)).toEqual(['slot', 'stream'])
  expect(OpenAIPool.getLeaks()).toEqual([])
})

test('maxLifetime: connections are replaced (new backend pids), no statement fails, no transaction is cut', async () => {
  const app = uniqueName('cp_lifetime')
  DatabasePool.initialize({ connectionString: taggedUrl(app), maxConnections: 2, minConnections: 2, maxLifetime: 2000 })
  const admin = DatabasePool.getAdminClient()
  const pidOf = async (client: { query: (sql: string) => Promise<{ rows: any[] }> }) => (await client.query('select pg_backend_pid() as pid')).rows[0].pid
  const first = new Set([await pidOf(admin), await pidOf(admin)])
  const seen = new Set<number>()
  let failures = 0
  let txPids: number[] = []
  await admin.transaction(async (tx) => {
    txPids.push(await pidOf(tx))
    // Statements keep running while this transaction holds its connection past the lifetime.
    await eventually(async () => {
      const results = await Promise.allSettled([pidOf(admin), pidOf(admin), pidOf(admin)])
      for (const result of results) result.status === 'fulfilled' ? seen.add(result.value) : failures++
      return [...seen].some((pid) => !first.has(pid) && pid !== txPids[0])
    }, 20_000)
    txPids.push(await pidOf(tx))
  })
  expect(txPids[0]).toBe(txPids[1])
  // Once given back, the transaction's connection retires too, and minConnections refills.
  const watcher = await observer()
  await eventually(async () => {
    const results = await Promise.allSettled([pidOf(admin), pidOf(admin)])
    for (const result of results) if (result.status === 'rejected') failures++
    const { rows } = await watcher.query('select pid from pg_stat_activity where application_name = $1', [app])
    const open = rows.map((r: any) => r.pid)
    return open.length === 2 && open.every((pid: number) => !first.has(pid))
  }, 20_000)
  await watcher.end()
  expect(failures).toBe(0)
})

describe('with the OpenTelemetry SDK registered', () => {
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const meterProvider = new MeterProvider({
    readers: [new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 })],
  })
  const spanExporter = new InMemorySpanExporter()
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] })

  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    propagation.setGlobalPropagator(new W3CTraceContextPropagator())
    metrics.setGlobalMeterProvider(meterProvider)
    trace.setGlobalTracerProvider(tracerProvider)
  })
  afterAll(async () => {
    metrics.disable()
    trace.disable()
    propagation.disable()
    context.disable()
    await meterProvider.shutdown()
    await tracerProvider.shutdown()
  })

  /** The data points of `name` after a collection, with the instrument's unit. */
  async function collected(name: string) {
    metricExporter.reset()
    await meterProvider.forceFlush()
    const all = metricExporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
    const metric = all.find((m) => m.descriptor.name === name)
    return { unit: metric?.descriptor.unit, points: (metric?.dataPoints ?? []) as any[] }
  }

  test('metrics: each pool and GenAI instrument has the expected count, attributes and unit after a known workload', async () => {
    const table = uniqueName('otel_metrics_t')
    DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_otel_metrics')), maxConnections: 2, minConnections: 0, poolName: 'metrics-pool' })
    OpenAIPool.initialize({ baseURL: openaiServer.url, apiKey: 'sk-metrics' })
    const admin = DatabasePool.getAdminClient()
    await admin.query(`create table ${table} (id int, name text)`)
    for (let i = 0; i < 5; i++) await admin.query('select $1::int as n', [i])
    await rejectionOf(admin.query(`select * from ${table}_missing`))
    await supabaseAdmin.from(table).select('*')
    await supabaseAdmin.from(table).insert({ id: 1, name: 'a' })
    await admin.transaction(async (tx) => {
      await tx.query('select 1')
    })
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })

    const url = new URL(baseUrl())
    const base = { 'db.system.name': 'postgresql', 'db.namespace': url.pathname.slice(1), 'server.address': url.hostname, 'server.port': Number(url.port || 5432) }
    const duration = await collected('db.client.operation.duration')
    expect(duration.unit).toBe('s')
    const selects = duration.points.filter((p) => p.attributes['db.operation.name'] === 'SELECT' && !p.attributes['db.collection.name'] && !p.attributes['error.type'])
    expect(selects).toHaveLength(1)
    expect(selects[0].attributes).toEqual({ ...base, 'db.operation.name': 'SELECT' })
    // 5 selects, and the transaction's statement.
    expect(selects[0].value.count).toBe(6)
    const failed = duration.points.find((p) => p.attributes['error.type'] === '42P01')
    expect(failed.value.count).toBe(1)
    expect(failed.attributes['db.response.status_code']).toBe('42P01')
    expect(duration.points.find((p) => p.attributes['db.collection.name'] === table && p.attributes['db.operation.name'] === 'SELECT').value.count).toBe(1)
    expect(duration.points.find((p) => p.attributes['db.collection.name'] === table && p.attributes['db.operation.name'] === 'INSERT').value.count).toBe(1)
    expect(duration.points.find((p) => p.attributes['db.operation.name'] === 'TRANSACTION').value.count).toBe(1)

    const pool = { 'db.client.connection.pool.name': 'metrics-pool' }
    const count = await collected('db.client.connection.count')
    expect(count.unit).toBe('{connection}')
    const idle = count.points.find((p) => p.attributes['db.client.connection.state'] === 'idle')
    const used = count.points.find((p) => p.attributes['db.client.connection.state'] === 'used')
    expect(idle.attributes).toEqual({ ...pool, 'db.client.connection.state': 'idle' })
    const total = DatabasePool.getStats().totalConnections
    expect(idle.value + used.value).toBe(total)
    for (const [name, value] of [['db.client.connection.max', 2], ['db.client.connection.idle.max', 2], ['db.client.connection.idle.min', 0], ['db.client.connection.pending_requests', 0]] as const) {
      const gauge = await collected(name)
      expect(gauge.points.map((p) => [p.attributes, p.value])).toEqual([[pool, value]])
    }
    const create = await collected('db.client.connection.create_time')
    expect(create.unit).toBe('s')
    expect(create.points[0].attributes).toEqual(pool)
    expect(create.points[0].value.count).toBe(total)
    const wait = await collected('db.client.connection.wait_time')
    const use = await collected('db.client.connection.use_time')
    // Every place taken on a connection was waited for once and given back once: the statements
    // above (5 + 1 + 1 + 1 for the table, builder requests and a transaction at least).
    expect(wait.points[0].value.count).toBeGreaterThanOrEqual(10)
    expect(use.points[0].value.count).toBe(wait.points[0].value.count)

    const genaiDuration = await collected('gen_ai.client.operation.duration')
    expect(genaiDuration.unit).toBe('s')
    const genaiBase = { 'gen_ai.provider.name': 'openai', 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.response.model': 'gpt-4o-mini', 'server.address': '127.0.0.1', 'server.port': Number(new URL(openaiServer.url).port) }
    expect(genaiDuration.points.map((p) => [p.attributes, p.value.count])).toEqual([[genaiBase, 1]])
    const tokens = await collected('gen_ai.client.token.usage')
    expect(tokens.unit).toBe('{token}')
    const byType = Object.fromEntries(tokens.points.map((p) => [p.attributes['gen_ai.token.type'], [p.attributes, p.value.sum]]))
    expect(byType).toEqual({ input: [{ ...genaiBase, 'gen_ai.token.type': 'input' }, 5], output: [{ ...genaiBase, 'gen_ai.token.type': 'output' }, 7] })
    await admin.query(`drop table ${table}`)
  })

  test('metrics: a timed-out acquire increments db.client.connection.timeouts', async () => {
    DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_otel_timeouts')), maxConnections: 1, minConnections: 0, connectionTimeout: 200, poolName: 'timeouts-pool' })
    const admin = DatabasePool.getAdminClient()
    const { inside, entered, release } = gated()
    const held = admin.transaction(inside)
    await entered
    expect((await rejectionOf(admin.query('select 1'))).code).toBe('POOL_TIMEOUT')
    release()
    await held
    const timeouts = await collected('db.client.connection.timeouts')
    expect(timeouts.unit).toBe('{timeout}')
    expect(timeouts.points.map((p) => [p.attributes, p.value])).toEqual([[{ 'db.client.connection.pool.name': 'timeouts-pool' }, 1]])
  })

  test('spans: a statement, a builder request, a transaction (its statements its children) and a queued OpenAI request, each one CLIENT span under the caller\'s', async () => {
    const table = uniqueName('otel_spans_t')
    DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_otel_spans')), maxConnections: 2, poolName: 'spans-pool' })
    OpenAIPool.initialize({ baseURL: openaiServer.url, apiKey: 'sk-spans', maxConcurrentRequests: 1 })
    const admin = DatabasePool.getAdminClient()
    await admin.query(`create table ${table} (id int, name text)`)
    spanExporter.reset()
    const tracer = trace.getTracer('spec')
    // Another caller holds the only OpenAI slot, so the parent's request queues behind it.
    const { inside, entered, release } = gated()
    const other = OpenAIPool.executeRequest(inside)
    await entered
    const parentId = await tracer.startActiveSpan('parent', async (parent) => {
      await admin.query('select $1::text as v', [SECRET])
      await supabaseAdmin.from(table).select('*').eq('name', SECRET)
      await admin.transaction(async (tx) => {
        await tx.query('select $1::text as inside', [SECRET])
        await tx.from(table).insert({ id: 1, name: SECRET })
      })
      const queued = openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: SECRET }] })
      await eventually(() => OpenAIPool.getQueueStatus().queueLength === 1)
      release()
      await queued
      parent.end()
      return parent.spanContext().spanId
    })
    await other
    const spans = spanExporter.getFinishedSpans()
    const parentOf = (span: any) => span.parentSpanContext?.spanId ?? span.parentSpanId
    const children = spans.filter((s) => parentOf(s) === parentId)
    expect(children.map((s) => s.name)).toEqual(['SELECT ' + children[0].attributes['db.namespace'], `SELECT ${table}`, 'TRANSACTION ' + children[0].attributes['db.namespace'], 'chat gpt-4o-mini'])
    for (const span of children) expect(span.kind).toBe(SpanKind.CLIENT)
    const [statement, request, transaction, chat] = children
    expect(statement.attributes).toMatchObject({ 'db.system.name': 'postgresql', 'db.operation.name': 'SELECT', 'db.query.text': 'select $1::text as v', 'db.client.connection.pool.name': 'spans-pool', 'db.response.returned_rows': 1 })
    // The pool's own measure of its wait for a place on a connection (0 when had at once).
    expect(statement.attributes['connection_pools.connection.wait_time']).toBeGreaterThanOrEqual(0)
    expect(request.attributes).toMatchObject({ 'db.system.name': 'postgresql', 'db.operation.name': 'SELECT', 'db.collection.name': table, 'db.query.summary': `SELECT ${table}` })
    const inTransaction = spans.filter((s) => parentOf(s) === transaction.spanContext().spanId)
    expect(inTransaction.map((s) => s.name)).toEqual([`SELECT ${transaction.attributes['db.namespace']}`, `INSERT ${table}`])
    expect(chat.attributes).toMatchObject({
      'gen_ai.provider.name': 'openai',
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.response.model': 'gpt-4o-mini',
      'gen_ai.usage.input_tokens': 5,
      'gen_ai.usage.output_tokens': 7,
    })
    // It waited behind the other caller's slot, and its span says for how long.
    expect(chat.attributes['connection_pools.queue.wait_time']).toBeGreaterThan(0)
    for (const span of spans) expect(JSON.stringify(span.attributes)).not.toContain(SECRET)
    await admin.query(`drop table ${table}`)
  })

  test('a statement that waited for a connection says how long on its span', async () => {
    DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_otel_wait')), maxConnections: 1, minConnections: 0, poolName: 'wait-pool' })
    const admin = DatabasePool.getAdminClient()
    await admin.query('select 1')
    const { inside, entered, release } = gated()
    const held = admin.transaction(inside)
    await entered
    spanExporter.reset()
    const waiting = admin.query('select $1::int as n', [7])
    await eventually(() => DatabasePool.getStats().waitingRequests === 1)
    // It was waiting from at least here until the transaction gave the connection back.
    const seenWaiting = performance.now()
    await Promise.resolve()
    // The connection comes back only after the COMMIT that follows this.
    const releasedAfter = (performance.now() - seenWaiting) / 1000
    release()
    await held
    expect((await waiting).rows).toEqual([{ n: 7 }])
    const [span] = spanExporter.getFinishedSpans().filter((s) => s.attributes['db.query.text'] === 'select $1::int as n')
    const waited = span.attributes['connection_pools.connection.wait_time'] as number
    expect(waited).toBeGreaterThan(0)
    expect(waited).toBeGreaterThanOrEqual(releasedAfter)
  })

  test('Supabase services: an Auth request is one CLIENT span, one http.client.request.duration point, and the channel\'s events', async () => {
    const secret = 'telemetry-spec-jwt-secret-with-32-characters!'
    const serviceKey = signToken({ role: 'service_role', iss: 'supabase' }, secret)
    const anonKey = signToken({ role: 'anon', iss: 'supabase' }, secret)
    const stand = await startSupabaseStandIn({ jwtSecret: secret, serviceKey, anonKey })
    const channel = listen('connection-pools:http')
    try {
      DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_otel_http')) })
      const client = createClient(stand.url, serviceKey)
      spanExporter.reset()
      const user = '11111111-1111-1111-1111-111111111111'
      const token = signToken({ sub: user, role: 'authenticated', aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 3600 }, secret)
      const { data, error } = await client.auth.getUser(token)
      expect(error).toBeNull()
      expect(data.user?.id).toBe(user)
      const spans = spanExporter.getFinishedSpans().filter((span) => span.attributes['connection_pools.service'] === 'auth')
      expect(spans.map((span) => [span.name, span.kind])).toEqual([['GET', SpanKind.CLIENT]])
      expect(spans[0].attributes).toMatchObject({ 'http.request.method': 'GET', 'http.response.status_code': 200, 'url.path': '/auth/v1/user' })
      expect(JSON.stringify(spans[0].attributes)).not.toContain(token)
      // The service saw the span as its parent (W3C traceparent, the registered propagator).
      const { traceId, spanId } = spans[0].spanContext()
      expect(stand.seen('auth').at(-1).headers.traceparent).toBe(`00-${traceId}-${spanId}-01`)
      const duration = await collected('http.client.request.duration')
      expect(duration.unit).toBe('s')
      const auth = duration.points.filter((p) => p.attributes['connection_pools.service'] === 'auth')
      expect(auth.map((p) => [p.attributes['http.response.status_code'], p.value.count])).toEqual([[200, 1]])
      expect(channel.seen.map(([event, ctx]) => `${event}:${ctx.service}`)).toEqual(['start:auth', 'end:auth', 'asyncStart:auth', 'asyncEnd:auth'])
    } finally {
      channel.stop()
      await stand.close()
    }
  })

  test('a streamed OpenAI request: its span ends with the stream, with the usage of its last event', async () => {
    OpenAIPool.initialize({ baseURL: openaiServer.url, apiKey: 'sk-stream-span' })
    spanExporter.reset()
    const streamSpans = () => spanExporter.getFinishedSpans().filter((s) => s.name === 'chat gpt-4o-mini')
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: `one two ${SECRET}` }],
      stream: true,
      stream_options: { include_usage: true },
    })
    // Its headers are in, its body is not read yet: the request is still going on.
    expect(streamSpans()).toHaveLength(0)
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    expect(text).toContain('one two')
    await eventually(() => streamSpans().length === 1)
    expect(streamSpans()[0].attributes).toMatchObject({
      'gen_ai.response.model': 'gpt-4o-mini',
      'gen_ai.usage.input_tokens': 5,
      'gen_ai.usage.output_tokens': 7,
    })
    expect(JSON.stringify(streamSpans()[0].attributes)).not.toContain(SECRET)
  })
})
