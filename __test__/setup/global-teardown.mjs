// Stops PgBouncer and the embedded PostgreSQL, if global-setup started them.
export default async function globalTeardown() {
  if (globalThis.__PGBOUNCER__) await globalThis.__PGBOUNCER__.stop()
  const embedded = globalThis.__EMBEDDED_PG__
  if (embedded) await embedded.stop()
}
