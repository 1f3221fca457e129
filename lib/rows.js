'use strict'
// Turns the native reply's values into row objects. A raw query()'s reply comes by column
// (`{ columns, data: [[values of column 0], ...] }`: V8 parses a thousand rows as a few long
// arrays in about half the time it parses a thousand short ones); a reply may also come by row
// (`{ columns, rows: [[...], ...] }`).
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

/** The rows of a native reply, by column or by row, as an array of objects. */
function rowsToObjects(reply) {
  const { columns, data, rows } = reply
  if (data !== undefined) {
    const count = columns.length === 0 ? 0 : data[0].length
    if (count === 0) return []
    const make = factoryFor(columns, 'columns', (k) => `v[${k}][i]`)
    const out = new Array(count)
    for (let i = 0; i < count; i++) out[i] = make(data, i)
    return out
  }
  if (rows.length === 0) return []
  const make = factoryFor(columns, 'rows', (k) => `v[i][${k}]`)
  const out = new Array(rows.length)
  for (let i = 0; i < rows.length; i++) out[i] = make(rows, i)
  return out
}

module.exports = { rowsToObjects }
