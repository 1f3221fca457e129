'use strict'
// The module graph of src/: which file uses which module, read from the Rust sources' paths
// (`use` items, `crate::`/`super::`/`self::` paths and child modules named directly), and its
// cycles. Used by __test__/structure.spec.ts; `node scripts/module-graph.js` prints the cycles.

const fs = require('node:fs')
const path = require('node:path')

const SRC = path.resolve(__dirname, '..', 'src')

/** Every .rs file under src/, by its module path ('crate::db::rest::builder'). */
function modules() {
  const byPath = new Map()
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      // A module of tests (`#[cfg(test)] mod tests;`) may use anything, as an inline one may.
      else if (entry.name.endsWith('.rs') && entry.name !== 'tests.rs') {
        const rel = path.relative(SRC, full).replace(/\.rs$/, '').split(path.sep)
        if (rel[rel.length - 1] === 'mod' || rel.join('/') === 'lib') rel.pop()
        byPath.set(['crate', ...rel].join('::'), full)
      }
    }
  }
  walk(SRC)
  return byPath
}

/** The source without comments, strings and `#[cfg(test)]` modules (tests may use anything). */
function codeOf(text) {
  let code = text
    .replace(/\/\/[^\n]*/g, '')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/'(?:\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'/g, "' '")
    .replace(/r#+"[\s\S]*?"#+/g, '""')
    .replace(/"(?:\\.|[^"\\])*"/g, '""')
  code = code.replace(/#\[cfg\(test\)\]\s*mod\s+\w+\s*;/g, '')
  const at = code.search(/#\[cfg\(test\)\]\s*mod\s+\w+\s*\{/)
  if (at !== -1) code = code.slice(0, at)
  return code
}

/** `use a::{b, c::{d, e}}` as ['a::b', 'a::c::d', 'a::c::e']. */
function expandUse(tree) {
  tree = tree.replace(/\s+/g, '')
  const open = tree.indexOf('{')
  if (open === -1) return [tree.replace(/::\*$|\bas\w+$/g, '')]
  const prefix = tree.slice(0, open)
  const inner = tree.slice(open + 1, tree.lastIndexOf('}'))
  const parts = []
  let depth = 0
  let start = 0
  for (let i = 0; i <= inner.length; i++) {
    const c = inner[i]
    if (c === '{') depth++
    else if (c === '}') depth--
    else if ((c === ',' && depth === 0) || i === inner.length) {
      if (i > start) parts.push(inner.slice(start, i))
      start = i + 1
    }
  }
  return parts.flatMap((part) => (part === 'self' ? [prefix.replace(/::$/, '')] : expandUse(prefix + part)))
}

/** The modules `file` (module path `self`) uses. */
function usesOf(self, text, known) {
  const code = codeOf(text)
  const children = [...code.matchAll(/\bmod\s+([a-z_][a-z0-9_]*)\s*;/g)].map((m) => m[1])
  const parent = self.split('::').slice(0, -1).join('::')
  const absolute = (p) => {
    const segments = p.split('::').filter(Boolean)
    if (segments[0] === 'crate') return segments
    let base = self.split('::')
    while (segments[0] === 'super' || segments[0] === 'self') {
      if (segments.shift() === 'super') base = base.slice(0, -1)
    }
    if (p.startsWith('super') || p.startsWith('self') || children.includes(segments[0])) return [...base, ...segments]
    return null // another crate (std, tokio, ...)
  }
  const paths = []
  for (const m of code.matchAll(/\buse\s+([^;]+);/g)) paths.push(...expandUse(m[1]))
  for (const m of code.matchAll(/\b(?:crate|super|self|[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)+/g)) paths.push(m[0])
  const used = new Set()
  for (const p of paths) {
    const segments = absolute(p)
    if (segments === null) continue
    // The longest prefix that is a module file.
    for (let n = segments.length; n > 0; n--) {
      const candidate = segments.slice(0, n).join('::')
      if (known.has(candidate)) {
        if (candidate !== self && candidate !== 'crate') used.add(candidate)
        break
      }
    }
  }
  return used
}

function graph() {
  const known = modules()
  const edges = new Map()
  for (const [name, file] of known) edges.set(name, usesOf(name, fs.readFileSync(file, 'utf8'), known))
  return edges
}

/** Every strongly connected set of more than one module (each is at least one cycle). */
function cycles(edges) {
  let index = 0
  const stack = []
  const on = new Set()
  const idx = new Map()
  const low = new Map()
  const found = []
  const visit = (v) => {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v), low.get(w)))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)))
    }
    if (low.get(v) === idx.get(v)) {
      const component = []
      let w
      do {
        w = stack.pop()
        on.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1) found.push(component.sort())
    }
  }
  for (const v of edges.keys()) if (!idx.has(v)) visit(v)
  return found
}

/** Pairs of modules that use each other. */
function mutual(edges) {
  const pairs = []
  for (const [a, uses] of edges) for (const b of uses) if (a < b && edges.get(b)?.has(a)) pairs.push([a, b])
  return pairs
}

module.exports = { graph, cycles, mutual }

if (require.main === module) {
  const edges = graph()
  console.log('mutual:', mutual(edges))
  console.log('cycles:', cycles(edges))
}
