// The supabase-js query builder against a real server: every method's `data` is compared with the
// JSON Postgres itself produces for the equivalent hand-written SQL (json_agg of the same query).
import { DatabasePool, supabaseAdmin } from '..'
import { uniqueName, urlWithSchema } from './helpers'

const schema = uniqueName('cp_builder')

beforeAll(async () => {
  DatabasePool.initialize({ connectionString: urlWithSchema(uniqueName('cp_bld'), schema), schemas: [schema], minConnections: 0 })
  const admin = DatabasePool.getAdminClient()
  await admin.query(`create schema ${schema}`)
  await admin.query(`create table ${schema}.users (
    id int primary key, email text unique not null, name text, age int, tags text[], meta jsonb,
    score numeric(10,2), created_at timestamptz not null default '2024-01-01T00:00:00Z', active bool)`)
  await admin.query(`insert into ${schema}.users values
    (1, 'ann@example.com', 'Ann', 31, '{a,b}', '{"plan":"pro","n":1}', 10.50, '2024-01-02T03:04:05.5Z', true),
    (2, 'bob@example.com', 'Bob', 25, '{b}', '{"plan":"free"}', 3.25, '2024-02-01T00:00:00Z', false),
    (3, 'cy@example.com', null, 47, '{}', null, null, '2024-03-01T00:00:00Z', true),
    (4, 'dee@example.com', 'Dee', null, '{a,c}', '{"plan":"pro"}', 99.99, '2024-04-01T00:00:00Z', null),
    (5, 'eve@example.com', 'Eve', 25, null, '[1,2]', 0, '2024-05-01T00:00:00Z', false)`)
  await admin.query(`create function ${schema}.add(a int, b int) returns int language sql as 'select a + b'`)
  await admin.query(`create function ${schema}.older_than(min_age int) returns setof ${schema}.users
    language sql stable as 'select * from ${schema}.users where age > min_age'`)
})

afterAll(async () => {
  await DatabasePool.getAdminClient().query(`drop schema ${schema} cascade`)
  await DatabasePool.close()
})

/** What Postgres makes of the same query: json_agg of its rows (to_json of every value). */
async function postgresJson(sql: string, params: unknown[] = []): Promise<unknown> {
  const { rows } = await supabaseAdmin.query(`select coalesce(json_agg(q), '[]') as j from (${sql}) q`, params as any[])
  return rows[0].j
}

test('the seed usage example runs unchanged through from()', async () => {
  const client = DatabasePool.getAdminClient()
  const result = await DatabasePool.executeQuery(() => client.from('users').select('*'), true)
  expect(result.error).toBeNull()
  expect(result.status).toBe(200)
  expect(result.statusText).toBe('OK')
  expect(result.data).toHaveLength(5)
  const { data, error } = await supabaseAdmin.from('users').select('*')
  expect(error).toBeNull()
  expect(data).toEqual(result.data)
})

describe('select and filters match json_agg of the same SQL', () => {
  const cases: [string, () => PromiseLike<{ data: unknown; error: unknown }>, string, unknown[]?][] = [
    ['select *', () => supabaseAdmin.from('users').select('*').order('id'), 'select * from users order by id'],
    ['columns, alias, cast', () => supabaseAdmin.from('users').select('id, mail:email, age::text').order('id'),
      'select id, email as mail, age::text as age from users order by id'],
    ['eq', () => supabaseAdmin.from('users').select('id').eq('age', 25).order('id'), 'select id from users where age = 25 order by id'],
    ['neq', () => supabaseAdmin.from('users').select('id').neq('age', 25).order('id'), 'select id from users where age <> 25 order by id'],
    ['gt gte lt lte', () => supabaseAdmin.from('users').select('id').gt('age', 24).gte('age', 25).lt('age', 47).lte('age', 46).order('id'),
      'select id from users where age > 24 and age >= 25 and age < 47 and age <= 46 order by id'],
    ['like with * and %', () => supabaseAdmin.from('users').select('id').like('email', '*@example.com').like('name', 'A%').order('id'),
      `select id from users where email like '%@example.com' and name like 'A%' order by id`],
    ['ilike', () => supabaseAdmin.from('users').select('id').ilike('name', 'e%').order('id'), `select id from users where name ilike 'e%' order by id`],
    ['is null', () => supabaseAdmin.from('users').select('id').is('name', null), 'select id from users where name is null'],
    ['is true', () => supabaseAdmin.from('users').select('id').is('active', true).order('id'), 'select id from users where active is true order by id'],
    ['in', () => supabaseAdmin.from('users').select('id,name').in('id', [1, 3, 5]).order('id'), 'select id, name from users where id in (1,3,5) order by id'],
    ['contains array', () => supabaseAdmin.from('users').select('id').contains('tags', ['a']).order('id'), `select id from users where tags @> '{a}' order by id`],
    ['contains jsonb', () => supabaseAdmin.from('users').select('id').contains('meta', { plan: 'pro' }).order('id'),
      `select id from users where meta @> '{"plan":"pro"}' order by id`],
    ['containedBy', () => supabaseAdmin.from('users').select('id').containedBy('tags', ['a', 'b']).order('id'),
      `select id from users where tags <@ '{a,b}' order by id`],
    ['match', () => supabaseAdmin.from('users').select('id').match({ age: 25, active: false }).order('id'),
      'select id from users where age = 25 and active = false order by id'],
    ['not', () => supabaseAdmin.from('users').select('id').not('id', 'in', '(1,2)').order('id'), 'select id from users where not (id in (1,2)) order by id'],
    ['not is null', () => supabaseAdmin.from('users').select('id').not('name', 'is', null).order('id'), 'select id from users where name is not null order by id'],
    ['or with nested and', () => supabaseAdmin.from('users').select('id').or('age.eq.47,and(name.eq.Ann,active.is.true)').order('id'),
      `select id from users where age = 47 or (name = 'Ann' and active is true) order by id`],
    ['filter', () => supabaseAdmin.from('users').select('id').filter('id', 'in', '(2,4)').order('id'), 'select id from users where id in (2,4) order by id'],
    ['order desc nulls first', () => supabaseAdmin.from('users').select('id,age').order('age', { ascending: false, nullsFirst: true }).order('id'),
      'select id, age from users order by age desc nulls first, id'],
    ['limit', () => supabaseAdmin.from('users').select('id').order('id').limit(2), 'select id from users order by id limit 2'],
    ['range', () => supabaseAdmin.from('users').select('id').order('id').range(1, 3), 'select id from users order by id offset 1 limit 3'],
    ['types as to_json renders them', () => supabaseAdmin.from('users').select('score,created_at,meta,tags').order('id'),
      'select score, created_at, meta, tags from users order by id'],
  ]

  test.each(cases)('%s', async (_name, run, sql) => {
    const { data, error } = await run()
    expect(error).toBeNull()
    expect(data).toEqual(await postgresJson(sql))
  })
})

test('single and maybeSingle', async () => {
  const one = await supabaseAdmin.from('users').select('id,name').eq('id', 2).single()
  expect(one).toMatchObject({ data: { id: 2, name: 'Bob' }, error: null, status: 200 })
  const none = await supabaseAdmin.from('users').select('id').eq('id', 99).single()
  expect(none).toMatchObject({ data: null, status: 406, statusText: 'Not Acceptable' })
  expect(none.error).toMatchObject({ code: 'PGRST116', details: 'The result contains 0 rows' })
  const many = await supabaseAdmin.from('users').select('id').maybeSingle()
  expect(many.error?.code).toBe('PGRST116')
  const maybe = await supabaseAdmin.from('users').select('id').eq('id', 99).maybeSingle()
  expect(maybe).toMatchObject({ data: null, error: null, status: 200 })
})

test('count exact, with and without head', async () => {
  const counted = await supabaseAdmin.from('users').select('id', { count: 'exact' }).eq('age', 25)
  expect(counted.count).toBe(2)
  expect(counted.data).toHaveLength(2)
  const head = await supabaseAdmin.from('users').select('*', { count: 'exact', head: true }).gt('age', 30)
  expect(head).toMatchObject({ data: null, count: 2, error: null, status: 200 })
  const planned = await supabaseAdmin.from('users').select('*', { count: 'planned', head: true })
  expect(typeof planned.count).toBe('number')
  // PostgREST's `estimated`: the larger of the exact count and the planner's estimate, which is
  // the exact count once the table is analyzed.
  const estimated = await supabaseAdmin.from('users').select('*', { count: 'estimated', head: true })
  expect(estimated.count).toBeGreaterThanOrEqual(5)
  await supabaseAdmin.query(`analyze ${schema}.users`)
  const analyzed = await supabaseAdmin.from('users').select('*', { count: 'estimated', head: true })
  expect(analyzed).toMatchObject({ count: 5, status: 200 })
})

describe('mutations', () => {
  const table = 'items'
  beforeEach(async () => {
    await supabaseAdmin.query(`drop table if exists ${schema}.${table}`)
    await supabaseAdmin.query(`create table ${schema}.${table} (id serial primary key, sku text unique, qty int not null default 0, info jsonb)`)
  })

  test('insert returns 201; with select() the inserted rows as Postgres renders them', async () => {
    const plain = await supabaseAdmin.from(table).insert({ sku: 'a', qty: 1 })
    expect(plain).toMatchObject({ data: null, error: null, status: 201, statusText: 'Created' })
    // A bulk insert's missing keys are NULL (postgrest-js's defaultToNull); a lone row's are DEFAULT.
    const returned = await supabaseAdmin.from(table).insert([{ sku: 'b', qty: 2, info: { x: [1] } }, { sku: 'c', qty: 3 }]).select()
    expect(returned.status).toBe(201)
    expect(returned.data).toEqual(await postgresJson(`select * from ${table} where sku in ('b','c') order by id`))
    expect(returned.data![1]).toMatchObject({ sku: 'c', info: null })
    const lone = await supabaseAdmin.from(table).insert({ sku: 'd' }).select('qty').single()
    expect(lone.data).toEqual({ qty: 0 })
  })

  test('a body reaches Rust whole: newlines, quotes, backslashes and non-ASCII text in values and JSON keys', async () => {
    // The fetch adapter's wire form ends its header fields with newlines; the body is the rest.
    const sku = 'line 1\nline 2\r\n\t"quoted" \\ back\\slash ✓ 日本'
    const info = { 'key\nwith newline': ['\n', '"', '\\'], ünïcode: 'ok' }
    const inserted = await supabaseAdmin.from(table).insert({ sku, info }).select('sku, info').single()
    expect(inserted).toMatchObject({ error: null, status: 201, data: { sku, info } })
    expect((await supabaseAdmin.from(table).select('sku').eq('sku', sku)).data).toEqual([{ sku }])
  })

  test('update returns 204, or 200 with the updated rows', async () => {
    await supabaseAdmin.from(table).insert([{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }])
    const plain = await supabaseAdmin.from(table).update({ qty: 5 }).eq('sku', 'a')
    expect(plain).toMatchObject({ data: null, error: null, status: 204 })
    const returned = await supabaseAdmin.from(table).update({ qty: 7 }, { count: 'exact' }).gt('qty', 1).select('sku,qty')
    expect(returned).toMatchObject({ status: 200, count: 2 })
    const bySku = (rows: any) => [...rows].sort((a, b) => a.sku.localeCompare(b.sku))
    expect(bySku(returned.data)).toEqual(await postgresJson(`select sku, qty from ${table} order by sku`))
  })

  test('upsert on the primary key, on a named column, and ignoring duplicates', async () => {
    await supabaseAdmin.from(table).insert({ id: 1, sku: 'a', qty: 1 })
    const byKey = await supabaseAdmin.from(table).upsert({ id: 1, sku: 'a', qty: 9 }).select('id,qty')
    expect(byKey.data).toEqual([{ id: 1, qty: 9 }])
    const bySku = await supabaseAdmin.from(table).upsert({ sku: 'a', qty: 3 }, { onConflict: 'sku' }).select('id,qty')
    expect(bySku.data).toEqual([{ id: 1, qty: 3 }])
    const ignored = await supabaseAdmin.from(table).upsert({ id: 1, sku: 'a', qty: 100 }, { ignoreDuplicates: true }).select('qty')
    expect(ignored.data).toEqual([])
    expect(await postgresJson(`select id, qty from ${table}`)).toEqual([{ id: 1, qty: 3 }])
  })

  test('delete returns 204, or 200 with the deleted rows', async () => {
    await supabaseAdmin.from(table).insert([{ sku: 'a' }, { sku: 'b' }, { sku: 'c' }])
    const before = await postgresJson(`select * from ${table} where sku <> 'a' order by id`)
    expect(await supabaseAdmin.from(table).delete().eq('sku', 'a')).toMatchObject({ data: null, status: 204 })
    const returned = await supabaseAdmin.from(table).delete().neq('sku', 'zzz').select()
    expect(returned.data).toEqual(before)
    expect(await postgresJson(`select * from ${table}`)).toEqual([])
  })

  test('database errors land in error with PostgREST statuses; throwOnError throws', async () => {
    await supabaseAdmin.from(table).insert({ sku: 'a' })
    const duplicate = await supabaseAdmin.from(table).insert({ sku: 'a' })
    expect(duplicate).toMatchObject({ data: null, status: 409, statusText: 'Conflict' })
    expect(duplicate.error).toMatchObject({ code: '23505', details: 'Key (sku)=(a) already exists.' })
    const missing = await supabaseAdmin.from('no_such_table').select()
    // PostgREST 13's answer for a relation it does not know.
    expect(missing).toMatchObject({
      status: 404, error: { code: 'PGRST205', message: `Could not find the table '${schema}.no_such_table' in the schema cache` },
    })
    const badValue = await supabaseAdmin.from(table).insert({ sku: 'z', qty: 'many' })
    expect(badValue).toMatchObject({ status: 400, error: { code: '22P02' } })
    await expect(supabaseAdmin.from(table).insert({ sku: 'a' }).throwOnError()).rejects.toMatchObject({ code: '23505' })
  })
})

test('rpc: a scalar function returns its value; a set-returning one returns rows', async () => {
  const sum = await supabaseAdmin.rpc('add', { a: 2, b: 40 })
  expect(sum).toMatchObject({ data: 42, error: null, status: 200 })
  const older = await supabaseAdmin.rpc('older_than', { min_age: 30 }).select('id,name').order('id')
  expect(older.data).toEqual(await postgresJson('select id, name from older_than(30) order by id'))
  const wrong = await supabaseAdmin.rpc('no_such_function', {})
  expect(wrong).toMatchObject({ status: 404, error: { code: 'PGRST202' } })
})
