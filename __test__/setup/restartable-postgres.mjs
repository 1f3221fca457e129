// A PostgreSQL of its own for a spec that restarts the server, run as a child process (Jest's
// CommonJS workers cannot import the ES-module starter): prints `url <url>` when up, restarts on
// a `restart` line on stdin and prints `restarted`, stops on end of input.
import { createInterface } from 'node:readline'
import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.mjs'

const embedded = await startEmbeddedPostgres({ password: 'restart-Secret-9', maxConnections: 50 })
process.stdout.write(`url ${embedded.url}\n`)
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'restart') {
    await embedded.restart()
    process.stdout.write('restarted\n')
  }
}
await embedded.stop()
