// User tokens signed with Supabase's asymmetric signing keys: ES256 and RS256 verified by `kid`
// against a key set served by a loopback HTTP server (keys made with node's crypto), fetched
// lazily, cached, refetched on rotation but not flooded; every forgery and wrong-key trick
// refused with INVALID_TOKEN; a token's role limited to allowedRoles; HS256 still working.
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http'
import { AddressInfo } from 'node:net'
import { createHmac, generateKeyPairSync, JsonWebKey, KeyObject, sign } from 'node:crypto'
import { DatabasePool, DatabasePoolConfig } from '..'
import { uniqueName, urlWithSchema, signToken } from './helpers'

const schema = uniqueName('cp_jwks')
const editorRole = uniqueName('cp_editor')
const secret = 'jwks-spec-hs256-secret-with-32-characters!!'
const userA = '11111111-1111-1111-1111-111111111111'
const userB = '22222222-2222-2222-2222-222222222222'
const now = () => Math.floor(Date.now() / 1000)
const b64url = (value: object | Buffer) =>
  (Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value))).toString('base64url')

interface SigningKey {
  kid: string
  alg: 'ES256' | 'RS256'
  privateKey: KeyObject
  publicKey: KeyObject
  jwk: JsonWebKey
}

function makeKey(kid: string, alg: 'ES256' | 'RS256'): SigningKey {
  const { privateKey, publicKey } =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { kid, alg, privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } }
}

/** A JWT as Supabase Auth signs one: header alg + kid, ES256 in IEEE P1363 form. */
function signWith(key: SigningKey, payload: object, header: object = { alg: key.alg, typ: 'JWT', kid: key.kid }): string {
  const body = `${b64url(header)}.${b64url(payload)}`
  const alg = (header as { alg: string }).alg
  const signature =
    alg === 'ES256'
      ? sign('sha256', Buffer.from(body), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', Buffer.from(body), key.privateKey)
  return `${body}.${b64url(signature)}`
}

const claimsFor = (sub: string, extra: object = {}) => ({
  sub, role: 'authenticated', aud: 'authenticated', exp: now() + 3600, ...extra,
})

/** The auth server's key endpoint: serves `keys`, counts fetches, can hang. */
class KeyEndpoint {
  keys: JsonWebKey[] = []
  fetches = 0
  hang = false
  private server: Server
  private held: ServerResponse[] = []
  url = ''

  constructor() {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (req.url !== '/auth/v1/.well-known/jwks.json') {
        res.writeHead(404).end()
        return
      }
      this.fetches++
      if (this.hang) {
        this.held.push(res)
        return
      }
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=600' })
      res.end(JSON.stringify({ keys: this.keys }))
    })
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    const { port } = this.server.address() as AddressInfo
    this.url = `http://127.0.0.1:${port}/auth/v1/.well-known/jwks.json`
    return this
  }

  async stop(): Promise<void> {
    for (const res of this.held) res.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

const ec1 = makeKey('ec-key-1', 'ES256')
const rsa1 = makeKey('rsa-key-1', 'RS256')
const ec2 = makeKey('ec-key-2', 'ES256')
const stranger = makeKey('ec-key-1', 'ES256') // same kid as ec1, different key: not in the set
const endpoints: KeyEndpoint[] = []

async function endpointWith(...keys: SigningKey[]): Promise<KeyEndpoint> {
  const endpoint = await new KeyEndpoint().start()
  endpoint.keys = keys.map((k) => k.jwk)
  endpoints.push(endpoint)
  return endpoint
}

/** A fresh pool (so a fresh key cache) on the spec's schema. */
function usePool(options: DatabasePoolConfig): void {
  DatabasePool.initialize({
    connectionString: urlWithSchema(uniqueName('cp_jwks'), schema), schemas: [schema],
    minConnections: 0,
    maxConnections: 4,
    ...options,
  })
}

/** Runs a statement as the token's user; resolves to the error it was refused with. */
async function refusal(token: string): Promise<{ code: string; message: string }> {
  try {
    await DatabasePool.getUserClient({ accessToken: token }).query('select 1')
  } catch (err) {
    return err as { code: string; message: string }
  }
  throw new Error('the token was accepted')
}

async function whoAmI(token: string): Promise<{ who: string; uid: string | null }> {
  const { rows } = await DatabasePool.getUserClient({ accessToken: token }).query(
    `select current_user as who, ${schema}.uid() as uid`,
  )
  return rows[0] as { who: string; uid: string | null }
}

beforeAll(async () => {
  usePool({})
  const admin = DatabasePool.getAdminClient()
  for (const sql of [
    `DO $$ BEGIN CREATE ROLE service_role NOLOGIN BYPASSRLS; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    `CREATE ROLE ${editorRole} NOLOGIN`,
    `create schema ${schema}`,
    `grant usage on schema ${schema} to anon, authenticated, service_role, ${editorRole}`,
    `create function ${schema}.uid() returns uuid language sql stable as
       $$ select nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::uuid $$`,
    `grant execute on function ${schema}.uid() to public`,
    `create table ${schema}.notes (id serial primary key, owner uuid, body text not null)`,
    `alter table ${schema}.notes enable row level security`,
    `create policy read_own on ${schema}.notes for select using (owner = ${schema}.uid())`,
    `grant select on ${schema}.notes to authenticated, service_role`,
    `insert into ${schema}.notes (owner, body) values ('${userA}', 'a-note'), ('${userB}', 'b-note')`,
  ]) {
    await admin.query(sql)
  }
})

afterAll(async () => {
  usePool({})
  await DatabasePool.getAdminClient().query(`drop schema ${schema} cascade`)
  await DatabasePool.getAdminClient().query(`drop role ${editorRole}`)
  await DatabasePool.close()
  for (const endpoint of endpoints) await endpoint.stop()
})

test('ES256 and RS256 tokens are verified and RLS applies as that user (query and builder)', async () => {
  const endpoint = await endpointWith(ec1, rsa1)
  usePool({ jwksUrl: endpoint.url })

  expect(await whoAmI(signWith(ec1, claimsFor(userA)))).toEqual({ who: 'authenticated', uid: userA })
  expect(await whoAmI(signWith(rsa1, claimsFor(userB)))).toEqual({ who: 'authenticated', uid: userB })

  for (const [key, user, note] of [[ec1, userA, 'a-note'], [rsa1, userB, 'b-note']] as const) {
    const client = DatabasePool.getUserClient({ accessToken: signWith(key, claimsFor(user)) })
    const { data, error, status } = await client.from('notes').select('body')
    expect({ data, error, status }).toEqual({ data: [{ body: note }], error: null, status: 200 })
  }
  expect(endpoint.fetches).toBe(1)
})

test('50 tokens need one key fetch; a rotated-in kid is fetched; 30 made-up kids cause at most one more', async () => {
  const endpoint = await endpointWith(ec1)
  usePool({ jwksUrl: endpoint.url })

  const users = Array.from({ length: 50 }, (_, i) => `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`)
  const seen = await Promise.all(users.map((user) => whoAmI(signWith(ec1, claimsFor(user)))))
  expect(seen.map((s) => s.uid)).toEqual(users)
  expect(endpoint.fetches).toBe(1)

  // Rotation: the auth server now publishes the new key beside the old one.
  endpoint.keys = [ec1.jwk, ec2.jwk]
  expect(await whoAmI(signWith(ec2, claimsFor(userB)))).toEqual({ who: 'authenticated', uid: userB })
  expect(await whoAmI(signWith(ec1, claimsFor(userA)))).toEqual({ who: 'authenticated', uid: userA })
  expect(endpoint.fetches).toBe(2)

  const madeUp = Array.from({ length: 30 }, (_, i) => makeKeyId(i))
  const refusals = await Promise.all(
    madeUp.map((kid) => refusal(signWith({ ...ec2, kid }, claimsFor(userA)))),
  )
  for (const err of refusals) {
    expect(err.code).toBe('INVALID_TOKEN')
    expect(err.message).toMatch(/no signing key has kid 'made-up-\d+'/)
  }
  expect(endpoint.fetches).toBeLessThanOrEqual(3)
})

function makeKeyId(i: number): string {
  return `made-up-${i}`
}

test('forgeries and wrong-key tricks are refused with INVALID_TOKEN, saying which', async () => {
  const endpoint = await endpointWith(ec1, rsa1)
  usePool({ jwksUrl: endpoint.url, jwtSecret: secret })
  // Warm the cache so that each refusal below is decided by verification, not by the fetch.
  expect((await whoAmI(signWith(ec1, claimsFor(userA)))).uid).toBe(userA)

  const good = signWith(ec1, claimsFor(userA))
  const [header, , signature] = good.split('.')
  const rsaPublicPem = rsa1.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const hmacWithPem = (() => {
    const body = `${b64url({ alg: 'HS256', typ: 'JWT', kid: rsa1.kid })}.${b64url(claimsFor(userA, { role: 'service_role' }))}`
    return `${body}.${createHmac('sha256', rsaPublicPem).update(body).digest('base64url')}`
  })()
  const cases: Array<[string, string, RegExp]> = [
    ['alg none', `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claimsFor(userA, { role: 'service_role' }))}.`, /alg none/],
    ['HS256 signed with the RSA public key', hmacWithPem, /signature does not match/],
    ['signed by a key not in the set', signWith(stranger, claimsFor(userA)), /signature does not match/],
    ['ES256 under an RSA key\'s kid', signWith(ec1, claimsFor(userA), { alg: 'ES256', typ: 'JWT', kid: rsa1.kid }), /key 'rsa-key-1' is for RS256 only/],
    ['RS256 under an EC key\'s kid', signWith(rsa1, claimsFor(userA), { alg: 'RS256', typ: 'JWT', kid: ec1.kid }), /key 'ec-key-1' is for ES256 only/],
    ['expired', signWith(ec1, claimsFor(userA, { exp: now() - 3600 })), /expired/],
    ['not valid yet', signWith(ec1, claimsFor(userA, { nbf: now() + 3600 })), /not valid yet/],
    ['tampered payload', `${header}.${b64url(claimsFor(userB, { role: 'service_role' }))}.${signature}`, /signature does not match/],
    ['no kid', signWith(ec1, claimsFor(userA), { alg: 'ES256', typ: 'JWT' }), /names no key \(kid\)/],
  ]
  for (const [name, token, reason] of cases) {
    const err = await refusal(token)
    expect({ name, code: err.code }).toEqual({ name, code: 'INVALID_TOKEN' })
    expect({ name, message: err.message }).toEqual({ name, message: expect.stringMatching(reason) })
  }
})

test('a token refused before its first statement answers PGRST301 / 401 through the builder', async () => {
  const endpoint = await endpointWith(ec1)
  usePool({ jwksUrl: endpoint.url })
  // A cold cache: the client is handed out, and the key fetch happens with its first request.
  const client = DatabasePool.getUserClient({ accessToken: signWith(stranger, claimsFor(userA)) })
  const { data, error, status } = await client.from('notes').select('body')
  expect(data).toBeNull()
  expect(status).toBe(401)
  expect(error).toMatchObject({ code: 'PGRST301', message: expect.stringMatching(/signature does not match/) })
  expect(endpoint.fetches).toBe(1)
})

test('key endpoint down or hanging: user statements are refused with INVALID_TOKEN; the admin client works', async () => {
  const down = await endpointWith(ec1)
  const downUrl = down.url
  await down.stop()
  endpoints.splice(endpoints.indexOf(down), 1)
  usePool({ jwksUrl: downUrl })
  const unreachable = await refusal(signWith(ec1, claimsFor(userA)))
  expect(unreachable.code).toBe('INVALID_TOKEN')
  expect(unreachable.message).toMatch(/could not be fetched \(the key endpoint is unreachable\)/)
  // Refused again at once, without a new attempt (the backoff), and the admin client is fine.
  expect((await refusal(signWith(ec1, claimsFor(userB)))).code).toBe('INVALID_TOKEN')
  const { rows } = await DatabasePool.getAdminClient().query('select count(*)::int as n from notes')
  expect(rows[0].n).toBe(2)

  const hanging = await endpointWith(ec1)
  hanging.hang = true
  usePool({ jwksUrl: hanging.url, connectionTimeout: 1000 })
  const slow = await refusal(signWith(ec1, claimsFor(userA)))
  expect(slow.code).toBe('INVALID_TOKEN')
  expect(slow.message).toMatch(/did not answer within 1000 ms/)
  expect(hanging.fetches).toBe(1)
})

test('HS256 with jwtSecret works alone and beside jwksUrl', async () => {
  usePool({ jwtSecret: secret })
  expect(await whoAmI(signToken(claimsFor(userA), secret))).toEqual({ who: 'authenticated', uid: userA })

  const endpoint = await endpointWith(ec1)
  usePool({ jwtSecret: secret, jwksUrl: endpoint.url })
  expect(await whoAmI(signToken(claimsFor(userB), secret))).toEqual({ who: 'authenticated', uid: userB })
  expect(await whoAmI(signWith(ec1, claimsFor(userA)))).toEqual({ who: 'authenticated', uid: userA })
  // A wrong secret is refused; and the key set is never asked about HS256 tokens.
  expect((await refusal(signToken(claimsFor(userA), 'another-secret-of-at-least-32-chars!!'))).code).toBe('INVALID_TOKEN')
  expect(endpoint.fetches).toBe(1)
  expect(DatabasePool.getPoolConfig()).toMatchObject({
    jwksUrl: endpoint.url,
    jwtSecretConfigured: true,
    allowedRoles: ['anon', 'authenticated', 'service_role'],
  })
  expect(JSON.stringify(DatabasePool.getPoolConfig())).not.toContain(secret)
})

test('a token may take only the roles in allowedRoles', async () => {
  const endpoint = await endpointWith(ec1)
  usePool({ jwtSecret: secret, jwksUrl: endpoint.url })
  for (const role of ['postgres', 'pg_write_server_files', editorRole]) {
    for (const token of [signToken(claimsFor(userA, { role }), secret), signWith(ec1, claimsFor(userA, { role }))]) {
      const err = await refusal(token)
      expect(err.code).toBe('INVALID_TOKEN')
      expect(err.message).toContain(`the token's role '${role}' is not in allowedRoles`)
    }
  }
  expect((await whoAmI(signWith(ec1, claimsFor(userA, { role: 'service_role' })))).who).toBe('service_role')

  usePool({ jwtSecret: secret, allowedRoles: ['anon', 'authenticated', 'service_role', editorRole] })
  expect((await whoAmI(signToken(claimsFor(userA, { role: editorRole }), secret))).who).toBe(editorRole)
  expect((await refusal(signToken(claimsFor(userA, { role: 'postgres' }), secret))).code).toBe('INVALID_TOKEN')
})
