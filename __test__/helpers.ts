// Shared helpers for the specs: connection strings tagged with an application_name so that a
// spec can find its own pool's connections in pg_stat_activity, and an observer connection
// (node-postgres, a real peer client) that watches and disturbs the server from outside the pool.
import { Client } from 'pg'
import { createServer, Server } from 'node:net'

export function baseUrl(): string {
  const url = process.env.DATABASE_URL
  if (!url) throw new Error('DATABASE_URL is not set; global setup should have set it')
  return url
}

/** The test database URL with an application_name unique to the caller. */
export function taggedUrl(appName: string): string {
  const url = new URL(baseUrl())
  url.searchParams.set('application_name', appName)
  return url.toString()
}

/** The password in DATABASE_URL, if any, for leak checks. */
export function databasePassword(): string | null {
  const password = new URL(baseUrl()).password
  return password ? decodeURIComponent(password) : null
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
}

export async function observer(): Promise<Client> {
  const client = new Client({ connectionString: baseUrl(), application_name: 'cp_test_observer' })
  // A server shutting down sessions must fail the spec's assertions, not crash the worker.
  client.on('error', () => {})
  await client.connect()
  return client
}

export async function connectionsOf(observerClient: Client, appName: string): Promise<number> {
  const { rows } = await observerClient.query(
    'select count(*)::int as n from pg_stat_activity where application_name = $1',
    [appName],
  )
  return rows[0].n
}

/** Polls `check` until it returns true; fails after `timeoutMs`. For conditions with no event to await. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A TCP server that accepts connections and never answers: a database that hangs. */
export async function blackhole(): Promise<{ port: number; server: Server }> {
  const server = createServer(() => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { port: address.port, server }
}

/** A port on which nothing listens: connections are refused. */
export async function closedPort(): Promise<number> {
  const { port, server } = await blackhole()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Captures the rejection of a promise (fails the test if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected the promise to reject, but it resolved')
}

/** A tagged URL whose connections resolve unqualified names in `schema` first. */
export function urlWithSchema(appName: string, schema: string): string {
  const url = new URL(taggedUrl(appName))
  url.searchParams.set('options', `-c search_path=${schema},public`)
  return url.toString()
}

/** An HS256 JWT, signed with node's HMAC: what Supabase Auth hands a signed-in user. */
export function signToken(payload: Record<string, unknown>, secret: string): string {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { createHmac } = require('node:crypto') as typeof import('node:crypto')
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const body = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(payload)}`
  const signature = createHmac('sha256', secret).update(body).digest('base64url')
  return `${body}.${signature}`
}
