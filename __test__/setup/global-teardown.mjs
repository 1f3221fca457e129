// Stops the embedded PostgreSQL, if global-setup started one.
export default async function globalTeardown() {
  const embedded = globalThis.__EMBEDDED_PG__
  if (embedded) await embedded.stop()
}
