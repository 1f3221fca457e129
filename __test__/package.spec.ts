// The consumer's path, exactly: `npm run package`, an empty backend project, `npm install` of the
// tarballs with a PATH that has Node but no Rust, then CommonJS, ES-module and strict TypeScript
// (module nodenext) code that uses the package against the test database.
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

const root = path.resolve(__dirname, '..')
const dist = path.join(root, 'dist')
const databaseUrl = process.env.DATABASE_URL as string

/** Every runtime export of the package, as a backend imports it. */
const EXPORTS = [
  'DatabasePool', 'supabaseAdmin', 'supabase', 'testConnection', 'checkDatabaseHealth',
  'OpenAIPool', 'openai', 'testOpenAIConnection', 'createClient',
  'ConnectionPoolError', 'DatabaseError', 'PostgrestError', 'createConnectionsRouter',
]

const CJS_CHECK = `
const pools = require('connection-pools')
const express = require('express')
async function main() {
  pools.DatabasePool.initialize({ connectionString: process.env.DATABASE_URL, maxConnections: 2 })
  const { rows } = await pools.supabaseAdmin.query('select 1 as one')
  const app = express()
  app.use('/api/connections', pools.createConnectionsRouter({ token: 'consumer-token' }))
  const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  const response = await fetch('http://127.0.0.1:' + server.address().port + '/api/connections/database/stats', {
    headers: { authorization: 'Bearer consumer-token' },
  })
  const body = await response.json()
  server.close()
  await pools.DatabasePool.close()
  const binaries = Object.keys(require.cache).filter((file) => file.endsWith('.node'))
  console.log(JSON.stringify({ rows, status: response.status, success: body.success, binaries, exports: Object.keys(pools) }))
}
main().catch((err) => { console.error(err); process.exit(1) })
`

const ESM_CHECK = `
import { createRequire } from 'node:module'
import * as namespace from 'connection-pools'
import { ${EXPORTS.join(', ')} } from 'connection-pools'
const named = { ${EXPORTS.join(', ')} }
const cjs = createRequire(import.meta.url)('connection-pools')
DatabasePool.initialize({ connectionString: process.env.DATABASE_URL, maxConnections: 2 })
const { rows } = await supabaseAdmin.query('select 2 as two')
// The statement ran on the pool that require() sees: one pool per process.
const queriesSeenByRequire = cjs.DatabasePool.getStats().totalQueries
await cjs.DatabasePool.close()
console.log(JSON.stringify({
  rows,
  queriesSeenByRequire,
  sameAsRequire: Object.keys(named).filter((name) => named[name] === cjs[name]),
  missingFromNamespace: Object.keys(cjs).filter((name) => namespace[name] !== cjs[name]),
}))
`

const TS_CHECK = `
import { DatabasePool, OpenAIPool, supabaseAdmin, supabase, openai, createConnectionsRouter,
  ConnectionPoolError, DatabaseError, PostgrestError, createClient, testConnection,
  checkDatabaseHealth, testOpenAIConnection } from 'connection-pools'
import type { DatabasePoolConfig, ConnectionStats } from 'connection-pools'

const config: DatabasePoolConfig = { connectionString: process.env.DATABASE_URL, maxConnections: 2 }
DatabasePool.initialize(config)
const result = await supabaseAdmin.query('select 1 as one')
const count: number = result.rowCount
const stats: ConnectionStats = DatabasePool.getStats()
const healthy: boolean = await testConnection()
const router = createConnectionsRouter({ token: 't' })
const errors = [ConnectionPoolError, DatabaseError, PostgrestError]
void [count, stats, healthy, router, errors, supabase, openai, OpenAIPool, checkDatabaseHealth, testOpenAIConnection, createClient]
// The types are really checked: a wrong option type must be an error.
// @ts-expect-error maxConnections is a number
DatabasePool.initialize({ maxConnections: 'ten' })
`

const TS_CJS_CHECK = `
import pools = require('connection-pools')
const client: pools.DatabaseClient = pools.supabaseAdmin
void client
`

/** A PATH with Node and npm but without cargo or rustc, and proof of that. */
function pathWithoutRust(dir: string): string {
  const bin = path.join(dir, 'node-only-bin')
  mkdirSync(bin)
  symlinkSync(process.execPath, path.join(bin, 'node'))
  const npm = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim()
  symlinkSync(realpathSync(npm), path.join(bin, 'npm'))
  const PATH = [bin, '/usr/bin', '/bin'].join(path.delimiter)
  for (const tool of ['cargo', 'rustc']) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { env: { PATH }, encoding: 'utf8' })
    if (found.status === 0) throw new Error(`${tool} is on ${PATH} (${found.stdout.trim()}): this spec needs a PATH without Rust`)
  }
  return PATH
}

describe('the package a backend installs from its tarballs', () => {
  let consumer: string
  let env: NodeJS.ProcessEnv
  let tarballs: string[]

  beforeAll(() => {
    // The binary npm install (or npm run build) made: rebuilding here would rewrite the .node file
    // while specs in the other worker load it.
    execFileSync('npm', ['run', '--silent', 'package', '--', '--no-build'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    tarballs = readdirSync(dist).filter((name) => name.endsWith('.tgz')).map((name) => path.join(dist, name))
    consumer = mkdtempSync(path.join(tmpdir(), 'connection-pools-consumer-'))
    // The machine's certificate settings go along: a Node binary that carries its own CA store
    // (the Node 24 of CI) reaches the registry through them.
    const certificates = Object.fromEntries(
      ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR'].filter((name) => process.env[name]).map((name) => [name, process.env[name]]),
    )
    env = { PATH: pathWithoutRust(consumer), HOME: process.env.HOME, DATABASE_URL: databaseUrl, ...certificates }
    writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'backend', version: '1.0.0', private: true }))
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs, 'express@^5', '@types/node@^20'],
      { cwd: consumer, env, stdio: ['ignore', 'pipe', 'pipe'] },
    )
  }, 600_000)

  afterAll(() => {
    if (consumer) rmSync(consumer, { recursive: true, force: true })
  })

  it('packs the main package and this platform\'s package, versions matching', () => {
    const names = tarballs.map((file) => path.basename(file)).sort()
    const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
    expect(names).toContain(`connection-pools-${version}.tgz`)
    const platform = names.filter((name) => name !== `connection-pools-${version}.tgz`)
    expect(platform).toHaveLength(1)
    expect(platform[0]).toMatch(new RegExp(`^connection-pools-[a-z0-9-]+-${version.replace(/\./g, '\\.')}\\.tgz$`))
  })

  it('installs with Node only: no build script, no Rust sources, the binary from the platform package', () => {
    const installed = path.join(consumer, 'node_modules', 'connection-pools')
    const manifest = JSON.parse(readFileSync(path.join(installed, 'package.json'), 'utf8'))
    expect(manifest.scripts ?? {}).toEqual({})
    expect(Object.keys(manifest.optionalDependencies).sort()).toEqual(
      ['darwin-arm64', 'darwin-x64', 'linux-arm64-gnu', 'linux-x64-gnu', 'win32-x64-msvc'].map((p) => `connection-pools-${p}`),
    )
    expect(new Set(Object.values(manifest.optionalDependencies))).toEqual(new Set([manifest.version]))
    for (const absent of ['src', 'Cargo.toml', 'build.rs']) expect(existsSync(path.join(installed, absent))).toBe(false)
    expect(readdirSync(installed).filter((name) => name.endsWith('.node'))).toEqual([])
  })

  it('works from CommonJS: select 1 against the database and a monitoring router', () => {
    writeFileSync(path.join(consumer, 'check.cjs'), CJS_CHECK)
    const out = JSON.parse(execFileSync('node', ['check.cjs'], { cwd: consumer, env, encoding: 'utf8' }))
    expect(out.rows).toEqual([{ one: 1 }])
    expect(out.status).toBe(200)
    expect(out.success).toBe(true)
    expect(out.binaries).toHaveLength(1)
    expect(out.binaries[0]).toContain(path.join('node_modules', 'connection-pools-'))
    expect(out.exports.sort()).toEqual([...EXPORTS].sort())
  })

  it('imports every export by name from an ES module, the same objects as require', () => {
    writeFileSync(path.join(consumer, 'check.mjs'), ESM_CHECK)
    const out = JSON.parse(execFileSync('node', ['check.mjs'], { cwd: consumer, env, encoding: 'utf8' }))
    expect(out.rows).toEqual([{ two: 2 }])
    expect(out.queriesSeenByRequire).toBe(1)
    expect(out.sameAsRequire.sort()).toEqual([...EXPORTS].sort())
    expect(out.missingFromNamespace).toEqual([])
  })

  it('type-checks strict TypeScript with module nodenext, as ESM and as CommonJS', () => {
    writeFileSync(path.join(consumer, 'check-esm.mts'), TS_CHECK)
    writeFileSync(path.join(consumer, 'check-cjs.cts'), TS_CJS_CHECK)
    writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true,
        skipLibCheck: false, noEmit: true, types: ['node'],
      },
      files: ['check-esm.mts', 'check-cjs.cts'],
    }))
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const result = spawnSync('node', [tsc, '-p', consumer], { cwd: consumer, env, encoding: 'utf8' })
    expect(result.stdout + result.stderr).toBe('')
    expect(result.status).toBe(0)
  })
})
