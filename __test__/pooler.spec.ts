// Behind a real PgBouncer in transaction mode (3 server connections; global setup starts it, at
// CP_TEST_PGBOUNCER_URL): every statement's result belongs to its own parameters, the builder,
// user clients under RLS and transaction() work, and no role reaches another client's statement.
// Transaction pooling hands each transaction to whichever server connection is free, so nothing
// may rely on server state from an earlier flight (named statements, session settings).
import { Client } from 'pg'
import { DatabasePool } from '..'
import { signToken, uniqueName } from './helpers'
import { parameterCases, resultCases } from './type-cases'

const bouncerUrl = process.env.CP_TEST_PGBOUNCER_URL
const describeWithBouncer = bouncerUrl || process.env.CI ? describe : describe.skip
if (!bouncerUrl) console.warn('pgbouncer is missing: the transaction-pooler specs are skipped (apt-get install pgbouncer)')
const secret = 'pooler-jwt-secret-with-at-least-32-characters!'
const table = uniqueName('cp_pooled')
const notes = uniqueName('cp_pooled_notes')
const userId = (n: number) => `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`
const tokenFor = (n: number) =>
  signToken({ sub: userId(n), role: 'authenticated', aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 3600 }, secret)

function pooledUrl(extra: Record<string, string> = {}): string {
  if (!bouncerUrl) throw new Error('CP_TEST_PGBOUNCER_URL is not set: is pgbouncer installed? (.ci/run installs it)')
  const url = new URL(bouncerUrl)
  for (const [key, value] of Object.entries(extra)) url.searchParams.set(key, value)
  return url.toString()
}

describeWithBouncer('behind PgBouncer in transaction mode', () => {
  beforeAll(async () => {
    DatabasePool.initialize({ connectionString: pooledUrl({ pgbouncer: 'true' }), maxConnections: 10, minConnections: 0, jwtSecret: secret })
    const admin = DatabasePool.getAdminClient()
    for (const sql of [
      `create table ${table} (id int primary key, label text not null)`,
      `insert into ${table} select g, 'label-' || g from generate_series(0, 999) g`,
      `create table ${notes} (id serial primary key, owner uuid not null, body text not null)`,
      `alter table ${notes} enable row level security`,
      `create policy own on ${notes} using (owner = nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::uuid)`,
      `grant select, insert on ${notes} to authenticated`,
      `grant usage on sequence ${notes}_id_seq to authenticated`,
    ]) {
      await admin.query(sql)
    }
  })

  afterAll(async () => {
    const admin = DatabasePool.getAdminClient()
    await admin.query(`drop table if exists ${table}, ${notes}`)
    await DatabasePool.close()
  })

  test('pgbouncer=true in the URL selects the transaction-pooler path', () => {
    expect(DatabasePool.getPoolConfig().pooler).toBe('transaction')
  })

  test('6,000 mixed statements from 50 callers: 0 errors, 0 wrong results, no role leaks', async () => {
    const admin = DatabasePool.getAdminClient()
    const anon = DatabasePool.getUserClient()
    const login = (await admin.query('select current_user as who')).rows[0].who
    let errors = 0
    const wrong: string[] = []
    const errorSamples: string[] = []
    const check = (ok: boolean, what: string) => {
      if (!ok && wrong.length < 10) wrong.push(what)
      else if (!ok) wrong.push('')
    }

    async function one(n: number) {
      switch (n % 7) {
        case 0: {
          const { rows } = await admin.query('select $1::int + 1 as v, $2 as s, $3::bool as b, $4::text[] as arr, $5::jsonb as j, $6::text as nothing', [
            n, `s${n}`, n % 2 === 0, [`a${n}`, 'q"\\,{}'], { n, tag: `t${n}` }, null,
          ])
          const r = rows[0]
          check(r.v === n + 1 && r.s === `s${n}` && r.b === (n % 2 === 0) && r.nothing === null, `scalars ${n}: ${JSON.stringify(r)}`)
          check(JSON.stringify(r.arr) === JSON.stringify([`a${n}`, 'q"\\,{}']) && r.j.n === n && r.j.tag === `t${n}`, `arrays/json ${n}: ${JSON.stringify(r)}`)
          break
        }
        case 1: {
          const { data, error } = await admin.from(table).select('id,label').eq('id', n % 1000).single()
          check(error === null && (data as any)?.label === `label-${n % 1000}`, `builder ${n}: ${JSON.stringify({ data, error })}`)
          break
        }
        case 2: {
          const user = DatabasePool.getUserClient({ accessToken: tokenFor(n) })
          const { rows } = await user.query(
            "select current_user as who, current_setting('request.jwt.claims', true)::json ->> 'sub' as sub, $1::int as n",
            [n],
          )
          check(rows[0].who === 'authenticated' && rows[0].sub === userId(n) && rows[0].n === n, `user ${n}: ${JSON.stringify(rows[0])}`)
          break
        }
        case 3: {
          const { rows } = await anon.query("select current_user as who, coalesce(current_setting('request.jwt.claims', true), '') as claims, $1::int as n", [n])
          check(rows[0].who === 'anon' && !rows[0].claims.includes('sub') && rows[0].n === n, `anon ${n}: ${JSON.stringify(rows[0])}`)
          break
        }
        case 4: {
          const { rows } = await admin.query("select current_user as who, coalesce(current_setting('request.jwt.claims', true), '') as claims, $1::int as n", [n])
          check(rows[0].who === login && rows[0].claims === '' && rows[0].n === n, `admin ${n}: ${JSON.stringify(rows[0])}`)
          break
        }
        case 5: {
          const user = DatabasePool.getUserClient({ accessToken: tokenFor(n) })
          const inserted = await user.from(notes).insert({ owner: userId(n), body: `note-${n}` }).select('body').single()
          const mine = await user.from(notes).select('body')
          check(
            inserted.error === null && (inserted.data as any)?.body === `note-${n}` &&
              mine.error === null && JSON.stringify(mine.data) === JSON.stringify([{ body: `note-${n}` }]),
            `rls ${n}: ${JSON.stringify({ inserted, mine })}`,
          )
          break
        }
        case 6: {
          const result = await admin.transaction(async (tx) => {
            const first = await tx.query('select $1::int as n, txid_current() as xid', [n])
            const second = await tx.query('select $1::text as s, txid_current() as xid', [`tx${n}`])
            return [first.rows[0], second.rows[0]]
          })
          // Both statements ran in one server transaction (same xid), on one server connection.
          check(result[0].n === n && result[1].s === `tx${n}` && result[0].xid === result[1].xid, `transaction ${n}: ${JSON.stringify(result)}`)
          break
        }
      }
    }

    await Promise.all(
      Array.from({ length: 50 }, async (_, caller) => {
        for (let i = 0; i < 120; i++) {
          const n = caller * 120 + i
          try {
            await one(n)
          } catch (err: any) {
            errors++
            if (errorSamples.length < 5) errorSamples.push(`${n % 7}: ${err.code} ${err.message}`)
          }
        }
      }),
    )
    expect(errorSamples).toEqual([])
    expect(errors).toBe(0)
    expect(wrong).toEqual([])
  })

  test('a bad statement fails alone with its SQLSTATE and the pool keeps serving', async () => {
    const admin = DatabasePool.getAdminClient()
    const results = await Promise.allSettled([
      admin.query('select $1::int as n', ['not a number']),
      admin.query('selec 1'),
      admin.query('select $1::int as n', [7]),
    ])
    expect(results[0]).toMatchObject({ status: 'rejected', reason: { code: '22P02' } })
    expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: '42601' } })
    expect(results[2]).toMatchObject({ status: 'fulfilled', value: { rows: [{ n: 7 }] } })
  })

  test('statement types the server infers from text: numbers, bytea, dates, nested arrays', async () => {
    const admin = DatabasePool.getAdminClient()
    const when = new Date('2026-01-02T03:04:05.678Z')
    const { rows } = await admin.query(
      'select $1::numeric as big, $2::bytea as bytes, $3::timestamptz as at, $4::int[] as grid, $5::float8 as half, $6::int8 as id',
      ['12345678901234567890.5', Buffer.from([0, 1, 254]), when, [[1, 2], [3, 4]], 0.5, '9007199254740993'],
    )
    expect(rows[0].big).toBe('12345678901234567890.5')
    expect(rows[0].bytes).toBe('\\x0001fe')
    expect(new Date(rows[0].at).getTime()).toBe(when.getTime())
    expect(rows[0].grid).toEqual([[1, 2], [3, 4]])
    expect(rows[0].half).toBe(0.5)
    expect(String(rows[0].id)).toBe('9007199254740993')
  })

  describe('the type tables of types.spec.ts, through the pooler', () => {
    const one = async (sql: string, params: unknown[] = []) =>
      (await DatabasePool.getAdminClient().query(sql, params as any[])).rows[0].v
    test.each(resultCases)('result %s', async (expr, expected) => {
      expect(await one(`select ${expr} as v`)).toEqual(expected)
    })
    test.each(parameterCases)('parameter %s ← %p', async (sql, param, expected) => {
      expect(await one(`select ${sql} as v`, [param])).toEqual(expected)
    })
    test('enums go in as text; a user-defined result type is refused with a cast hint, and the cast works', async () => {
      const mood = uniqueName('mood')
      const admin = DatabasePool.getAdminClient()
      await admin.query(`create type ${mood} as enum ('sad', 'happy')`)
      try {
        const refused = await Promise.all(Array.from({ length: 20 }, () => one(`select $1::${mood} as v`, ['happy']).catch((e) => e.code)))
        expect(refused).toEqual(Array(20).fill('UNSUPPORTED_TYPE'))
        const err = await one(`select $1::${mood} as v`, ['happy']).catch((e) => e)
        expect(err.message).toContain('::text')
        expect(await one(`select $1::${mood}::text as v`, ['happy'])).toBe('happy')
        expect(await one(`select ($1::${mood} = 'happy') as v`, ['happy'])).toBe(true)
        // The pool keeps serving plain statements afterwards.
        expect(await one('select $1::int as v', [5])).toBe(5)
      } finally {
        await admin.query(`drop type ${mood}`)
      }
    })
  })

  test('the fixture is a real transaction pooler: a statement prepared in one transaction is gone in the next, and the pool does not care', async () => {
    // node-postgres clients pin PgBouncer's 3 server connections so that the second use of a
    // named statement must land on a server that never saw it.
    const connect = async () => {
      const c = new Client({ connectionString: pooledUrl() })
      c.on('error', () => {})
      await c.connect()
      return c
    }
    const [a, b, c, d] = await Promise.all([connect(), connect(), connect(), connect()])
    try {
      await a.query('begin') // holds one server
      await b.query({ name: 'cp_named', text: 'select 1 as one' }) // prepared on another, released
      await c.query('begin') // c and d take the two idle servers, b's among them
      await d.query('begin')
      await a.query('commit') // only a's server is free now
      const err = await b.query({ name: 'cp_named', text: 'select 1 as one' }).catch((e) => e)
      expect(err.code).toBe('26000') // prepared statement "cp_named" does not exist
    } finally {
      await Promise.all([c, d].map((x) => x.query('commit').catch(() => {})))
      await Promise.all([a, b, c, d].map((x) => x.end().catch(() => {})))
    }
    // Meanwhile our pool, on its one-flight path, serves through the same pooler.
    const { rows } = await DatabasePool.getAdminClient().query('select $1::int as n', [1])
    expect(rows).toEqual([{ n: 1 }])
  })

})
