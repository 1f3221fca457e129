// A network path that stops answering but keeps its sockets open (a dead route, a frozen VM, a
// dropped NAT entry), modelled by a TCP proxy that stops reading from both sides: statements on
// the wire must settle with a typed code, health must say so in time, and once the path works
// again the pool serves with no connection left behind. Plus statementTimeout on a healthy path.
import { createConnection, createServer, Server, Socket } from 'node:net'
import { DatabasePool } from '..'
import { baseUrl, connectionsOf, eventually, observer, uniqueName } from './helpers'
import type { Client } from 'pg'

/** A proxy to the test database whose forwarding can be frozen and thawed. */
async function freezableProxy(): Promise<{ port: number; freeze(): void; thaw(): void; close(): Promise<void> }> {
  const target = new URL(baseUrl())
  const sockets = new Set<Socket>()
  let frozen = false
  const server: Server = createServer((client) => {
    const upstream = createConnection(Number(target.port || 5432), target.hostname)
    for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(from)
      if (frozen) from.pause()
      from.on('data', (chunk) => {
        if (!to.write(chunk)) from.pause()
      })
      to.on('drain', () => {
        if (!frozen) from.resume()
      })
      from.on('close', () => {
        sockets.delete(from)
        to.destroy()
      })
      from.on('error', () => to.destroy())
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return {
    port: address.port,
    // Nothing is read from either side any more: bytes wait in the kernel, sockets stay open.
    freeze() {
      frozen = true
      for (const socket of sockets) socket.pause()
    },
    thaw() {
      frozen = false
      for (const socket of sockets) socket.resume()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

const STATEMENT_TIMEOUT = 2000
const CONNECTION_TIMEOUT = 1500
let watcher: Client

beforeAll(async () => {
  watcher = await observer()
})
afterAll(async () => {
  await DatabasePool.close()
  await watcher.end()
})

test('a statement past statementTimeout is cancelled on the server with STATEMENT_TIMEOUT; the connection stays in service', async () => {
  const app = uniqueName('cp_stmt_timeout')
  const url = new URL(baseUrl())
  url.searchParams.set('application_name', app)
  DatabasePool.initialize({ connectionString: url.toString(), statementTimeout: 300, maxConnections: 1, minConnections: 0 })
  const client = DatabasePool.getAdminClient()
  const pid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid
  const err = await client.query('select pg_sleep(30)').catch((e) => e)
  expect(err.code).toBe('STATEMENT_TIMEOUT')
  expect(err.message).toContain('300 ms')
  // Cancelled on the server (not left running there), and the same connection serves on.
  const { rows } = await watcher.query("select count(*)::int as n from pg_stat_activity where application_name = $1 and query like 'select pg_sleep%' and state = 'active'", [app])
  expect(rows[0].n).toBe(0)
  expect((await client.query('select pg_backend_pid() as pid')).rows[0].pid).toBe(pid)
  expect(DatabasePool.getPoolConfig().statementTimeout).toBe(300)
})

test('statementTimeout: 0 turns the limit off', async () => {
  DatabasePool.initialize({ connectionString: baseUrl(), statementTimeout: 0, maxConnections: 1, minConnections: 0 })
  const { rows } = await DatabasePool.getAdminClient().query('select pg_sleep(0.4)::text as slept')
  expect(rows).toEqual([{ slept: '' }])
})

test('a frozen network: every pending call settles with a typed code, health says unhealthy, and after the thaw the pool serves with no leaked connection', async () => {
  const proxy = await freezableProxy()
  const app = uniqueName('cp_frozen')
  const url = new URL(baseUrl())
  url.hostname = '127.0.0.1'
  url.port = String(proxy.port)
  url.searchParams.set('application_name', app)
  DatabasePool.initialize({
    connectionString: url.toString(),
    statementTimeout: STATEMENT_TIMEOUT,
    connectionTimeout: CONNECTION_TIMEOUT,
    maxConnections: 4,
    minConnections: 0,
    maxRetries: 0,
  })
  const client = DatabasePool.getAdminClient()
  try {
    await Promise.all(Array.from({ length: 8 }, (_, i) => client.query('select $1::int as i', [i])))

    proxy.freeze()
    const started = Date.now()
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, async (_, i) => {
        try {
          await client.query('select $1::int as i', [i])
          return { code: 'OK', ms: Date.now() - started }
        } catch (err: any) {
          return { code: err.code, ms: Date.now() - started }
        }
      }),
    )
    const settled = outcomes.map((o) => (o as PromiseFulfilledResult<{ code: string; ms: number }>).value)
    // Each in flight on a frozen connection, or waiting for one, ends with a code of ours.
    for (const { code } of settled) expect(['STATEMENT_TIMEOUT', 'POOL_TIMEOUT', 'CONNECTION_FAILED']).toContain(code)
    expect(settled.some((s) => s.code === 'STATEMENT_TIMEOUT')).toBe(true)
    // The bound: statementTimeout + connectionTimeout + 1 s.
    expect(Math.max(...settled.map((s) => s.ms))).toBeLessThanOrEqual(STATEMENT_TIMEOUT + CONNECTION_TIMEOUT + 1000)

    const healthStarted = Date.now()
    const health = await DatabasePool.healthCheck()
    expect(health.healthy).toBe(false)
    expect(Date.now() - healthStarted).toBeLessThanOrEqual(CONNECTION_TIMEOUT + 1000)

    proxy.thaw()
    const thawed = Date.now()
    const { rows } = await client.query('select 42 as answer')
    expect(rows).toEqual([{ answer: 42 }])
    expect(Date.now() - thawed).toBeLessThanOrEqual(2000)

    // The frozen connections were discarded and closed: at most maxConnections remain on the
    // server, and the pool's gauges agree with themselves.
    await Promise.all(Array.from({ length: 20 }, (_, i) => client.query('select $1::int as i', [i])))
    await DatabasePool.close()
    const stillOpen = await connectionsOf(watcher, app)
    expect(stillOpen).toBeLessThanOrEqual(4)
  } finally {
    await DatabasePool.close()
    await proxy.close()
  }
  // Closing the pool ends every session it had; frozen ones end when the proxy lets go. (A login
  // the pool gave up on during the freeze can reach the server after the thaw and sit there in
  // state 'starting' until its authentication_timeout: it never became a session of the pool.)
  const sessions = async () =>
    (
      await watcher.query("select count(*)::int as n from pg_stat_activity where application_name = $1 and state is distinct from 'starting'", [app])
    ).rows[0].n
  await eventually(async () => (await sessions()) === 0, 10_000)
  expect(await sessions()).toBe(0)
})
