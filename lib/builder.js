'use strict'
// The supabase-js / postgrest-js query builder: `client.from('users').select('*').eq('id', 1)`.
//
// Each call only records what was asked (a plain request object); awaiting the builder sends the
// record to Rust, which turns it into SQL with quoted names and bound values (src/db/builder.rs)
// and runs it. The result has postgrest-js's shape: { data, error, count, status, statusText },
// with database errors in `error` rather than thrown (unless throwOnError() was called).

const { rowsToObjects } = require('./rows')

const STATUS_TEXT = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

/** postgrest-js's PostgrestError: message, details, hint, code. */
class PostgrestError extends Error {
  constructor({ message, details, hint, code }) {
    super(message)
    this.name = 'PostgrestError'
    this.details = details ?? null
    this.hint = hint ?? null
    this.code = code
  }
}

function postgrestError(fields) {
  return {
    message: fields.message,
    details: fields.details ?? fields.detail ?? null,
    hint: fields.hint ?? null,
    code: fields.code,
  }
}

class FilterBuilder {
  /**
   * @param {(specJson: string) => Promise<string>} run sends a recorded request to the pool
   * @param {object} request the recorded request
   */
  constructor(run, request) {
    this._run = run
    this._request = request
    this._single = null // 'single' | 'maybeSingle'
    this._throwOnError = false
  }

  _filter(kind, column, op, value) {
    this._request.filters.push({ kind, column, op, value })
    return this
  }

  eq(column, value) { return this._filter('op', column, 'eq', value) }
  neq(column, value) { return this._filter('op', column, 'neq', value) }
  gt(column, value) { return this._filter('op', column, 'gt', value) }
  gte(column, value) { return this._filter('op', column, 'gte', value) }
  lt(column, value) { return this._filter('op', column, 'lt', value) }
  lte(column, value) { return this._filter('op', column, 'lte', value) }
  like(column, pattern) { return this._filter('op', column, 'like', pattern) }
  ilike(column, pattern) { return this._filter('op', column, 'ilike', pattern) }
  is(column, value) { return this._filter('op', column, 'is', value) }
  in(column, values) { return this._filter('op', column, 'in', values) }
  contains(column, value) { return this._filter('op', column, 'cs', value) }
  containedBy(column, value) { return this._filter('op', column, 'cd', value) }
  overlaps(column, value) { return this._filter('op', column, 'ov', value) }

  match(query) {
    for (const [column, value] of Object.entries(query)) this.eq(column, value)
    return this
  }

  not(column, operator, value) {
    return this._filter('not', column, operator, value === undefined ? null : value)
  }

  filter(column, operator, value) {
    return this._filter('filter', column, operator, String(value))
  }

  or(expression) {
    this._request.filters.push({ kind: 'or', expression: String(expression) })
    return this
  }

  /** After insert/update/upsert/delete: return the affected rows. */
  select(columns = '*') {
    this._request.returning = true
    this._request.columns = columns
    return this
  }

  order(column, { ascending = true, nullsFirst } = {}) {
    this._request.order.push({ column, ascending, nullsFirst: nullsFirst ?? null })
    return this
  }

  limit(count) {
    this._request.limit = count
    return this
  }

  range(from, to) {
    this._request.offset = from
    this._request.limit = to - from + 1
    return this
  }

  single() {
    this._single = 'single'
    return this
  }

  maybeSingle() {
    this._single = 'maybeSingle'
    return this
  }

  throwOnError() {
    this._throwOnError = true
    return this
  }

  async _execute() {
    const reply = await this._run(JSON.stringify(this._request))
    let result
    if (reply.error) {
      result = { data: null, error: postgrestError(reply.error), count: null, status: reply.status }
    } else {
      const rows = reply.rows === undefined ? null : rowsToObjects(reply)
      result = { data: rows, error: null, count: reply.count ?? null, status: reply.status }
      if (this._request.method === 'rpc' && rows !== null) result.data = rpcData(this._request.table, reply)
      if (this._request.method !== 'select' && !this._request.returning) result.data = null
      if (this._single !== null && rows !== null) Object.assign(result, singleRow(rows, this._single))
    }
    result.statusText = STATUS_TEXT[result.status] ?? ''
    if (result.error && this._throwOnError) throw new PostgrestError(result.error)
    return result
  }

  then(onFulfilled, onRejected) {
    return this._execute().then(onFulfilled, onRejected)
  }

  catch(onRejected) {
    return this._execute().catch(onRejected)
  }

  finally(onFinally) {
    return this._execute().finally(onFinally)
  }
}

/**
 * A function returning a scalar comes back as one column named after the function: PostgREST
 * answers with the bare value (or the list of values for several rows) instead of objects.
 */
function rpcData(functionName, reply) {
  const name = functionName.split('.').pop()
  if (reply.columns.length !== 1 || reply.columns[0] !== name) return rowsToObjects(reply)
  const values = reply.rows.map((row) => row[0])
  return values.length === 1 ? values[0] : values
}

/** single(): exactly one row or PGRST116 (406); maybeSingle(): zero rows is null. */
function singleRow(rows, mode) {
  if (rows.length === 1) return { data: rows[0] }
  if (rows.length === 0 && mode === 'maybeSingle') return { data: null }
  return {
    data: null,
    status: 406,
    error: {
      message: 'JSON object requested, multiple (or no) rows returned',
      details: `The result contains ${rows.length} rows`,
      hint: null,
      code: 'PGRST116',
    },
  }
}

class QueryBuilder {
  constructor(run, table) {
    this._run = run
    this._table = table
  }

  _start(method, fields) {
    return new FilterBuilder(this._run, {
      table: this._table,
      method,
      filters: [],
      order: [],
      returning: false,
      ...fields,
    })
  }

  select(columns = '*', { head = false, count } = {}) {
    return this._start('select', { columns, head, count: count ?? null })
  }

  insert(values, { count } = {}) {
    return this._start('insert', { values, count: count ?? null })
  }

  upsert(values, { onConflict, ignoreDuplicates = false, count } = {}) {
    return this._start('upsert', { values, onConflict: onConflict ?? null, ignoreDuplicates, count: count ?? null })
  }

  update(values, { count } = {}) {
    return this._start('update', { values, count: count ?? null })
  }

  delete({ count } = {}) {
    return this._start('delete', { count: count ?? null })
  }
}

/** `client.rpc(fn, args, { head, count })`: filters, order and range apply to its rows. */
function rpcBuilder(run, functionName, args, { head = false, count } = {}) {
  return new FilterBuilder(run, {
    table: functionName,
    method: 'rpc',
    values: args ?? null,
    filters: [],
    order: [],
    returning: true,
    head,
    count: count ?? null,
  })
}

module.exports = { QueryBuilder, FilterBuilder, PostgrestError, rpcBuilder }
