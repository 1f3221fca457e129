// Row-level security as Supabase runs it: the anon client as `anon`, a signed-in user as the
// token's role with its claims visible to policies (auth.uid()), the admin client bypassing RLS;
// and no role or claim ever leaking into another borrower's statement.
import { DatabasePool, ConnectionPoolError } from '..'
import { signToken, uniqueName, urlWithSchema } from './helpers'

const schema = uniqueName('cp_rls')
const secret = 'test-jwt-secret-with-at-least-32-characters!!'
const userA = '11111111-1111-1111-1111-111111111111'
const userB = '22222222-2222-2222-2222-222222222222'
const now = () => Math.floor(Date.now() / 1000)
const tokenFor = (sub: string, extra: Record<string, unknown> = {}) =>
  signToken({ sub, role: 'authenticated', aud: 'authenticated', exp: now() + 3600, ...extra }, secret)

beforeAll(async () => {
  DatabasePool.initialize({
    connectionString: urlWithSchema(uniqueName('cp_rls'), schema), schemas: [schema],
    minConnections: 0,
    maxConnections: 4,
    jwtSecret: secret,
  })
  const admin = DatabasePool.getAdminClient()
  for (const sql of [
    `create schema ${schema}`,
    `grant usage on schema ${schema} to anon, authenticated`,
    // Supabase's helper, so policies read as they do there.
    `create function ${schema}.uid() returns uuid language sql stable as
       $$ select nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::uuid $$`,
    `create table ${schema}.notes (id serial primary key, owner uuid, body text not null, public bool not null default false)`,
    `alter table ${schema}.notes enable row level security`,
    `create policy read_own_or_public on ${schema}.notes for select using (public or owner = ${schema}.uid())`,
    `create policy insert_own on ${schema}.notes for insert to authenticated with check (owner = ${schema}.uid())`,
    `create policy update_own on ${schema}.notes for update to authenticated using (owner = ${schema}.uid())`,
    `grant select on ${schema}.notes to anon`,
    `grant select, insert, update on ${schema}.notes to authenticated`,
    `grant usage on sequence ${schema}.notes_id_seq to authenticated`,
    `insert into ${schema}.notes (owner, body, public) values
       ('${userA}', 'a-private', false), ('${userA}', 'a-public', true),
       ('${userB}', 'b-private', false), (null, 'announcement', true)`,
  ]) {
    await admin.query(sql)
  }
})

afterAll(async () => {
  await DatabasePool.getAdminClient().query(`drop schema ${schema} cascade`)
  await DatabasePool.close()
})

const bodies = (data: any) => (data ?? []).map((r: any) => r.body).sort()

test('the anon client sees only public rows and cannot insert (401)', async () => {
  const anon = DatabasePool.getUserClient()
  const { data, error } = await anon.from('notes').select('body')
  expect(error).toBeNull()
  expect(bodies(data)).toEqual(['a-public', 'announcement'])
  const { rows } = await anon.query('select current_user as who')
  expect(rows[0].who).toBe('anon')

  const denied = await anon.from('notes').insert({ body: 'spam', public: true })
  expect(denied.status).toBe(401)
  expect(denied.error?.code).toBe('42501')
})

test("user A sees A's rows and public ones, and cannot change B's", async () => {
  const a = DatabasePool.getUserClient({ accessToken: tokenFor(userA) })
  const { data } = await a.from('notes').select('body')
  expect(bodies(data)).toEqual(['a-private', 'a-public', 'announcement'])

  const { rows } = await a.query(`select current_user as who, ${schema}.uid() as uid`)
  expect(rows[0]).toEqual({ who: 'authenticated', uid: userA })

  const attempt = await a.from('notes').update({ body: 'hacked' }).eq('body', 'b-private').select()
  expect(attempt.error).toBeNull()
  expect(attempt.data).toEqual([])
  const stillThere = await DatabasePool.getAdminClient().from('notes').select('body').eq('body', 'b-private')
  expect(stillThere.data).toHaveLength(1)

  const own = await a.from('notes').insert({ owner: userA, body: 'a-new' }).select('body').single()
  expect(own).toMatchObject({ status: 201, data: { body: 'a-new' } })

  const forged = await a.from('notes').insert({ owner: userB, body: 'as-b' })
  expect(forged.status).toBe(403)
  expect(forged.error?.code).toBe('42501')
})

test('the admin client sees every row', async () => {
  const { data } = await DatabasePool.getAdminClient().from('notes').select('body')
  expect(bodies(data)).toEqual(expect.arrayContaining(['a-private', 'a-public', 'announcement', 'b-private']))
})

test('tampered, wrongly signed, unsigned and expired tokens are refused with INVALID_TOKEN', () => {
  const good = tokenFor(userA)
  const [header, , signature] = good.split('.')
  const forgedPayload = Buffer.from(JSON.stringify({ sub: userB, role: 'authenticated', exp: now() + 3600 })).toString('base64url')
  const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${forgedPayload}.`
  for (const token of [
    `${header}.${forgedPayload}.${signature}`,
    signToken({ sub: userA, role: 'authenticated', exp: now() + 3600 }, 'some-other-secret-of-sufficient-length!'),
    unsigned,
    signToken({ sub: userA, role: 'authenticated', exp: now() - 3600 }, secret),
    'not.a.token',
  ]) {
    let thrown: any
    try {
      DatabasePool.getUserClient({ accessToken: token })
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(ConnectionPoolError)
    expect(thrown.code).toBe('INVALID_TOKEN')
  }
})

test('after 1000 concurrent user statements, no role or claim reaches an admin statement', async () => {
  const admin = DatabasePool.getAdminClient()
  const loginRole = (await admin.query('select current_user as who')).rows[0].who
  const users = [DatabasePool.getUserClient(), DatabasePool.getUserClient({ accessToken: tokenFor(userA) }), DatabasePool.getUserClient({ accessToken: tokenFor(userB) })]
  const adminSeen: { who: string; claims: string | null }[] = []
  const userSeen: string[] = []
  const work: Promise<unknown>[] = []
  for (let i = 0; i < 1000; i++) {
    const user = users[i % users.length]
    work.push(
      user
        .query(`select current_user as who, current_setting('request.jwt.claims', true) as claims`)
        .then(({ rows }) => userSeen.push(rows[0].who)),
    )
    if (i % 10 === 0) {
      work.push(
        admin
          .query(`select current_user as who, nullif(current_setting('request.jwt.claims', true), '') as claims`)
          .then(({ rows }) => adminSeen.push(rows[0] as { who: string; claims: string | null })),
      )
    }
    // A failing user statement must not leave its role behind either.
    if (i % 100 === 0) work.push(user.query('select 1/0').catch(() => null))
  }
  await Promise.all(work)
  expect(userSeen).toHaveLength(1000)
  expect(new Set(userSeen)).toEqual(new Set(['anon', 'authenticated']))
  expect(adminSeen).toHaveLength(100)
  for (const seen of adminSeen) expect(seen).toEqual({ who: loginRole, claims: null })
})

test('claims with quotes, backslashes and SQL in them reach policies exactly as signed', async () => {
  // The role and claims are written into the transaction's setup as escape-string literals:
  // whatever a claim holds must come back byte for byte and must not run as SQL.
  const hostile = `x'); drop table ${schema}.notes; -- \\' \\\\ $$ "quoted" é ✓`
  const client = DatabasePool.getUserClient({ accessToken: tokenFor(userA, { nickname: hostile }) })
  const { rows } = await client.query(
    `select current_setting('request.jwt.claims', true)::json ->> 'nickname' as nickname, current_user as who`,
  )
  expect(rows).toEqual([{ nickname: hostile, who: 'authenticated' }])
  const { rows: left } = await DatabasePool.getAdminClient().query(`select count(*)::int as n from ${schema}.notes`)
  expect(left[0].n).toBeGreaterThan(0)
})
