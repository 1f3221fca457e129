// Nothing a caller passes becomes SQL text. Hostile table names, column names, operators, filter
// expressions and values (quotes, semicolons, comments, backslashes, unicode, NUL) go through
// every builder method; each call ends in a clean result or a clean error, a canary table
// survives untouched, and the server's statement log shows only the shapes the builder writes.
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { DatabasePool } from '..'
import { uniqueName, urlWithSchema } from './helpers'

const schema = uniqueName('cp_fuzz')
const app = uniqueName('cp_fuzz')

beforeAll(async () => {
  DatabasePool.initialize({ connectionString: urlWithSchema(app, schema), schemas: [schema], minConnections: 0, maxConnections: 4 })
  const admin = DatabasePool.getAdminClient()
  await admin.query(`create schema ${schema}`)
  await admin.query(`create table ${schema}.canary (id int primary key, note text)`)
  await admin.query(`insert into ${schema}.canary values (1, 'one'), (2, 'two'), (3, 'three')`)
  await admin.query(`create table ${schema}.items (id serial primary key, name text, tags text[], doc jsonb)`)
})

afterAll(async () => {
  await DatabasePool.getAdminClient().query(`drop schema ${schema} cascade`)
  await DatabasePool.close()
})

const fragments = [
  "'", '"', ';', '--', '/*', '*/', '\\', '\\"', '$1', '$$', '::text', ' or 1=1', "'; drop table canary; --",
  '"; drop table canary; --', ') ; delete from canary; (', 'canary', '*', '%', '.', ',', '(', ')', 'eq.', 'not.',
  'and(', 'or(', 'in.(', '\n', '\t', '\u0000', 'é', '😀', '\u202e', ' ', 'id', 'name', '->', '->>',
]
const hostile = fc.array(fc.oneof(fc.constantFrom(...fragments), fc.string({ maxLength: 4 })), { minLength: 1, maxLength: 6 })
  .map((parts) => parts.join(''))

type Outcome = { data: unknown; error: { code: string; message: string } | null; status: number }

function calls(h: string): (() => PromiseLike<Outcome>)[] {
  const c = DatabasePool.getAdminClient()
  return [
    () => c.from(h).select('*'),
    () => c.from('items').select(h),
    () => c.from('items').select('id').eq(h, h),
    () => c.from('items').select('id').eq('name', h),
    () => c.from('items').select('id').filter('name', h, h),
    () => c.from('items').select('id').filter(h, 'eq', h),
    () => c.from('items').select('id').or(h),
    () => c.from('items').select('id').not(h, 'eq', h),
    () => c.from('items').select('id').not('name', 'in', h),
    () => c.from('items').select('id').order(h),
    // JSON path keys: each a literal, in select, filters and order.
    () => c.from('items').select(`id, doc->>${h}`).eq(`doc->${h}->>${h}`, h).order(`doc->${h}`),
    () => c.from('items').select('id').or(`doc->>${h}.eq.x`),
    () => c.from('items').select('id').in('name', [h, h]).like('name', h).ilike('name', h),
    () => c.from('items').select('id').contains('tags', [h]).match({ [h]: h }),
    () => c.from('items').insert({ name: h, tags: [h] }).select('name'),
    () => c.from('items').insert({ [h]: h } as any),
    () => c.from('items').update({ name: h }).eq('name', h),
    () => c.from('items').update({ [h]: 1 }).eq('id', -1),
    () => c.from('items').upsert({ id: 1, name: h }, { onConflict: h }),
    () => c.from('items').delete().eq('name', h).select(h),
    () => c.rpc(h, { [h]: h }),
    () => c.from('items').select('id', { count: 'exact', head: true }).or(`name.eq.${h}`),
  ]
}

test('hostile input through every builder method: clean errors, no other statement', async () => {
  const logPath = process.env.CP_TEST_STATEMENT_LOG
  // The server writes its log a moment after it answers: what this test reads starts after a
  // marker statement has reached the log, so the setup's own statements are never counted.
  let logStart = 0
  if (logPath) {
    const marker = `${app}_marker`
    await DatabasePool.getAdminClient().query(`select 1 as ${marker}`)
    for (const deadline = Date.now() + 10_000; ;) {
      const log = readFileSync(logPath)
      const lineEnd = log.indexOf(marker) >= 0 ? log.indexOf('\n', log.indexOf(marker)) : -1
      if (lineEnd >= 0) {
        logStart = lineEnd + 1
        break
      }
      if (Date.now() > deadline) throw new Error('the marker statement never reached the server log')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  let errors = 0
  let successes = 0

  await fc.assert(
    fc.asyncProperty(hostile, async (h) => {
      for (const call of calls(h)) {
        let result: Outcome
        try {
          result = await call()
        } catch (err) {
          // postgrest-js itself refuses a blank relation name, synchronously, as supabase-js does.
          expect(h.trim()).toBe('')
          expect((err as Error).message).toMatch(/relation name/)
          continue
        }
        expect(typeof result.status).toBe('number')
        if (result.error) {
          errors++
          expect(typeof result.error.code).toBe('string')
          expect(typeof result.error.message).toBe('string')
          expect(result.status).toBeGreaterThanOrEqual(400)
        } else {
          successes++
        }
      }
    }),
    { numRuns: 60, seed: 20261127 },
  )

  const logged = logPath ? readFileSync(logPath).subarray(logStart).toString('utf8') : null

  // The canary is intact and the pool still serves.
  const admin = DatabasePool.getAdminClient()
  const canary = await admin.query(`select id, note from ${schema}.canary order by id`)
  expect(canary.rows).toEqual([{ id: 1, note: 'one' }, { id: 2, note: 'two' }, { id: 3, note: 'three' }])
  expect(errors).toBeGreaterThan(0)
  expect(successes).toBeGreaterThan(0)

  if (logged === null) return // an external server: its log is not ours to read
  const statements = loggedStatements(logged, app)
  expect(statements.length).toBeGreaterThan(100)
  const unexpected = statements.filter((sql) => !isIntendedShape(sql))
  expect(unexpected).toEqual([])
})

/** Statement texts our pool sent, from `app|...LOG:  execute <name>: SQL` entries (tab-continued lines joined). */
function loggedStatements(log: string, appName: string): string[] {
  const entries: string[] = []
  for (const line of log.split('\n')) {
    if (line.startsWith('\t') && entries.length > 0) entries[entries.length - 1] += '\n' + line.slice(1)
    else entries.push(line)
  }
  const prefix = `${appName}|`
  return entries
    .filter((entry) => entry.startsWith(prefix))
    .map((entry) => entry.match(/LOG: {2}(?:execute [^:]*|statement): ([\s\S]*)$/)?.[1])
    .filter((sql): sql is string => sql !== undefined)
}

const FIXED_STATEMENTS = [
  /^BEGIN( ISOLATION LEVEL REPEATABLE READ)?$/, /^COMMIT$/, /^ROLLBACK$/, /^SELECT 1$/, /^SELECT coalesce\(json_agg\(a\.attname ORDER BY k\.ord\), '\[\]'\) FROM pg_index/,
  // Embedding, computed fields and payload keys: the catalog's foreign keys, one-row functions, views' column origins and
  // relations' columns, read once per pool.
  /^SELECT pg_catalog\.json_build_object\('keys', \(SELECT coalesce\(pg_catalog\.json_agg\(pg_catalog\.json_build_object\('name', c\.conname, [\s\S]* rn\.nspname NOT IN \('pg_catalog', 'information_schema', 'pg_toast'\)\)\)::text$/,
  // A schema other than public: the request's search_path, its value bound.
  /^SELECT pg_catalog\.set_config\('search_path', \$1, true\)$/,
  // rpc(): what the function returns, looked up once per pool and argument names (bound).
  /^SELECT CASE WHEN p\.prorettype = 'void'::regtype THEN 'void' WHEN t\.typtype = 'c' OR p\.prorettype = 'record'::regtype OR p\.proargmodes && ARRAY\['o', 'b', 't'\]::"char"\[\] THEN CASE WHEN p\.proretset THEN 'rows' ELSE 'row' END WHEN p\.proretset THEN 'scalar_set' ELSE 'scalar' END, \(ARRAY\(SELECT json_array_elements_text\(\$3::json\)\) <@ args\.inputs AND args\.required <@ ARRAY\(SELECT json_array_elements_text\(\$3::json\)\)\) AS fits, pg_catalog\.array_to_string\(args\.inputs, ', '\) AS inputs FROM pg_proc p JOIN pg_type t ON t\.oid = p\.prorettype CROSS JOIN LATERAL \(SELECT coalesce\(array_agg\(a\.name ORDER BY a\.ord\), '\{\}'\) AS inputs, coalesce\(\(array_agg\(a\.name ORDER BY a\.ord\)\)\[1:p\.pronargs - p\.pronargdefaults\], '\{\}'\) AS required FROM unnest\(coalesce\(p\.proargnames, '\{\}'\), coalesce\(p\.proargmodes::text\[\], '\{\}'\)\) WITH ORDINALITY AS a\(name, mode, ord\) WHERE coalesce\(a\.mode, 'i'\) IN \('i', 'b', 'v'\)\) args WHERE p\.proname = \$1 AND p\.pronamespace = to_regnamespace\(\$2\) ORDER BY 2 DESC, p\.pronargs LIMIT 1$/,
  // Inside transaction(): a request that can undo itself runs in a savepoint; a schema other than
  // public is on search_path while it runs.
  /^(SAVEPOINT|ROLLBACK TO SAVEPOINT|RELEASE SAVEPOINT) cp_rest_request$/,
  /^SELECT pg_catalog\.current_setting\('search_path'\) AS previous, pg_catalog\.set_config\('search_path', \$1, true\) AS path$/,
  /^BEGIN READ ONLY$/]
const BUILT_SHAPES = /^(SELECT .* FROM |INSERT INTO "|UPDATE "|DELETE FROM "|EXPLAIN \(FORMAT JSON\) SELECT |select coalesce\(json_agg\(q\)|WITH pgrst_source AS \()/
/** The fixed pieces of the body statement around a built one (PostgREST's shape), literals and all. */
const BODY_PIECES = [
  /coalesce\(pg_catalog\.json_agg\(_pgrst_t(\."(?:[^"]|"")*")?\), '\[\]'\)::text/g,
  /coalesce\(\(pg_catalog\.json_agg\(_pgrst_t\."(?:[^"]|"")*"\)->0\)::text, 'null'\)/g,
  /'' AS body/g,
  // The status a function chose (PostgREST's response.status setting).
  /pg_catalog\.current_setting\('response\.status', true\) AS status/g,
  // csv(): the header and lines PostgREST writes.
  /\(SELECT coalesce\(pg_catalog\.string_agg\(_pgrst_k\.k, ','\), ''\) FROM [\s\S]*? E'\\n'\), ''\)/g,
  // An embedded array's empty default.
  /\), '\[\]'\) AS "/g,
  // A JSON path's keys (in select, order and filters): each an escaped string literal.
  /->>?E'(?:[^'\\]|\\[\s\S])*'/g,
  /coalesce\(pg_catalog\.json_agg\(pg_catalog\.to_jsonb\(_pgrst_t\) - 'pgrst_inserted'\), '\[\]'\)::text/g,
]

/**
 * A built statement, once its double-quoted identifiers are removed, holds only keywords,
 * placeholders, integers and punctuation we write ourselves: no string literal, comment or
 * second statement, which is where an injection would have to show.
 */
function isIntendedShape(sql: string): boolean {
  if (FIXED_STATEMENTS.some((shape) => shape.test(sql))) return true
  if (!BUILT_SHAPES.test(sql)) return false
  const withoutIdentifiers = BODY_PIECES.reduce((text, piece) => text.replace(piece, ''), sql).replace(/"(?:[^"]|"")*"/g, '""')
  return !/['";]|--|\/\*/.test(withoutIdentifiers.replace(/""/g, ''))
}
