// Conformance with PostgREST as postgrest-js's own test suite records it (mutations, schemas and explain): the fixture of
// supabase/postgrest-js (test/db/, without the postgis parts) in a database of its own, the
// builder calls of its tests, and the answers PostgREST gave them (adapted to the fixture's own
// rows where the suite had added more), or PostgREST's documentation where the suite is silent.
import { Client } from 'pg'
import { DatabasePool } from '..'
import type { DatabaseClient } from '..'
import { conformanceDatabase, ok, urlOf } from './conformance/setup'

const db = conformanceDatabase()
const database = db.name
let admin: DatabaseClient
beforeAll(() => {
  admin = db.admin()
})

describe('schemas', () => {
  test('schema() reaches an exposed schema', async () => {
    expect((await admin.schema('personal').from('users').select('username')).data).toHaveLength(5)
    // Every column, a range among them: Postgres renders the body, in the request's transaction.
    expect(await admin.schema('personal').from('users').select().eq('username', 'leroyjenkins')).toEqual(
      ok([{ username: 'leroyjenkins', status: 'ONLINE', age_range: '[20,40)', data: null }]))
    expect(await admin.schema('personal').rpc('get_status', { name_param: 'leroyjenkins' })).toEqual(ok('ONLINE'))
  })

  test('a computed field of a schema other than public filters and orders beside *, found on the request\'s search_path', async () => {
    await admin.query('create or replace function personal.name_length(personal.users) returns int language sql stable as $$ select length($1.username) $$')
    // A pool whose default schema is personal, as PostgREST with db-schemas=personal.
    DatabasePool.initialize({ connectionString: urlOf(database), schemas: ['personal'], minConnections: 0, maxConnections: 2 })
    try {
      const client = DatabasePool.getAdminClient()
      expect(await client.from('users').select('username').gt('name_length', 8).order('name_length').order('username')).toEqual(
        ok([{ username: 'dragarcia' }, { username: 'kiwicopple' }, { username: 'leroyjenkins' }]))
      expect((await client.from('users').select('*').eq('name_length', 7).order('username')).data).toEqual(
        [expect.objectContaining({ username: 'awailas' }), expect.objectContaining({ username: 'supabot' })])
      // Inside transaction() too, and the transaction's own search_path is back afterwards.
      const inside = await client.transaction(async (tx) => {
        const before = (await tx.query('select current_setting(\'search_path\') as path')).rows[0].path
        const found = await tx.from('users').select('username').gt('name_length', 8).order('name_length').order('username')
        const after = (await tx.query('select current_setting(\'search_path\') as path')).rows[0].path
        return { before, found: found.data, after }
      })
      expect(inside.found).toEqual([{ username: 'dragarcia' }, { username: 'kiwicopple' }, { username: 'leroyjenkins' }])
      expect(inside.after).toBe(inside.before)
    } finally {
      DatabasePool.initialize({ connectionString: urlOf(database), schemas: ['public', 'personal'], minConnections: 0, maxConnections: 4 })
      await DatabasePool.getAdminClient().query('drop function personal.name_length(personal.users)')
    }
  })

  test.each([
    ['pg_catalog', 'pg_roles'],
    ['pg_catalog', 'pg_settings'],
    ['information_schema', 'tables'],
  ])('%s.%s is refused with PGRST106 for every client', async (schema, table) => {
    for (const client of [admin, DatabasePool.getUserClient()]) {
      const refused = await client.schema(schema as any).from(table).select('*')
      expect(refused).toMatchObject({ data: null, status: 406, error: { code: 'PGRST106' } })
      expect(refused.error!.hint).toBe('Only the following schemas are exposed: public, personal')
    }
  })

  test('a catalog table named without its schema is not found in the exposed one', async () => {
    const anon = DatabasePool.getUserClient()
    for (const name of ['pg_roles', 'pg_catalog.pg_roles', 'pg_settings']) {
      const result = await anon.from(name).select('*')
      expect(result.data).toBeNull()
      expect(result.status).toBe(404)
    }
  })
})

describe('mutations', () => {
  test('insert with select returns 201 and the row; a JS string into jsonb is stored as a JSON string', async () => {
    const inserted = await admin.from('channels').insert({ slug: 'new', data: 'just a string' }).select('slug, data').rollback()
    expect(inserted).toEqual({ success: true, data: [{ slug: 'new', data: 'just a string' }], error: null, count: null, status: 201, statusText: 'Created' })
  })

  test('insert of two rows with single() is PGRST116 and keeps neither (one request, one transaction)', async () => {
    const result = await admin.from('channels').insert([{ slug: 'one' }, { slug: 'two' }]).select().single()
    expect(result).toMatchObject({ data: null, status: 406, error: { code: 'PGRST116', details: 'The result contains 2 rows' } })
    expect((await admin.from('channels').select('slug').in('slug', ['one', 'two'])).data).toEqual([])
    // maybeSingle() is checked by postgrest-js itself (it asks for a list since 2.x), so against
    // PostgREST as here the rows of a two-row insert stay; the caller still gets PGRST116.
    const maybe = await admin.from('channels').insert([{ slug: 'three' }, { slug: 'four' }]).select().rollback().maybeSingle()
    expect(maybe).toMatchObject({ data: null, status: 406, error: { code: 'PGRST116' } })
  })

  test('update stores a JS string into jsonb as a JSON string; no match answers an empty list', async () => {
    expect(await admin.from('users').update({ data: '' }).eq('username', 'missing').select()).toEqual(ok([]))
    expect(await admin.from('users').update({ data: 'text' }).eq('username', 'supabot').select('data').rollback()).toEqual(
      ok([{ data: 'text' }]))
  })

  test('update and delete with count; 204 without select', async () => {
    const updated = await admin.from('users').update({ status: 'ONLINE' }, { count: 'exact' }).eq('username', 'kiwicopple').rollback()
    expect(updated).toEqual({ success: true, data: null, error: null, count: 1, status: 204, statusText: 'No Content' })
    const deleted = await admin.from('messages').delete({ count: 'exact' }).eq('id', 2).select('id').rollback()
    expect(deleted).toEqual({ success: true, data: [{ id: 2 }], error: null, count: 1, status: 200, statusText: 'OK' })
  })

  test('defaultToNull: false (missing=default) gives a left-out column its default, identity included', async () => {
    const inserted = await admin.from('channels').insert([{ id: 100 }, { slug: 'test-slug' }], { defaultToNull: false }).select().rollback()
    expect(inserted).toMatchObject({ status: 201, data: [{ id: 100, slug: null, data: null }, { slug: 'test-slug', data: null }] })
    expect(typeof inserted.data![1].id).toBe('number') // from the identity sequence, not NULL
    // Without it a left-out column is NULL, as PostgREST has it: the identity column refuses.
    const nulls = await admin.from('channels').insert([{ id: 101 }, { slug: 'x' }]).select().rollback()
    expect(nulls).toMatchObject({ data: null, error: { code: '23502' } })
    const upserted = await admin.from('channels').upsert([{ id: 1 }, { slug: 'test-slug' }], { defaultToNull: false }).select().rollback()
    expect(upserted).toMatchObject({ status: 201, data: [{ id: 1, slug: null }, { slug: 'test-slug' }] })
  })

  test('a mutation\'s select embeds resources and computed fields over the rows it returned', async () => {
    const inserted = await admin.from('messages').insert({ message: 'hey you', channel_id: 2, username: 'supabot' })
      .select('message, channels(slug), author:users(username), blurb_message').rollback()
    expect(inserted).toMatchObject({ status: 201,
      data: [{ message: 'hey you', channels: { slug: 'random' }, author: { username: 'supabot' }, blurb_message: 'hey' }] })
    const updated = await admin.from('messages').update({ message: 'edited' }).eq('id', 1).select('id, ...channels(slug)').rollback().single()
    expect(updated).toMatchObject({ status: 200, data: { id: 1, slug: 'public' } })
  })

  test('a mutation\'s embedded resources take filters, order and !inner; they narrow what is returned, not what changed', async () => {
    // Two messages, both supabot's: the embedded filter binds its value after the update's own.
    const filtered = await admin.from('users').update({ status: 'OFFLINE' }).eq('username', 'supabot')
      .select('username, status, messages(id)').eq('messages.id', 2).rollback()
    expect(filtered).toEqual(ok([{ username: 'supabot', status: 'OFFLINE', messages: [{ id: 2 }] }]))
    const ordered = await admin.from('users').update({ status: 'OFFLINE' }).eq('username', 'supabot')
      .select('username, messages(id)').order('id', { referencedTable: 'messages', ascending: false }).limit(1, { referencedTable: 'messages' }).rollback()
    expect(ordered).toEqual(ok([{ username: 'supabot', messages: [{ id: 2 }] }]))
    // !inner: both rows are updated (count), only the one with messages comes back.
    const inner = await admin.from('users').update({ catchphrase: null }, { count: 'exact' }).in('username', ['supabot', 'kiwicopple'])
      .select('username, messages!inner(id)').order('username').rollback()
    expect(inner).toMatchObject({ status: 200, data: [{ username: 'supabot', messages: [{ id: 1 }, { id: 2 }] }] })
    // With single(), a mutation whose !inner leaves no row is PGRST116 and is rolled back.
    const none = await admin.from('users').update({ status: 'OFFLINE' }).eq('username', 'dragarcia').select('username, messages!inner(id)').single()
    expect(none).toMatchObject({ data: null, status: 406, error: { code: 'PGRST116' } })
    expect(await admin.from('users').select('status').eq('username', 'dragarcia')).toEqual(ok([{ status: 'ONLINE' }]))
    const inserted = await admin.from('messages').insert({ message: 'x', username: 'supabot', channel_id: 1 })
      .select('message, channels!inner(slug)').eq('channels.slug', 'random').rollback()
    expect(inserted).toMatchObject({ status: 201, data: [] })
  })

  test('upsert that only updates answers 200; one that inserts answers 201', async () => {
    const updated = await admin.from('channels').upsert({ id: 1, slug: 'public' }).select('id, slug').rollback()
    expect(updated).toMatchObject({ data: [{ id: 1, slug: 'public' }], status: 200 })
    const inserted = await admin.from('channels').upsert({ id: 99, slug: 'fresh' }).select('id').rollback()
    expect(inserted).toMatchObject({ data: [{ id: 99 }], status: 201 })
  })

  test('a key that is no column is PGRST204, as PostgREST answers it; a column added since is found', async () => {
    const missing = (key: string) => ({
      success: false, data: null, count: null, status: 400, statusText: 'Bad Request',
      error: { code: 'PGRST204', details: null, hint: null, message: `Could not find the '${key}' column of 'users' in the schema cache` },
    })
    expect(await admin.from('users').insert({ username: 'zz', nope: 1 })).toEqual(missing('nope'))
    expect(await admin.from('users').insert([{ username: 'zz' }, { username: 'zy', other: 2 }])).toEqual(missing('other'))
    expect(await admin.from('users').update({ nope: 1 }).eq('username', 'supabot')).toEqual(missing('nope'))
    expect(await admin.from('users').upsert({ username: 'supabot', nope: 1 })).toEqual(missing('nope'))
    expect((await admin.from('users').select('username').in('username', ['zz', 'zy'])).data).toEqual([])
    // The catalog was read before this column existed: it is read again before a key is refused.
    const setup = new Client({ connectionString: urlOf(database) })
    await setup.connect()
    try {
      await setup.query('alter table users add column added_later text')
      expect(await admin.from('users').update({ added_later: 'x' }).eq('username', 'supabot').select('added_later').rollback()).toEqual(
        ok([{ added_later: 'x' }]))
    } finally {
      await setup.query('alter table users drop column added_later')
      await setup.end()
    }
  })

  test('errors carry PostgREST statuses and codes', async () => {
    const duplicate = await admin.from('users').insert({ username: 'supabot' })
    expect(duplicate).toMatchObject({ data: null, status: 409, error: { code: '23505' } })
    const badRef = await admin.from('messages').insert({ message: 'x', username: 'nobody', channel_id: 1 })
    expect(badRef).toMatchObject({ status: 409, error: { code: '23503' } })
    const badEnum = await admin.from('users').insert({ username: 'x', status: 'AWAY' })
    expect(badEnum).toMatchObject({ status: 400, error: { code: '22P02' } })
  })

  test('a function sets the status: RAISE SQLSTATE PTxyz, and PGRST with its own JSON body and status text', async () => {
    await admin.query(`create or replace function raise_pt402() returns void language plpgsql as $$ begin
      raise sqlstate 'PT402' using message = 'Payment Required', detail = 'Quota exceeded', hint = 'Upgrade your plan'; end $$`)
    await admin.query(`create or replace function raise_pgrst(body text, options text) returns void language plpgsql as $$ begin
      raise sqlstate 'PGRST' using message = body, detail = options; end $$`)
    DatabasePool.reloadSchema()
    try {
      expect(await admin.rpc('raise_pt402')).toMatchObject({
        status: 402, statusText: 'Payment Required',
        error: { code: 'PT402', message: 'Payment Required', details: 'Quota exceeded', hint: 'Upgrade your plan' },
      })
      expect(await admin.rpc('raise_pgrst', {
        body: '{"code":"123","message":"ABC","details":"DEF","hint":"XYZ"}',
        options: '{"status":332,"status_text":"My Custom Status","headers":{"X-Header":"str"}}',
      })).toMatchObject({ status: 332, statusText: 'My Custom Status', error: { code: '123', message: 'ABC', details: 'DEF', hint: 'XYZ' } })
      expect(await admin.rpc('raise_pgrst', { body: 'not json', options: '{}' })).toMatchObject({ status: 500,
        error: { code: 'PGRST121', details: "Invalid JSON value for MESSAGE: 'not json'" } })
      expect(await admin.rpc('raise_pgrst', { body: '{"code":"1","message":"m"}', options: 'INVALID' })).toMatchObject({ status: 500,
        error: { code: 'PGRST121', details: "Invalid JSON value for DETAIL: 'INVALID'" } })
      // A RAISE without DETAIL.
      await admin.query(`create function raise_pgrst_alone() returns void language plpgsql as $$ begin
        raise sqlstate 'PGRST' using message = '{"code":"1","message":"m"}'; end $$`)
      expect(await admin.rpc('raise_pgrst_alone')).toMatchObject({ status: 500,
        error: { code: 'PGRST121', details: 'DETAIL is missing in the RAISE statement' } })
    } finally {
      await admin.query('drop function if exists raise_pgrst_alone()')
      await admin.query('drop function raise_pt402()')
      await admin.query('drop function raise_pgrst(text, text)')
    }
  })

  test('a relation that does not exist is PGRST205; a negative limit PGRST103; a negative offset counts from the start', async () => {
    expect(await admin.from('no_such_table').select()).toMatchObject({
      status: 404, error: { code: 'PGRST205', message: "Could not find the table 'public.no_such_table' in the schema cache" },
    })
    expect(await admin.from('users').select('username').limit(-1)).toMatchObject({
      status: 416, error: { code: 'PGRST103', details: 'Limit should be greater than or equal to zero.' },
    })
    expect((await admin.from('users').select('username').range(-4, 100)).data).toEqual((await admin.from('users').select('username')).data)
    // An offset past an exact count: 416, saying how many rows there are.
    expect(await admin.from('users').select('username', { count: 'exact' }).range(100, 110)).toMatchObject({
      status: 416, error: { code: 'PGRST103', details: 'An offset of 100 was requested, but there are only 4 rows.' },
    })
  })
})

describe('explain', () => {
  test('explain() is refused unless planEnabled (PostgREST\'s db-plan-enabled)', async () => {
    expect(await admin.from('users').select().explain()).toMatchObject({ data: null, status: 406, error: { code: 'PGRST107' } })
  })

  test('with planEnabled: the plan as text or JSON, with options; analyze leaves a mutation undone', async () => {
    DatabasePool.initialize({ connectionString: urlOf(database), schemas: ['public', 'personal'], minConnections: 0, maxConnections: 4, planEnabled: true })
    admin = DatabasePool.getAdminClient()
    const text = await admin.from('users').select().eq('status', 'ONLINE').explain()
    expect(text.data).toMatch(/^Aggregate {2}\(cost=[\s\S]*Filter: \(status = 'ONLINE'::user_status\)/)
    const json = await admin.from('users').select().explain({ format: 'json', verbose: true })
    expect(json.data).toEqual([expect.objectContaining({ Plan: expect.objectContaining({ 'Node Type': 'Aggregate' }) })])
    const analyzed = await admin.from('channels').insert({ slug: 'explained' }).select().explain({ analyze: true, format: 'json' })
    expect((analyzed.data as any)[0]).toHaveProperty('Execution Time')
    expect((await admin.from('channels').select('id').eq('slug', 'explained')).data).toEqual([])
  })
})
