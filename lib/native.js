'use strict'
// What both pools' initialize() share: checking the options object, handing it to the native
// constructor as JSON (keeping NaN and Infinity visible instead of letting JSON turn them into
// null, which would silently mean "default"), and draining the pool being replaced.

const { ConnectionPoolError, rethrowNative } = require('./errors')

/**
 * @param {new (optionsJson: string, envJson: string) => object} NativeClass
 * @param {unknown} config
 * @param {Record<string, string | undefined>} env the environment variables that supply defaults
 */
function createNativePool(NativeClass, config, env) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ConnectionPoolError('INVALID_CONFIG', 'invalid config: options must be an object')
  }
  const optionsJson = JSON.stringify(config, (_key, value) =>
    typeof value === 'number' && !Number.isFinite(value) ? String(value) : value,
  )
  try {
    return new NativeClass(optionsJson, JSON.stringify(env))
  } catch (err) {
    rethrowNative(err)
  }
}

/**
 * Lets a replaced pool finish what it accepted (queued work included), then close, without
 * blocking the caller. The database pool's close() drains; the OpenAI pool has retire() for it
 * (its close() fails queued calls).
 */
function retire(previous) {
  if (previous === null || previous.closed) return
  const finishing = typeof previous.retire === 'function' ? previous.retire() : previous.close()
  finishing.catch(() => {})
}

/**
 * The seed's healthCheck() answer for a pool: `{ healthy, message, stats, responseTime }`.
 * Never rejects: a pool that cannot even be created (bad environment) is reported unhealthy.
 * @param {string} label 'Database' or 'OpenAI', for the message
 * @param {() => object} currentPool the module's pool(), which may throw
 * @param {() => object} getStats the public getStats()
 */
async function healthReport(label, currentPool, getStats) {
  let native
  try {
    native = currentPool()
  } catch (err) {
    return { healthy: false, message: `${label} unhealthy: ${err.message}`, stats: null, responseTime: null }
  }
  const health = await native.healthCheck()
  return {
    healthy: health.healthy,
    message: health.message,
    stats: getStats(),
    responseTime: health.responseTime ?? null,
  }
}

module.exports = { createNativePool, retire, healthReport }
