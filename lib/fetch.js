'use strict'
// What the two pools' fetches share: reading a fetch call's request (headers, body, signal) into
// what the native side takes, and turning the native answer back into a real `Response`, a
// streamed body into a web `ReadableStream` fed from Rust. The SDKs above (openai-node,
// supabase-js) read these responses exactly as they read the network's.

const { ConnectionPoolError } = require('./errors')

/** A fetch's headers (a Headers, an array of pairs or a plain object) flattened: name, value, ... */
function flatHeaders(headers) {
  const flat = []
  if (headers === undefined || headers === null) return flat
  if (typeof headers.forEach === 'function' && !Array.isArray(headers)) {
    headers.forEach((value, name) => flat.push(name, value))
  } else if (Array.isArray(headers)) {
    for (const [name, value] of headers) flat.push(String(name), String(value))
  } else {
    for (const name of Object.keys(headers)) {
      const value = headers[name]
      if (value !== undefined && value !== null) flat.push(name, String(value))
    }
  }
  return flat
}

/**
 * The request of `fetch(input, init)`: method, URL, flat headers, and the body as text or bytes
 * (a FormData or Blob is serialised as `Request` would send it, its content type included).
 */
async function readRequest(input, init = {}) {
  const isRequest = typeof input === 'object' && input !== null && typeof input.url === 'string' && typeof input.arrayBuffer === 'function'
  const url = isRequest ? input.url : String(input)
  const method = (init.method ?? (isRequest ? input.method : 'GET')).toUpperCase()
  const headers = init.headers ?? (isRequest ? input.headers : undefined)
  let flat = flatHeaders(headers)
  let body = init.body ?? null
  if (body === null && isRequest && input.body !== null) body = await input.arrayBuffer()
  if (body === null || body === undefined || typeof body === 'string') return { method, url, headers: flat, text: body ?? null, bytes: null }
  if (body instanceof Uint8Array) return { method, url, headers: flat, text: null, bytes: Buffer.from(body.buffer, body.byteOffset, body.byteLength) }
  if (body instanceof ArrayBuffer) return { method, url, headers: flat, text: null, bytes: Buffer.from(body) }
  // FormData, Blob, URLSearchParams, a ReadableStream: serialised by the platform's Request.
  const serialised = new Request(url, { method, body, headers, duplex: 'half' })
  const contentType = serialised.headers.get('content-type')
  if (contentType !== null && !hasHeader(flat, 'content-type')) flat = flat.concat(['content-type', contentType])
  return { method, url, headers: flat, text: null, bytes: Buffer.from(await serialised.arrayBuffer()) }
}

function hasHeader(flat, name) {
  for (let i = 0; i < flat.length; i += 2) if (flat[i].toLowerCase() === name) return true
  return false
}

function abortError(signal) {
  const reason = signal?.reason
  if (reason instanceof Error) return reason
  const err = new Error('This operation was aborted')
  err.name = 'AbortError'
  err.code = 'ABORT_ERR'
  return err
}

/**
 * A `{ error: { code, message } }` answer as the error a failed fetch rejects with: a
 * ConnectionPoolError keeping the pool's code (QUEUE_FULL, POOL_CLOSED, TIMEOUT, ...). openai-node
 * wraps it as the `cause` of its APIConnectionError (APIConnectionTimeoutError for a timeout).
 */
function fetchError(error) {
  if (error.code === 'ABORTED' || error.name === 'AbortError') return abortError(null)
  const err = new ConnectionPoolError(error.code ?? 'CONNECTION_FAILED', error.message)
  return err
}

/**
 * A stream of the native side's chunks as a web ReadableStream: pulled as the reader reads,
 * cancelled (its request aborted, its slot freed) when the reader cancels or the stream is
 * garbage-collected unread.
 */
const abandoned = new FinalizationRegistry((cancel) => cancel())

function nativeStream(next, cancel) {
  let done = false
  const finish = () => {
    if (!done) {
      done = true
      cancel()
    }
  }
  const stream = new ReadableStream(
    {
      async pull(controller) {
        const chunk = await next()
        if (chunk.error) {
          done = true
          const err = new Error(chunk.error.message)
          err.code = chunk.error.code
          controller.error(err)
        } else if (chunk.done) {
          done = true
          controller.close()
        } else {
          controller.enqueue(new Uint8Array(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.byteLength))
        }
      },
      cancel: finish,
    },
    { highWaterMark: 0 },
  )
  // The registry holds `finish` (not the stream), so the stream stays collectable.
  abandoned.register(stream, finish)
  return stream
}

/** A native answer (`{ status, headers, body | buffer | stream }`, its body resolved) as a Response. */
function toResponse(reply, openStream) {
  const init = { status: reply.status, headers: reply.headers }
  let body = null
  if (typeof reply.body === 'string') body = reply.body
  else if (reply.buffer !== undefined) body = reply.buffer
  else if (reply.stream !== undefined) body = openStream(reply.stream)
  // A null-body status (204, 304) takes no body.
  if (reply.status === 204 || reply.status === 205 || reply.status === 304) body = null
  return new Response(body, init)
}

/**
 * Settles `replied` (the native answer) as fetch does under `signal`: an abort rejects at once
 * with an AbortError and tells the native side (`onAbort`), which drops the request.
 */
function underSignal(replied, signal, onAbort) {
  if (!signal) return replied
  if (signal.aborted) {
    onAbort()
    return Promise.reject(abortError(signal))
  }
  return new Promise((resolve, reject) => {
    const abort = () => {
      onAbort()
      reject(abortError(signal))
    }
    signal.addEventListener('abort', abort, { once: true })
    replied.then(
      (res) => {
        signal.removeEventListener('abort', abort)
        resolve(res)
      },
      (err) => {
        signal.removeEventListener('abort', abort)
        reject(err)
      },
    )
  })
}

module.exports = { readRequest, flatHeaders, fetchError, nativeStream, toResponse, underSignal, abortError }
