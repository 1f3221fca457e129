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
