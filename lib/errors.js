'use strict'
// The JS errors of connection-pools. Native code reports failures as data ({ code, message, ... });
// this module turns them into real Error objects so callers can `switch (err.code)`.

/** A failure decided by the library itself: POOL_TIMEOUT, POOL_CLOSED, INVALID_CONFIG, ... */
class ConnectionPoolError extends Error {
  constructor(code, message, fields) {
    super(message)
    this.name = 'ConnectionPoolError'
    this.code = code
    if (fields) Object.assign(this, fields)
  }
}

/** An error Postgres reported for a statement; `code` is the SQLSTATE. */
class DatabaseError extends Error {
  constructor(fields) {
    super(fields.message)
    this.name = 'DatabaseError'
    for (const key of ['code', 'detail', 'hint', 'position', 'schema', 'table', 'column', 'constraint', 'severity']) {
      if (fields[key] !== undefined) this[key] = fields[key]
    }
  }
}

const SQLSTATE = /^[0-9A-Z]{5}$/

/** Builds the right Error for a native `{ code, message, ... }` description. */
function errorFrom(fields) {
  if (SQLSTATE.test(fields.code)) return new DatabaseError(fields)
  return new ConnectionPoolError(fields.code, fields.message)
}

/** Re-throws errors thrown by the napi layer (which carry `code`) as ConnectionPoolErrors. */
function rethrowNative(err) {
  if (err && typeof err.code === 'string' && /^[A-Z_]+$/.test(err.code)) {
    throw new ConnectionPoolError(err.code, err.message)
  }
  throw err
}

module.exports = { ConnectionPoolError, DatabaseError, errorFrom, rethrowNative }
