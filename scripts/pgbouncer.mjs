// Starts a real PgBouncer (Debian's `pgbouncer`) in front of a PostgreSQL, on a free loopback
// port, in transaction mode unless told otherwise. Used by the test setup and the benchmark.
// `.ci/run` installs the package when it is missing.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { freePort } from './free-port.js'

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']

/** The pgbouncer binary, or null when it is not installed. */
export function pgbouncerBinary() {
  for (const candidate of CANDIDATES) if (existsSync(candidate)) return candidate
  const found = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' })
  return found.status === 0 ? found.stdout.trim() : null
}

function supportsPreparedStatements(binary) {
  const version = spawnSync(binary, ['--version'], { encoding: 'utf8' }).stdout ?? ''
  const [, major, minor] = version.match(/PgBouncer (\d+)\.(\d+)/) ?? []
  return Number(major) > 1 || (Number(major) === 1 && Number(minor) >= 21)
}

/** Resolves once something accepts TCP connections on the port (or rejects when `exited` does). */
function listening(port, exited) {
  return new Promise((resolve, reject) => {
    let done = false
    exited.then((code) => {
      if (!done) {
        done = true
        reject(new Error(`pgbouncer exited with code ${code} before it listened`))
      }
    })
    const attempt = () => {
      if (done) return
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        done = true
        resolve()
      })
      // Not listening yet: try again on the next turn of the event loop's timers.
      socket.once('error', () => setTimeout(attempt, 20))
    }
    attempt()
  })
}

/**
 * @param {{ databaseUrl: string, poolMode?: 'transaction' | 'session', poolSize?: number }} options
 * @returns {Promise<{ url: string, stop: () => Promise<void> }>} url: the database's URL with
 *   PgBouncer's host and port (same user, password and database)
 */
export async function startPgBouncer({ databaseUrl, poolMode = 'transaction', poolSize = 3 }) {
  const binary = pgbouncerBinary()
  if (!binary) throw new Error('pgbouncer is not installed (apt-get install pgbouncer)')
  const target = new URL(databaseUrl)
  const user = decodeURIComponent(target.username)
  const password = decodeURIComponent(target.password)
  const port = await freePort()
  const dir = await mkdtemp(path.join(tmpdir(), 'connection-pools-pgbouncer-'))
  // PgBouncer refuses to run as root; as root it runs as the postgres user, who must read this.
  chmodSync(dir, 0o755)
  const quote = (s) => `"${s.replace(/"/g, '""')}"`
  writeFileSync(path.join(dir, 'userlist.txt'), `${quote(user)} ${quote(password)}\n`, { mode: 0o644 })
  writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${target.hostname} port=${target.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      // A server that takes the user without a password (trust, as a developer's own Postgres
      // often does) is fronted the same way: PgBouncer asks for none either.
      `auth_type = ${password ? 'plain' : 'trust'}`,
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      `pool_mode = ${poolMode}`,
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 1000',
      // Named prepared statements must not survive across transactions, as in PgBouncer before
      // 1.21 (Debian 12 ships 1.18): the pool must not rely on them, and newer versions would
      // otherwise hide it.
      ...(supportsPreparedStatements(binary) ? ['max_prepared_statements = 0'] : []),
      'ignore_startup_parameters = extra_float_digits,options',
      'pidfile =',
      'logfile =',
      '',
    ].join('\n'),
    { mode: 0o644 },
  )
  const args = [path.join(dir, 'pgbouncer.ini')]
  if (process.getuid?.() === 0) args.unshift('-u', 'postgres')
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => {
    if (stderr.length < 10_000) stderr += chunk
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try {
    await listening(port, exited)
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw new Error(`${err.message}: ${stderr.trim()}`)
  }
  const url = new URL(databaseUrl)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  return {
    url: url.toString(),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await exited
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}
