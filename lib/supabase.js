'use strict'
// supabase-js clients over the pools: `createClient` is supabase-js's own, given a `global.fetch`
// that routes each request by the service it is for.
// - /rest/v1/*: with a connection string, answered in Rust by PostgREST's semantics over the
//   Postgres pool (src/db/rest/), as the identity the request's key or token stands for (the
//   service-role key: the admin client; the anon key: anonRole; a user's JWT, verified: that
//   user under RLS); without one, over HTTP to the project's REST API.
// - /auth/v1, /storage/v1, /functions/v1 (and REST without a connection string): through the Rust
//   keep-alive HTTP pool (src/services.rs), counted per service.
// - anything else (Realtime's REST endpoints): the platform's fetch. Realtime's websockets are
//   not pooled.

const { restErrorReply } = require('../binding.js')
const { ConnectionPoolError } = require('./errors')
const { submissionsOf } = require('./submissions')
const { readRequest, fetchError, nativeStream, toResponse, underSignal, abortError } = require('./fetch')
const { STATUS_CODES } = require('node:http')
const { observed, withTraceHeaders } = require('./telemetry')
const { traceRequest } = require('./trace-db')
const { traceService } = require('./trace-http')

/** Where a client without SUPABASE_URL points: never contacted (its REST runs in-process). */
const NO_PROJECT_URL = 'http://supabase-url-not-set.invalid'

/** The supabase-js package, loaded when the first client is made. */
function supabaseJs() {
  try {
    return require('@supabase/supabase-js')
  } catch (err) {
    throw new ConnectionPoolError('MISSING_DEPENDENCY', `@supabase/supabase-js is not installed: npm install @supabase/supabase-js (${err.message})`)
  }
}

/** A WebSocket for realtime-js where the platform has none (Node before 22). */
function webSocketTransport() {
  if (typeof globalThis.WebSocket === 'function') return undefined
  return require('ws')
}

const SERVICES = [
  ['/rest/v1/', 'rest'],
  ['/auth/v1/', 'auth'],
  ['/storage/v1/', 'storage'],
  ['/functions/v1/', 'functions'],
]

/** The service a URL's path is for, and the path below it; null for none of them. */
function serviceOf(url) {
  const path = url.slice(url.indexOf('/', url.indexOf('//') + 2))
  for (const [prefix, service] of SERVICES) {
    const at = path.indexOf(prefix)
    if (at !== -1 || path === prefix.slice(0, -1)) return { service, rest: at === -1 ? '/' : path.slice(at + prefix.length - 1) }
  }
  return null
}

/** `Authorization: Bearer <token>`, else the `apikey` header: the credential of a request. */
function credentialOf(headers) {
  const get = (name) => (typeof headers?.get === 'function' ? headers.get(name) : headers?.[name] ?? headers?.[name.toLowerCase()] ?? null)
  const authorization = get('authorization') ?? get('Authorization')
  if (typeof authorization === 'string' && /^bearer /i.test(authorization)) return authorization.slice(7).trim()
  return get('apikey')
}

/** The header value of `name` in a fetch's headers (a Headers or a plain object). */
function headerOf(headers, name) {
  if (headers === undefined || headers === null) return ''
  if (typeof headers.get === 'function') return headers.get(name) ?? ''
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return headers[key]
  return ''
}

/**
 * PostgREST's error reply (`{ status, range, body }`) for a request refused before it reaches
 * Postgres: the status comes from Rust's one table (src/db/rest/error.rs), as for every reply.
 */
function errorReply(code, message) {
  return JSON.parse(restErrorReply(code, message))
}

const NO_HEADERS = { get: () => null }

/** A native builder reply ({ status, range, body }) as the response postgrest-js reads. */
function restResponse(reply) {
  const { status, range, body } = reply
  const text = body ?? ''
  return {
    ok: status >= 200 && status <= 299,
    status,
    statusText: reply.statusText ?? STATUS_CODES[status] ?? '',
    headers: range ? { get: (name) => (name.toLowerCase() === 'content-range' ? range : null) } : NO_HEADERS,
    text: () => Promise.resolve(text),
    json: () => Promise.resolve(text === '' ? null : JSON.parse(text)),
  }
}

/**
 * The wire form src/db/rest/parse.rs reads: method, path and query, Prefer, Accept and the
 * schema profile, each ended by a newline, then the body. Only the body can hold a newline (the
 * URL is percent-encoded, and `Headers` refuses one in a value); text rather than JSON, so the
 * body is not escaped twice.
 */
function restWire(path, init) {
  const headers = init.headers
  const profile = headerOf(headers, 'accept-profile') || headerOf(headers, 'content-profile')
  return (
    `${init.method ?? 'GET'}\n${path}\n${headerOf(headers, 'prefer')}\n${headerOf(headers, 'accept')}\n` +
    `${profile}\n${typeof init.body === 'string' ? init.body : ''}`
  )
}

/**
 * A fetch for supabase-js over the pools. `ctx`:
 * - `pool()`: the current native database pool;
 * - `identityFor(credential, native)`: the identity a request's key or token stands for (a
 *   promise when its signing key must be fetched), or an error reply;
 * - `projectUrl`: the project's URL, or null (then only REST, in-process, can be answered).
 * `fallback` answers what no pool does (Realtime's REST endpoints): the caller's own
 * `global.fetch`, else the platform's.
 */
function supabaseFetch(ctx, fallback = null) {
  return async function fetch(input, init = {}) {
    const url = typeof input === 'string' ? input : String(input.url ?? input)
    const target = serviceOf(url)
    if (target === null) return (fallback ?? globalThis.fetch)(input, init)
    const native = ctx.pool()
    if (target.service === 'rest' && native.hasConnectionString) {
      if (init.signal?.aborted) throw abortError(init.signal)
      const credential = credentialOf(init.headers ?? (typeof input === 'object' ? input.headers : undefined))
      const wire = restWire(target.rest, init)
      const run = () => restRequest(native, ctx, credential, wire)
      return restResponse(await (observed('query') ? traceRequest(native, wire, run) : run()))
    }
    if (ctx.projectUrl === null) {
      throw new ConnectionPoolError(
        'INVALID_CONFIG',
        `no Supabase project URL: set SUPABASE_URL to reach ${target.service === 'rest' ? 'the REST API (or DATABASE_URL to answer it from Postgres)' : `Supabase ${target.service}`}`,
      )
    }
    return httpRequest(native, target.service, input, init)
  }
}

/** A builder request answered in-process, as the identity the credential stands for. */
async function restRequest(native, ctx, credential, wire) {
  let identity = ctx.identityFor(credential, native)
  if (typeof identity?.then === 'function') identity = await identity
  if (identity.reply) return identity.reply
  const submissions = submissionsOf(native)
  if (identity.kind === 'admin') return submissions.request(wire, false)
  if (identity.expiresAt !== null && Date.now() / 1000 > identity.expiresAt) return errorReply('PGRST303', 'JWT expired')
  return submissions.request(wire, identity.anonymous, identity.role, identity.claims)
}

/** A request to a Supabase HTTP service through the native pool, answered as a Response. */
async function httpRequest(native, service, input, init) {
  const request = await readRequest(input, init)
  if (observed('http')) {
    return traceService(service, request, () => sendToService(native, service, { ...request, headers: withTraceHeaders(request.headers) }, input, init))
  }
  return sendToService(native, service, request, input, init)
}

async function sendToService(native, service, request, input, init) {
  let id = 0
  const replied = submissionsOf(native).submit((submissionId) => {
    id = submissionId
    native.submitHttp(submissionId, service, request.method, request.url, request.headers, request.text, request.bytes)
  })
  const signal = init.signal ?? (typeof input === 'object' ? input.signal : undefined)
  const reply = await underSignal(replied, signal, () => native.abortHttp(id))
  if (reply.error) throw fetchError(reply.error, signal)
  return toResponse(reply, (stream) =>
    nativeStream(
      () => native.nextHttpBytes(stream),
      () => native.cancelHttpStream(stream),
    ),
  )
}

/**
 * supabase-js's `createClient` with the pools' fetch in front and server-side auth settings (no
 * session persisted, no auto refresh, no session read from a URL), unless `options.auth` says
 * otherwise. A `global.fetch` of the caller's is kept for requests none of the pools answer.
 */
function createPooledClient(ctx, url, key, options = {}) {
  const { createClient } = supabaseJs()
  const transport = webSocketTransport()
  return createClient(url ?? NO_PROJECT_URL, key, {
    ...options,
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, ...options.auth },
    global: { ...options.global, fetch: supabaseFetch(ctx, options.global?.fetch ?? null) },
    realtime: transport === undefined ? options.realtime : { transport, ...options.realtime },
  })
}

module.exports = { createPooledClient, credentialOf, errorReply, serviceOf, NO_PROJECT_URL }
