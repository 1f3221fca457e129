// Starts the PostgreSQL the specs run against, unless DATABASE_URL names one already.
// The embedded server has a password so that the specs can check it never leaks.
import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.mjs'

export default async function globalSetup() {
  if (process.env.DATABASE_URL) return
  const embedded = await startEmbeddedPostgres({ password: 'cp-test-Secret-71x' })
  globalThis.__EMBEDDED_PG__ = embedded
  process.env.DATABASE_URL = embedded.url
}
