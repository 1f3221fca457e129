// Supabase's HTTP services on loopback, for the specs: Auth (GoTrue), Storage and Functions as
// supabase-js calls them, and a small REST API (PostgREST's grammar for the few requests the specs
// make) for clients without a connection string. It answers as the real services do (their
// paths, statuses, error bodies and headers) and records what it saw: each request's method,
// path, headers and body, the in-flight peak and the TCP connections.
'use strict'
const { createServer } = require('node:http')
const { createHmac, randomUUID } = require('node:crypto')

/** Verifies an HS256 JWT with `secret`: its payload, or null. */
function verify(token, secret) {
  const parts = String(token).split('.')
  if (parts.length !== 3) return null
  const expected = createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest('base64url')
  if (expected !== parts[2]) return null
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
    if (typeof payload.exp === 'number' && payload.exp < Date.now() / 1000) return null
    return payload
  } catch {
    return null
  }
}

const bearer = (req) => /^bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? null

/**
 * @param {{ jwtSecret: string, serviceKey: string, anonKey: string, latencyMs?: number }} options
 *   the project's JWT secret (user tokens), and its two API keys
 */
async function startSupabaseStandIn({ jwtSecret, serviceKey, anonKey, latencyMs = 0 }) {
  const state = {
    latencyMs,
    requests: [],
    inFlight: 0,
    peakInFlight: 0,
    connections: 0,
    peakOpenConnections: 0,
    /** Storage: "bucket/path" → { bytes, contentType } */
    objects: new Map(),
    /** REST: table → rows */
    tables: new Map([['todos', [{ id: 1, task: 'write specs', done: false }, { id: 2, task: 'ship', done: true }]]]),
    users: [
      { id: '11111111-1111-1111-1111-111111111111', aud: 'authenticated', role: 'authenticated', email: 'alice@example.com' },
      { id: '22222222-2222-2222-2222-222222222222', aud: 'authenticated', role: 'authenticated', email: 'bob@example.com' },
    ],
  }
  const sockets = new Set()

  const json = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(JSON.stringify(body))
  }
  const keyOk = (req) => req.headers.apikey === serviceKey || req.headers.apikey === anonKey
  const isService = (req) => req.headers.apikey === serviceKey && bearer(req) === serviceKey

  function auth(req, res, path) {
    if (!keyOk(req)) return json(res, 401, { message: 'Invalid API key' })
    if (path === '/user' && req.method === 'GET') {
      const payload = verify(bearer(req), jwtSecret)
      if (payload === null) return json(res, 401, { code: 401, error_code: 'bad_jwt', msg: 'invalid JWT: unable to parse or verify signature' })
      const user = state.users.find((u) => u.id === payload.sub) ?? { id: payload.sub, aud: 'authenticated', role: payload.role }
      return json(res, 200, user)
    }
    if (path.startsWith('/admin/users') && req.method === 'GET') {
      if (!isService(req)) return json(res, 403, { code: 403, error_code: 'not_admin', msg: 'User not allowed' })
      return json(res, 200, { users: state.users, aud: 'authenticated' }, { 'x-total-count': String(state.users.length) })
    }
    return json(res, 404, { code: 404, error_code: 'not_found', msg: `no route ${req.method} ${path}` })
  }

  function storage(req, res, path, body) {
    if (!keyOk(req)) return json(res, 400, { statusCode: '403', error: 'Unauthorized', message: 'Invalid Compact JWS' })
    const signed = /^\/object\/sign\/([^/]+)\/(.+)$/.exec(path)
    if (signed && req.method === 'POST') {
      const key = `${signed[1]}/${decodeURIComponent(signed[2])}`
      if (!state.objects.has(key)) return json(res, 400, { statusCode: '404', error: 'not_found', message: 'Object not found' })
      const { expiresIn } = JSON.parse(body.toString('utf8') || '{}')
      return json(res, 200, { signedURL: `/object/sign/${key}?token=${Buffer.from(`${key}:${expiresIn}`).toString('base64url')}` })
    }
    const object = /^\/object\/([^/]+)\/(.+)$/.exec(path)
    if (object && (req.method === 'POST' || req.method === 'PUT')) {
      const key = `${object[1]}/${decodeURIComponent(object[2])}`
      state.objects.set(key, { bytes: body, contentType: req.headers['content-type'] ?? 'application/octet-stream' })
      return json(res, 200, { Key: key, Id: randomUUID() })
    }
    if (object && req.method === 'GET') {
      const found = state.objects.get(`${object[1]}/${decodeURIComponent(object[2])}`)
      if (!found) return json(res, 400, { statusCode: '404', error: 'not_found', message: 'Object not found' })
      res.writeHead(200, { 'content-type': found.contentType })
      return res.end(found.bytes)
    }
    return json(res, 400, { statusCode: '404', error: 'not_found', message: `no route ${req.method} ${path}` })
  }

  function functions(req, res, path, body) {
    const name = path.slice(1)
    let payload = null
    try {
      payload = body.length ? JSON.parse(body.toString('utf8')) : null
    } catch {
      payload = body.toString('utf8')
    }
    return json(res, 200, { function: name, received: payload, authorization: req.headers.authorization ?? null })
  }

  /** PostgREST's answer to the requests the specs make: select=*, eq filters, insert. */
  function rest(req, res, path, body) {
    if (!keyOk(req)) return json(res, 401, { code: 'PGRST301', details: null, hint: null, message: 'No suitable key or wrong key type' })
    const url = new URL(path, 'http://x')
    if (url.pathname === '/') return json(res, 200, { swagger: '2.0', info: { title: 'standin' } })
    const table = url.pathname.slice(1)
    const rows = state.tables.get(table)
    if (rows === undefined) return json(res, 404, { code: 'PGRST205', details: null, hint: null, message: `Could not find the table 'public.${table}' in the schema cache` })
    if (req.method === 'GET' || req.method === 'HEAD') {
      let found = rows
      for (const [column, filter] of url.searchParams) {
        if (column === 'select' || column === 'order' || column === 'limit') continue
        const value = filter.replace(/^eq\./, '')
        found = found.filter((row) => String(row[column]) === value)
      }
      return json(res, 200, found, { 'content-range': `0-${Math.max(found.length - 1, 0)}/*` })
    }
    if (req.method === 'POST') {
      const inserted = [].concat(JSON.parse(body.toString('utf8')))
      rows.push(...inserted)
      return json(res, 201, (req.headers.prefer ?? '').includes('return=representation') ? inserted : null)
    }
    return json(res, 405, { code: 'PGRST117', details: null, hint: null, message: `Unsupported HTTP method: ${req.method}` })
  }

  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', async () => {
      const body = Buffer.concat(chunks)
      state.inFlight++
      state.peakInFlight = Math.max(state.peakInFlight, state.inFlight)
      res.on('close', () => state.inFlight--)
      state.requests.push({ method: req.method, path: req.url, headers: { ...req.headers }, body })
      if (state.latencyMs > 0) await new Promise((r) => setTimeout(r, state.latencyMs))
      const route = /^\/(auth|storage|functions|rest)\/v1(\/.*)?$/.exec(req.url.split('?')[0])
      const path = (route?.[2] ?? '/') + (req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '')
      const pathOnly = route?.[2] ?? '/'
      if (!route) return json(res, 404, { message: 'no such service' })
      if (route[1] === 'auth') return auth(req, res, pathOnly)
      if (route[1] === 'storage') return storage(req, res, pathOnly, body)
      if (route[1] === 'functions') return functions(req, res, pathOnly, body)
      return rest(req, res, path, body)
    })
  })
  server.on('connection', (socket) => {
    state.connections++
    sockets.add(socket)
    state.peakOpenConnections = Math.max(state.peakOpenConnections, sockets.size)
    socket.on('close', () => sockets.delete(socket))
  })
  server.keepAliveTimeout = 60_000
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    /** The requests seen for one service ('auth', 'storage', 'functions', 'rest'). */
    seen: (service) => state.requests.filter((r) => r.path.startsWith(`/${service}/v1`)),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

module.exports = { startSupabaseStandIn, verify }
