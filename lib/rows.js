'use strict'
// Turns the native reply's values into row objects. A reply comes by row (`{ columns, rows:
// [[...], ...] }`), or, for a raw query() of more than a few rows, packed (`{ columns, packed }`,
// src/db/codec/packed.rs): numbers in Float64Arrays, the text of every string in one string
// sliced by offsets, nothing to JSON.parse but json values; building a thousand rows so costs a
// fraction of parsing them (bench/RESULTS.md).
//
// One function is generated per column list and layout, and cached, so every row of a shape gets
// the same hidden class and V8 builds it as fast as a literal. Column names enter the generated
// code only as JSON string literals; `__proto__` is written as a computed key so it becomes an own
// property (as JSON.parse would make it) instead of setting the prototype.

const MAX_SHAPES = 500
const factories = new Map()

/** `make(values, i)`: the row object of row `i`, its values read by `valueOf(k)` (code text). */
function factoryFor(columns, layout, valueOf) {
  const key = `${layout}\u0000${columns.join('\u0000')}`
  let make = factories.get(key)
  if (make === undefined) {
    const fields = columns.map((name, k) => {
      const literal = JSON.stringify(name)
      return name === '__proto__' ? `[${literal}]: ${valueOf(k)}` : `${literal}: ${valueOf(k)}`
    })
    make = new Function('v', 'i', `return {${fields.join(', ')}}`)
    if (factories.size >= MAX_SHAPES) factories.delete(factories.keys().next().value)
    factories.set(key, make)
  }
  return make
}

/** NaN and the infinities, which JSON cannot hold, are the strings Postgres prints. */
function finite(x) {
  return x - x === 0 ? x : String(x)
}

/** How a packed column's value `k` of row `i` is read (`v`: arrays, `t`: text). */
const PACKED_VALUE = {
  i: (k) => `v[${k}][i]`,
  f: (k) => `fin(v[${k}][i])`,
  b: (k) => `v[${k}][i] === 1`,
  s: (k) => `t.substring(v[${k}][i], v[${k}][i + 1])`,
  j: (k) => `JSON.parse(t.substring(v[${k}][i], v[${k}][i + 1]))`,
  z: () => 'null',
}

function packedFactory(columns, kinds) {
  const key = `packed\u0000${kinds}\u0000${columns.join('\u0000')}`
  let make = factories.get(key)
  if (make === undefined) {
    const fields = columns.map((name, k) => {
      const literal = JSON.stringify(name)
      const value = `(z[${k}] !== null && z[${k}][i] === 1) ? null : ${PACKED_VALUE[kinds[k]](k)}`
      return name === '__proto__' ? `[${literal}]: ${value}` : `${literal}: ${value}`
    })
    make = new Function('fin', `return function (v, z, t, i) { return {${fields.join(', ')}} }`)(finite)
    if (factories.size >= MAX_SHAPES) factories.delete(factories.keys().next().value)
    factories.set(key, make)
  }
  return make
}

/** The rows of a packed reply: typed views of its buffer, then one object per row. */
function packedRows(columns, packed) {
  const { rows, kinds, at, nulls, text } = packed
  // Float64Array views need 8-byte alignment: a buffer that lacks it is copied (rare).
  let bytes = packed.buffer
  if (bytes.byteOffset % 8 !== 0) bytes = Uint8Array.prototype.slice.call(bytes)
  const { buffer, byteOffset } = bytes
  const values = new Array(kinds.length)
  const flags = new Array(kinds.length)
  for (let k = 0; k < kinds.length; k++) {
    const where = byteOffset + at[k]
    const kind = kinds[k]
    if (kind === 'i' || kind === 'f') values[k] = new Float64Array(buffer, where, rows)
    else if (kind === 's' || kind === 'j') values[k] = new Uint32Array(buffer, where, rows + 1)
    else if (kind === 'b') values[k] = new Uint8Array(buffer, where, rows)
    else values[k] = null
    flags[k] = nulls[k] < 0 ? null : new Uint8Array(buffer, byteOffset + nulls[k], rows)
  }
  const make = packedFactory(columns, kinds)
  const out = new Array(rows)
  for (let i = 0; i < rows; i++) out[i] = make(values, flags, text, i)
  return out
}

/** The rows of a native reply, packed or by row, as an array of objects. */
function rowsToObjects(reply) {
  const { columns, rows, packed } = reply
  if (packed !== undefined) return packedRows(columns, packed)
  if (rows.length === 0) return []
  const make = factoryFor(columns, 'rows', (k) => `v[i][${k}]`)
  const out = new Array(rows.length)
  for (let i = 0; i < rows.length; i++) out[i] = make(rows, i)
  return out
}

module.exports = { rowsToObjects }
