import type { PostgrestClient } from '@supabase/postgrest-js'

// Types for connection-pools. Hand-written for the JS facade in index.js; the native binding's
// generated types are in binding.d.ts.

/** Options of `DatabasePool.initialize()`. Every field is optional. */
export interface DatabasePoolConfig {
  /** Most connections the pool opens. Default 20. Whole number, 1 to 10000. */
  maxConnections?: number
  /** Connections kept open once the pool is in use. Default 5 (capped at maxConnections). */
  minConnections?: number
  /**
   * Milliseconds a statement may wait for a connection, retries included; then it rejects with
   * `POOL_TIMEOUT` (all connections busy) or `CONNECTION_FAILED` (none could be opened).
   * Also bounds `healthCheck()`. Default 30000 ms.
   */
  connectionTimeout?: number
  /** Milliseconds an idle connection above `minConnections` lives. 0 keeps them. Default 60000 ms. */
  idleTimeout?: number
  /**
   * Retries of a statement that failed on a broken connection and provably did not run
   * (never an SQL error, never a statement that may have run). Default 3.
   */
  maxRetries?: number
  /** Milliseconds before the second retry, doubling after; the first retry is immediate. Default 1000 ms. */
  retryDelay?: number
  /**
   * Most statements in flight on one connection at once: statements from many callers share a
   * connection (pipelined, each still its own implicit transaction). 1 turns pipelining off.
   * Default 8.
   */
  pipelineDepth?: number
  /**
   * Milliseconds a statement may run; past it the statement is cancelled on the server and the
   * caller gets `STATEMENT_TIMEOUT`. A connection that does not answer within
   * `connectionTimeout` after the cancel (a network that stopped forwarding) is discarded.
   * 0 = no limit. Default 60000.
   */
  statementTimeout?: number
  /**
   * What is between the pool and Postgres. `'transaction'` (PgBouncer `pool_mode = transaction`,
   * Supavisor on port 6543): no named statements, each statement in one flight with its
   * parameters typed by the server. `'session'` / `'none'`: statements prepared and cached per
   * connection. Default: `'transaction'` when the URL has port 6543 or `pgbouncer=true`,
   * else `'none'`.
   */
  pooler?: 'transaction' | 'session' | 'none'
  /** TCP keepalive on every connection (30 s idle, then every 10 s, 3 probes). Default true. */
  keepAlive?: boolean
  /** `postgres://user:password@host:port/database`. Default: env `DATABASE_URL`. */
  connectionString?: string
  /** Role of the anonymous user client (row-level security applies). Default `'anon'`. */
  anonRole?: string
  /** Role for verified tokens without a `role` claim. Default `'authenticated'`. */
  authenticatedRole?: string
  /**
   * Supabase's legacy shared secret: user tokens signed with HS256 are verified with it (and
   * only with it). Default: env `SUPABASE_JWT_SECRET`. May be set together with `jwksUrl`.
   */
  jwtSecret?: string
  /**
   * Where Supabase's asymmetric signing keys are published (a JWKS document): user tokens signed
   * with ES256, RS256 (or whatever each key declares) are verified by their `kid` against it.
   * Default: env `SUPABASE_JWKS_URL`, else `<env SUPABASE_URL>/auth/v1/.well-known/jwks.json`.
   * `https://` only (`http://` on loopback). Fetched on the first token that needs it, with a
   * timeout of 5 s (or `connectionTimeout` if shorter); cached for its `Cache-Control: max-age`
   * (60 s to 1 h; 10 min without one); fetched again early when a token names an unknown kid, at
   * most once every 30 s. The admin client never uses it.
   */
  jwksUrl?: string
  /**
   * The roles a verified token's `role` claim may name; any other is refused with
   * `INVALID_TOKEN`. The login role of a connection string is often a superuser, so without this
   * a validly signed token could claim `postgres`. Replaces the default list, which is
   * `[anonRole, authenticatedRole, 'service_role']`.
   */
  allowedRoles?: string[]
  /**
   * The schemas the builder (`from`, `rpc`, `schema()`) may reach, as PostgREST's `db-schemas`;
   * the first is the default. Others answer PGRST106 (406). Default `['public']`.
   */
  schemas?: string[]
  /**
   * The builder answers `explain()` with the statement's plan, as PostgREST's `db-plan-enabled`.
   * Default `false`: a plan describes tables and indexes to whoever asks, so explain() answers
   * PGRST107 (406) unless this is on.
   */
  planEnabled?: boolean
  /**
   * Milliseconds a connection lives before it is retired, plus its own random jitter of up to
   * half again (so a fleet does not reconnect at once): past it the connection takes no new work
   * and closes as soon as its work is done, never mid-transaction; `minConnections` refills.
   * A DNS failover or a pooler's rebalance so reaches every connection. 0 = off.
   * Default 1800000 (30 minutes, retired between 30 and 45).
   */
  maxLifetime?: number
  /**
   * Milliseconds a transaction may stay open before it is reported as a likely leak: one
   * `'leak'` event (`DatabasePool.on`) and a process warning (code `CP_LEAK`) with its age and
   * the stack that began it, then a `'release'` event when it ends. The stack is captured only
   * while this is on; POOL_TIMEOUT messages then also show the oldest open transaction's stack.
   * 0 = off. Default 0.
   */
  leakDetectionThreshold?: number
  /**
   * `db.client.connection.pool.name` in OpenTelemetry metrics, spans and the channels' context.
   * Default `host:port/database` of the connection string (never the user or password).
   */
  poolName?: string
}

/** A likely leak: something held past `leakDetectionThreshold` ('leak' event). */
export interface LeakWarning {
  pool: 'database' | 'openai'
  /** A transaction (database), an `executeRequest` slot or a stream (openai). */
  kind: 'transaction' | 'slot' | 'stream'
  /** ms held so far. */
  ageMs: number
  thresholdMs: number
  /** The first frame outside connection-pools: where the caller took it. */
  site: string
  /** The stack captured when it was taken. */
  stack: string
}

/** A reported leak ended after all ('release' event). */
export interface LeakRelease {
  pool: 'database' | 'openai'
  kind: 'transaction' | 'slot' | 'stream'
  /** ms it was held in all. */
  heldMs: number
  site: string
}

/** The leaks in force now (`getLeaks()`): warned of, not released yet. */
export interface CurrentLeak {
  pool: 'database' | 'openai'
  kind: 'transaction' | 'slot' | 'stream'
  ageMs: number
  site: string
  stack: string
}

/** The effective configuration; the connection string's password is shown as `****`. */
export interface EffectiveDatabasePoolConfig {
  maxConnections: number
  minConnections: number
  /** ms */
  connectionTimeout: number
  /** ms; 0 = idle connections are kept */
  idleTimeout: number
  maxRetries: number
  /** ms */
  retryDelay: number
  pipelineDepth: number
  /** ms; 0 = no limit */
  statementTimeout: number
  pooler: 'transaction' | 'session' | 'none'
  keepAlive: boolean
  /** With the password masked. */
  connectionString: string
  anonRole: string
  authenticatedRole: string
  /** null when no key set is configured. */
  jwksUrl: string | null
  allowedRoles: string[]
  /** Whether HS256 tokens can be verified; the secret itself is never shown. */
  jwtSecretConfigured: boolean
  schemas: string[]
  planEnabled: boolean
  /** ms before jitter; 0 = off */
  maxLifetime: number
  /** ms; 0 = off */
  leakDetectionThreshold: number
  poolName: string
  /** The first host and port, and the database: `server.address`, `server.port`, `db.namespace`. */
  serverAddress: string
  serverPort: number
  database: string
}

/** A cumulative histogram of durations. */
export interface TimeHistogram {
  count: number
  sumMs: number
  /** `[upper bound in ms, count in that bucket alone]`; the last bound is `Infinity`. */
  buckets: Array<[number, number]>
}

/** `DatabasePool.getStats()`. Gauges are live; counters cover every statement since the last reset. */
export interface ConnectionStats {
  /** Connections open right now (one still logging in is not counted yet). */
  totalConnections: number
  /** Connections checked out by a statement right now (`totalConnections - idleConnections`). */
  activeConnections: number
  /** Connections open and idle right now. */
  idleConnections: number
  /** Statements run since the last reset (health checks are not counted). */
  totalQueries: number
  successfulQueries: number
  failedQueries: number
  /** Mean ms per statement over the last 1000 statements, connection wait included. */
  averageResponseTime: number
  /** Epoch ms of the last statement's completion, or null. */
  lastQueryTime: number | null
  /** Median ms over the last 1000 statements. */
  p50ResponseTime: number
  /** 95th percentile ms over the last 1000 statements. */
  p95ResponseTime: number
  /** 99th percentile ms over the last 1000 statements. */
  p99ResponseTime: number
  /** Panics caught at the native boundary in this process (each answered `INTERNAL`; please report one). */
  internalErrors: number
  /** Statements waiting for a connection right now. */
  waitingRequests: number
  /** Statements that gave up waiting for a connection (connectionTimeout) since the last reset. */
  acquireTimeouts: number
  /** From asking for a place on a connection to getting one, since the last reset. */
  waitTime: TimeHistogram
  /** From getting a place on a connection to giving it back, since the last reset. */
  useTime: TimeHistogram
  /** The Supabase HTTP services (Auth, Storage, Functions, REST without a connection string). */
  http: HttpServiceStats
}

/** One Supabase HTTP service's figures since the last reset. */
export interface ServiceStats {
  requests: number
  /** Transport errors, timeouts and 5xx answers. */
  failures: number
  inFlight: number
  /** ms over the last 1000 requests. */
  averageResponseTime: number
  p50ResponseTime: number
  p95ResponseTime: number
  p99ResponseTime: number
}

export interface HttpServiceStats {
  rest: ServiceStats
  auth: ServiceStats
  storage: ServiceStats
  functions: ServiceStats
  /** TCP connections open to the project now (at most `maxConnections`). */
  openConnections: number
}

export interface HealthCheckResult {
  healthy: boolean
  /** e.g. `Database healthy (response time: 3ms)` or `Database unhealthy: ...` */
  message: string
  /** Stats at the time of the check; null when the pool could not even be configured. */
  stats: ConnectionStats | null
  /** ms the probe took, or null when it failed. */
  responseTime: number | null
}

/** A row as JSON-compatible values; see README "Type mapping". */
export type Row = Record<string, any>

export interface QueryResult<R extends Row = Row> {
  rows: R[]
  /** Rows returned (SELECT) or affected (INSERT/UPDATE/DELETE). */
  rowCount: number
}

/** A value that can be bound to `$n`. */
export type QueryParam =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Date
  | Uint8Array
  | QueryParam[]
  | { [key: string]: unknown }

/**
 * The builder's entry points are postgrest-js's own (`from`, `rpc`, `schema`), so their types
 * are too: give a client the `Database` type that `supabase gen types typescript` writes and
 * rows, embedded resources and `single()` are typed as with `createClient<Database>()`.
 */
export type SupabaseBuilder<Database = any> = Pick<PostgrestClient<Database>, 'from' | 'rpc' | 'schema'>

import type { SupabaseClient, SupabaseClientOptions } from '@supabase/supabase-js'
import type OpenAI from 'openai'

export type { SupabaseClient, SupabaseClientOptions } from '@supabase/supabase-js'

export type {
  PostgrestResponse,
  PostgrestSingleResponse,
  PostgrestMaybeSingleResponse,
  PostgrestFilterBuilder,
  PostgrestQueryBuilder,
  PostgrestClient,
} from '@supabase/postgrest-js'

/**
 * A client bound to an identity. Every call goes to the current pool.
 * `admin` runs as the login role; `anon` and `user` run each statement in a transaction as their
 * role with `request.jwt.claims` set (row-level security applies), as PostgREST does.
 */
/** What a transaction's callback can do: the statement and builder calls of a client. */
export interface TransactionClient<Database = any> extends SupabaseBuilder<Database> {
  /**
   * Runs one statement inside the transaction. A failed statement aborts the transaction: it
   * is rolled back when the callback ends, and `transaction()` rejects (with the callback's
   * error, or with 25P02 if the callback caught the failure and went on).
   * `COMMIT`/`ROLLBACK`/`END`/`ABORT` are refused (`STATEMENT_REFUSED`, and the transaction then
   * rolls back): the callback's outcome ends it. Savepoints work; settings must be `SET LOCAL`
   * (or `set_config(…, true)`); temporary objects are dropped before it commits.
   */
  query<R extends Row = Row>(sql: string, params?: QueryParam[] | null): Promise<QueryResult<R>>
}

export interface TransactionOptions {
  /** Default: the server's (normally `'read committed'`). */
  isolationLevel?: 'read committed' | 'repeatable read' | 'serializable'
  /** `BEGIN READ ONLY`: writes fail with 25006. Default false. */
  readOnly?: boolean
}

/**
 * What this library adds to a supabase-js client: raw SQL and transactions, as the client's
 * identity, over the Postgres pool (they need a connection string: without one they reject with
 * `INVALID_CONFIG`).
 */
export interface DatabaseClientExtras<Database = any> {
  readonly kind: 'admin' | 'anon' | 'user'
  /**
   * Runs one statement; parameters are bound ($1, $2, ...), never interpolated.
   * Rejects with a `DatabaseError` (code = SQLSTATE) or a `ConnectionPoolError`.
   * Statements that would change a pooled connection's transaction or session state (`BEGIN`,
   * `SET`, `set_config(…, false)`, `LISTEN`, `COPY … FROM STDIN`, …), and on a user client a
   * change of role or claims, are refused with `STATEMENT_REFUSED` before they are sent; the
   * connection also checks every answer's transaction status, and a statement that still left it
   * inside a transaction is `STATEMENT_REFUSED` and rolled back (statements pipelined behind it,
   * rolled back with it, run again elsewhere). A parameter nested deeper than 32 arrays, cyclic,
   * or past 10 million elements or 1 GB in all is `INVALID_ARGUMENT`. A reply of more than 8 rows
   * is built from packed columns: its strings are slices of one string, so holding one of them
   * keeps that reply's text alive, as `substring` does.
   */
  query<R extends Row = Row>(sql: string, params?: QueryParam[] | null): Promise<QueryResult<R>>
  /**
   * Runs `fn` in a transaction on one connection, as this client's identity (a user client's
   * role and claims are set once, for the whole transaction, so RLS applies as that user).
   * Commits when `fn` resolves and resolves to its result; rolls back when it throws (and
   * rejects with that error) or when a statement in it failed (25P02). Waits for a connection
   * at most `connectionTimeout`, and never behind more than one pipeline's flight.
   */
  transaction<T>(fn: (tx: TransactionClient<Database>) => Promise<T> | T, options?: TransactionOptions): Promise<Awaited<T>>
}

/**
 * A supabase-js `SupabaseClient` (every method: `from`, `rpc`, `schema`, `auth` with
 * `auth.admin`, `storage`, `functions`, `channel`), its requests carried by the pools, with
 * `query()` and `transaction()` beside. `from()`/`rpc()` run in-process over the Postgres pool
 * when a connection string is configured (PostgREST's semantics, as the identity of the
 * client's key or token), else over HTTP to the project's REST API; Auth, Storage and Functions
 * go through the keep-alive HTTP pool. Realtime's websockets are not pooled.
 */
export type DatabaseClient<Database = any> = SupabaseClient<Database> & DatabaseClientExtras<Database>

/**
 * supabase-js's `createClient` with the pools underneath (server-side auth settings unless
 * `options.auth` says otherwise: no session persisted, no auto refresh). With
 * `global.headers.Authorization: 'Bearer <user jwt>'` its REST runs under that user's RLS over the
 * pool, and `query()`/`transaction()` as that user too. `url` defaults to env `SUPABASE_URL`.
 */
export declare function createClient<Database = any>(
  url: string | undefined,
  key: string,
  options?: SupabaseClientOptions<any>,
): DatabaseClient<Database>

export declare class DatabasePool {
  /**
   * Validates `config` (throws `INVALID_CONFIG`) and replaces the current pool. Opens no
   * connection. The old pool runs every statement it accepted (queued ones included) and lets
   * its open transactions end, then closes; new statements go to the new pool.
   */
  static initialize(config?: DatabasePoolConfig): void
  /**
   * The admin client (a singleton, the same object as `supabaseAdmin`): a supabase-js client with
   * the service-role key (env `SUPABASE_SERVICE_ROLE_KEY`); its REST and SQL run as the
   * connection string's login role.
   */
  static getAdminClient<Database = any>(): DatabaseClient<Database>
  // (The same singleton as `supabaseAdmin`: `getAdminClient<Database>()` is its typed form.)
  /**
   * No options: the anonymous client (a singleton, role `anonRole`). `{ accessToken }`: a client
   * for that user. The JWT is verified now when its key is at hand (HS256 with `jwtSecret`, or a
   * cached signing key from `jwksUrl`), and a bad, tampered, expired or disallowed-role token
   * throws `INVALID_TOKEN`. A token whose signing key must first be fetched is verified before
   * the client's first statement; that statement then rejects with `INVALID_TOKEN` (builder:
   * `PGRST301`, status 401) if the token fails.
   */
  static getUserClient<Database = any>(options?: { accessToken?: string }): DatabaseClient<Database>
  // A user client is a supabase-js client with the anon key (env `SUPABASE_ANON_KEY`) and the
  // user's token as its Authorization, as Supabase documents for a per-request client.
  /**
   * Runs `fn` and returns its result. Statements inside are retried by the pool when they
   * provably did not run; `fn` itself is never re-run. `isAdmin` is the seed's argument, accepted
   * and ignored: `fn` picks its client itself.
   */
  static executeQuery<T>(fn: () => T, isAdmin?: boolean): Promise<Awaited<T>>
  static getStats(): ConnectionStats
  static getPoolConfig(): EffectiveDatabasePoolConfig
  /** Zeroes counters and the latency window; connection gauges stay live. */
  static resetStats(): void
  /**
   * Forgets the builder's schema cache (foreign keys for embedding, functions' return kinds),
   * read from the catalog on first use, as PostgREST's schema cache; call it after a migration.
   */
  static reloadSchema(): void
  /**
   * Never rejects; resolves within `connectionTimeout`. Without a connection string it asks the
   * project's REST API instead (healthy when it answers below 500, within `httpTimeout`).
   */
  static healthCheck(): Promise<HealthCheckResult>
  /** Drains and closes; later statements reject with `POOL_CLOSED` until `initialize()`. */
  /** Leak detection's events (option `leakDetectionThreshold`). */
  static on(event: 'leak', listener: (leak: LeakWarning) => void): typeof DatabasePool
  static on(event: 'release', listener: (release: LeakRelease) => void): typeof DatabasePool
  static off(event: 'leak' | 'release', listener: (...args: any[]) => void): typeof DatabasePool
  /** Transactions open past `leakDetectionThreshold` right now. */
  static getLeaks(): CurrentLeak[]
  static close(): Promise<void>
}

/** Codes of errors the library raises itself. Database errors carry a SQLSTATE instead. */
export type ConnectionPoolErrorCode =
  | 'INVALID_CONFIG'
  | 'INVALID_ARGUMENT'
  | 'POOL_TIMEOUT'
  | 'POOL_CLOSED'
  /**
   * No connection could be opened, or one was lost with a statement's outcome unknown. The
   * message names the step that failed (the name lookup, the TCP connect, TLS, authentication,
   * the server's refusal) with the server's words and SQLSTATE when it sent them (a wrong
   * password: `authentication failed: password authentication failed for user "app" (28P01)`),
   * never the password.
   */
  | 'CONNECTION_FAILED'
  | 'INVALID_TOKEN'
  | 'UNSUPPORTED_TYPE'
  | 'STATEMENT_TIMEOUT'
  /**
   * A raw statement refused before it was sent: transaction control outside `transaction()` (or
   * `COMMIT`/`ROLLBACK` inside it), a session setting (`SET`, `RESET`, `set_config(…, false)`),
   * `LISTEN`, `PREPARE`/`DEALLOCATE`/`DISCARD`, `COPY … FROM STDIN`/`TO STDOUT`, temporary
   * objects outside `transaction()`, or, on a user client, a change of role or JWT claims. The
   * message names the alternative. Also a statement that, past those checks, left its shared
   * connection inside a transaction: it was rolled back.
   */
  | 'STATEMENT_REFUSED'
  | 'MISSING_DEPENDENCY'
  /**
   * The OpenAI pool's own refusals, the `cause` of the SDK's `APIConnectionError` (a failed
   * fetch): the queue is full (`maxQueueSize`), the call's `timeout` passed, a success whose body
   * is not the JSON asked for (a proxy's HTML page). A request the pool cannot send (a bad URL or
   * header, an unknown priority) is `INVALID_ARGUMENT`; a connection that fails,
   * `CONNECTION_FAILED`, as for Postgres and Supabase's services. An aborted fetch rejects with
   * the platform's `AbortError`, as fetch does.
   */
  | 'QUEUE_FULL'
  | 'TIMEOUT'
  | 'INVALID_RESPONSE'
  /** The client `executeRequest` gave its callback, used after the callback finished. */
  | 'SLOT_RELEASED'
  /** A bug in this library (a caught panic); counted in `internalErrors` of the stats. */
  | 'INTERNAL'

export declare class ConnectionPoolError extends Error {
  readonly name: 'ConnectionPoolError'
  readonly code: ConnectionPoolErrorCode
}

/** An error Postgres reported (or would have reported, for a parameter that does not fit its type). */
export declare class DatabaseError extends Error {
  readonly name: 'DatabaseError'
  /** SQLSTATE, e.g. `23505`. */
  readonly code: string
  readonly detail?: string
  readonly hint?: string
  /** 1-based character position in the SQL. */
  readonly position?: number
  readonly schema?: string
  readonly table?: string
  readonly column?: string
  readonly constraint?: string
  readonly severity?: string
}

/** Thrown by `throwOnError()`: postgrest-js's own class. */
export { PostgrestError } from '@supabase/postgrest-js'

/** The seed's admin client export (database.ts). */
export declare const supabaseAdmin: DatabaseClient
/** The seed's user client export (database.ts). */
export declare const supabase: DatabaseClient
/** Resolves true when the database answers a statement. Never rejects. */
export declare function testConnection(): Promise<boolean>
/** The same answer as `DatabasePool.healthCheck()`. */
export declare function checkDatabaseHealth(): Promise<HealthCheckResult>

/** Options of `OpenAIPool.initialize()`. Every field is optional. */
export interface OpenAIPoolConfig {
  /** Requests in flight at once, process-wide; the rest queue first come, first served. Default 10. */
  maxConcurrentRequests?: number
  /** Milliseconds one HTTP attempt may take. Default 60000 ms. */
  requestTimeout?: number
  /** Retries of 408/409/429/5xx, connection errors and timeouts (never 400/401/403/404/422, never insufficient_quota). Default 3. */
  maxRetries?: number
  /** Base of the exponential backoff when the server gives no retry-after. Default 1000 ms. */
  retryDelay?: number
  /** Milliseconds the whole call may take: queue wait, attempts and backoff. Default 60000 ms. */
  timeout?: number
  /** Default: env `OPENAI_API_KEY`. Never shown by getPoolConfig(), stats or errors. */
  apiKey?: string
  /** Default: env `OPENAI_BASE_URL`, else `https://api.openai.com/v1`. */
  baseURL?: string
  organization?: string
  project?: string
  /** Callers allowed to wait; beyond it calls reject with `QUEUE_FULL`. Default: unbounded. */
  maxQueueSize?: number
  /** Requests sent per minute (a sliding window), at most; the rest wait (within `timeout`). Default: none. */
  requestsPerMinute?: number
  /**
   * Tokens per minute (a sliding window), at most: each request's tokens are estimated before it
   * is sent (the model's tokenizer, plus `max_completion_tokens`/`max_tokens` × `n`) and
   * corrected with the response's `usage`; a request that does not fit waits. Default: none.
   */
  tokensPerMinute?: number
  /** The budgets' window in ms. Default 60000 (a minute); shorter only for tests. */
  rateLimitWindowMs?: number
  /** Every this many ms a request waits, it ranks one priority higher (no starvation). Default 10000; 0 = never. */
  priorityAgingMs?: number
  /**
   * A Redis (`redis://`, `rediss://`) through which `maxConcurrentRequests`, the budgets and the
   * rate-limit pauses are shared by every process using the same `limitKey`. Without it the limits
   * are this process's. Default: env `CONNECTION_POOLS_REDIS_URL`. Never shown.
   */
  redisUrl?: string
  /** Default `'connection-pools:openai'`. */
  limitKey?: string
  /** A shared slot's expiry in ms, renewed while its request runs. Default 15000. */
  leaseMs?: number
  /**
   * Milliseconds an `executeRequest` slot or a stream may stay open before it is reported as a
   * likely leak: one `'leak'` event (`OpenAIPool.on`) and a process warning (code `CP_LEAK`)
   * with the stack that took it, then a `'release'` event when it ends. 0 = off. Default 0.
   */
  leakDetectionThreshold?: number
}

/** A request's place in the queue: `'high'` first, FIFO within a priority, aging lifts waiters. */
export type RequestPriority = 'high' | 'normal' | 'low'

export interface RequestOptions {
  priority?: RequestPriority
}

export interface EffectiveOpenAIPoolConfig {
  maxConcurrentRequests: number
  /** ms */
  requestTimeout: number
  maxRetries: number
  /** ms */
  retryDelay: number
  /** ms */
  timeout: number
  baseURL: string
  organization: string | null
  project: string | null
  maxQueueSize: number | null
  requestsPerMinute: number | null
  tokensPerMinute: number | null
  /** ms */
  rateLimitWindowMs: number
  /** ms */
  priorityAgingMs: number
  /** The Redis key prefix of the shared limits; null without `redisUrl` (the URL itself is never shown). */
  limitKey: string | null
  /** ms; null without `redisUrl` */
  leaseMs: number | null
  /** ms; 0 = off */
  leakDetectionThreshold: number
  /** Whether an API key is configured (the key itself is never shown). */
  hasApiKey: boolean
}

/** The latest `x-ratelimit-*` values (null until seen); resets in milliseconds. */
export interface RateLimitStatus {
  limitRequests: number | null
  remainingRequests: number | null
  resetRequestsMs: number | null
  limitTokens: number | null
  remainingTokens: number | null
  resetTokensMs: number | null
}

export interface OpenAIStats {
  /** Calls since the last reset (a call counts once however many attempts it took). */
  totalRequests: number
  /** Requests holding a slot right now. */
  activeRequests: number
  successfulRequests: number
  failedRequests: number
  /** Every 429 received. */
  rateLimitedRequests: number
  /** ms per call over the last 1000 calls, queue wait and retries included. */
  averageResponseTime: number
  p50ResponseTime: number
  p95ResponseTime: number
  p99ResponseTime: number
  /** Mean `usage.total_tokens` of the calls that reported usage. */
  averageTokensUsed: number
  totalTokensUsed: number
  /** Extra attempts made. */
  retries: number
  /** Requests that ran under this process's own limits because Redis (`redisUrl`) could not be reached. */
  sharedLimitFallbacks: number
  /** Epoch ms of the last call, or null. */
  lastRequestTime: number | null
  /** Calls per model (from the request body's `model`, else executeRequest's). */
  requestsByModel: Record<string, number>
  rateLimit: RateLimitStatus
  /** Panics caught at the native boundary in this process (each answered `INTERNAL`; please report one). */
  internalErrors: number
}

export interface QueueStatus {
  /** Callers waiting for a slot right now. */
  queueLength: number
  /** Requests holding a slot right now. */
  activeRequests: number
  maxConcurrent: number
  /** Callers waiting per priority. */
  byPriority: { high: number; normal: number; low: number }
  /** ms until a rate-limit pause the API announced (remaining 0, or a 429) ends; 0 when none. */
  pausedForMs: number
}

/** The OpenAI client users hold: openai-node's own `OpenAI`. */
export type OpenAIClient = OpenAI

export declare class OpenAIPool {
  /**
   * Validates `config` (throws `INVALID_CONFIG`) and replaces the current pool; the old one runs
   * the calls it accepted (queued ones included), then closes.
   */
  static initialize(config?: OpenAIPoolConfig): void
  /** The client, a singleton (also exported as `openai`): an `OpenAI` of the openai package. */
  static getClient(): OpenAI
  /**
   * A `fetch` that hands requests to the pool: `new OpenAI({ apiKey, fetch: OpenAIPool.fetch,
   * maxRetries: 0 })` joins its queue and limits (keep `maxRetries: 0`: the pool retries).
   */
  static readonly fetch: typeof globalThis.fetch
  /**
   * Waits for a slot, runs `fn(client)` holding it (the client's requests use that slot: no
   * second wait), releases it however `fn` ends.
   */
  static executeRequest<T>(fn: (client: OpenAI) => T, model?: string | null, options?: RequestOptions): Promise<Awaited<T>>
  static getStats(): OpenAIStats
  static getPoolConfig(): EffectiveOpenAIPoolConfig
  static getQueueStatus(): QueueStatus
  static resetStats(): void
  /** Lists models with a short deadline; never rejects. */
  static healthCheck(): Promise<{ healthy: boolean; message: string; stats: OpenAIStats | null; responseTime: number | null }>
  /** Stops admitting, rejects queued calls with `POOL_CLOSED`, lets in-flight ones finish within `timeout`. */
  /** Leak detection's events (option `leakDetectionThreshold`). */
  static on(event: 'leak', listener: (leak: LeakWarning) => void): typeof OpenAIPool
  static on(event: 'release', listener: (release: LeakRelease) => void): typeof OpenAIPool
  static off(event: 'leak' | 'release', listener: (...args: any[]) => void): typeof OpenAIPool
  /** Slots and streams held past `leakDetectionThreshold` right now. */
  static getLeaks(): CurrentLeak[]
  static close(): Promise<void>
}

/**
 * The seed's openai.ts client export: an `OpenAI` of the `openai` package itself (every method:
 * responses, chat, embeddings, images, audio, files, batches, moderations, streams,
 * `.withResponse()`), each request carried by the pool: its queue and priorities
 * (`fetchOptions: { priority: 'high' | 'low' }`, RequestInit's own field), budgets, shared limits,
 * pauses, retries honouring `retry-after(-ms)` (the SDK's own retries are off) and accounting.
 * Errors are the SDK's own classes (`OpenAI.RateLimitError`, `APIError`, ...); the pool's own
 * refusals reach it as a failed fetch, an `APIConnectionError` (`APIConnectionTimeoutError` for
 * a timeout) whose `cause.code` is `QUEUE_FULL`, `POOL_CLOSED` or `TIMEOUT`.
 */
export declare const openai: OpenAI
/** Resolves true when the API answers a model list. Never rejects. */
export declare function testOpenAIConnection(): Promise<boolean>

// ---------------------------------------------------------------------------------------------
// Monitoring routes

/** An Express-compatible middleware: `(req, res, next) => void`. */
export type ConnectionsMiddleware = (req: any, res: any, next: (err?: unknown) => void) => unknown

export interface ConnectionsRouterOptions {
  /**
   * Your backend's own auth middleware. When given, it alone decides who gets in (call `next()`
   * to let a request through; answer or call `next(err)` to refuse). The dashboard page is a
   * browser navigation, so it is reachable only if this middleware accepts one (cookies, say).
   */
  authenticate?: ConnectionsMiddleware
  /**
   * The bearer token the routes require (`Authorization: Bearer <token>`), compared in constant
   * time. Default: env `CONNECTIONS_API_TOKEN`. `GET /dashboard` also accepts it once as
   * `?token=`; the page moves it out of the address bar and sends it as a header.
   * With neither `authenticate` nor a token, `createConnectionsRouter` throws `INVALID_CONFIG`.
   */
  token?: string
}

/**
 * The seed's monitoring routes for `app.use('/api/connections', createConnectionsRouter(...))`:
 * `GET /stats`, `GET /database/stats`, `GET /database/health`, `POST /database/reset-stats`,
 * `GET /openai/stats`, `GET /openai/health`, `GET /openai/queue`, `POST /openai/reset-stats`,
 * answering `{ success: true, data }` or `{ success: false, error: { message } }`; plus
 * `GET /metrics` (OpenMetrics text for Prometheus) and `GET /dashboard` (a live HTML page).
 * Needs `express` (a peer dependency) installed. Throws `INVALID_CONFIG` without auth.
 * The return value is an `express.Router` (typed here as the middleware it is, so that this
 * package's types do not need `@types/express`).
 */
export declare function createConnectionsRouter(options?: ConnectionsRouterOptions): ConnectionsMiddleware
