'use strict'
// Telemetry that costs nothing until someone observes:
// - OpenTelemetry through `@opentelemetry/api` only, as libraries do: the backend registers the
//   SDK; with none registered the hot paths ask one question (`observed`) and go on.
// - Node's diagnostics_channel TracingChannels `connection-pools:query` (every statement,
//   builder request and transaction), `connection-pools:openai` (every OpenAI request) and
//   `connection-pools:http` (Supabase's services), so that any APM subscribes without patching.
// This module runs one observed call: its span, its channel's events, its duration; the
// instruments are lib/telemetry-metrics.js's.
// Names, attributes and the channels' context objects follow OpenTelemetry's semantic
// conventions for databases and GenAI clients; docs/monitoring.md lists them.

const diagnostics = require('node:diagnostics_channel')
const { performance } = require('node:perf_hooks')
const { VERSION, tracing, metering, otel } = require('./otel')
const { meters } = require('./telemetry-metrics')

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

/** The hot paths' one question: does anyone observe calls of `family` ('query' | 'openai' | 'http')? */
function observed(family) {
  return tracing() || metering() || listened(channels[family])
}

function tracer() {
  return tracing() ? otel().trace.getTracer('connection-pools', VERSION) : null
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
    const { failure, attributes } = outcomeOf(call, result, error)
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
    const promise = invoke(span === null ? run : () => otel().context.with(otel().trace.setSpan(otel().context.active(), span), run))
    if (publish) channel.end.publish(context)
    return whenEnded(promise, call, settle)
  }
  return publish ? channel.start.runStores(context, start) : start()
}

/** Metrics alone: the duration and the outcome, nothing else made per call. */
function timed(call, made, run) {
  const started = performance.now()
  return whenEnded(invoke(run), call, (result, error) => {
    const { failure, attributes } = outcomeOf(call, result, error)
    call.record(made, (performance.now() - started) / 1000, failure, attributes)
  })
}

/** `run()`'s promise; a synchronous throw as a rejection. */
function invoke(run) {
  try {
    return run()
  } catch (err) {
    return Promise.reject(err)
  }
}

/**
 * `promise` unchanged for its caller, with `ended(result, error)` called once the call is over:
 * when it rejects, or when it resolves (a streamed answer: when its last chunk is read).
 */
function whenEnded(promise, call, ended) {
  return promise.then(
    (result) => {
      const streaming = call.until?.(result) ?? null
      if (streaming === null) ended(result, null)
      else streaming.then(() => ended(result, null))
      return result
    },
    (err) => {
      ended(undefined, err)
      throw err
    },
  )
}

/** What became of a call: its failure (a rejection's, or one its result reports) and attributes. */
function outcomeOf(call, result, error) {
  return error === null ? call.outcome(result) : { failure: failureOf(error), attributes: null }
}

/** An HTTP answer's failure (`minimum` the first status that counts as one), or null. */
function statusFailure(status, minimum) {
  return status >= minimum ? { type: String(status), message: `status ${status}`, status: null } : null
}

/**
 * `headerText` (`name\nvalue\n…`, lib/fetch.js) with the active context's propagation headers
 * (W3C `traceparent`, with the propagator the backend registered) added, so that the service
 * called sees the span as its parent. Unchanged without a tracer or a propagator.
 */
function withTraceHeaders(headerText) {
  if (!tracing()) return headerText
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

module.exports = { channels, observed, traceCall, statusFailure, withTraceHeaders }
