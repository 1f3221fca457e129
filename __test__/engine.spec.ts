// The pipelined engine: many callers' statements share connections, and yet every result and
// every failure reaches its own caller, no role or claim crosses to another statement, a slow
// statement does not hold up fast ones, transactions keep their guarantees, and the gauges say
// what is happening.
import { DatabasePool, DatabaseError, ConnectionPoolError } from '..'
import { connectionsOf, eventually, observer, signToken, taggedUrl, uniqueName, urlWithSchema } from './helpers'

const secret = 'engine-spec-secret-with-at-least-32-chars!!'
const now = () => Math.floor(Date.now() / 1000)

afterAll(() => DatabasePool.close())

test('10,000 statements from 200 callers over 5 connections: every result its own, failures only its own', async () => {
  const app = uniqueName('cp_pipe')
  const table = uniqueName('pipe_keys')
  DatabasePool.initialize({ connectionString: taggedUrl(app), maxConnections: 5, minConnections: 0 })
  const client = DatabasePool.getAdminClient()
  await client.query(`create table ${table} (k int primary key)`)
  await client.query(`insert into ${table} select -g from generate_series(1, 1000) g`)
  const watcher = await observer()
  let peakConnections = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      peakConnections = Math.max(peakConnections, await connectionsOf(watcher, app))
    }
  })()

  const outcomes = { right: 0, wrong: 0, failedAsPlanned: 0, failedOtherwise: 0 }
  const caller = async (c: number) => {
    for (let s = 0; s < 50; s++) {
      const n = c * 50 + s
      try {
        if (n % 20 === 0) {
          // A tenth fail on purpose: half divide by zero, half violate the unique key.
          await client.query('select $1::int / ($1::int - $1::int) as boom', [n])
          outcomes.wrong++
        } else if (n % 20 === 10) {
          await client.query(`insert into ${table} (k) values ($1)`, [-((n % 1000) + 1)])
          outcomes.wrong++
        } else if (n % 2 === 0) {
          const { rows } = await client.query('select $1::int * 2 as doubled, $2::text as tag', [n, `t${n}`])
          if (rows.length === 1 && rows[0].doubled === n * 2 && rows[0].tag === `t${n}`) outcomes.right++
          else outcomes.wrong++
        } else {
          const { rowCount } = await client.query(`insert into ${table} (k) values ($1)`, [n])
          if (rowCount === 1) outcomes.right++
          else outcomes.wrong++
        }
      } catch (err) {
        const expected = n % 20 === 0 ? '22012' : n % 20 === 10 ? '23505' : null
        if (err instanceof DatabaseError && err.code === expected) outcomes.failedAsPlanned++
        else outcomes.failedOtherwise++
      }
    }
  }
  await Promise.all(Array.from({ length: 200 }, (_, c) => caller(c)))
  sampling = false
  await sampler

  expect(outcomes).toEqual({ right: 9000, wrong: 0, failedAsPlanned: 1000, failedOtherwise: 0 })
  // Every successful insert is there, each exactly once.
  const { rows } = await client.query(`select count(*)::int as n from ${table} where k >= 0`)
  expect(rows[0].n).toBe(5000)
  expect(peakConnections).toBeLessThanOrEqual(5)
  expect(DatabasePool.getStats().totalConnections).toBeLessThanOrEqual(5)
  await client.query(`drop table ${table}`)
  await watcher.end()
})

describe('identities under load', () => {
  const schema = uniqueName('cp_ident')
  const userA = 'aaaaaaaa-0000-0000-0000-000000000001'
  const userB = 'bbbbbbbb-0000-0000-0000-000000000002'

  beforeAll(async () => {
    DatabasePool.initialize({ connectionString: urlWithSchema(uniqueName('cp_ident'), schema), schemas: [schema], maxConnections: 6, jwtSecret: secret })
    await DatabasePool.getAdminClient().query(`create schema ${schema}`)
  })
  afterAll(async () => {
    await DatabasePool.getAdminClient().query(`drop schema ${schema} cascade`)
  })

  test('2,000 concurrent admin, anon, two users and transactions: each sees its own role and claims', async () => {
    const admin = DatabasePool.getAdminClient()
    const anon = DatabasePool.getUserClient()
    const tokenA = signToken({ sub: userA, role: 'authenticated', exp: now() + 600 }, secret)
    const tokenB = signToken({ sub: userB, role: 'authenticated', exp: now() + 600 }, secret)
    const a = DatabasePool.getUserClient({ accessToken: tokenA })
    const b = DatabasePool.getUserClient({ accessToken: tokenB })
    const { rows: login } = await admin.query('select current_user as who')
    const loginRole = login[0].who
    const WHO = `select current_user as who, nullif(current_setting('request.jwt.claims', true), '')::json ->> 'sub' as sub, $1::int as n`

    type Expect = { who: string; sub: string | null }
    const cases: Array<[(n: number) => Promise<any>, Expect]> = [
      [(n) => admin.query(WHO, [n]), { who: loginRole, sub: null }],
      [(n) => anon.query(WHO, [n]), { who: 'anon', sub: null }],
      [(n) => a.query(WHO, [n]), { who: 'authenticated', sub: userA }],
      [(n) => b.query(WHO, [n]), { who: 'authenticated', sub: userB }],
      [(n) => a.transaction(async (tx) => {
        const first = await tx.query(WHO, [n])
        const second = await tx.query(WHO, [n])
        return { rows: [first.rows[0], second.rows[0]] }
      }), { who: 'authenticated', sub: userA }],
      [(n) => admin.transaction((tx) => tx.query(WHO, [n])), { who: loginRole, sub: null }],
    ]
    const mismatches: unknown[] = []
    await Promise.all(Array.from({ length: 2000 }, async (_, n) => {
      const [run, expected] = cases[n % cases.length]
      const { rows } = await run(n)
      for (const row of rows) {
        const seen = { who: row.who, sub: row.sub ?? null }
        if (row.n !== n || seen.who !== expected.who || seen.sub !== expected.sub) mismatches.push({ n, row, expected })
      }
    }))
    expect(mismatches).toEqual([])
  })
})

test('no head-of-line blocking: 100 fast statements issued after a pg_sleep(2) all finish before it', async () => {
  const app = uniqueName('cp_hol')
  DatabasePool.initialize({ connectionString: taggedUrl(app), maxConnections: 5, minConnections: 5 })
  const client = DatabasePool.getAdminClient()
  // Warm all five connections (the first statement opens minConnections).
  await client.query('select 1')
  await eventually(() => DatabasePool.getStats().totalConnections === 5)
  const watcher = await observer()
  let slowDone = false
  const slow = client.query('select pg_sleep(2) as slept').then(() => {
    slowDone = true
  })
  // The fast statements come while the slow one is running on the server.
  await eventually(async () => {
    const { rows } = await watcher.query(
      `select count(*)::int as n from pg_stat_activity where application_name = $1 and query like 'select pg_sleep(2)%' and state = 'active'`,
      [app],
    )
    return rows[0].n === 1
  })
  await watcher.end()
  const finishedBeforeSlow = await Promise.all(
    Array.from({ length: 100 }, (_, i) => client.query('select $1::int as i', [i]).then(({ rows }) => rows[0].i === i && !slowDone)),
  )
  expect(finishedBeforeSlow.filter(Boolean)).toHaveLength(100)
  await slow
})

describe('transactions', () => {
  const schema = uniqueName('cp_tx')
  const user = 'cccccccc-0000-0000-0000-000000000003'

  beforeAll(async () => {
    DatabasePool.initialize({
      connectionString: urlWithSchema(uniqueName('cp_tx'), schema), schemas: [schema],
      maxConnections: 2,
      minConnections: 0,
      jwtSecret: secret,
    })
    const admin = DatabasePool.getAdminClient()
    for (const sql of [
      `create schema ${schema}`,
      `grant usage on schema ${schema} to anon, authenticated`,
      `create table ${schema}.accounts (id int primary key, owner uuid, balance int not null)`,
      `alter table ${schema}.accounts enable row level security`,
      `create policy own on ${schema}.accounts using (owner = (current_setting('request.jwt.claims', true)::json ->> 'sub')::uuid)`,
      `grant select, update on ${schema}.accounts to authenticated`,
      `insert into ${schema}.accounts values (1, '${user}', 100), (2, null, 100)`,
    ]) {
      await admin.query(sql)
    }
  })
  afterAll(async () => {
    await DatabasePool.getAdminClient().query(`drop schema ${schema} cascade`)
  })

  const balances = async () =>
    (await DatabasePool.getAdminClient().query('select id, balance from accounts order by id')).rows

  test('commit when fn resolves, with its result', async () => {
    const result = await DatabasePool.getAdminClient().transaction(async (tx) => {
      await tx.query('update accounts set balance = balance - 10 where id = 1')
      await tx.from('accounts').update({ balance: 110 }).eq('id', 2)
      return 'moved'
    })
    expect(result).toBe('moved')
    expect(await balances()).toEqual([{ id: 1, balance: 90 }, { id: 2, balance: 110 }])
  })

  test('roll back when fn throws, and the error comes through', async () => {
    const before = await balances()
    const err = await DatabasePool.getAdminClient()
      .transaction(async (tx) => {
        await tx.query('update accounts set balance = 0')
        throw new Error('changed my mind')
      })
      .catch((e) => e)
    expect(err.message).toBe('changed my mind')
    expect(await balances()).toEqual(before)
  })

  test('roll back when a statement fails, even if fn caught it; the connection is clean afterwards', async () => {
    const before = await balances()
    const admin = DatabasePool.getAdminClient()
    const err = await admin
      .transaction(async (tx) => {
        await tx.query('update accounts set balance = 1')
        await tx.query('insert into accounts values (1, null, 0)').catch(() => 'ignored')
        return 'done'
      })
      .catch((e) => e)
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe('25P02')
    expect(await balances()).toEqual(before)
    // Both connections serve statements again: one left inside the aborted transaction would
    // answer 25P02 to anything.
    // Two transactions at once hold both connections: each runs on one of them.
    let started = 0
    let bothStarted: () => void = () => {}
    const barrier = new Promise<void>((resolve) => (bothStarted = resolve))
    const pids = await Promise.all([1, 2].map(() => admin.transaction(async (tx) => {
      if (++started === 2) bothStarted()
      await barrier
      return (await tx.query('select pg_backend_pid() as pid')).rows[0].pid
    })))
    expect(new Set(pids).size).toBe(2)
  })

  test('isolation level and read-only are honoured', async () => {
    const admin = DatabasePool.getAdminClient()
    const { rows } = await admin.transaction(
      (tx) => tx.query(`select current_setting('transaction_isolation') as iso, current_setting('transaction_read_only') as ro`),
      { isolationLevel: 'serializable', readOnly: true },
    )
    expect(rows[0]).toEqual({ iso: 'serializable', ro: 'on' })
    const err = await admin.transaction((tx) => tx.query('update accounts set balance = 0'), { readOnly: true }).catch((e) => e)
    expect(err.code).toBe('25006')
    const bad = await admin.transaction(async () => 1, { isolationLevel: 'read uncommitted; drop table x' as any }).catch((e) => e)
    expect(bad).toBeInstanceOf(ConnectionPoolError)
    expect(bad.code).toBe('INVALID_ARGUMENT')
  })

  test('a user client transaction sees RLS as that user throughout', async () => {
    const token = signToken({ sub: user, role: 'authenticated', exp: now() + 600 }, secret)
    const client = DatabasePool.getUserClient({ accessToken: token })
    const seen = await client.transaction(async (tx) => {
      const { rows } = await tx.query('select id from accounts')
      const { data } = await tx.from('accounts').update({ balance: 0 }).neq('id', 0).select('id')
      const who = await tx.query('select current_user as who')
      return { rows, data, who: who.rows[0].who }
    })
    expect(seen).toEqual({ rows: [{ id: 1 }], data: [{ id: 1 }], who: 'authenticated' })
    expect((await balances()).find((r: any) => r.id === 2)?.balance).not.toBe(0)
  })

  test('a transaction waits for at most one flight behind pipelined statements', async () => {
    const admin = DatabasePool.getAdminClient()
    // Both connections busy with pipelined statements; the transaction still gets one of them.
    const load = Array.from({ length: 200 }, (_, i) => admin.query('select $1::int as i', [i]))
    const inTransaction = admin.transaction((tx) => tx.query('select 1 as one'))
    await expect(inTransaction).resolves.toEqual({ rows: [{ one: 1 }], rowCount: 1 })
    await Promise.all(load)
    // Statements after the transaction are served by both connections again.
    expect(DatabasePool.getStats().waitingRequests).toBe(0)
  })
})

test('gauges: active connections have work in flight, waiting statements are counted, nothing leaks', async () => {
  const app = uniqueName('cp_gauge')
  const table = uniqueName('gauge_t')
  DatabasePool.initialize({ connectionString: taggedUrl(app), maxConnections: 3, minConnections: 3 })
  const client = DatabasePool.getAdminClient()
  await client.query(`create table ${table} (id int)`)
  await eventually(() => DatabasePool.getStats().totalConnections === 3)
  const depth = DatabasePool.getPoolConfig().pipelineDepth
  const watcher = await observer()
  await watcher.query('begin')
  await watcher.query(`lock table ${table} in access exclusive mode`)
  const blocked = Array.from({ length: 50 }, () => client.query(`select count(*) from ${table}`))
  // Each connection has at least one statement (blocked) in flight, at most a pipeline's worth;
  // every other statement is waiting.
  await eventually(() => {
    const { activeConnections, waitingRequests } = DatabasePool.getStats()
    return activeConnections === 3 && waitingRequests >= 50 - 3 * depth && waitingRequests <= 47
  })
  const stats = DatabasePool.getStats()
  expect(stats).toMatchObject({ totalConnections: 3, activeConnections: 3, idleConnections: 0 })
  expect(await connectionsOf(watcher, app)).toBe(3)
  await watcher.query('commit')
  await Promise.all(blocked)
  await eventually(() => DatabasePool.getStats().activeConnections === 0)
  expect(DatabasePool.getStats()).toMatchObject({ waitingRequests: 0, idleConnections: 3 })
  await client.query(`drop table ${table}`)
  await watcher.end()
})

test('100,000 statements issued in one turn against blocked connections: every one answered with its own row', async () => {
  const table = uniqueName('burst_t')
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_burst')), maxConnections: 4, minConnections: 4 })
  const client = DatabasePool.getAdminClient()
  await client.query(`create table ${table} (id int)`)
  const depth = DatabasePool.getPoolConfig().pipelineDepth
  const watcher = await observer()
  await watcher.query('begin')
  await watcher.query(`lock table ${table} in access exclusive mode`)
  const burst = 100_000
  const settled = Array.from({ length: burst }, (_, i) =>
    client.query(`select $1::int + count(*)::int as n from ${table}`, [i]).then(
      ({ rows }) => rows,
      (err) => err,
    ),
  )
  // All but a pipeline's worth per connection wait in the pool, as data.
  await eventually(() => DatabasePool.getStats().waitingRequests >= burst - 4 * depth, 30000)
  await watcher.query('commit')
  const replies = await Promise.all(settled)
  const wrong = replies.filter((rows, i) => !Array.isArray(rows) || rows.length !== 1 || rows[0].n !== i)
  expect(wrong).toEqual([])
  await eventually(() => DatabasePool.getStats().activeConnections === 0)
  expect(DatabasePool.getStats()).toMatchObject({ waitingRequests: 0, totalConnections: 4 })
  await client.query(`drop table ${table}`)
  await watcher.end()
})
