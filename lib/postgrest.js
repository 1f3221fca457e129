'use strict'
// The builder is postgrest-js itself (the library inside supabase-js), given a `fetch` that hands
// each request to the native pool instead of the network: every method, type and error shape of
// supabase-js comes from the library its users already run. Rust answers the request as
// PostgREST would (src/db/rest/): it parses the URL grammar, the Prefer and Accept headers and
// the schema profile, runs the statement as the client's identity, and renders the body as JSON
// in Postgres.
//
// The response is a plain object with what postgrest-js reads (ok, status, statusText,
// headers.get, text): a real `Response` costs about four times the CPU per call.

const { PostgrestClient } = require('@supabase/postgrest-js')
const { abortError } = require('./fetch')

/** Never contacted: postgrest-js needs a base URL to build request URLs on. */
const BASE_URL = 'http://connection-pools.invalid'

/** Each status's standard reason phrase, as an HTTP server sends it. */
const { STATUS_CODES } = require('node:http')

const NO_HEADERS = { get: () => null }

/** A reply of the native pool ({ status, range, body }) as the response postgrest-js reads. */
function toResponse(reply) {
  const { status, range, body } = reply
  const text = body ?? ''
  return {
    ok: status >= 200 && status <= 299,
    status,
    // A function's own (RAISE SQLSTATE 'PGRST' with status_text), else the standard one.
    statusText: reply.statusText ?? STATUS_CODES[status] ?? '',
    headers: range ? { get: (name) => (name.toLowerCase() === 'content-range' ? range : null) } : NO_HEADERS,
    text: () => Promise.resolve(text),
  }
}

/**
 * A fetch for postgrest-js over `send(request)`, which resolves to the native reply.
 * An abort signal settles the caller's promise at once (as fetch does); the statement, already
 * with the pool, still completes there and its reply is dropped.
 */
function nativeFetch(send) {
  return (input, init = {}) => {
    const signal = init.signal
    if (signal?.aborted) return Promise.reject(abortError(signal))
    const url = typeof input === 'string' ? input : String(input.url ?? input)
    const headers = init.headers ?? {}
    // The wire form src/db/rest/parse.rs reads: five fields, each ended by a newline, then the
    // body. Only the body can hold a newline (the URL is percent-encoded, and `Headers`
    // refuses one in a value); text rather than JSON, so the body is not escaped twice.
    const request =
      `${init.method ?? 'GET'}\n${url.startsWith(BASE_URL) ? url.slice(BASE_URL.length) : url}\n` +
      `${headers.prefer ?? headers.Prefer ?? ''}\n${headers.accept ?? headers.Accept ?? ''}\n` +
      `${headers['accept-profile'] ?? headers['content-profile'] ?? ''}\n` +
      `${typeof init.body === 'string' ? init.body : ''}`
    const replied = send(request).then(toResponse)
    if (!signal) return replied
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(abortError(signal))
      signal.addEventListener('abort', onAbort, { once: true })
      replied.then(
        (res) => {
          signal.removeEventListener('abort', onAbort)
          resolve(res)
        },
        (err) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      )
    })
  }
}

/**
 * A postgrest-js client whose requests go to `send`. Retries are off: the pool already retries
 * what provably did not run, and postgrest-js's own (1 s, 2 s, 4 s on a 503) would only delay
 * the answer when the database is down.
 */
function postgrestClient(send, schema) {
  return new PostgrestClient(BASE_URL, { fetch: nativeFetch(send), schema, retry: false })
}

module.exports = { postgrestClient }
