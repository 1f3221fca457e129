'use strict'
// The JS half of the batched crossing (src/crossing.rs), for both pools. A call is a synchronous
// `submit…(id, ...)` into the native pool and a promise kept here under `id`; when replies are
// ready the native side calls `drain` once (a weak ThreadsafeFunction), and one `JSON.parse` of
// the batch settles every promise in it (a builder reply's body comes beside it, as its own
// string, so that postgrest-js parses it once). One wake-up of the Node thread per batch instead of one
// per call is most of the CPU a pipelined statement costs, and a queued call costs a Map entry
// here instead of a napi promise and deferred.

const noop = () => {}

class Submissions {
  /** @param {object} native a NativeDatabasePool or NativeOpenAiPool (onComplete, drain) */
  constructor(native) {
    this._native = native
    /** id → resolve of the caller's promise */
    this._pending = new Map()
    this._nextId = 1
    /** Called after each batch when telemetry keeps the pool's timings (lib/telemetry.js). */
    this.afterDrain = null
    // The drain callback is weak so that an idle pool never holds the process open; this handle
    // holds it open while statements are pending, as an in-flight socket would.
    this._keepAlive = setInterval(noop, 0x7fffffff)
    this._keepAlive.unref()
    native.onComplete(() => this._drain())
  }

  /** Resolves to the statement's reply object ({ columns, rows, rowCount } or { error }). */
  statement(sql, params, toJsonStyle, role, claims) {
    return this._submit((id) => this._native.submit(id, sql, params, toJsonStyle, role, claims))
  }

  /** Resolves to a builder request's reply object ({ status, range, body }: lib/postgrest.js). */
  request(request, anonymous, role, claims) {
    return this._submit((id) => this._native.submitRequest(id, request, anonymous, role, claims))
  }

  /**
   * Begins a transaction; resolves to `{ tx, reply }`, where `tx` names the transaction in the
   * calls below and `reply` is `{ ok: true }` or `{ error }`.
   */
  begin(isolationLevel, readOnly, role, claims) {
    let tx = 0
    const replied = this._submit((id) => {
      tx = id
      this._native.submitBegin(id, isolationLevel, readOnly, role, claims)
    })
    return replied.then((reply) => ({ tx, reply }))
  }

  statementIn(tx, sql, params, toJsonStyle) {
    return this._submit((id) => this._native.submitInTransaction(id, tx, sql, params, toJsonStyle))
  }

  requestIn(tx, request, anonymous) {
    return this._submit((id) => this._native.submitRequestInTransaction(id, tx, request, anonymous))
  }

  /** Commits (or rolls back) a transaction; resolves to `{ ok: true }` or `{ error }`. */
  end(tx, commit) {
    return this._submit((id) => this._native.submitEnd(id, tx, commit))
  }

  /** Resolves to the reply object of the call `send(id)` submits. */
  submit(send) {
    return this._submit(send)
  }

  _submit(send) {
    const id = this._nextId
    this._nextId = id >= 0x7fffffff ? 1 : id + 1
    return new Promise((resolve, reject) => {
      try {
        send(id)
      } catch (err) {
        reject(err)
        return
      }
      this._pending.set(id, resolve)
      if (this._pending.size === 1) this._keepAlive.ref()
    })
  }

  _drain() {
    const { ids, json, bodies, buffers } = this._native.drain()
    if (ids.length === 0) return
    const replies = JSON.parse(json)
    const pending = this._pending
    for (let i = 0; i < ids.length; i++) {
      const resolve = pending.get(ids[i])
      pending.delete(ids[i])
      const reply = replies[i]
      // A builder reply's body travels beside the batch (src/crossing.rs): its index here.
      if (bodies.length !== 0 && reply !== null && typeof reply.body === 'number') reply.body = bodies[reply.body]
      // A body of bytes (an HTTP fetch's audio, image or file) travels beside it as a Buffer.
      if (buffers.length !== 0 && reply !== null && typeof reply.buffer === 'number') reply.buffer = buffers[reply.buffer]
      // A packed statement reply (lib/rows.js): its buffer and its text, beside the batch.
      if (buffers.length !== 0 && reply !== null && reply.packed !== undefined) {
        reply.packed.buffer = buffers[reply.packed.buffer]
        reply.packed.text = bodies[reply.packed.text]
      }
      resolve(reply)
    }
    if (pending.size === 0) this._keepAlive.unref()
    if (this.afterDrain !== null) this.afterDrain()
  }
}

/** Each native pool's Submissions, beside it rather than as a property of the native object. */
const byPool = new WeakMap()

/** The Submissions of `native` (a NativeDatabasePool or NativeOpenAiPool), made on first use. */
function submissionsOf(native) {
  let submissions = byPool.get(native)
  if (submissions === undefined) {
    submissions = new Submissions(native)
    byPool.set(native, submissions)
  }
  return submissions
}

module.exports = { Submissions, submissionsOf }
