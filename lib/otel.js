'use strict'
// Where OpenTelemetry's API is reached: whether a tracer or meter provider is registered (read
// from the global every copy of the API, major version 1, shares, so asking costs two property
// reads and loads nothing), and the API itself, loaded on first need.

/** This package's version, the instrumentation scope's version. */
const VERSION = JSON.parse(require('node:fs').readFileSync(require('node:path').join(__dirname, '..', 'package.json'), 'utf8')).version
/** Where every copy of the API (major version 1) keeps the registered providers. */
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1')

/** Whether a tracer provider is registered (spans are made). */
function tracing() {
  return globalThis[OTEL_GLOBAL]?.trace !== undefined
}

/** Whether a meter provider is registered (metrics are recorded). */
function metering() {
  return globalThis[OTEL_GLOBAL]?.metrics !== undefined
}

let api = null

/** `@opentelemetry/api`, loaded the first time a provider is found registered. */
function otel() {
  if (api === null) api = require('@opentelemetry/api')
  return api
}

module.exports = { VERSION, tracing, metering, otel }
