// The fixture of postgrest-js's own test suite (fixture.sql: supabase/postgrest-js's test/db,
// without the postgis parts) in a database of its own per spec file, and the pool over it:
// what every conformance-*.spec.ts runs against.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Client } from 'pg'
import { DatabasePool } from '../..'
import type { DatabaseClient } from '../..'
import { baseUrl, uniqueName } from '../helpers'

export function urlOf(db: string): string {
  const url = new URL(baseUrl())
  url.pathname = `/${db}`
  return url.toString()
}

/** Registers the fixture database's creation and removal with the spec file that calls it. */
export function conformanceDatabase() {
  const name = uniqueName('cp_conformance')
  let admin: DatabaseClient | null = null
  beforeAll(async () => {
    const setup = new Client({ connectionString: baseUrl() })
    await setup.connect()
    await setup.query(`create database ${name}`)
    await setup.end()
    const loader = new Client({ connectionString: urlOf(name) })
    await loader.connect()
    await loader.query(readFileSync(path.join(__dirname, 'fixture.sql'), 'utf8'))
    await loader.query(`DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
    await loader.query('grant usage on schema public, personal to anon')
    await loader.query('grant select on all tables in schema public, personal to anon')
    await loader.end()
    DatabasePool.initialize({ connectionString: urlOf(name), schemas: ['public', 'personal'], minConnections: 0, maxConnections: 4 })
    admin = DatabasePool.getAdminClient()
  })
  afterAll(async () => {
    await DatabasePool.close()
    const teardown = new Client({ connectionString: baseUrl() })
    await teardown.connect()
    await teardown.query(`drop database if exists ${name} with (force)`)
    await teardown.end()
  })
  return {
    name,
    admin: (): DatabaseClient => {
      if (admin === null) throw new Error('the conformance database is not set up yet')
      return admin
    },
    /** Runs several statements in one text on the fixture database (pg sends them as one simple query). */
    setUp: async (sql: string) => {
      const client = new Client({ connectionString: urlOf(name) })
      await client.connect()
      try {
        await client.query(sql)
      } finally {
        await client.end()
      }
    },
  }
}

// postgrest-js's answer for a success (it adds `success` beside PostgREST's fields).
export const ok = (data: unknown) => ({ success: true, data, error: null, count: null, status: 200, statusText: 'OK' })
