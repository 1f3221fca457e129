'use strict'
// Turns the native reply's rows (arrays in column order) into objects.
//
// One constructor is generated per column list and cached, so every row of a shape gets the same
// hidden class and V8 builds it as fast as a literal. Column names enter the generated code only
// as JSON string literals; `__proto__` is written as a computed key so it becomes an own property
// (as JSON.parse would make it) instead of setting the prototype.

const MAX_SHAPES = 500
const factories = new Map()

function factoryFor(columns) {
  const key = columns.join('\u0000')
  let make = factories.get(key)
  if (make === undefined) {
    const fields = columns.map((name, i) => {
      const literal = JSON.stringify(name)
      return name === '__proto__' ? `[${literal}]: r[${i}]` : `${literal}: r[${i}]`
    })
    make = new Function('r', `return {${fields.join(', ')}}`)
    if (factories.size >= MAX_SHAPES) factories.delete(factories.keys().next().value)
    factories.set(key, make)
  }
  return make
}

/** The rows of a native reply `{ columns, rows: [[...]], rowCount }`, as an array of objects. */
function rowsToObjects(reply) {
  const { columns, rows } = reply
  if (rows.length === 0) return []
  const make = factoryFor(columns)
  const out = new Array(rows.length)
  for (let i = 0; i < rows.length; i++) out[i] = make(rows[i])
  return out
}

module.exports = { rowsToObjects }
