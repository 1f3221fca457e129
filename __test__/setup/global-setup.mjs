// Starts the PostgreSQL the specs run against, unless DATABASE_URL names one already, and makes
// sure the Supabase roles the user clients switch to exist (anon, authenticated).
// The embedded server has a password so that the specs can check it never leaks.
// A real PgBouncer in transaction mode (3 server connections) goes in front of it for the pooler
// specs, at CP_TEST_PGBOUNCER_URL; without Debian's pgbouncer those specs skip (and fail in CI).
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.mjs'
import { pgbouncerBinary, startPgBouncer } from '../../scripts/pgbouncer.mjs'

async function createSupabaseRoles(url) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    for (const role of ['anon', 'authenticated']) {
      await client.query(`
        DO $$ BEGIN
          CREATE ROLE ${role} NOLOGIN;
        EXCEPTION WHEN duplicate_object THEN NULL;
        END $$`)
      await client.query(`GRANT ${role} TO current_user`).catch(() => {}) // a superuser needs no grant
      await client.query(`GRANT USAGE ON SCHEMA public TO ${role}`)
    }
  } finally {
    await client.end()
  }
}

export default async function globalSetup() {
  if (!process.env.DATABASE_URL) {
    const outputDir = path.resolve('test-output')
    mkdirSync(outputDir, { recursive: true })
    const statementLog = path.join(outputDir, 'postgres-statements.log')
    writeFileSync(statementLog, '')
    const embedded = await startEmbeddedPostgres({ password: 'cp-test-Secret-71x', statementLog })
    process.env.CP_TEST_STATEMENT_LOG = statementLog
    globalThis.__EMBEDDED_PG__ = embedded
    process.env.DATABASE_URL = embedded.url
  }
  await createSupabaseRoles(process.env.DATABASE_URL)
  if (pgbouncerBinary()) {
    const bouncer = await startPgBouncer({ databaseUrl: process.env.DATABASE_URL, poolMode: 'transaction', poolSize: 3 })
    globalThis.__PGBOUNCER__ = bouncer
    process.env.CP_TEST_PGBOUNCER_URL = bouncer.url
  }
}
