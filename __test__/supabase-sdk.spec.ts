// The singletons are supabase-js itself: supabaseAdmin and supabase are SupabaseClients whose
// Auth, Storage and Functions requests go through the pool's keep-alive HTTP transport to the
// project (a loopback stand-in that records what it saw, scripts/supabase-stand-in.js), whose
// REST runs in-process over the Postgres pool when a connection string is configured and over
// HTTP when it is not, and the exported createClient gives a backend's own clients the same.
import { Client } from 'pg'
import { baseUrl, signToken, taggedUrl, uniqueName } from './helpers'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startSupabaseStandIn } = require('../scripts/supabase-stand-in.js')

const secret = 'supabase-sdk-spec-jwt-secret-32-characters-or-more'
const serviceKey = signToken({ role: 'service_role', iss: 'supabase' }, secret)
const anonKey = signToken({ role: 'anon', iss: 'supabase' }, secret)
const alice = '11111111-1111-1111-1111-111111111111'
const bob = '22222222-2222-2222-2222-222222222222'
const tokenFor = (sub: string) => signToken({ sub, role: 'authenticated', aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 3600 }, secret)
const table = uniqueName('cp_sdk_notes')

let stand: any
let pkg: typeof import('..')
let observer: Client
const savedEnv = { ...process.env }

beforeAll(async () => {
  stand = await startSupabaseStandIn({ jwtSecret: secret, serviceKey, anonKey })
  Object.assign(process.env, { SUPABASE_URL: stand.url, SUPABASE_SERVICE_ROLE_KEY: serviceKey, SUPABASE_ANON_KEY: anonKey, SUPABASE_JWT_SECRET: secret })
  // The singletons read the environment when the package is loaded, as the seed's did.
  pkg = require('..')
  observer = new Client({ connectionString: baseUrl() })
  await observer.connect()
  for (const sql of [
    `create table ${table} (id serial primary key, owner uuid not null, body text not null)`,
    `alter table ${table} enable row level security`,
    `create policy own on ${table} for select to authenticated using (owner = nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::uuid)`,
    `grant select on ${table} to authenticated`,
    `create function ${table}_count() returns int language sql stable as $$ select count(*)::int from ${table} $$`,
    `insert into ${table} (owner, body) values ('${alice}', 'alice-1'), ('${alice}', 'alice-2'), ('${bob}', 'bob-1')`,
  ]) {
    await observer.query(sql)
  }
})

afterAll(async () => {
  await observer.query(`drop function ${table}_count(); drop table ${table}`)
  await observer.end()
  await pkg.DatabasePool.close()
  await stand.close()
  process.env = savedEnv
})

function withConnectionString(options: Record<string, unknown> = {}) {
  pkg.DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_sdk')), jwtSecret: secret, ...options })
}

describe('the singletons are supabase-js clients', () => {
  beforeAll(() => withConnectionString())

  test('supabaseAdmin and supabase are SupabaseClients, with query() and transaction() beside', () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { SupabaseClient } = require('@supabase/supabase-js')
    expect(pkg.supabaseAdmin).toBeInstanceOf(SupabaseClient)
    expect(pkg.supabase).toBeInstanceOf(SupabaseClient)
    expect(pkg.DatabasePool.getAdminClient()).toBe(pkg.supabaseAdmin)
    expect(pkg.DatabasePool.getUserClient()).toBe(pkg.supabase)
    expect(typeof pkg.supabaseAdmin.query).toBe('function')
    expect(typeof pkg.supabaseAdmin.transaction).toBe('function')
  })

  test('auth.getUser(jwt) answers the user; a bad token is an AuthError with status 401', async () => {
    const before = stand.seen('auth').length
    const token = tokenFor(alice)
    const { data, error } = await pkg.supabaseAdmin.auth.getUser(token)
    expect(error).toBeNull()
    expect(data.user).toMatchObject({ id: alice, email: 'alice@example.com' })
    const bad = await pkg.supabase.auth.getUser('not.a.token')
    expect(bad.data.user).toBeNull()
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { AuthError } = require('@supabase/supabase-js')
    expect(bad.error).toBeInstanceOf(AuthError)
    expect(bad.error).toMatchObject({ status: 401 })
    // As supabase-js sends them: the project's key as apikey, the user's token as Authorization.
    const [asAdmin, asAnon] = stand.seen('auth').slice(before)
    expect(asAdmin.headers).toMatchObject({ apikey: serviceKey, authorization: `Bearer ${token}` })
    expect(asAnon.headers.apikey).toBe(anonKey)
  })

  test('auth.admin.listUsers() with the service-role key', async () => {
    const { data, error } = await pkg.supabaseAdmin.auth.admin.listUsers()
    expect(error).toBeNull()
    expect(data.users.map((u: any) => u.email)).toEqual(['alice@example.com', 'bob@example.com'])
    const request = stand.seen('auth').at(-1)
    expect(request.headers).toMatchObject({ apikey: serviceKey, authorization: `Bearer ${serviceKey}` })
  })

  test('storage: an upload arrives byte for byte, and createSignedUrl signs it', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 13])
    const uploaded = await pkg.supabaseAdmin.storage.from('avatars').upload('u/1.bin', bytes, { contentType: 'application/octet-stream' })
    expect(uploaded.error).toBeNull()
    expect(uploaded.data).toMatchObject({ path: 'u/1.bin', fullPath: 'avatars/u/1.bin' })
    expect(Buffer.compare(stand.state.objects.get('avatars/u/1.bin').bytes, bytes)).toBe(0)
    const signed = await pkg.supabaseAdmin.storage.from('avatars').createSignedUrl('u/1.bin', 60)
    expect(signed.error).toBeNull()
    expect(signed.data!.signedUrl).toMatch(new RegExp(`^${stand.url}/storage/v1/object/sign/avatars/u/1\\.bin\\?token=`))
    const downloaded = await pkg.supabaseAdmin.storage.from('avatars').download('u/1.bin')
    expect(Buffer.compare(Buffer.from(await downloaded.data!.arrayBuffer()), bytes)).toBe(0)
  })

  test('functions.invoke() with its body and the client key', async () => {
    const { data, error } = await pkg.supabase.functions.invoke('hello', { body: { name: 'pool' } })
    expect(error).toBeNull()
    expect(data).toEqual({ function: 'hello', received: { name: 'pool' }, authorization: `Bearer ${anonKey}` })
  })

  test('with a connection string, from() and rpc() never reach HTTP', async () => {
    const restBefore = stand.seen('rest').length
    const admin = await pkg.supabaseAdmin.from(table).select('body').order('id')
    expect(admin.data).toEqual([{ body: 'alice-1' }, { body: 'alice-2' }, { body: 'bob-1' }])
    const rpc = await pkg.supabaseAdmin.rpc(`${table}_count` as any)
    expect(rpc).toMatchObject({ error: null, data: 3 })
    expect(stand.seen('rest').length).toBe(restBefore)
    const stats = pkg.DatabasePool.getStats()
    expect(stats.http.rest.requests).toBe(0)
    expect(stats.http.auth.requests).toBeGreaterThan(0)
  })

  test("createClient with a user's bearer token reads only that user's rows, over the pool", async () => {
    const restBefore = stand.seen('rest').length
    const asAlice = pkg.createClient(stand.url, anonKey, { global: { headers: { Authorization: `Bearer ${tokenFor(alice)}` } } })
    const { data, error } = await asAlice.from(table).select('body').order('id')
    expect(error).toBeNull()
    expect(data).toEqual([{ body: 'alice-1' }, { body: 'alice-2' }])
    const { rows } = await asAlice.query(`select count(*)::int as n from ${table}`)
    expect(rows[0].n).toBe(2)
    // The anon key alone is the anonymous role, which may not read the table at all.
    const anon = await pkg.createClient(stand.url, anonKey).from(table).select('body')
    expect(anon.error).toMatchObject({ code: '42501' })
    // A token that does not verify is refused as PostgREST refuses it.
    const forged = await pkg.createClient(stand.url, anonKey, { global: { headers: { Authorization: 'Bearer a.b.c' } } }).from(table).select('body')
    expect(forged).toMatchObject({ status: 401, error: { code: 'PGRST301' } })
    expect(stand.seen('rest').length).toBe(restBefore)
  })

  test('getUserClient({ accessToken }) is a SupabaseClient under that user, REST and SQL alike', async () => {
    const bobs = pkg.DatabasePool.getUserClient({ accessToken: tokenFor(bob) })
    expect((await bobs.from(table).select('body')).data).toEqual([{ body: 'bob-1' }])
    expect((await bobs.query(`select body from ${table}`)).rows).toEqual([{ body: 'bob-1' }])
    const user = await bobs.auth.getUser()
    expect(user.data.user).toMatchObject({ id: bob })
  })

  test("a client's own global.fetch answers what no pool does (Realtime's REST), and only that", async () => {
    const seen: string[] = []
    const own = async (url: RequestInfo | URL) => {
      seen.push(String(url))
      return new Response(null, { status: 202 })
    }
    const client = pkg.createClient(stand.url, anonKey, { global: { fetch: own } })
    expect(await client.channel('room').httpSend('ping', { n: 1 })).toEqual({ success: true })
    expect(seen).toHaveLength(1)
    expect(seen[0]).toContain('/realtime/v1/api/broadcast/room/events/ping')
    // REST still runs over the pool, not through the caller's fetch.
    const { error } = await client.from(table).select('body')
    expect(error).toMatchObject({ code: '42501' })
    expect(seen).toHaveLength(1)
  })
})

describe('without a connection string', () => {
  const databaseUrl = process.env.DATABASE_URL
  beforeAll(() => {
    delete process.env.DATABASE_URL
    pkg.DatabasePool.initialize({ maxConnections: 4 })
  })
  afterAll(() => {
    process.env.DATABASE_URL = databaseUrl
  })

  test('from() answers over HTTP: 200 parallel calls over at most maxConnections connections, counted, healthy', async () => {
    const connectionsBefore = stand.state.connections
    const calls = Array.from({ length: 200 }, (_, i) => pkg.supabase.from('todos').select('*').eq('id', (i % 2) + 1))
    const results = await Promise.all(calls)
    expect(results.every((r: any) => r.error === null && r.data.length === 1)).toBe(true)
    expect(results[1].data).toEqual([{ id: 2, task: 'ship', done: true }])
    expect(stand.state.connections - connectionsBefore).toBeLessThanOrEqual(4)
    const stats = pkg.DatabasePool.getStats()
    expect(stats.http.rest).toMatchObject({ requests: 200, failures: 0, inFlight: 0 })
    expect(stats.http.openConnections).toBeLessThanOrEqual(4)
    expect(stand.seen('rest').at(-1).headers.apikey).toBe(anonKey)
    const health = await pkg.DatabasePool.healthCheck()
    expect(health).toMatchObject({ healthy: true })
  })

  test('query() and transaction() reject with INVALID_CONFIG, saying to set DATABASE_URL', async () => {
    for (const attempt of [pkg.supabaseAdmin.query('select 1'), pkg.supabaseAdmin.transaction(async () => 1)]) {
      const err: any = await attempt.then(
        () => null,
        (e: unknown) => e,
      )
      expect(err).toMatchObject({ code: 'INVALID_CONFIG' })
      expect(err.message).toMatch(/set DATABASE_URL/)
    }
    expect(pkg.DatabasePool.getPoolConfig().connectionString).toBeNull()
  })
})
