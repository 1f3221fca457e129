// The shape of src/: modules depend downward only. The graph is read from the Rust sources'
// paths by scripts/module-graph.js (`node scripts/module-graph.js` prints it).
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { graph, cycles } = require('../scripts/module-graph.js')

test('no module of src/ uses a module that uses it back, directly or around a circle', () => {
  const edges: Map<string, Set<string>> = graph()
  // The scan sees the layers it should (a sanity check that it reads the sources at all).
  expect(edges.get('crate::db::rest::builder')).toContain('crate::db::rest::filters')
  expect(edges.get('crate::db::rest')).toContain('crate::db::engine')
  expect(cycles(edges)).toEqual([])
})

test('the engine knows nothing of the REST layer', () => {
  const edges: Map<string, Set<string>> = graph()
  for (const [module, uses] of edges) {
    if (!module.startsWith('crate::db::engine')) continue
    expect([...uses].filter((used) => used.startsWith('crate::db::rest'))).toEqual([])
  }
})

/** Each `fn` of `file` with its length in lines (comments, strings and char literals skipped). */
function functionLengths(file: string): { name: string; line: number; lines: number }[] {
  const src = require('node:fs').readFileSync(file, 'utf8') as string
  const found: { name: string; line: number; lines: number }[] = []
  const header = /^\s*(?:pub(?:\([a-z]+\))?\s+)?(?:async\s+)?(?:const\s+)?fn\s+(\w+)/gm
  for (let m = header.exec(src); m !== null; m = header.exec(src)) {
    const open = src.indexOf('{', m.index + m[0].length)
    const semi = src.indexOf(';', m.index + m[0].length)
    if (open === -1 || (semi !== -1 && semi < open)) continue
    let depth = 0
    let i = open
    for (; i < src.length; i++) {
      const c = src[i]
      if (c === '/' && src[i + 1] === '/') i = src.indexOf('\n', i)
      else if (c === '"') {
        for (i++; src[i] !== '"'; i++) if (src[i] === '\\') i++
      } else if (c === "'" && /^'(\\.|[^\\'])'/.test(src.slice(i, i + 4))) i = src.indexOf("'", i + 2)
      else if (c === '{') depth++
      else if (c === '}' && --depth === 0) break
    }
    const line = src.slice(0, m.index).split('\n').length
    found.push({ name: m[1], line, lines: src.slice(0, i).split('\n').length - line + 1 })
  }
  return found
}

test('no function in src/db/rest/ or src/db/engine/ (and their folders) is over 100 lines', () => {
  const fs = require('node:fs')
  const path = require('node:path')
  const root = path.resolve(__dirname, '..', 'src', 'db')
  const long: string[] = []
  let seen = 0
  const files = (dir: string): string[] =>
    fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry: any) =>
      entry.isDirectory() ? files(path.join(dir, entry.name)) : entry.name.endsWith('.rs') ? [path.join(dir, entry.name)] : [],
    )
  for (const name of [...files('rest'), ...files('engine')]) {
    for (const fn of functionLengths(path.join(root, name))) {
      seen++
      if (fn.lines > 100) long.push(`${name}:${fn.line} ${fn.name} (${fn.lines} lines)`)
    }
  }
  expect(seen).toBeGreaterThan(200)
  expect(long).toEqual([])
})
