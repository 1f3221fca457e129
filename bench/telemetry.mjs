// Client CPU per single-row statement with and without observers: no OpenTelemetry SDK (the
// default: nothing registered, nothing subscribed), the SDK's metrics only, metrics and spans
// (BatchSpanProcessor, spans dropped by the exporter: what an exporter does with them is not
// ours), and a diagnostics_channel subscriber alone. The modes rotate within each round, in one
// process (the SDK is registered and disabled between cells); medians of the rounds. Run by
// bench/run.mjs in a process of its own (DATABASE_URL set; the table bench_users exists).
import { createRequire } from 'node:module'
import { measure } from './measure.mjs'
import diagnostics from 'node:diagnostics_channel'

const require = createRequire(import.meta.url)
const { DatabasePool } = require('..')
const { context, metrics, trace } = require('@opentelemetry/api')
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks')
const { MeterProvider, PeriodicExportingMetricReader, InMemoryMetricExporter, AggregationTemporality } = require('@opentelemetry/sdk-metrics')
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const CELL_MS = Number(process.env.BENCH_MS ?? 1500)
const POOL = Number(process.env.BENCH_POOL ?? 10)
const ONE = 'select id, email, name, score, active, created_at from bench_users where id = $1'
const id = (i) => (i % 10_000) + 1

/** Spans are made, ended and batched; the exporter drops them. */
const droppingExporter = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} }

function register(mode) {
  metrics.disable()
  trace.disable()
  context.disable()
  const teardown = []
  if (mode === 'metrics' || mode === 'metrics + spans') {
    const reader = new PeriodicExportingMetricReader({
      exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
      exportIntervalMillis: 60_000,
    })
    const provider = new MeterProvider({ readers: [reader] })
    metrics.setGlobalMeterProvider(provider)
    teardown.push(() => provider.shutdown())
  }
  if (mode === 'metrics + spans') {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(droppingExporter)] })
    trace.setGlobalTracerProvider(provider)
    teardown.push(() => provider.shutdown())
  }
  if (mode === 'channel subscriber') {
    const channel = diagnostics.tracingChannel('connection-pools:query')
    const handlers = { start() {}, end() {}, asyncStart() {}, asyncEnd() {}, error() {} }
    channel.subscribe(handlers)
    teardown.push(() => channel.unsubscribe(handlers))
  }
  return () => Promise.all(teardown.map((t) => t()))
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

DatabasePool.initialize({ connectionString: process.env.DATABASE_URL, maxConnections: POOL, minConnections: POOL })
const client = DatabasePool.getAdminClient()
const modes = ['no SDK', 'metrics', 'metrics + spans', 'channel subscriber']
const results = {}
for (let round = 0; round < ROUNDS; round++) {
  for (const callers of [1, 10]) {
    for (let k = 0; k < modes.length; k++) {
      const mode = modes[(k + round) % modes.length]
      const teardown = register(mode)
      await measure((i) => client.query(ONE, [id(i)]), callers, 200) // warm-up
      const r = await measure((i) => client.query(ONE, [id(i)]), callers, CELL_MS)
      await teardown()
      ;(results[`${callers} ${mode}`] ??= []).push(r)
    }
  }
}
const fmt = (x, d = 0) => x.toFixed(d).padStart(9)
for (const callers of [1, 10]) {
  console.log(`\ntelemetry: single-row pk select, ${callers} caller${callers > 1 ? 's' : ''} (medians of ${ROUNDS} rounds)`)
  console.log(`${'observers'.padEnd(22)}${'q/s'.padStart(9)}${'CPU µs'.padStart(9)}   CPU ÷ no SDK`)
  const base = median(results[`${callers} no SDK`].map((r) => r.cpuUs))
  for (const mode of modes) {
    const runs = results[`${callers} ${mode}`]
    const cpu = median(runs.map((r) => r.cpuUs))
    console.log(`${mode.padEnd(22)}${fmt(median(runs.map((r) => r.qps)))}${fmt(cpu, 1)}   ${(cpu / base).toFixed(2)}×`)
  }
}
await DatabasePool.close()
