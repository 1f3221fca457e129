'use strict'
// Who may read the monitoring routes: the backend's own middleware, or a bearer token.
//
// Tokens are compared as SHA-256 digests with crypto.timingSafeEqual, so the comparison takes the
// same time whatever the guess and whatever its length (timingSafeEqual alone needs equal
// lengths, and bailing out on a length mismatch would tell an attacker the token's length).

const crypto = require('node:crypto')
const { ConnectionPoolError } = require('./errors')

function digest(text) {
  return crypto.createHash('sha256').update(text, 'utf8').digest()
}

/** The bearer credential of a request, or null. */
function bearerOf(req) {
  const header = req.headers.authorization
  if (typeof header !== 'string') return null
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header)
  return match ? match[1] : null
}

/**
 * Express middleware that lets a request through when `options.authenticate` does, or when it
 * carries the configured token. Throws INVALID_CONFIG when neither is configured: the routes are
 * never open by default.
 *
 * `allowQueryToken(req)` names the requests that may carry the token as `?token=` instead
 * (a browser opening the dashboard cannot send a header); the page then moves it to a header.
 */
function createAuthGuard(options, allowQueryToken) {
  const { authenticate } = options
  if (authenticate !== undefined && typeof authenticate !== 'function') {
    throw new ConnectionPoolError('INVALID_CONFIG', 'createConnectionsRouter: authenticate must be an Express middleware function')
  }
  if (authenticate) return authenticate

  const token = options.token ?? process.env.CONNECTIONS_API_TOKEN
  if (token === undefined || token === null || token === '') {
    throw new ConnectionPoolError(
      'INVALID_CONFIG',
      'createConnectionsRouter needs authentication: pass { authenticate } (your auth middleware) or { token }, or set CONNECTIONS_API_TOKEN',
    )
  }
  if (typeof token !== 'string') {
    throw new ConnectionPoolError('INVALID_CONFIG', 'createConnectionsRouter: token must be a string')
  }
  const expected = digest(token)

  return function connectionsAuth(req, res, next) {
    let given = bearerOf(req)
    if (given === null && allowQueryToken(req) && typeof req.query?.token === 'string') given = req.query.token
    if (given !== null && crypto.timingSafeEqual(digest(given), expected)) return next()
    res
      .status(401)
      .set('WWW-Authenticate', 'Bearer realm="connection-pools"')
      .json({ success: false, error: { message: 'Unauthorized: send Authorization: Bearer <token>' } })
  }
}

module.exports = { createAuthGuard }
