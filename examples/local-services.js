'use strict'
// What `npm start` stands up when the environment names no real services: an embedded
// PostgreSQL (seeded with a small `users` table) instead of DATABASE_URL, and the repo's
// OpenAI-compatible stand-in instead of api.openai.com when OPENAI_API_KEY is unset.

const crypto = require('node:crypto')
const path = require('node:path')
const { pathToFileURL } = require('node:url')

const USERS = [
  ['Ada Lovelace', 'ada@example.com', 'admin'],
  ['Grace Hopper', 'grace@example.com', 'admin'],
  ['Alan Turing', 'alan@example.com', 'member'],
  ['Katherine Johnson', 'katherine@example.com', 'member'],
  ['Edsger Dijkstra', 'edsger@example.com', 'member'],
]

async function seedUsers(url) {
  const { Client } = require('pg')
  const client = new Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`create table if not exists users (
      id bigint generated always as identity primary key,
      name text not null,
      email text not null unique,
      role text not null default 'member',
      created_at timestamptz not null default now())`)
    for (const [name, email, role] of USERS) {
      await client.query('insert into users (name, email, role) values ($1, $2, $3) on conflict (email) do nothing', [name, email, role])
    }
  } finally {
    await client.end()
  }
}

/** Starts an embedded PostgreSQL with a random password; resolves to { url, port, stop }. */
async function startLocalPostgres() {
  const script = pathToFileURL(path.join(__dirname, '..', 'scripts', 'embedded-postgres.mjs')).href
  const { startEmbeddedPostgres } = await import(script)
  const embedded = await startEmbeddedPostgres({ password: crypto.randomBytes(18).toString('base64url'), maxConnections: 50 })
  await seedUsers(embedded.url)
  return { url: embedded.url, port: Number(new URL(embedded.url).port), stop: embedded.stop }
}

/** Starts the loopback OpenAI-compatible server with a little latency, so charts have a shape. */
async function startLocalOpenAI() {
  const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')
  return startOpenAIStandIn({ latencyMs: 40, record: false })
}

module.exports = { startLocalPostgres, startLocalOpenAI }
