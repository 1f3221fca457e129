'use strict'
// What a database call looks like to telemetry (lib/telemetry.js): its span name, its semantic
// attributes (never a parameter value: raw SQL's values travel as parameters, and a builder
// request's URL, whose filters hold values, is not recorded), the channel's context object and
// its metric. Built only when someone observes.

const { channels, traceCall, databaseOf, watchDatabase } = require('./telemetry')
const { submissionsOf } = require('./submissions')

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

/** One call's description for traceCall. */
function describe(native, kind, operation, target, extraAttributes) {
  const info = databaseOf(native)
  const metric = { ...info.attributes, 'db.operation.name': operation }
  if (target.collection) metric['db.collection.name'] = target.collection
  if (target.procedure) metric['db.stored_procedure.name'] = target.procedure
  const name = `${operation} ${target.collection ?? target.procedure ?? info.database}`
  return {
    name,
    attributes: { ...metric, 'db.client.connection.pool.name': info.name, ...extraAttributes },
    context: {
      kind,
      operation,
      collection: target.collection ?? null,
      procedure: target.procedure ?? null,
      query: extraAttributes['db.query.text'] ?? null,
      poolName: info.name,
      database: info.database,
    },
    outcome: kind === 'request' ? requestOutcome : statementOutcome,
    record: (made, seconds, failure) => {
      if (failure === null) made.db.operationDuration.record(seconds, metric)
      else made.db.operationDuration.record(seconds, { ...metric, 'error.type': failure.type, ...statusOf(failure) })
    },
  }
}

function statusOf(failure) {
  return failure.status ? { 'db.response.status_code': failure.status } : {}
}

function statementOutcome(result) {
  return { failure: null, attributes: result && typeof result.rowCount === 'number' ? { 'db.response.returned_rows': result.rowCount } : null }
}

function requestOutcome(reply) {
  const failure = replyFailure(reply)
  return { failure, attributes: failure === null ? null : statusOf(failure) }
}

/** Runs a statement (`run`, a promise) traced; `sql` is its text as the caller wrote it. */
function traceStatement(native, sql, run) {
  watchDatabase(native, submissionsOf(native))
  const operation = operationOf(sql)
  return traceCall(channels.query, describe(native, 'statement', operation, {}, { 'db.query.text': sql }), run)
}

/** Runs a builder request (`run`, resolving to its reply) traced. */
function traceRequest(native, wire, run) {
  watchDatabase(native, submissionsOf(native))
  const target = targetOf(wire)
  const summary = `${target.operation} ${target.collection ?? target.procedure}`
  return traceCall(channels.query, describe(native, 'request', target.operation, target, { 'db.query.summary': summary }), run)
}

/** Runs a transaction (`run`: begin, the callback, commit or rollback) traced. */
function traceTransaction(native, run) {
  watchDatabase(native, submissionsOf(native))
  return traceCall(channels.query, describe(native, 'transaction', 'TRANSACTION', {}, {}), run)
}

module.exports = { traceStatement, traceRequest, traceTransaction, operationOf, targetOf }
