'use strict'
// What the two pools' fetches share: reading a fetch call's request (headers, body, signal) into
// what the native side takes, and turning the native answer back into a real `Response`, a
// streamed body into a web `ReadableStream` fed from Rust. The SDKs above (openai-node,
// supabase-js) read these responses exactly as they read the network's.

const { ConnectionPoolError } = require('./errors')

/**
 * A fetch's headers (a Headers, an array of pairs or a plain object) as one text,
 * `name\nvalue\nname\nvalue…`: one string crosses to Rust instead of two dozen. No name or value
 * can hold a newline (`Headers` refuses one; a plain object's value with one is refused there).
 */
function headerText(headers) {
  let text = ''
  if (headers === undefined || headers === null) return text
  const add = (value, name) => {
    text += `${name}\n${value}\n`
  }
  if (typeof headers.forEach === 'function' && !Array.isArray(headers)) headers.forEach(add)
  else if (Array.isArray(headers)) for (const [name, value] of headers) add(String(value), String(name))
  else {
    for (const name of Object.keys(headers)) {
      const value = headers[name]
      if (value !== undefined && value !== null) add(String(value), name)
    }
  }
  return text
}

/**
 * The request of `fetch(input, init)`: method, URL, header text, and the body as text or bytes
 * (a FormData or Blob is serialised as `Request` would send it, its content type included): at
 * once for a text body (the common case), as a promise when a body must be serialised first.
 */
function readRequest(input, init = {}) {
  const isRequest = typeof input === 'object' && input !== null && typeof input.url === 'string' && typeof input.arrayBuffer === 'function'
  const url = isRequest ? input.url : String(input)
  const method = (init.method ?? (isRequest ? input.method : 'GET')).toUpperCase()
  const headers = init.headers ?? (isRequest ? input.headers : undefined)
  const text = headerText(headers)
  const body = init.body ?? null
  if (body === null && isRequest && input.body !== null) {
    return input.arrayBuffer().then((bytes) => ({ method, url, headers: text, text: null, bytes: Buffer.from(bytes) }))
  }
  if (body === null || typeof body === 'string') return { method, url, headers: text, text: body, bytes: null }
  if (body instanceof Uint8Array) return { method, url, headers: text, text: null, bytes: Buffer.from(body.buffer, body.byteOffset, body.byteLength) }
  if (body instanceof ArrayBuffer) return { method, url, headers: text, text: null, bytes: Buffer.from(body) }
  // FormData, Blob, URLSearchParams, a ReadableStream: serialised by the platform's Request,
  // whose headers (the multipart boundary's content type among them) then go out.
  const serialised = new Request(url, /** @type {RequestInit} */ ({ method, body, headers, duplex: 'half' }))
  return serialised.arrayBuffer().then((bytes) => ({ method, url, headers: headerText(serialised.headers), text: null, bytes: Buffer.from(bytes) }))
}

function abortError(signal) {
  const reason = signal?.reason
  if (reason instanceof Error) return reason
  return Object.assign(new Error('This operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' })
}

/**
 * A `{ error: { code, message } }` answer as the error a failed fetch rejects with: a
 * ConnectionPoolError keeping the pool's code (QUEUE_FULL, POOL_CLOSED, TIMEOUT, ...). openai-node
 * wraps it as the `cause` of its APIConnectionError (APIConnectionTimeoutError for a timeout).
 */
function fetchError(error, signal = null) {
  if (error.code === 'ABORTED' || error.name === 'AbortError') return abortError(signal)
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
          controller.error(new ConnectionPoolError(chunk.error.code, chunk.error.message))
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
 * `replied` (the native answer) under `signal`: an abort tells the native side (`onAbort`),
 * which takes the request out of the queue (or drops it) and answers it `ABORTED`, so the one
 * promise settles either way; `fetchError(reply.error, signal)` makes that answer the
 * AbortError fetch rejects with.
 */
function underSignal(replied, signal, onAbort) {
  if (!signal) return replied
  if (signal.aborted) {
    onAbort()
    return replied
  }
  signal.addEventListener('abort', onAbort, { once: true })
  return replied.finally(() => signal.removeEventListener('abort', onAbort))
}

module.exports = { readRequest, headerText, fetchError, nativeStream, toResponse, underSignal, abortError }
