// The wire protocol in our hands (issue 24), as a backend meets it:
// - every way a password login gets in (trust, cleartext password, md5, SCRAM-SHA-256, SCRAM over
//   TLS with sslmode), on a server of its own with a self-signed certificate and one role per
//   method; a refused login is CONNECTION_FAILED naming the cause and never the password;
// - a user client's statement (role, claims and statement under one Sync) leaves nothing behind
//   on its connection, whether it fails or its set_config does;
// - behind the statement guard, the connection's own check of every ReadyForQuery: a raw BEGIN
//   that slips onto a shared connection takes none of the statements pipelined behind it.
import { ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { Client } from 'pg'
import { DatabasePool } from '..'
import { observer, rejectionOf, signToken, taggedUrl, uniqueName } from './helpers'
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { setTestFault } = require('../binding.js')

type User = { name: string; password: string }
type AuthServer = { port: number; users: Record<string, User>; rootCert: string; stored: { rolname: string; kind: string }[] }

describe('authentication and TLS, on a server of their own', () => {
  let child: ChildProcess
  let server: AuthServer

  beforeAll(async () => {
    child = spawn(process.execPath, [path.join(__dirname, 'setup', 'auth-postgres.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines = createInterface({ input: child.stdout! })
    for (;;) {
      const [line] = (await once(lines, 'line')) as [string]
      if (line.startsWith('ready ')) {
        server = JSON.parse(line.slice(6))
        break
      }
    }
  }, 90_000)

  afterAll(async () => {
    await DatabasePool.close()
    child.stdin!.end()
    await once(child, 'exit')
  })

  const urlOf = (user: User, query: string, password = user.password) =>
    `postgres://${user.name}:${encodeURIComponent(password)}@127.0.0.1:${server.port}/postgres?${query}`

  /** Who the session is, and whether it is encrypted, as the server sees it. */
  async function sessionOf(connectionString: string) {
    DatabasePool.initialize({ connectionString, minConnections: 0, maxConnections: 2, connectionTimeout: 5000, maxRetries: 0 })
    const { rows } = await DatabasePool.getAdminClient().query(
      'select current_user as who, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as tls',
    )
    return rows[0]
  }

  test('the roles hold passwords in the form their method needs', () => {
    const kind = Object.fromEntries(server.stored.map((r) => [r.rolname, r.kind]))
    expect(kind.cp_md5).toMatch(/^md5/)
    expect(kind.cp_scram).toMatch(/^SCRAM-SHA-256/)
  })

  test.each(['trust', 'password', 'md5', 'scram'])('a %s login gets in', async (method) => {
    const user = server.users[method]
    await expect(sessionOf(urlOf(user, 'sslmode=disable'))).resolves.toEqual({ who: user.name, tls: false })
  })

  test('SCRAM over TLS with sslmode=require (channel binding offered), and prefer takes TLS when the server has it', async () => {
    const user = server.users.tls
    await expect(sessionOf(urlOf(user, 'sslmode=require'))).resolves.toEqual({ who: user.name, tls: true })
    await expect(sessionOf(urlOf(server.users.scram, 'sslmode=prefer'))).resolves.toEqual({ who: 'cp_scram', tls: true })
  })

  test('verify-full checks the certificate against sslrootcert and the host name', async () => {
    const user = server.users.tls
    const root = `sslmode=verify-full&sslrootcert=${encodeURIComponent(server.rootCert)}`
    await expect(sessionOf(urlOf(user, root))).resolves.toEqual({ who: user.name, tls: true })
    // Without that root, the self-signed certificate is nobody's: refused, and said why.
    const err = await rejectionOf(sessionOf(urlOf(user, 'sslmode=verify-full')))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.message).toMatch(/TLS handshake with 127\.0\.0\.1 failed: .*certificate/)
  })

  test('a role that pg_hba.conf admits only over TLS is refused in plain text, with the server\'s reason', async () => {
    const err = await rejectionOf(sessionOf(urlOf(server.users.tls, 'sslmode=disable')))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.message).toMatch(/pg_hba\.conf rejects connection .*"cp_tls"/)
    expect(err.message).not.toContain(server.users.tls.password)
  })

  test.each(['password', 'md5', 'scram', 'tls'])('a wrong %s password is CONNECTION_FAILED naming the cause, never the password', async (method) => {
    const user = server.users[method]
    const wrong = `Wrong-${method}-Pw-77`
    const err = await rejectionOf(sessionOf(urlOf(user, method === 'tls' ? 'sslmode=require' : 'sslmode=disable', wrong)))
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.message).toContain(`authentication failed: password authentication failed for user "${user.name}" (28P01)`)
    const everything = JSON.stringify([err.message, DatabasePool.getPoolConfig(), DatabasePool.getStats()])
    expect(everything).not.toContain(wrong)
    expect(everything).not.toContain(user.password)
  })
})

describe('a user client\'s statement, under one Sync', () => {
  const schema = uniqueName('cp_wire')
  const secret = 'wire-spec-jwt-secret-with-32-characters!!'
  const now = () => Math.floor(Date.now() / 1000)
  const token = (role: string, sub: string) => signToken({ sub, role, exp: now() + 600 }, secret)

  beforeAll(async () => {
    DatabasePool.initialize({
      connectionString: taggedUrl(uniqueName('cp_wire')),
      // One connection: the statement after a failed one runs on the same session.
      maxConnections: 1,
      minConnections: 0,
      pipelineDepth: 64,
      jwtSecret: secret,
      allowedRoles: ['anon', 'authenticated', 'cp_wire_missing_role'],
    })
    const admin = DatabasePool.getAdminClient()
    await admin.query(`create schema ${schema}`)
    await admin.query(`grant usage on schema ${schema} to authenticated`)
    await admin.query(`create table ${schema}.t as select g as id from generate_series(1, 5) g`)
    await admin.query(`grant select on ${schema}.t to authenticated`)
  })

  afterAll(async () => {
    await DatabasePool.getAdminClient().query(`drop schema ${schema} cascade`)
    await DatabasePool.close()
  })

  const sessionState = async () =>
    (await DatabasePool.getAdminClient().query(
      "select current_user as who, coalesce(current_setting('request.jwt.claims', true), '') as claims, pg_backend_pid() as pid",
    )).rows[0]

  test('a statement that fails (at its start or after some rows) leaves the default role and no claims for the next caller', async () => {
    const before = await sessionState()
    const user = DatabasePool.getUserClient({ accessToken: token('authenticated', 'user-1') })
    const { rows } = await user.query("select current_user as who, current_setting('request.jwt.claims', true)::json ->> 'sub' as sub")
    expect(rows[0]).toEqual({ who: 'authenticated', sub: 'user-1' })
    for (const failing of [
      'select 1 / 0',
      // Rows first, then the error: the implicit transaction still rolls back.
      `select 10 / (id - 3) from ${schema}.t order by id`,
    ]) {
      const err = await rejectionOf(user.query(failing))
      expect(err.code).toBe('22012')
      expect(await sessionState()).toEqual({ ...before, claims: '' })
    }
  })

  test('a set_config that fails fails its own caller only; the statements pipelined beside it run as their own callers', async () => {
    const before = await sessionState()
    const missing = DatabasePool.getUserClient({ accessToken: token('cp_wire_missing_role', 'ghost') })
    const user = DatabasePool.getUserClient({ accessToken: token('authenticated', 'user-2') })
    const admin = DatabasePool.getAdminClient()
    const settled = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => {
        const client = [missing, user, admin][i % 3]
        return client.query("select current_user as who, nullif(current_setting('request.jwt.claims', true), '')::json ->> 'sub' as sub, $1::int as i", [i])
      }),
    )
    settled.forEach((outcome, i) => {
      if (outcome.status === 'rejected' && i % 3 !== 0) throw outcome.reason
      if (i % 3 === 0) {
        expect(outcome.status).toBe('rejected')
        expect((outcome as PromiseRejectedResult).reason.code).toBe('22023')
      } else {
        const expected = i % 3 === 1 ? { who: 'authenticated', sub: 'user-2', i } : { who: before.who, sub: null, i }
        expect(outcome).toMatchObject({ status: 'fulfilled', value: { rows: [expected] } })
      }
    })
    expect(await sessionState()).toEqual({ ...before, claims: '' })
  })
})

describe('a raw BEGIN on a shared connection, with the statement guard switched off', () => {
  const table = uniqueName('cp_wire_begin')
  let watcher: Client

  beforeAll(async () => {
    watcher = await observer()
    DatabasePool.initialize({
      connectionString: taggedUrl(uniqueName('cp_wire_begin')),
      maxConnections: 2,
      minConnections: 0,
      pipelineDepth: 64,
    })
    const admin = DatabasePool.getAdminClient()
    await admin.query(`create table ${table} (id int not null, caller int not null)`)
    await admin.query(`create sequence ${table}_tries`)
  })

  afterAll(async () => {
    setTestFault([])
    await watcher.end()
    const admin = DatabasePool.getAdminClient()
    await admin.query(`drop table ${table}`)
    await admin.query(`drop sequence ${table}_tries`)
    await DatabasePool.close()
  })

  test('every insert reported done is there afterwards, once; the ones that ran inside the BEGIN were rolled back and ran again', async () => {
    const admin = DatabasePool.getAdminClient()
    // Whether an insert lands behind the BEGIN before the connection reads the BEGIN's answer is a
    // race the spec does not control: rounds go on (all checked) until at least one had some.
    let rolledBackAndRetried = 0
    for (let round = 0; round < 5 || (rolledBackAndRetried === 0 && round < 60); round++) {
      await admin.query(`delete from ${table}`)
      const triesBefore = Number((await admin.query(`select nextval('${table}_tries') as n`)).rows[0].n)
      setTestFault(['no-statement-guard'])
      let outcomes: PromiseSettledResult<any>[]
      try {
        // All 50 submitted in one turn: the BEGIN first, the 49 inserts pipelined behind it.
        outcomes = await Promise.allSettled([
          admin.query('begin'),
          ...Array.from({ length: 49 }, (_, i) =>
            admin.query(`insert into ${table} (id, caller) values ($1, nextval('${table}_tries'))`, [i]),
          ),
        ])
      } finally {
        setTestFault([])
      }
      const [begin, ...inserts] = outcomes
      expect(begin.status).toBe('rejected')
      expect((begin as PromiseRejectedResult).reason.code).toBe('STATEMENT_REFUSED')
      expect((begin as PromiseRejectedResult).reason.message).toMatch(/left its connection inside a transaction; it was rolled back/)
      const done = inserts.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []))
      expect(done).toEqual(Array.from({ length: 49 }, (_, i) => i))
      const { rows } = await admin.query(`select id, count(*)::int as n from ${table} where id >= 0 group by id order by id`)
      expect(rows).toEqual(done.map((id) => ({ id, n: 1 })))
      // The sequence is not transactional: an insert that ran inside the BEGIN's transaction
      // (then rolled back) and ran again took two numbers.
      const tries = Number((await admin.query(`select nextval('${table}_tries') as n`)).rows[0].n) - triesBefore - 1
      rolledBackAndRetried += tries - 49
      // The pool is usable after, outside any transaction: a write is seen by another session.
      await admin.query(`insert into ${table} (id, caller) values (-1, -1)`)
      const seen = await watcher.query(`select count(*)::int as n from ${table} where id = -1`)
      expect(seen.rows).toEqual([{ n: 1 }])
    }
    // The point of the spec: inserts did land inside the BEGIN's transaction, and were rolled back.
    expect(rolledBackAndRetried).toBeGreaterThan(0)
  })

  test('COPY FROM STDIN is refused by the guard; slipped past it, the connection ends the copy and the statements beside it are answered right', async () => {
    const admin = DatabasePool.getAdminClient()
    const refused = await rejectionOf(admin.query(`copy ${table} from stdin`))
    expect(refused.code).toBe('STATEMENT_REFUSED')
    setTestFault(['no-statement-guard'])
    let outcomes: PromiseSettledResult<any>[]
    try {
      outcomes = await Promise.allSettled([
        admin.query(`copy ${table} from stdin`),
        ...Array.from({ length: 20 }, (_, i) => admin.query('select $1::int as i', [i])),
      ])
    } finally {
      setTestFault([])
    }
    const [copy, ...selects] = outcomes
    expect(copy).toMatchObject({ status: 'rejected', reason: { code: 'STATEMENT_REFUSED' } })
    selects.forEach((outcome, i) => expect(outcome).toMatchObject({ status: 'fulfilled', value: { rows: [{ i }] } }))
    await expect(admin.query('select 7 as seven')).resolves.toMatchObject({ rows: [{ seven: 7 }] })
  })
})
