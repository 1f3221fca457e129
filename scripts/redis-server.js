// A throwaway redis-server (Debian's package; .ci/run installs it) on a free loopback port,
// without persistence: for the shared-limits specs and bench. `stop()` kills it, `start()`
// starts it again on the same port (a Redis that goes away and comes back).
'use strict'
const { spawn } = require('node:child_process')
const { once } = require('node:events')
const { accessSync, constants, mkdtempSync, rmSync } = require('node:fs')
const { createConnection } = require('node:net')
const { freePort } = require('./free-port.js')
const { tmpdir } = require('node:os')
const path = require('node:path')

/** The redis-server binary, or null when it is not installed. */
function redisServerBinary() {
  for (const candidate of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {}
  }
  return null
}

function accepting(port) {
  return new Promise((resolve) => {
    const socket = createConnection(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

async function startRedisServer() {
  const binary = redisServerBinary()
  if (!binary) throw new Error('redis-server is not installed (apt-get install redis-server)')
  const port = await freePort()
  const dir = mkdtempSync(path.join(tmpdir(), 'cp-redis-'))
  let child = null
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
      const exited = once(child, 'exit')
      // Up once it accepts a connection (or failed if it exited first).
      for (;;) {
        if (await accepting(port)) return
        const gone = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 20))])
        if (gone) throw new Error(`redis-server exited before listening on ${port}`)
      }
    },
    async stop() {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit')
        child.kill('SIGKILL')
        await exited
      }
      child = null
    },
    async close() {
      await redis.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
  await redis.start()
  return redis
}

module.exports = { startRedisServer, redisServerBinary }
