// A free TCP port on loopback, for the throwaway servers of the specs, bench and demo.
'use strict'
const { createServer } = require('node:net')

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

module.exports = { freePort }
