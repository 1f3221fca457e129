'use strict'
// Leak detection (option `leakDetectionThreshold`, off by default): a transaction, a slot held
// by `executeRequest`, or a stream left open longer than the threshold is reported once, with
// the stack that took it, as a 'leak' event of its pool and a process warning; when it ends at
// last, a 'release' event says after how long. The stack is captured only while the option is
// on (V8 records the frames at capture and formats them only if a warning needs them).

const path = require('node:path')
const { performance } = require('node:perf_hooks')

/** What `watchHold` returns when leak detection is off: nothing to release. */
const UNWATCHED = Object.freeze({ release() {} })

/** Frames of this package, left out of the `site` a warning names. */
const OWN_FILES = [`${__dirname}${path.sep}`, path.join(__dirname, '..', 'index.js')]
const isOwnFrame = (frame) => OWN_FILES.some((file) => frame.includes(file)) || frame.includes('node:internal')

/** The first frame of `stack` outside this package: where the caller took the resource. */
function callerSite(stack) {
  const frames = stack.split('\n').slice(1)
  const outside = frames.find((frame) => !isOwnFrame(frame))
  return (outside ?? frames[0] ?? '').trim().replace(/^at /, '')
}

class LeakWatcher {
  /**
   * @param {import('node:events').EventEmitter} events where 'leak' and 'release' are emitted
   * @param {string} pool 'database' or 'openai', named in warnings
   */
  constructor(events, pool) {
    this._events = events
    this._pool = pool
    /** The holds being watched, oldest first (a Set keeps insertion order). */
    this._holds = new Set()
  }

  /**
   * Starts watching a hold of `kind` ('transaction' | 'slot' | 'stream') taken now by the caller
   * whose stack `trace` holds (`captureCaller`; null when leak detection is off).
   */
  watch(kind, thresholdMs, trace) {
    if (trace === null || !(thresholdMs > 0)) return UNWATCHED
    const hold = { kind, trace, since: performance.now(), warned: false, timer: null }
    hold.timer = setTimeout(() => this._warn(hold, thresholdMs), thresholdMs)
    hold.timer.unref()
    this._holds.add(hold)
    return { release: () => this._release(hold) }
  }

  /** The hold kept longest, as `{ kind, ageMs, stack }`, or null. */
  oldest() {
    for (const hold of this._holds) return { kind: hold.kind, ageMs: Math.round(performance.now() - hold.since), stack: stackOf(hold) }
    return null
  }

  /**
   * `err` (a timeout) with the stack of the oldest hold still watched, as `introduce(oldest)`
   * names it; unchanged when nothing is watched (leak detection off, or nothing held).
   */
  withOldest(err, introduce) {
    const oldest = this.oldest()
    if (oldest !== null) err.message += `; ${introduce(oldest)}:\n${oldest.stack}`
    return err
  }

  /** The warnings in force now (holds past the threshold and not released), for the dashboard. */
  current() {
    return [...this._holds].filter((hold) => hold.warned).map((hold) => this._describe(hold))
  }

  _describe(hold) {
    const stack = stackOf(hold)
    return { pool: this._pool, kind: hold.kind, ageMs: Math.round(performance.now() - hold.since), site: callerSite(stack), stack }
  }

  _warn(hold, thresholdMs) {
    if (!this._holds.has(hold)) return
    hold.warned = true
    const leak = { ...this._describe(hold), thresholdMs }
    this._events.emit('leak', leak)
    process.emitWarning(
      `a ${this._pool} ${hold.kind} has been held for ${leak.ageMs} ms (leakDetectionThreshold ${thresholdMs} ms), taken at ${leak.site}`,
      { code: 'CP_LEAK', detail: leak.stack },
    )
  }

  _release(hold) {
    if (!this._holds.delete(hold)) return
    clearTimeout(hold.timer)
    if (hold.warned) {
      const heldMs = Math.round(performance.now() - hold.since)
      this._events.emit('release', { pool: this._pool, kind: hold.kind, heldMs, site: callerSite(stackOf(hold)) })
    }
  }
}

/**
 * The stack of the code calling `from`, captured now when leak detection is on (`thresholdMs`
 * above 0), else null: no stack is captured while the option is off.
 */
function captureCaller(thresholdMs, from) {
  if (!(thresholdMs > 0)) return null
  const trace = {}
  Error.captureStackTrace(trace, from)
  return trace
}

/** Each native pool's leakDetectionThreshold (ms, 0 when off), read from its config once. */
const thresholds = new WeakMap()

function leakThreshold(native) {
  let threshold = thresholds.get(native)
  if (threshold === undefined) thresholds.set(native, (threshold = native.config().leakDetectionThreshold))
  return threshold
}

/** The captured stack's frames outside this package, under a heading of our own. */
function stackOf(hold) {
  const frames = String(hold.trace.stack ?? '').split('\n').slice(1)
  const theirs = frames.filter((frame) => !isOwnFrame(frame))
  return ['Taken at:', ...(theirs.length > 0 ? theirs : frames)].join('\n')
}

module.exports = { LeakWatcher, captureCaller, callerSite, leakThreshold }
