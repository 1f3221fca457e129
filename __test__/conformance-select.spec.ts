// Conformance with PostgREST as postgrest-js's own test suite records it (select lists and transforms): the fixture of
// supabase/postgrest-js (test/db/, without the postgis parts) in a database of its own, the
// builder calls of its tests, and the answers PostgREST gave them (adapted to the fixture's own
// rows where the suite had added more), or PostgREST's documentation where the suite is silent.
import { DatabasePool } from '..'
import type { DatabaseClient } from '..'
import { conformanceDatabase, ok } from './conformance/setup'

const db = conformanceDatabase()
const setUp = db.setUp
let admin: DatabaseClient
beforeAll(() => {
  admin = db.admin()
})

describe('aggregates, JSON paths, computed fields, order and counts', () => {
  // PostgREST qualifies every column by its relation (the request's table by name, an embedded
  // resource as `<table>_<depth>`), so Postgres's own message names where the column was sought.
  const missingColumn = (message: string) =>
    ({ data: null, count: null, status: 400, statusText: 'Bad Request', error: { code: '42703', details: null, hint: null, message } })

  test('aggregates group by the other selected columns, at any level, with aliases and casts', async () => {
    expect(await admin.from('users').select('status, count()').order('status')).toEqual(
      ok([{ status: 'ONLINE', count: 3 }, { status: 'OFFLINE', count: 1 }]))
    expect(await admin.from('users').select('username, messages(count())').eq('username', 'supabot')).toEqual(
      ok([{ username: 'supabot', messages: [{ count: 2 }] }]))
    // `count` alone counts too: a list for a to-many resource, an object for a to-one one.
    expect(await admin.from('users').select('messages(channels(count))').eq('username', 'supabot')).toEqual(
      ok([{ messages: [{ channels: { count: 1 } }, { channels: { count: 1 } }] }]))
    expect(await admin.from('users').select('username, messages(total:id.sum(), id.max(), n:id.count()::text)').eq('username', 'supabot')).toEqual(
      ok([{ username: 'supabot', messages: [{ total: 3, max: 2, n: '2' }] }]))
    expect(await admin.rpc('get_username_and_status', { name_param: 'supabot' }).select('username.count(), status')).toEqual(
      ok([{ count: 1, status: 'ONLINE' }]))
    // An aggregate inside a spread joins its parent's aggregates and grouping.
    expect(await admin.from('messages').select('channels(id.sum(), ...channel_details(details_sum:id.sum(), details))').order('id')).toEqual(
      ok([{ channels: { sum: 1, details_sum: 1, details: 'Details for public channel' } },
        { channels: { sum: 2, details_sum: 2, details: 'Details for random channel' } }]))
    expect(await admin.from('users').select('status, *, count()')).toMatchObject({ data: null, status: 400 })
  })

  test('JSON paths select (named by their last key) and order', async () => {
    const doc = { foo: { bar: { nested: 'value' }, baz: 'string value' } }
    await admin.transaction(async (tx) => {
      await tx.from('channels').insert({ id: 9, slug: 'json', data: doc })
      expect(await tx.from('channels').select('data->foo->bar, data->foo->>baz, nested:data->foo->bar->>nested').eq('id', 9)).toEqual(
        ok([{ bar: { nested: 'value' }, baz: 'string value', nested: 'value' }]))
      expect((await tx.from('channels').select('slug').order('data->foo->>baz', { nullsFirst: false }).limit(1)).data).toEqual([{ slug: 'json' }])
      // Filters read the value inside the column too, as PostgREST's do, in `or` and on embedded
      // resources alike.
      expect(await tx.from('channels').select('slug').eq('data->foo->>baz', 'string value')).toEqual(ok([{ slug: 'json' }]))
      expect(await tx.from('channels').select('slug').eq('data->foo->bar->>nested', 'value')).toEqual(ok([{ slug: 'json' }]))
      expect(await tx.from('channels').select('slug').or('data->foo->>baz.eq.nothing,data->foo->>baz.like.string*')).toEqual(
        ok([{ slug: 'json' }]))
      expect(await tx.from('channels').select('slug').not('data->foo', 'is', null)).toEqual(ok([{ slug: 'json' }]))
      expect(await tx.from('messages').select('id, channels!inner(slug)').eq('channels.data->foo->>baz', 'string value')).toEqual(ok([]))
      await tx.query('select 1/0') // leave nothing behind: the statement fails, the transaction rolls back
    }).catch((err) => expect(err.code).toBe('22012'))
    expect((await admin.from('channels').select('id').eq('id', 9)).data).toEqual([])
  })

  test('stripNulls() leaves out null-valued keys at every depth, keeping key order and array nulls', async () => {
    const stripped = await admin.from('users').select('username, catchphrase, data, messages(id, channel_id, data)').eq('username', 'supabot').order('id', { referencedTable: 'messages' }).stripNulls()
    expect(stripped).toEqual(ok([{ username: 'supabot', catchphrase: "'cat' 'fat'", messages: [{ id: 1, channel_id: 1 }, { id: 2, channel_id: 2 }] }]))
    expect(Object.keys(stripped.data![0])).toEqual(['username', 'catchphrase', 'messages'])
    const one = await admin.from('users').select('username, data').eq('username', 'supabot').single().stripNulls()
    expect(one).toEqual(ok({ username: 'supabot' }))
    expect(await admin.rpc('get_status', { name_param: 'nobody' }).stripNulls()).toMatchObject({ status: 200, data: null })
  })

  test('a JSON path into a composite or array column reads it as JSON, in select, filters and order', async () => {
    await setUp(`
      create type complex as (r float8, i float8);
      create table fav_numbers (id int primary key, num complex, person text);
      insert into fav_numbers values (1, row(0.5, 0.5), 'A'), (2, row(0.6, 0.6), 'B');
      create table arrays (id int primary key, numbers int[], numbers_mult int[][]);
      insert into arrays values (0, '{1,2,3}', '{{1,2,3},{4,5,6},{7,8,9}}'), (1, '{11,12,13}', '{{11,12,13},{14,15,16},{17,18,19}}');`)
    DatabasePool.reloadSchema()
    try {
      expect(await admin.from('fav_numbers').select('num->i, r:num->>r').order('id')).toEqual(ok([{ i: 0.5, r: '0.5' }, { i: 0.6, r: '0.6' }]))
      expect(await admin.from('fav_numbers').select('person').gt('num->>i', 0.5)).toEqual(ok([{ person: 'B' }]))
      expect(await admin.from('fav_numbers').select('person').order('num->i', { ascending: false })).toEqual(ok([{ person: 'B' }, { person: 'A' }]))
      expect(await admin.from('fav_numbers').select('person').or('num->>r.eq.0.5,person.eq.nobody')).toEqual(ok([{ person: 'A' }]))
      expect(await admin.from('arrays').select('a:numbers->0, b:numbers->>1, d:numbers_mult->1->2').order('id')).toEqual(
        ok([{ a: 1, b: '2', d: 6 }, { a: 11, b: '12', d: 16 }]))
      expect(await admin.from('arrays').select('id').eq('numbers_mult->1->1', 5)).toEqual(ok([{ id: 0 }]))
      expect(await admin.from('arrays').select('id').order('numbers->0', { ascending: false })).toEqual(ok([{ id: 1 }, { id: 0 }]))
    } finally {
      await setUp('drop table fav_numbers, arrays; drop type complex')
      DatabasePool.reloadSchema()
    }
  })

  test('a computed field is selected by name, beside * and inside an embedding', async () => {
    expect(await admin.from('messages').select('id, blurb_message').order('id')).toEqual(
      ok([{ id: 1, blurb_message: 'Hel' }, { id: 2, blurb_message: 'Per' }]))
    expect((await admin.from('users').select('messages(*, blurb_message)').eq('username', 'supabot')).data).toEqual(
      [{ messages: [expect.objectContaining({ id: 1, blurb_message: 'Hel' }), expect.objectContaining({ id: 2, blurb_message: 'Per' })] }])
  })

  test('aggregates that PostgREST does not answer in a spread are PGRST127, not per-row figures', async () => {
    const refused = { status: 400, error: { code: 'PGRST127', message: 'Feature not implemented' } }
    expect(await admin.from('users').select('username, ...messages(id.count())')).toMatchObject(refused)
    expect(await admin.from('messages').select('...channels(slug, ...channel_details(id.count()))')).toMatchObject(refused)
  })

  test('a JSON path is named after its last key that is no array index', async () => {
    await admin.query(`update users set data = '{"a": [{"b": 7}], "c": [1, 2]}' where username = 'dragarcia'`)
    try {
      expect(await admin.from('users').select('data->c->>0, data->a->0->b').eq('username', 'dragarcia'))
        .toEqual(ok([{ c: '1', b: 7 }]))
      expect(await admin.from('users').select('data->>0, data->a->>0').eq('username', 'dragarcia'))
        .toEqual(ok([{ data: null, a: '{"b": 7}' }]))
    } finally {
      await admin.query(`update users set data = null where username = 'dragarcia'`)
    }
  })

  test('a computed field filters and orders as a column does', async () => {
    expect(await admin.from('messages').select('id').eq('blurb_message', 'Per')).toEqual(ok([{ id: 2 }]))
    expect(await admin.from('messages').select('id').order('blurb_message', { ascending: false })).toEqual(ok([{ id: 2 }, { id: 1 }]))
    expect(await admin.from('messages').select('id').or('blurb_message.eq.Hel,id.eq.99')).toEqual(ok([{ id: 1 }]))
    expect(await admin.from('channels').select('slug, messages!inner(id)').eq('messages.blurb_message', 'Per')).toEqual(
      ok([{ slug: 'random', messages: [{ id: 2 }] }]))
  })

  test('parents are ordered by a to-one resource\'s column; a to-many one is PGRST118', async () => {
    expect(await admin.from('messages').select('id, channels(slug)').order('channels(slug)', { ascending: false })).toEqual(
      ok([{ id: 2, channels: { slug: 'random' } }, { id: 1, channels: { slug: 'public' } }]))
    expect(await admin.from('best_friends').select('id, users!third_wheel(username)').order('users(username)', { nullsFirst: true })).toEqual(
      ok([{ id: 2, users: null }, { id: 1, users: { username: 'awailas' } }]))
    expect(await admin.from('channels').select('id, messages(id)').order('messages(id)')).toMatchObject({ data: null, status: 400, error: { code: 'PGRST118' } })
    // As PostgREST's own spec has it: the resource must be embedded, and is named by its alias.
    expect(await admin.from('messages').select('id').order('channels(slug)')).toMatchObject({
      status: 400, error: { code: 'PGRST108', message: "'channels' is not an embedded resource in this request" },
    })
    expect(await admin.from('channels').select('id, posts:messages(id)').order('posts(id)')).toMatchObject({
      status: 400, error: { code: 'PGRST118', message: "A related order on 'posts' is not possible",
        details: "'channels' and 'posts' do not form a many-to-one or one-to-one relationship" },
    })
    // An embedded resource's rows ordered by a to-one resource embedded in it.
    expect(await admin.from('users').select('username, messages(id, channels(slug))').eq('username', 'supabot')
      .order('channels(slug)', { referencedTable: 'messages', ascending: false })).toEqual(ok([{ username: 'supabot', messages: [
      { id: 2, channels: { slug: 'random' } }, { id: 1, channels: { slug: 'public' } }] }]))
  })

  test('a column that does not exist is named with its relation, as PostgREST names it (42703)', async () => {
    expect(await admin.from('users').select('alias:missing_column.count()').eq('id', 2).limit(1).single()).toMatchObject(
      missingColumn('column users.missing_column does not exist'))
    expect(await admin.from('messages').select('message, users.count(), casted_message:message::int4').limit(1).single()).toMatchObject(
      missingColumn('column messages.users does not exist'))
    expect(await admin.from('users').select('username, messages(sum)').limit(1).single()).toMatchObject(
      missingColumn('column messages_1.sum does not exist'))
    expect(await admin.from('users').select('username').eq('nope' as 'username', 'x')).toMatchObject(
      missingColumn('column users.nope does not exist'))
    expect(await admin.from('users').select('username').order('nope' as 'username')).toMatchObject(
      missingColumn('column users.nope does not exist'))
    expect(await admin.from('users').update({ status: 'ONLINE' }).eq('nope' as 'username', 'x')).toMatchObject(
      missingColumn('column users.nope does not exist'))
    expect(await admin.from('users').delete().eq('nope' as 'username', 'x').select()).toMatchObject(
      missingColumn('column users.nope does not exist'))
  })

  test('an output name cannot stand in for a column: a filter or order names the table\'s own', async () => {
    // `name` is only an alias here: the order is the table's `username`, not the output.
    expect(await admin.from('users').select('name:username').order('username').limit(2)).toEqual(
      ok([{ name: 'awailas' }, { name: 'dragarcia' }]))
    // A spread's lateral row does not join `*`.
    const spread = await admin.from('messages').select('*, ...users(status)').order('id').limit(1)
    expect(Object.keys(spread.data![0]).sort()).toEqual(['channel_id', 'data', 'id', 'message', 'status', 'username'])
  })

  test('head with a planned count answers 206 while the estimate exceeds the rows', async () => {
    const planned = await admin.from('products').select('*', { head: true, count: 'planned' })
    expect(planned.count).toBeGreaterThan(3) // never analyzed: the planner's default estimate
    expect(planned).toMatchObject({ data: null, status: 206 })
  })
})

describe('transforms', () => {
  test('order, limit and range', async () => {
    expect(await admin.from('users').select('username').order('username', { ascending: false })).toEqual(
      ok([{ username: 'supabot' }, { username: 'kiwicopple' }, { username: 'dragarcia' }, { username: 'awailas' }]))
    expect(await admin.from('users').select('username').order('status').order('username').limit(2)).toEqual(
      ok([{ username: 'awailas' }, { username: 'dragarcia' }]))
    expect(await admin.from('users').select('username').order('username').range(1, 2)).toEqual(
      ok([{ username: 'dragarcia' }, { username: 'kiwicopple' }]))
    expect(await admin.from('users').select('data').order('data', { nullsFirst: true }).limit(1)).toEqual(ok([{ data: null }]))
  })

  test('single, maybeSingle', async () => {
    expect(await admin.from('users').select('username').eq('username', 'supabot').single()).toEqual(ok({ username: 'supabot' }))
    const many = await admin.from('users').select('username').single()
    expect(many).toMatchObject({ data: null, status: 406, statusText: 'Not Acceptable' })
    expect(many.error).toMatchObject({ code: 'PGRST116', details: 'The result contains 4 rows' })
    expect(await admin.from('users').select('username').eq('username', 'nobody').maybeSingle()).toEqual(ok(null))
    const maybeMany = await admin.from('users').select('username').maybeSingle()
    expect(maybeMany).toMatchObject({ data: null, status: 406, error: { code: 'PGRST116' } })
  })

  test('count: exact with a page is 206; head carries only the count', async () => {
    const page = await admin.from('users').select('username', { count: 'exact' }).order('username').limit(1)
    expect(page).toEqual({ success: true, data: [{ username: 'awailas' }], error: null, count: 4, status: 206, statusText: 'Partial Content' })
    const head = await admin.from('users').select('*', { count: 'exact', head: true })
    expect(head).toEqual({ success: true, data: null, error: null, count: 4, status: 200, statusText: 'OK' })
    const planned = await admin.from('users').select('*', { count: 'planned', head: true })
    expect(typeof planned.count).toBe('number')
    expect(planned.status).toBe(planned.count! > 4 ? 206 : 200)
  })

  test('csv(): a header and one line per row, as PostgREST writes them', async () => {
    const csv = await admin.from('users').select().csv()
    expect(csv).toEqual(ok([
      'username,data,age_range,status,catchphrase',
      'supabot,,"[1,2)",ONLINE,"\'cat\' \'fat\'"',
      'kiwicopple,,"[25,35)",OFFLINE,"\'bat\' \'cat\'"',
      'awailas,,"[25,35)",ONLINE,"\'bat\' \'rat\'"',
      'dragarcia,,"[20,30)",ONLINE,"\'fat\' \'rat\'"',
    ].join('\n')))
  })

  test('csv() answers a function and a mutation\'s representation too, as PostgREST does', async () => {
    expect(await admin.rpc('get_username_and_status', { name_param: 'supabot' }).csv()).toEqual(ok('username,status\nsupabot,ONLINE'))
    // A scalar function's one column is named after it.
    expect(await admin.rpc('get_status', { name_param: 'supabot' }).csv()).toEqual(ok('get_status\nONLINE'))
    const inserted = await admin.from('channels').insert({ slug: 'csv-one' }).select('slug, data').rollback().csv()
    expect(inserted).toEqual({ success: true, data: 'slug,data\ncsv-one,', error: null, count: null, status: 201, statusText: 'Created' })
    const updated = await admin.from('messages').update({ message: 'edited' }).eq('id', 1).select('id, message, channels(slug)').rollback().csv()
    expect(updated).toEqual(ok('id,message,channels\n1,edited,"{""slug"":""public""}"'))
    // No row: the header PostgREST writes from no row is empty, then the line break.
    expect(await admin.from('messages').delete().eq('id', 999).select('id').csv()).toEqual(ok('\n'))
  })

  test('abortSignal: an aborted request answers with the abort, and the pool goes on', async () => {
    const controller = new AbortController()
    controller.abort()
    const aborted = await admin.from('users').select().abortSignal(controller.signal)
    expect(aborted.data).toBeNull()
    expect(aborted.error?.message).toMatch(/abort/i)
    expect((await admin.from('users').select('username').limit(1)).status).toBe(200)
  })

  test('rollback(): the mutation answers, then is undone', async () => {
    const inserted = await admin.from('channels').insert({ slug: 'rolled-back' }).select('slug').rollback()
    expect(inserted).toMatchObject({ data: [{ slug: 'rolled-back' }], error: null, status: 201 })
    expect((await admin.from('channels').select('id').eq('slug', 'rolled-back')).data).toEqual([])
  })

  test('maxAffected(): more rows than allowed is PGRST124 and nothing changes', async () => {
    const result = await admin.from('users').update({ data: { touched: true } }).neq('username', 'nobody').maxAffected(1)
    expect(result).toMatchObject({ data: null, status: 400, error: { code: 'PGRST124', details: 'The query affects 4 rows' } })
    expect((await admin.from('users').select('data').not('data', 'is', null)).data).toEqual([])
  })

  test('inside transaction(), a request that answers an error or rollback() leaves nothing in the transaction, which goes on', async () => {
    const seen = await admin.transaction(async (tx) => {
      await tx.from('channels').insert({ id: 31, slug: 'kept' })
      const two = await tx.from('channels').insert([{ id: 32, slug: 'undone-a' }, { id: 33, slug: 'undone-b' }]).select('slug').single()
      expect(two).toMatchObject({ data: null, status: 406, error: { code: 'PGRST116' } })
      const capped = await tx.from('channels').update({ data: { touched: true } }).gte('id', 1).maxAffected(1)
      expect(capped).toMatchObject({ status: 400, error: { code: 'PGRST124' } })
      expect(await tx.from('channels').insert({ id: 34, slug: 'rolled-back' }).select('slug').rollback()).toMatchObject(
        { data: [{ slug: 'rolled-back' }], status: 201 })
      return (await tx.from('channels').select('slug').gte('id', 31).order('id')).data
    })
    // Inside: only the plain insert; after COMMIT, the same, and no row was touched.
    expect(seen).toEqual([{ slug: 'kept' }])
    expect((await admin.from('channels').select('slug').gte('id', 31)).data).toEqual([{ slug: 'kept' }])
    expect((await admin.from('channels').select('id').not('data', 'is', null)).data).toEqual([])
    await admin.from('channels').delete().eq('id', 31)
  })
})
