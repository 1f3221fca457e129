'use strict'
// DatabasePool: the seed's static API over one native Postgres pool, and the Supabase clients.
//
// The native pool (Rust, its own Postgres protocol layer) does the work; this module keeps the seed's shape: a lazily
// created current pool, singleton clients that always talk to the current pool (so
// `initialize()` can replace it under them), and the backward-compatible helpers. The clients
// users hold are supabase-js `SupabaseClient`s (lib/supabase.js routes their requests to the
// pools), with `query()` and `transaction()` beside supabase-js's own methods.

const { NativeDatabasePool } = require('../binding.js')
const { ConnectionPoolError, errorFrom, rethrowNative } = require('./errors')
const { rowsToObjects } = require('./rows')
const { createNativePool, retire } = require('./native')
const { submissionsOf } = require('./submissions')
const { postgrestClient } = require('./postgrest')
const { createPooledClient, errorReply } = require('./supabase')
const { EventEmitter } = require('node:events')
const { observed } = require('./telemetry')
const { current: telemetryPools, watchDatabase } = require('./telemetry-metrics')
const { traceStatement, traceRequest, traceTransaction, WAITED_MS } = require('./trace-db')
const { LeakWatcher, captureCaller, leakThreshold } = require('./leaks')

/** 'leak' and 'release' (leakDetectionThreshold): `DatabasePool.on(event, listener)`. */
const events = new EventEmitter()
const leaks = new LeakWatcher(events, 'database')

/** The native pool in use; created by initialize(), or from the environment on first use. */
let current = null

function pool() {
  if (current === null) DatabasePool.initialize()
  return current
}

function parseResult(reply) {
  if (reply.error) throw explained(errorFrom(reply.error))
  const result = { rows: rowsToObjects(reply), rowCount: reply.rowCount }
  // Only while spans are made (lib/trace-db.js): not enumerable, not in the caller's way.
  if (reply.waitMs !== undefined) Object.defineProperty(result, WAITED_MS, { value: reply.waitMs })
  return result
}

/**
 * Warns once per process when user clients run on a superuser login: raw SQL on such a client
 * can take any role with set_config('role', …), as PostgREST's docs warn of its authenticator.
 * Settled per pool after its first connection (the getter crosses napi; a settled pool costs a
 * WeakMap lookup per user statement).
 */
const loginChecked = new WeakMap()
let superuserWarned = false

function warnOnSuperuserLogin(native) {
  if (superuserWarned || loginChecked.has(native)) return
  const superuser = native.superuserLogin
  if (superuser === null || superuser === undefined) return
  loginChecked.set(native, superuser)
  if (superuser !== true) return
  superuserWarned = true
  process.emitWarning(
    'user clients run on a superuser login: raw SQL on them can take any role with ' +
      "set_config('role', …). Log in as a role that is not a superuser and is a member only of " +
      'the API roles (as PostgREST\'s authenticator is); README: Security.',
    { code: 'CP_SUPERUSER_LOGIN' },
  )
}

/** Rejects when a user token has expired since the client was made (PostgREST checks per request). */
function expiredToken(identity) {
  return identity.expiresAt !== null && Date.now() / 1000 > identity.expiresAt
}

/** A user client's identity from the native verifier's answer. */
function userIdentity(verified) {
  return { role: verified.role, claims: verified.claims, anonymous: false, expiresAt: verified.expiresAt ?? null }
}

/** query()'s argument check, shared by both kinds of client: an error, or null. */
function invalidQueryArguments(sql, params) {
  if (typeof sql !== 'string') {
    return new ConnectionPoolError('INVALID_ARGUMENT', 'query(sql, params): sql must be a string')
  }
  if (params !== undefined && params !== null && !Array.isArray(params)) {
    return new ConnectionPoolError('INVALID_ARGUMENT', 'query(sql, params): params must be an array')
  }
  return null
}

/**
 * from(), rpc() and schema() of supabase-js, on postgrest-js itself (lib/postgrest.js), over a
 * client's `_runner()` (how its requests reach the pool). One postgrest-js client per client.
 */
class BuilderEntry {
  /** How this client's requests reach the pool: given by each subclass. */
  _runner() {
    throw new Error('BuilderEntry._runner is abstract')
  }

  _postgrest() {
    if (this._rest === undefined) this._rest = postgrestClient(this._runner())
    return this._rest
  }

  /** The supabase-js query builder on `relation` (a table or view of the default schema). */
  from(relation) {
    if (typeof relation !== 'string') {
      throw new ConnectionPoolError('INVALID_ARGUMENT', 'from(relation): relation must be a string')
    }
    return this._postgrest().from(relation)
  }

  /** Calls a Postgres function with named arguments, as supabase-js's rpc(). */
  rpc(functionName, args, options) {
    if (typeof functionName !== 'string') {
      throw new ConnectionPoolError('INVALID_ARGUMENT', 'rpc(fn, args): fn must be a string')
    }
    return this._postgrest().rpc(functionName, args, options)
  }

  /** The builder on another exposed schema (option `schemas`), as supabase-js's schema(). */
  schema(name) {
    return this._postgrest().schema(name)
  }
}

/**
 * A client bound to an identity; every call goes to the current pool.
 * - admin: the login role, no transaction wrapper (bypasses row-level security).
 * - anon: the pool's anonRole with claims {"role": anonRole}, as PostgREST runs anonymous requests.
 * - user: a verified access token's role and claims. A token whose signing key is not cached yet
 *   (asymmetric keys from jwksUrl) is verified before the client's first statement; until then
 *   the client holds only the token.
 */
class DatabaseClient {
  constructor(kind, identity = null, pendingToken = null) {
    /** 'admin', 'anon' or 'user'. */
    this.kind = kind
    this._identity = identity
    this._pendingToken = pendingToken
    this._verifying = null
  }

  /** { role, claims, anonymous, expiresAt } for this call, or null for the admin client. */
  _context() {
    if (this.kind === 'admin') return null
    if (this.kind === 'anon') return anonContext(pool())
    return this._identity
  }

  /**
   * Verifies a pending token (one fetch of the signing keys at most, shared by concurrent calls).
   * Rejects with INVALID_TOKEN; a later call tries again, within the key cache's own limits.
   */
  _verifyPending() {
    if (this._verifying === null) {
      let native
      try {
        native = pool()
      } catch (err) {
        return Promise.reject(err)
      }
      this._verifying = native
        .verifyTokenAsync(this._pendingToken)
        .then((outcome) => {
          this._verifying = null
          if (outcome.error) throw errorFrom(outcome.error)
          this._identity = userIdentity(outcome.token)
          this._pendingToken = null
        })
      this._verifying.catch(() => {
        this._verifying = null
      })
    }
    return this._verifying
  }

  /**
   * Runs one statement with bound parameters ($1, $2, ...).
   * Resolves to { rows, rowCount }; rejects with a DatabaseError (code = SQLSTATE) or a
   * ConnectionPoolError (POOL_TIMEOUT, POOL_CLOSED, CONNECTION_FAILED, INVALID_TOKEN, ...).
   */
  query(sql, params) {
    // Not an async function: one promise per statement, one .then, no extra ticks.
    const invalid = invalidQueryArguments(sql, params)
    if (invalid !== null) return Promise.reject(invalid)
    if (this._pendingToken !== null) return this._verifyPending().then(() => this.query(sql, params))
    let native, context
    try {
      native = pool()
      context = this._context()
    } catch (err) {
      return Promise.reject(err)
    }
    if (observed('query')) return traceStatement(native, sql, () => this._statement(native, context, sql, params))
    return this._statement(native, context, sql, params)
  }

  _statement(native, context, sql, params) {
    const submissions = submissionsOf(native)
    if (context === null) return submissions.statement(sql, params ?? null).then(parseResult, rethrowNative)
    if (expiredToken(context)) {
      return Promise.reject(new ConnectionPoolError('INVALID_TOKEN', 'invalid access token: the token has expired'))
    }
    warnOnSuperuserLogin(native)
    return submissions
      .statement(sql, params ?? null, false, context.role, context.claims)
      .then(parseResult, rethrowNative)
  }

  /**
   * Runs fn(tx) in a transaction on one connection, as this client's identity (role and claims
   * set once for the whole transaction): commits when fn resolves, rolls back when it throws or a
   * statement in it failed. `options`: { isolationLevel, readOnly }.
   */
  transaction(fn, options) {
    return runTransaction(this, fn, options)
  }
}

const ISOLATION_LEVELS = ['read committed', 'repeatable read', 'serializable']

/**
 * The client a transaction's callback gets: `query`, `from` and `rpc` as on a DatabaseClient,
 * all on the transaction's connection, as the identity it began with. Unusable once it ended.
 */
class TransactionClient extends BuilderEntry {
  constructor(native, submissions, tx, anonymous) {
    super()
    this._native = native
    this._submissions = submissions
    this._tx = tx
    this._anonymous = anonymous
    this._ended = false
  }

  query(sql, params) {
    const invalid = invalidQueryArguments(sql, params) ?? (this._ended ? transactionEnded() : null)
    if (invalid !== null) return Promise.reject(invalid)
    const run = () => this._submissions.statementIn(this._tx, sql, params ?? null).then(parseResult, rethrowNative)
    return observed('query') ? traceStatement(this._native, sql, run) : run()
  }

  _runner() {
    return (request) => {
      if (this._ended) return Promise.reject(transactionEnded())
      const run = () => this._submissions.requestIn(this._tx, request, this._anonymous)
      return observed('query') ? traceRequest(this._native, request, run) : run()
    }
  }
}

function transactionEnded() {
  return new ConnectionPoolError('INVALID_ARGUMENT', 'the transaction has already ended')
}

/** Checks transaction()'s options; returns [isolationLevel or null, readOnly]. */
function transactionOptions(options) {
  if (options === undefined || options === null) return [null, false]
  if (typeof options !== 'object') {
    throw new ConnectionPoolError('INVALID_ARGUMENT', 'transaction(fn, options): options must be an object')
  }
  const { isolationLevel = null, readOnly = false } = options
  if (isolationLevel !== null && !ISOLATION_LEVELS.includes(String(isolationLevel).toLowerCase())) {
    throw new ConnectionPoolError('INVALID_ARGUMENT', `isolationLevel must be one of: ${ISOLATION_LEVELS.join(', ')}`)
  }
  if (typeof readOnly !== 'boolean') {
    throw new ConnectionPoolError('INVALID_ARGUMENT', 'readOnly must be a boolean')
  }
  return [isolationLevel, readOnly]
}

/** DatabaseClient#transaction: checks its arguments, then runs it (traced when observed). */
function runTransaction(client, fn, options) {
  if (typeof fn !== 'function') {
    return Promise.reject(new ConnectionPoolError('INVALID_ARGUMENT', 'transaction(fn): fn must be a function'))
  }
  let isolationLevel, readOnly, native
  try {
    ;[isolationLevel, readOnly] = transactionOptions(options)
    native = pool()
  } catch (err) {
    return Promise.reject(err)
  }
  // Where the caller began it, captured now (while its frames are on the stack) if watched.
  const caller = captureCaller(leakThreshold(native), runTransaction)
  const run = () => transact(client, native, fn, isolationLevel, readOnly, caller)
  return observed('query') ? traceTransaction(native, run) : run()
}

async function transact(client, native, fn, isolationLevel, readOnly, caller) {
  if (client._pendingToken !== null) await client._verifyPending()
  const context = client._context()
  if (context !== null && expiredToken(context)) {
    throw new ConnectionPoolError('INVALID_TOKEN', 'invalid access token: the token has expired')
  }
  const submissions = submissionsOf(native)
  const { tx, reply } = await submissions
    .begin(isolationLevel, readOnly, context?.role ?? null, context?.claims ?? null)
    .catch(rethrowNative)
  if (reply.error) throw explained(errorFrom(reply.error))
  const hold = leaks.watch('transaction', leakThreshold(native), caller)
  const transaction = new TransactionClient(native, submissions, tx, context?.anonymous ?? false)
  let result
  try {
    result = await fn(transaction)
  } catch (err) {
    transaction._ended = true
    await submissions.end(tx, false)
    hold.release()
    throw err
  }
  transaction._ended = true
  const ended = await submissions.end(tx, true)
  hold.release()
  if (ended.error) throw errorFrom(ended.error)
  return result
}

/**
 * A POOL_TIMEOUT with the stack of the oldest transaction still open, when leak detection is
 * on: the pool's message says how the connections are held, this says by whom.
 */
function explained(err) {
  if (err.code !== 'POOL_TIMEOUT') return err
  return leaks.withOldest(err, (oldest) => `the oldest open ${oldest.kind} (${oldest.ageMs} ms) was begun here`)
}

/**
 * The project's keys, from the environment when the first client is made: the service-role key
 * stands for the admin client, the anon key for the anonymous one. Without them (a backend with
 * only DATABASE_URL) each is a random key that never leaves the process: its REST requests are
 * answered in-process, where the key only names the identity.
 */
const randomKey = (kind) => `cp-${kind}-${require('node:crypto').randomBytes(18).toString('base64url')}`
const keys = {
  service: process.env.SUPABASE_SERVICE_ROLE_KEY || process.env.SUPABASE_SECRET_KEY || randomKey('service'),
  anon: process.env.SUPABASE_ANON_KEY || process.env.SUPABASE_PUBLISHABLE_KEY || randomKey('anon'),
}
const projectUrl = process.env.SUPABASE_URL || null

const ADMIN = { kind: 'admin' }

/** Verified tokens per native pool (its verifier), so a token is checked once, not per request. */
const verifiedTokens = new WeakMap()
const MAX_CACHED_TOKENS = 1000

function tokenCache(native) {
  let cache = verifiedTokens.get(native)
  if (cache === undefined) verifiedTokens.set(native, (cache = new Map()))
  return cache
}

/** A verified token as the identity its REST requests run as (service_role: the admin client). */
function identityOfToken(verified) {
  if (verified.role === 'service_role') return ADMIN
  return { kind: 'user', ...userIdentity(verified) }
}

/**
 * The identity a REST request's credential (its bearer token, else its apikey) stands for: the
 * admin client for the service-role key, anonRole for the anon key or none, else the verified
 * user (a promise when the signing key must be fetched first), or `{ reply }`: the 401 PostgREST
 * answers a bad token with.
 */
function identityFor(credential, native) {
  if (credential === keys.service) return ADMIN
  if (credential === keys.anon || credential === null || credential === undefined || credential === '') {
    return { kind: 'anon', ...anonContext(native) }
  }
  const cache = tokenCache(native)
  const cached = cache.get(credential)
  if (cached !== undefined) return cached
  const remember = (identity) => {
    if (cache.size >= MAX_CACHED_TOKENS) cache.clear()
    cache.set(credential, identity)
    return identity
  }
  let verified
  try {
    verified = native.verifyToken(credential)
  } catch (err) {
    return { reply: errorReply('PGRST301', err.message) }
  }
  if (verified !== null) return remember(identityOfToken(verified))
  return native.verifyTokenAsync(credential).then((outcome) =>
    outcome.error ? { reply: errorReply('PGRST301', outcome.error.message) } : remember(identityOfToken(outcome.token)),
  )
}

/** Each native pool's anonymous identity (its anonRole), read from its config once. */
const anonContexts = new WeakMap()

function anonContext(native) {
  let context = anonContexts.get(native)
  if (context === undefined) {
    const role = native.config().anonRole
    context = { role, claims: JSON.stringify({ role }), anonymous: true, expiresAt: null }
    anonContexts.set(native, context)
  }
  return context
}

const routing = { pool: () => pool(), identityFor, projectUrl }

/**
 * A supabase-js client over the pools, with `query()`, `transaction()` and `kind` of `identity`
 * (a DatabaseClient) beside supabase-js's methods.
 */
function pooledSupabase(key, options, identity) {
  // No schema of its own: the pool's default (the first of `schemas`) answers, as before
  // supabase-js; `.schema(name)` picks another.
  const client = createPooledClient(routing, projectUrl, key, { db: { schema: undefined }, ...options })
  return withIdentity(client, identity)
}

/** `client` with `kind`, `query()` and `transaction()` of `identity` beside supabase-js's methods. */
function withIdentity(client, identity) {
  return Object.assign(client, {
    kind: identity.kind,
    query: (sql, params) => identity.query(sql, params),
    transaction: (fn, txOptions) => identity.transaction(fn, txOptions),
  })
}

const adminClient = pooledSupabase(keys.service, {}, new DatabaseClient('admin'))
const anonClient = pooledSupabase(keys.anon, {}, new DatabaseClient('anon'))

/**
 * supabase-js's `createClient(url, key, options)` with the pools underneath: REST runs over the
 * Postgres pool as the identity its key stands for (or, with
 * `global.headers.Authorization: 'Bearer <user jwt>'`, as that user under RLS); Auth, Storage and
 * Functions go through the HTTP pool. `query()` and `transaction()` run as that identity too.
 */
function createClient(url, key, options = {}) {
  const authorization = options.global?.headers?.Authorization ?? options.global?.headers?.authorization
  const bearer = typeof authorization === 'string' && /^bearer /i.test(authorization) ? authorization.slice(7).trim() : null
  const credential = bearer ?? key
  const identity =
    credential === keys.service ? new DatabaseClient('admin')
    : credential === keys.anon ? new DatabaseClient('anon')
    : new DatabaseClient('user', null, credential)
  const client = createPooledClient({ ...routing, projectUrl: url ?? projectUrl }, url, key, options)
  return withIdentity(client, identity)
}

class DatabasePool {
  /** Validates config and replaces the current pool; the previous one drains in the background. */
  static initialize(config = {}) {
    const next = createNativePool(NativeDatabasePool, config, {
      DATABASE_URL: process.env.DATABASE_URL,
      SUPABASE_JWT_SECRET: process.env.SUPABASE_JWT_SECRET,
      SUPABASE_JWKS_URL: process.env.SUPABASE_JWKS_URL,
      SUPABASE_URL: process.env.SUPABASE_URL,
    })
    // Its replies come back through its Submissions, made now (before the first submission).
    submissionsOf(next)
    watchDatabase(next)
    const previous = current
    current = next
    retire(previous)
  }

  static getAdminClient() {
    return adminClient
  }

  /**
   * No options: the anonymous client (a singleton). `{ accessToken }`: a client for that user.
   * The token is verified now when its key is at hand (the HS256 jwtSecret, or a cached signing
   * key) and throws INVALID_TOKEN if it is bad; a token whose signing key must first be fetched
   * (jwksUrl) is verified before the client's first statement, which then rejects instead.
   */
  static getUserClient(options) {
    if (options === undefined || options === null || options.accessToken === undefined) return anonClient
    if (typeof options.accessToken !== 'string') {
      throw new ConnectionPoolError('INVALID_TOKEN', 'invalid access token: accessToken must be a string')
    }
    let verified
    try {
      verified = pool().verifyToken(options.accessToken)
    } catch (err) {
      rethrowNative(err)
    }
    const identity =
      verified === null ? new DatabaseClient('user', null, options.accessToken) : new DatabaseClient('user', userIdentity(verified))
    // Supabase's documented per-request client: the anon key, the user's token as Authorization.
    return pooledSupabase(keys.anon, { global: { headers: { Authorization: `Bearer ${options.accessToken}` } } }, identity)
  }

  /**
   * Runs fn and returns its result. Statements inside fn are already retried by the pool when
   * they provably did not run (maxRetries, retryDelay); fn itself is never re-run, because it
   * may contain statements that did run. The seed's second argument (isAdmin) is accepted and
   * ignored: fn chooses its client itself.
   */
  static async executeQuery(fn) {
    if (typeof fn !== 'function') {
      throw new ConnectionPoolError('INVALID_ARGUMENT', 'executeQuery(fn): fn must be a function')
    }
    pool()
    return await fn()
  }

  static getStats() {
    const native = pool()
    const stats = native.stats()
    return { ...stats, lastQueryTime: stats.lastQueryTime ?? null, http: httpStats(native) }
  }

  static getPoolConfig() {
    const config = pool().config()
    return { ...config, connectionString: config.connectionString || null, jwksUrl: config.jwksUrl ?? null }
  }

  /** Forgets the builder's schema cache (foreign keys for embedding, functions' return kinds). */
  static reloadSchema() {
    pool().reloadSchema()
  }

  static resetStats() {
    pool().resetStats()
  }

  /**
   * Never rejects; resolves within connectionTimeout (httpTimeout without a connection string,
   * when the project's REST API is asked instead).
   */
  static async healthCheck() {
    let native
    try {
      native = pool()
    } catch (err) {
      return { healthy: false, message: `Database unhealthy: ${err.message}`, stats: null, responseTime: null }
    }
    const health = native.hasConnectionString ? await native.healthCheck() : await restHealth()
    return { healthy: health.healthy, message: health.message, stats: DatabasePool.getStats(), responseTime: health.responseTime ?? null }
  }

  /**
   * Listens to the pool's events: 'leak' (a transaction held past leakDetectionThreshold:
   * `{ pool, kind, ageMs, thresholdMs, site, stack }`) and 'release' (that transaction ended:
   * `{ pool, kind, heldMs, site }`).
   */
  static on(event, listener) {
    events.on(event, listener)
    return DatabasePool
  }

  static off(event, listener) {
    events.off(event, listener)
    return DatabasePool
  }

  /** The leak warnings in force now (transactions past leakDetectionThreshold, still open). */
  static getLeaks() {
    return leaks.current()
  }

  /** Drains and closes the pool; later statements reject with POOL_CLOSED until initialize(). */
  static async close() {
    if (current !== null) await current.close()
  }
}

/** The seed's database.ts helper: true when a statement round-trips. */
async function testConnection() {
  const health = await DatabasePool.healthCheck()
  return health.healthy
}

/** The seed's database.ts helper: the health check's answer. */
async function checkDatabaseHealth() {
  return DatabasePool.healthCheck()
}

/** The HTTP services' figures by service, and the connections open to them. */
function httpStats(native) {
  const { services, openConnections } = native.httpStats()
  const byService = {}
  for (const { service, ...figures } of services) byService[service] = figures
  return { ...byService, openConnections }
}

/** Without a connection string: the project's REST API answering (any status below 500). */
async function restHealth() {
  if (projectUrl === null) {
    return { healthy: false, message: 'Database unhealthy: neither DATABASE_URL nor SUPABASE_URL is set', responseTime: null }
  }
  const started = performance.now()
  try {
    const response = await /** @type {any} */ (adminClient).rest.fetch(`${projectUrl.replace(/\/+$/, '')}/rest/v1/`, { method: 'HEAD' })
    const ms = performance.now() - started
    if (response.status >= 500) return { healthy: false, message: `Database unhealthy: the REST API answered ${response.status}`, responseTime: null }
    return { healthy: true, message: `Database healthy over REST (response time: ${Math.round(ms)}ms)`, responseTime: ms }
  } catch (err) {
    return { healthy: false, message: `Database unhealthy: ${err.message}`, responseTime: null }
  }
}

telemetryPools.database = () => current

module.exports = {
  /** The current native pool (created from the environment if none); for the monitoring router. */
  nativePool: pool,
  DatabasePool,
  DatabaseClient,
  createClient,
  supabaseAdmin: adminClient,
  supabase: anonClient,
  testConnection,
  checkDatabaseHealth,
}
