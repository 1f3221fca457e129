// A PostgreSQL of its own for the authentication and TLS specs, run as a child process (Jest's
// CommonJS workers cannot import the ES-module starter). It has a self-signed certificate
// (ssl=on), and one login role per way in, each held to its method by pg_hba.conf (first match):
// trust, cleartext password, md5 (an md5-stored password), scram-sha-256 (a SCRAM-stored one),
// and SCRAM over TLS only. Prints `ready <json>` when up; stops on end of input.
import { chmodSync, chownSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import pg from 'pg'
import selfsigned from 'selfsigned'
import { startEmbeddedPostgres } from '../../scripts/embedded-postgres.mjs'

const users = {
  trust: { name: 'cp_trust', password: 'trust-needs-none' },
  password: { name: 'cp_password', password: 'clear-Secret-31' },
  md5: { name: 'cp_md5', password: 'md5-Secret-52' },
  scram: { name: 'cp_scram', password: 'scram-Secret-73' },
  tls: { name: 'cp_tls', password: 'tls-Secret-94' },
}

const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
  keyType: 'ec',
  algorithm: 'sha256',
  extensions: [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
  ],
})
const certDir = await mkdtemp(path.join(tmpdir(), 'connection-pools-tls-'))
const rootCert = path.join(certDir, 'root.pem')
writeFileSync(rootCert, pems.cert)

const embedded = await startEmbeddedPostgres({
  password: 'auth-Super-Secret-8',
  maxConnections: 60,
  flags: ['-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key'],
  beforeStart: (dataDir, owner) => {
    const owned = (name, content) => {
      const file = path.join(dataDir, name)
      writeFileSync(file, content)
      chmodSync(file, 0o600)
      chownSync(file, owner.uid, owner.gid)
    }
    owned('server.crt', pems.cert)
    owned('server.key', pems.private)
    const hba = path.join(dataDir, 'pg_hba.conf')
    const lines = [
      `hostnossl all ${users.tls.name} 127.0.0.1/32 reject`,
      `hostssl all ${users.tls.name} 127.0.0.1/32 scram-sha-256`,
      `host all ${users.trust.name} 127.0.0.1/32 trust`,
      `host all ${users.password.name} 127.0.0.1/32 password`,
      `host all ${users.md5.name} 127.0.0.1/32 md5`,
      `host all ${users.scram.name} 127.0.0.1/32 scram-sha-256`,
    ]
    owned('pg_hba.conf', `${lines.join('\n')}\n${readFileSync(hba, 'utf8')}`)
  },
})

const admin = new pg.Client({ connectionString: embedded.url })
await admin.connect()
const encryption = { md5: 'md5' }
for (const [method, { name, password }] of Object.entries(users)) {
  await admin.query(`SET password_encryption = '${encryption[method] ?? 'scram-sha-256'}'`)
  await admin.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`)
}
const stored = await admin.query(
  `select rolname, left(rolpassword, 14) as kind from pg_authid where rolname like 'cp\\_%'`,
)
await admin.end()

const { port } = new URL(embedded.url)
process.stdout.write(`ready ${JSON.stringify({ port: Number(port), users, rootCert, stored: stored.rows })}\n`)
for await (const _ of createInterface({ input: process.stdin })) {
  // Only the end of input matters.
}
await embedded.stop()
