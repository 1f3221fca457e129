'use strict'
// What a database call looks like to telemetry (lib/telemetry.js): its span name, its semantic
// attributes (never a parameter value: raw SQL's values travel as parameters, and a builder
// request's URL, whose filters hold values, is not recorded), the channel's context object and
// its metric. Built only when someone observes.

const { channels, traceCall } = require('./telemetry')
const { watchDatabase } = require('./telemetry-metrics')
const { tracing } = require('./otel')

/** Where a statement's result keeps how long it waited for a connection (ms), when traced. */
const WAITED_MS = Symbol('connection-pools.waitedMs')

/** Leading comments, then the statement's first keyword. */
const FIRST_KEYWORD = /^\s*(?:(?:--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)\s*)*([A-Za-z]+)/

/** db.operation.name of raw SQL: its first keyword, upper-cased (as the conventions advise). */
function operationOf(sql) {
  const match = FIRST_KEYWORD.exec(sql)
  return match === null ? 'UNKNOWN' : match[1].toUpperCase()
}

/** PostgREST's methods as the SQL they run. */
const BUILDER_OPERATIONS = { GET: 'SELECT', HEAD: 'SELECT', POST: 'INSERT', PATCH: 'UPDATE', PUT: 'UPSERT', DELETE: 'DELETE' }

function decoded(text) {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** A builder request's wire form (`method\npath?query\n…`, lib/postgrest.js) as its target. */
function targetOf(wire) {
  const methodEnd = wire.indexOf('\n')
  const method = wire.slice(0, methodEnd)
  let path = wire.slice(methodEnd + 1, wire.indexOf('\n', methodEnd + 1))
  const query = path.indexOf('?')
  if (query !== -1) path = path.slice(0, query)
  path = path.replace(/^\/+/, '')
  if (path.startsWith('rpc/')) return { operation: 'EXECUTE', collection: null, procedure: decoded(path.slice(4)) }
  return { operation: BUILDER_OPERATIONS[method] ?? method, collection: decoded(path), procedure: null }
}

/** A builder reply's failure: PostgREST's code (PGRST…, or the SQLSTATE) for a status of 400 up. */
function replyFailure(reply) {
  if (reply.status < 400) return null
  let code = null
  let message = `status ${reply.status}`
  try {
    const body = JSON.parse(reply.body)
    code = typeof body?.code === 'string' ? body.code : null
    if (typeof body?.message === 'string') message = body.message
  } catch {}
  return { type: code ?? String(reply.status), message, status: code }
}

/** Calls of one statement, builder target or transaction of one pool: shared, never written to. */
class DbCall {
  constructor(info, kind, operation, target, extraAttributes) {
    this.kind = kind
    this.operation = operation
    this.target = target
    this.info = info
    this.metric = { ...info.attributes, 'db.operation.name': operation }
    if (target.collection) this.metric['db.collection.name'] = target.collection
    if (target.procedure) this.metric['db.stored_procedure.name'] = target.procedure
    this.name = `${operation} ${target.collection ?? target.procedure ?? info.database}`
    this.attributes = { ...this.metric, 'db.client.connection.pool.name': info.name, ...extraAttributes }
    this.query = extraAttributes['db.query.text'] ?? null
  }

  contextOf() {
    const { kind, operation, target, query, info } = this
    return { kind, operation, collection: target.collection ?? null, procedure: target.procedure ?? null, query, poolName: info.name, database: info.database }
  }

  outcome(result) {
    if (this.kind !== 'request') {
      if (!result || typeof result.rowCount !== 'number') return { failure: null, attributes: null }
      const attributes = { 'db.response.returned_rows': result.rowCount }
      // The pool's own measure of the wait for a place on a connection.
      if (result[WAITED_MS] !== undefined) attributes['connection_pools.connection.wait_time'] = result[WAITED_MS] / 1000
      return { failure: null, attributes }
    }
    const failure = replyFailure(result)
    return { failure, attributes: failure === null ? null : statusOf(failure) }
  }

  record(made, seconds, failure) {
    if (failure === null) made.db.operationDuration.record(seconds, this.metric)
    else made.db.operationDuration.record(seconds, { ...this.metric, 'error.type': failure.type, ...statusOf(failure) })
  }
}

function statusOf(failure) {
  return failure.status ? { 'db.response.status_code': failure.status } : {}
}

/** Most calls kept per pool; past it the cache starts again (statements built with values inline). */
const MAX_CALLS = 1000

/** The pool's DbCall for `key`, made by `make()` the first time. */
function cachedCall(info, key, make) {
  let call = info.calls.get(key)
  if (call === undefined) {
    if (info.calls.size >= MAX_CALLS) info.calls.clear()
    call = make()
    info.calls.set(key, call)
  }
  return call
}

/** Replies carry their statement's wait for a connection while spans are made. */
function askForWaits(native, info) {
  const wanted = tracing()
  if (info.waits !== wanted) {
    info.waits = wanted
    native.setTracing(wanted)
  }
}

/** Runs a statement (`run`, a promise) traced; `sql` is its text as the caller wrote it. */
function traceStatement(native, sql, run) {
  const info = watchDatabase(native)
  askForWaits(native, info)
  const call = cachedCall(info, sql, () => new DbCall(info, 'statement', operationOf(sql), {}, { 'db.query.text': sql }))
  return traceCall(channels.query, call, run)
}

/** Runs a builder request (`run`, resolving to its reply) traced. */
function traceRequest(native, wire, run) {
  const info = watchDatabase(native)
  const target = targetOf(wire)
  const call = cachedCall(info, `\u0000${target.operation} ${target.collection ?? ''} ${target.procedure ?? ''}`, () => {
    const summary = `${target.operation} ${target.collection ?? target.procedure}`
    return new DbCall(info, 'request', target.operation, target, { 'db.query.summary': summary })
  })
  return traceCall(channels.query, call, run)
}

/** Runs a transaction (`run`: begin, the callback, commit or rollback) traced. */
function traceTransaction(native, run) {
  const info = watchDatabase(native)
  const call = cachedCall(info, '\u0000TRANSACTION', () => new DbCall(info, 'transaction', 'TRANSACTION', {}, {}))
  return traceCall(channels.query, call, run)
}

module.exports = { traceStatement, traceRequest, traceTransaction, operationOf, targetOf, WAITED_MS }
