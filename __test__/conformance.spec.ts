// Conformance with PostgREST as postgrest-js's own test suite records it: the fixture of
// supabase/postgrest-js (test/db/, without the postgis parts) in a database of its own, the
// builder calls of its filter, transform, rpc and mutation tests, and the answers PostgREST gave
// them (adapted to the fixture's own rows where the suite had added more), or PostgREST's
// documentation where the suite is silent.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Client } from 'pg'
import { DatabasePool } from '..'
import type { DatabaseClient } from '..'
import { baseUrl, uniqueName } from './helpers'

const database = uniqueName('cp_conformance')
let admin: DatabaseClient

function urlOf(db: string): string {
  const url = new URL(baseUrl())
  url.pathname = `/${db}`
  return url.toString()
}

beforeAll(async () => {
  const setup = new Client({ connectionString: baseUrl() })
  await setup.connect()
  await setup.query(`create database ${database}`)
  await setup.end()
  const loader = new Client({ connectionString: urlOf(database) })
  await loader.connect()
  await loader.query(readFileSync(path.join(__dirname, 'conformance', 'fixture.sql'), 'utf8'))
  await loader.query(`DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
  await loader.query('grant usage on schema public, personal to anon')
  await loader.query('grant select on all tables in schema public, personal to anon')
  await loader.end()
  DatabasePool.initialize({ connectionString: urlOf(database), schemas: ['public', 'personal'], minConnections: 0, maxConnections: 4 })
  admin = DatabasePool.getAdminClient()
})

afterAll(async () => {
  await DatabasePool.close()
  const teardown = new Client({ connectionString: baseUrl() })
  await teardown.connect()
  await teardown.query(`drop database if exists ${database} with (force)`)
  await teardown.end()
})

/** Runs several statements in one text on the test database (pg sends them as one simple query). */
async function setUp(sql: string) {
  const client = new Client({ connectionString: urlOf(database) })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

// postgrest-js's answer for a success (it adds `success` beside PostgREST's fields).
const ok = (data: unknown) => ({ success: true, data, error: null, count: null, status: 200, statusText: 'OK' })

describe('filters', () => {
  const cases: [string, () => PromiseLike<unknown>, unknown][] = [
    ['not', () => admin.from('users').select('status').not('status', 'eq', 'OFFLINE'),
      ok([{ status: 'ONLINE' }, { status: 'ONLINE' }, { status: 'ONLINE' }])],
    ['or', () => admin.from('users').select('status, username').or('status.eq.OFFLINE,username.eq.supabot'),
      ok([{ status: 'ONLINE', username: 'supabot' }, { status: 'OFFLINE', username: 'kiwicopple' }])],
    ['eq', () => admin.from('users').select('username').eq('username', 'supabot'), ok([{ username: 'supabot' }])],
    ['neq', () => admin.from('users').select('username').neq('username', 'supabot'),
      ok([{ username: 'kiwicopple' }, { username: 'awailas' }, { username: 'dragarcia' }])],
    ['gt', () => admin.from('messages').select('id').gt('id', 1), ok([{ id: 2 }])],
    ['gte', () => admin.from('messages').select('id').gte('id', 1), ok([{ id: 1 }, { id: 2 }])],
    ['lt', () => admin.from('messages').select('id').lt('id', 2), ok([{ id: 1 }])],
    ['lte', () => admin.from('messages').select('id').lte('id', 2), ok([{ id: 1 }, { id: 2 }])],
    ['like', () => admin.from('users').select('username').like('username', '%supa%'), ok([{ username: 'supabot' }])],
    ['likeAllOf', () => admin.from('users').select('username').likeAllOf('username', ['%supa%', '%bot%']), ok([{ username: 'supabot' }])],
    ['likeAnyOf', () => admin.from('users').select('username').likeAnyOf('username', ['%supa%', '%kiwi%']),
      ok([{ username: 'supabot' }, { username: 'kiwicopple' }])],
    ['ilike', () => admin.from('users').select('username').ilike('username', '%SUPA%'), ok([{ username: 'supabot' }])],
    ['ilikeAllOf', () => admin.from('users').select('username').ilikeAllOf('username', ['%SUPA%', '%bot%']), ok([{ username: 'supabot' }])],
    ['ilikeAnyOf', () => admin.from('users').select('username').ilikeAnyOf('username', ['%supa%', '%KIWI%']),
      ok([{ username: 'supabot' }, { username: 'kiwicopple' }])],
    ['is', () => admin.from('users').select('data').is('data', null), ok([{ data: null }, { data: null }, { data: null }, { data: null }])],
    ['in', () => admin.from('users').select('status').in('status', ['ONLINE', 'OFFLINE']),
      ok([{ status: 'ONLINE' }, { status: 'OFFLINE' }, { status: 'ONLINE' }, { status: 'ONLINE' }])],
    ['contains (range)', () => admin.from('users').select('age_range').contains('age_range', '[1,2)'), ok([{ age_range: '[1,2)' }])],
    ['contains (array)', () => admin.from('cornercase').select('array_column').contains('array_column', ['test']),
      ok([{ array_column: ['test', 'one'] }])],
    ['containedBy (range)', () => admin.from('users').select('age_range').containedBy('age_range', '[1,2)'), ok([{ age_range: '[1,2)' }])],
    ['containedBy (json)', () => admin.from('users').select('data').containedBy('data', { foo: { baz: 'string value' } }), ok([])],
    ['containedBy (array)', () => admin.from('cornercase').select('array_column').containedBy('array_column', ['test']), ok([])],
    ['rangeLt', () => admin.from('users').select('age_range').rangeLt('age_range', '[2,25)'), ok([{ age_range: '[1,2)' }])],
    ['rangeGt', () => admin.from('users').select('age_range').rangeGt('age_range', '[2,25)'),
      ok([{ age_range: '[25,35)' }, { age_range: '[25,35)' }])],
    ['rangeGte', () => admin.from('users').select('age_range').rangeGte('age_range', '[2,25)'),
      ok([{ age_range: '[25,35)' }, { age_range: '[25,35)' }, { age_range: '[20,30)' }])],
    ['rangeLte', () => admin.from('users').select('age_range').rangeLte('age_range', '[2,25)'), ok([{ age_range: '[1,2)' }])],
    ['rangeAdjacent', () => admin.from('users').select('age_range').rangeAdjacent('age_range', '[2,25)'),
      ok([{ age_range: '[1,2)' }, { age_range: '[25,35)' }, { age_range: '[25,35)' }])],
    ['overlaps (range)', () => admin.from('users').select('age_range').overlaps('age_range', '[2,25)'), ok([{ age_range: '[20,30)' }])],
    ['overlaps (array)', () => admin.from('cornercase').select('array_column').overlaps('array_column', ['test']),
      ok([{ array_column: ['test', 'one'] }])],
    ['textSearch', () => admin.from('users').select('catchphrase').textSearch('catchphrase', `'fat' & 'cat'`, { config: 'english' }),
      ok([{ catchphrase: "'cat' 'fat'" }])],
    ['textSearch plain', () => admin.from('users').select('catchphrase').textSearch('catchphrase', `'fat' & 'cat'`, { config: 'english', type: 'plain' }),
      ok([{ catchphrase: "'cat' 'fat'" }])],
    ['textSearch phrase', () => admin.from('users').select('catchphrase').textSearch('catchphrase', 'cat', { config: 'english', type: 'phrase' }),
      ok([{ catchphrase: "'cat' 'fat'" }, { catchphrase: "'bat' 'cat'" }])],
    ['textSearch websearch', () => admin.from('users').select('catchphrase').textSearch('catchphrase', `'fat' & 'cat'`, { config: 'english', type: 'websearch' }),
      ok([{ catchphrase: "'cat' 'fat'" }])],
    // On a text column, PostgREST searches to_tsvector(config, column): 'simple' keeps the stop
    // word 'is' that the default configuration would drop.
    ['textSearch on a text column, with its configuration', () => admin.from('messages').select('id').textSearch('message', 'is', { config: 'simple' }),
      ok([{ id: 2 }])],
    ['textSearch on a text column in or()', () => admin.from('messages').select('id').or('message.fts(simple).is,id.eq.1').order('id'),
      ok([{ id: 1 }, { id: 2 }])],
    ['multiple filters', () => admin.from('users').select().eq('username', 'supabot').is('data', null)
      .overlaps('age_range', '[1,2)').eq('status', 'ONLINE').textSearch('catchphrase', 'cat'),
    ok([{ username: 'supabot', data: null, age_range: '[1,2)', status: 'ONLINE', catchphrase: "'cat' 'fat'" }])],
    ['filter', () => admin.from('users').select('username').filter('username', 'eq', 'supabot'), ok([{ username: 'supabot' }])],
    ['filter in', () => admin.from('users').select('username').filter('username', 'in', '(supabot,awailas)'),
      ok([{ username: 'supabot' }, { username: 'awailas' }])],
    ['match', () => admin.from('users').select('username, status').match({ username: 'supabot', status: 'ONLINE' }),
      ok([{ username: 'supabot', status: 'ONLINE' }])],
    ['isDistinct', () => admin.from('users').select('username').isDistinct('status', 'ONLINE'), ok([{ username: 'kiwicopple' }])],
    ['regex match', () => admin.from('users').select('username').filter('username', 'match', '^kiwi'), ok([{ username: 'kiwicopple' }])],
    ['or with and', () => admin.from('users').select('username').or('and(status.eq.ONLINE,username.like.*bot),username.eq.kiwicopple'),
      ok([{ username: 'supabot' }, { username: 'kiwicopple' }])],
    ['not or', () => admin.from('users').select('username').not('username', 'in', '(supabot,kiwicopple)'),
      ok([{ username: 'awailas' }, { username: 'dragarcia' }])],
    // PostgREST's own spec (AndOrParamsSpec, QuerySpec): an array literal inside or() keeps its
    // commas, groups may hold spaces, `is.not_null`, quotes inside an in() list.
    ['or with array literals', () => admin.from('cornercase').select('id').or('array_column.cs.{test,one},array_column.cd.{x}'),
      ok([{ id: 1 }])],
    ['or with spaces around groups', () => admin.from('users').select('username')
      .or(' and ( status.eq.ONLINE , username.in.( supabot, awailas ) ) , username.eq.kiwicopple ').order('username'),
    ok([{ username: 'awailas' }, { username: 'kiwicopple' }, { username: 'supabot' }])],
    ['is not_null', () => admin.from('users').select('username').filter('data', 'is', 'not_null'), ok([])],
    ['not is NoT_NuLl', () => admin.from('users').select('username').not('data', 'is', 'NoT_NuLl').order('username').limit(1),
      ok([{ username: 'awailas' }])],
    ['in() with stray quotes and an empty item', () => admin.from('users').select('username').filter('username', 'in', '(",Double"Quote",,supabot)'),
      ok([{ username: 'supabot' }])],
  ]
  test.each(cases)('%s', async (_name, run, expected) => {
    expect(await run()).toEqual(expected)
  })
})

describe('embedding', () => {
  test('one-to-many: an array of the related rows', async () => {
    expect(await admin.from('users').select('username, messages(id)').eq('username', 'supabot')).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 1 }, { id: 2 }] }]))
    expect(await admin.from('users').select('username, messages(id)').eq('username', 'awailas')).toEqual(
      ok([{ username: 'awailas', messages: [] }]))
  })

  test('many-to-one: the related row as an object; one-to-one too', async () => {
    expect(await admin.from('messages').select('id, channels(slug)')).toEqual(
      ok([{ id: 1, channels: { slug: 'public' } }, { id: 2, channels: { slug: 'random' } }]))
    expect(await admin.from('channels').select('slug, channel_details(details)').eq('id', 1)).toEqual(
      ok([{ slug: 'public', channel_details: { details: 'Details for public channel' } }]))
  })

  test('nested resources, an alias, * inside', async () => {
    expect(await admin.from('channels').select('slug, posts:messages(id, author:users(username))').eq('id', 2)).toEqual(
      ok([{ slug: 'random', posts: [{ id: 2, author: { username: 'supabot' } }] }]))
    const star = await admin.from('messages').select('*, channels(*)').eq('id', 1).single()
    expect(star.data).toMatchObject({ id: 1, username: 'supabot', channels: { id: 1, slug: 'public', data: null } })
  })

  test('!inner keeps only rows that have the resource; !left keeps all', async () => {
    expect(await admin.from('users').select('username, messages!inner(id)')).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 1 }, { id: 2 }] }]))
    expect((await admin.from('users').select('username, messages!left(id)')).data).toHaveLength(4)
  })

  test('a hint picks one of several foreign keys; without one the embedding is ambiguous (300, PGRST201)', async () => {
    expect(await admin.from('best_friends').select('id, first_user:users!best_friends_first_user_fkey(username)').order('id')).toEqual(
      ok([{ id: 1, first_user: { username: 'supabot' } }, { id: 2, first_user: { username: 'supabot' } }]))
    expect(await admin.from('best_friends').select('id, users!third_wheel(username)').order('id')).toEqual(
      ok([{ id: 1, users: { username: 'awailas' } }, { id: 2, users: null }]))
    const ambiguous = await admin.from('best_friends').select('users(*)')
    expect(ambiguous).toMatchObject({ data: null, status: 300, error: { code: 'PGRST201' } })
    const none = await admin.from('users').select('products(*)')
    expect(none).toMatchObject({ data: null, status: 400, error: { code: 'PGRST200' } })
  })

  test('a spread lifts a to-one resource\'s columns; count counts a to-many one', async () => {
    expect(await admin.from('messages').select('id, ...channels(channel_slug:slug)')).toEqual(
      ok([{ id: 1, channel_slug: 'public' }, { id: 2, channel_slug: 'random' }]))
    expect(await admin.from('channels').select('slug, messages(count)').order('id')).toEqual(
      ok([{ slug: 'public', messages: [{ count: 1 }] }, { slug: 'random', messages: [{ count: 1 }] }]))
  })

  test('filters, order and limit on an embedded resource (referencedTable)', async () => {
    expect(await admin.from('users').select('username, messages(id)').eq('username', 'supabot').eq('messages.id', 2)).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 2 }] }]))
    expect(await admin.from('users').select('username, messages(id)').eq('username', 'supabot')
      .order('id', { referencedTable: 'messages', ascending: false })).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 2 }, { id: 1 }] }]))
    expect(await admin.from('users').select('username, messages(id)').eq('username', 'supabot')
      .order('id', { referencedTable: 'messages' }).limit(1, { referencedTable: 'messages' })).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 1 }] }]))
    expect(await admin.from('users').select('username, messages(id)').eq('username', 'supabot')
      .or('id.eq.1,id.eq.5', { referencedTable: 'messages' })).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 1 }] }]))
    // With !inner the embedded filter also filters the parents.
    expect(await admin.from('channels').select('slug, messages!inner(id)').eq('messages.id', 2)).toEqual(
      ok([{ slug: 'random', messages: [{ id: 2 }] }]))
    // Nested paths, and the request's own filters numbered after the embedded ones.
    expect(await admin.from('channels').select('slug, messages(id, users(username))').eq('messages.users.username', 'nobody')
      .eq('slug', 'public')).toEqual(ok([{ slug: 'public', messages: [{ id: 1, users: null }] }]))
  })

  test('the exact count of an !inner select counts what it returns', async () => {
    const counted = await admin.from('users').select('username, messages!inner(id)', { count: 'exact' })
    expect(counted.count).toBe(1)
    const filtered = await admin.from('channels').select('slug, messages!inner(id)', { count: 'exact' }).eq('messages.id', 1)
    expect(filtered).toMatchObject({ count: 1, data: [{ slug: 'public', messages: [{ id: 1 }] }] })
  })
})

describe('aggregates, JSON paths, computed fields, more relationships', () => {
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

  test('an embedded resource tested for null: is.null an anti-join, not.is.null a semi-join, also in or()', async () => {
    // supabot wrote both messages; kiwicopple, awailas and dragarcia none.
    expect(await admin.from('users').select('username, messages(id)').is('messages', null).order('username')).toEqual(
      ok([{ username: 'awailas', messages: [] }, { username: 'dragarcia', messages: [] }, { username: 'kiwicopple', messages: [] }]))
    expect(await admin.from('users').select('username, messages(id)').not('messages', 'is', null)).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 1 }, { id: 2 }] }]))
    expect(await admin.from('users').select('username, messages(id)').or('messages.not.is.null,username.eq.kiwicopple').order('username')).toEqual(
      ok([{ username: 'kiwicopple', messages: [] }, { username: 'supabot', messages: [{ id: 1 }, { id: 2 }] }]))
    // Under the resource's own filters; with nothing selected of it; counted as the rows are.
    expect(await admin.from('channels').select('slug, messages(id)').eq('messages.id', 2).is('messages', null)).toEqual(
      ok([{ slug: 'public', messages: [] }]))
    expect(await admin.from('users').select('username, messages()', { count: 'exact' }).not('messages', 'is', null)).toEqual(
      { ...ok([{ username: 'supabot' }]), count: 1 })
    const planned = await admin.from('users').select('username, messages(id)', { count: 'planned', head: true }).is('messages', null)
    expect(planned).toMatchObject({ data: null, error: null })
    expect(typeof planned.count).toBe('number')
  })

  test('a filter, order or limit on a resource the select does not embed is PGRST108, as PostgREST answers it', async () => {
    expect(await admin.from('users').select('*').eq('messages.id', 1)).toMatchObject({
      status: 400,
      error: { code: 'PGRST108', message: "'messages' is not an embedded resource in this request",
        hint: "Verify that 'messages' is included in the 'select' query parameter." },
    })
    expect(await admin.from('users').select('username, messages(id, channels(slug))').eq('messages.channel.slug', 'x')).toMatchObject({
      status: 400, error: { code: 'PGRST108', message: "'channel' is not an embedded resource in this request" },
    })
    // An aliased resource is named by its alias only.
    expect(await admin.from('users').select('username, posts:messages(id)').order('id', { referencedTable: 'messages' })).toMatchObject({
      status: 400,
      error: { code: 'PGRST108', details: 'Target names are not allowed in filters if they have an alias',
        hint: "Change 'messages' to 'posts' in filters, orders or limits." },
    })
    expect(await admin.from('users').select('username, posts:messages(id)').eq('username', 'supabot').order('id', { referencedTable: 'posts', ascending: false }))
      .toEqual(ok([{ username: 'supabot', posts: [{ id: 2 }, { id: 1 }] }]))
  })

  test('a spread resource is tested for null as an embedded one is', async () => {
    // To-one: message 1 is in the public channel.
    const spread = () => admin.from('messages').select('id, ...channels(slug)').eq('channels.slug', 'public').order('id')
    expect(await spread().not('channels', 'is', null)).toEqual(ok([{ id: 1, slug: 'public' }]))
    expect(await spread().is('channels', null)).toEqual(ok([{ id: 2, slug: null }]))
    // To-many (PostgREST 13): users without messages.
    expect(await admin.from('users').select('username, ...messages(id)').is('messages', null).order('username')).toEqual(ok([
      { username: 'awailas', id: [] }, { username: 'dragarcia', id: [] }, { username: 'kiwicopple', id: [] }]))
  })

  test('aggregates that PostgREST does not answer in a spread are PGRST127, not per-row figures', async () => {
    const refused = { status: 400, error: { code: 'PGRST127', message: 'Feature not implemented' } }
    expect(await admin.from('users').select('username, ...messages(id.count())')).toMatchObject(refused)
    expect(await admin.from('messages').select('...channels(slug, ...channel_details(id.count()))')).toMatchObject(refused)
  })

  test('a resource with nothing selected below it only filters and stays out of the answer', async () => {
    expect(await admin.from('users').select('username, messages(channels())').eq('username', 'supabot')).toEqual(ok([{ username: 'supabot' }]))
    expect(await admin.from('users').select('username, messages!inner(channels!inner())').eq('messages.channels.slug', 'random'))
      .toEqual(ok([{ username: 'supabot' }]))
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

  test('a resource embedded below the top level is tested for null inside its parent resource', async () => {
    // supabot's message 1 is in the public channel, message 2 in random.
    const nested = () =>
      admin.from('users').select('username, messages(id, channels(slug))').eq('messages.channels.slug', 'public').eq('username', 'supabot')
    expect(await nested().not('messages.channels', 'is', null)).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 1, channels: { slug: 'public' } }] }]))
    expect(await nested().is('messages.channels', null)).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 2, channels: null }] }]))
    expect(await nested().or('channels.is.null,id.eq.1', { referencedTable: 'messages' }).order('id', { referencedTable: 'messages' })).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 1, channels: { slug: 'public' } }, { id: 2, channels: null }] }]))
    // With !inner on the middle resource, the parent goes when no message is left.
    expect(await admin.from('users').select('username, messages!inner(id, channels(slug))').eq('messages.channels.slug', 'nowhere')
      .not('messages.channels', 'is', null)).toEqual(ok([]))
  })

  test('a spread takes embedded resources and spreads in turn, as PostgREST has them', async () => {
    expect(await admin.from('messages').select('id, ...channels(slug, channel_details(details))').order('id')).toEqual(ok([
      { id: 1, slug: 'public', channel_details: { details: 'Details for public channel' } },
      { id: 2, slug: 'random', channel_details: { details: 'Details for random channel' } },
    ]))
    expect(await admin.from('messages').select('id, ...channels(slug, ...channel_details(details))').order('id')).toEqual(ok([
      { id: 1, slug: 'public', details: 'Details for public channel' },
      { id: 2, slug: 'random', details: 'Details for random channel' },
    ]))
    // Each keeps its own filters; a to-many resource inside a to-one spread is a list.
    expect(await admin.from('messages').select('id, ...channels(slug, channel_details(details))').eq('channels.channel_details.id', 2).order('id'))
      .toEqual(ok([{ id: 1, slug: 'public', channel_details: null }, { id: 2, slug: 'random', channel_details: { details: 'Details for random channel' } }]))
    expect(await admin.from('messages').select('id, ...users(username, messages(id))').eq('id', 1)).toEqual(
      ok([{ id: 1, username: 'supabot', messages: [{ id: 1 }, { id: 2 }] }]))
    expect(await admin.from('messages').select('count(), ...channels(slug, channel_details(details))')).toMatchObject(
      { data: null, status: 400, error: { code: 'PGRST100' } })
  })

  test('a computed field filters and orders as a column does', async () => {
    expect(await admin.from('messages').select('id').eq('blurb_message', 'Per')).toEqual(ok([{ id: 2 }]))
    expect(await admin.from('messages').select('id').order('blurb_message', { ascending: false })).toEqual(ok([{ id: 2 }, { id: 1 }]))
    expect(await admin.from('messages').select('id').or('blurb_message.eq.Hel,id.eq.99')).toEqual(ok([{ id: 1 }]))
    expect(await admin.from('channels').select('slug, messages!inner(id)').eq('messages.blurb_message', 'Per')).toEqual(
      ok([{ slug: 'random', messages: [{ id: 2 }] }]))
  })

  test('many-to-many through a junction table; a self-reference both ways', async () => {
    expect(await admin.from('products').select('name, categories(name)').eq('id', 1).single()).toEqual(
      ok({ name: 'Laptop', categories: [{ name: 'Electronics' }, { name: 'Computers' }] }))
    expect(await admin.from('categories').select('name, products(name)').eq('id', 3).single()).toEqual(
      ok({ name: 'Audio', products: [{ name: 'Headphones' }] }))
    // By the table's name, a self-reference embeds the children; by the column, the parent.
    expect(await admin.from('collections').select('id, collections(id)').eq('id', 2).single()).toEqual(
      ok({ id: 2, collections: [{ id: 4 }, { id: 5 }] }))
    expect(await admin.from('collections').select('id, parent_id(id, description)').eq('id', 2).single()).toEqual(
      ok({ id: 2, parent_id: { id: 1, description: 'Root Collection' } }))
  })

  test('embedding by a foreign key column or constraint name; an empty embedding filters only', async () => {
    expect(await admin.from('best_friends').select('id, first_user(username)').eq('id', 1).single()).toEqual(
      ok({ id: 1, first_user: { username: 'supabot' } }))
    expect(await admin.from('users').select('username, friends:best_friends_first_user_fkey(id)').eq('username', 'supabot').single()).toEqual(
      ok({ username: 'supabot', friends: [{ id: 1 }, { id: 2 }] }))
    expect(await admin.from('users').select('username, messages!inner()').order('username')).toEqual(ok([{ username: 'supabot' }]))
  })

  test('a spread of a to-many resource gives each column as an array (PostgREST 13)', async () => {
    expect(await admin.from('channels').select('channel_id:id, ...messages(id, text:message)').order('id')).toEqual(
      ok([{ channel_id: 1, id: [1], text: ['Hello World 👋'] },
        { channel_id: 2, id: [2], text: ['Perfection is attained, not when there is nothing more to add, but when there is nothing left to take away.'] }]))
    // The parent's own columns keep their names in filters and order beside the spread's.
    expect(await admin.from('users').select('username, ...messages(id)').order('username').limit(1)).toEqual(
      ok([{ username: 'awailas', id: [] }]))
    // An alias named as another column does not take over the order either.
    expect(await admin.from('users').select('username:status, messages(id)').order('username').limit(1)).toEqual(
      ok([{ username: 'ONLINE', messages: [] }]))
  })

  test('a view over one table takes on its foreign keys, both ways', async () => {
    expect(await admin.from('user_profiles').select('id, updatable_view(username, non_updatable_column)').eq('id', 1).single()).toEqual(
      ok({ id: 1, updatable_view: { username: 'supabot', non_updatable_column: 1 } }))
    expect(await admin.from('updatable_view').select('username, user_profiles(id)').eq('username', 'kiwicopple')).toEqual(
      ok([{ username: 'kiwicopple', user_profiles: [{ id: 2 }] }]))
  })

  test('a view joining tables takes on each table\'s foreign keys under its own column names, and so does a view over it', async () => {
    const setup = new Client({ connectionString: urlOf(database) })
    await setup.connect()
    await setup.query(`create view feed as select m.id, m.message, m.channel_id as chan, u.username as author
      from messages m join users u on u.username = m.username`)
    await setup.query('create view feed_again as select id, chan from feed')
    DatabasePool.reloadSchema()
    try {
      // feed.chan is messages.channel_id: feed relates to channels, both ways.
      expect(await admin.from('feed').select('id, author, channels(slug)').order('id')).toEqual(
        ok([{ id: 1, author: 'supabot', channels: { slug: 'public' } }, { id: 2, author: 'supabot', channels: { slug: 'random' } }]))
      expect(await admin.from('channels').select('slug, feed(id)').order('id')).toEqual(
        ok([{ slug: 'public', feed: [{ id: 1 }] }, { slug: 'random', feed: [{ id: 2 }] }]))
      expect(await admin.from('feed_again').select('id, channels!inner(slug)').eq('channels.slug', 'random')).toEqual(
        ok([{ id: 2, channels: { slug: 'random' } }]))
      // feed.author is users.username, which messages.username references.
      expect(await admin.from('messages').select('id, feed(author)').eq('id', 1)).toEqual(ok([{ id: 1, feed: { author: 'supabot' } }]))
    } finally {
      await setup.query('drop view feed_again, feed')
      await setup.end()
      DatabasePool.reloadSchema()
    }
  })

  test('a spread of every column; an ambiguous embedding lists the candidates as PostgREST does', async () => {
    expect(await admin.from('messages').select('id, ...channels(*)').eq('id', 1)).toEqual(
      ok([{ id: 1, slug: 'public', data: null }]))
    const ambiguous = await admin.from('best_friends').select('users(*)')
    expect(ambiguous.statusText).toBe('Multiple Choices')
    expect(ambiguous.error).toMatchObject({
      code: 'PGRST201',
      message: "Could not embed because more than one relationship was found for 'best_friends' and 'users'",
    })
    expect(ambiguous.error!.details).toContainEqual({
      cardinality: 'many-to-one',
      embedding: 'best_friends with users',
      relationship: 'best_friends_first_user_fkey using best_friends(first_user) and users(username)',
    })
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

  // PostgREST qualifies every column by its relation (the request's table by name, an embedded
  // resource as `<table>_<depth>`), so Postgres's own message names where the column was sought.
  const missingColumn = (message: string) =>
    ({ data: null, count: null, status: 400, statusText: 'Bad Request', error: { code: '42703', details: null, hint: null, message } })

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

  test('one name embedded twice is refused, as PostgREST refuses it (42712); aliases tell them apart', async () => {
    expect(await admin.from('best_friends').select('users!first_user(*), users!second_user(*)').limit(1).single()).toEqual({
      success: false,
      data: null,
      count: null,
      status: 400,
      statusText: 'Bad Request',
      error: { code: '42712', details: null, hint: null, message: 'table name "best_friends_users_1" specified more than once' },
    })
    expect(await admin.from('best_friends').select('first:users!first_user(username), second:users!second_user(username)').order('id').limit(1)).toEqual(
      ok([{ first: { username: 'supabot' }, second: { username: 'kiwicopple' } }]))
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

describe('rpc', () => {
  test('a scalar, a table, a row, a set of rows', async () => {
    expect(await admin.rpc('get_status', { name_param: 'supabot' })).toEqual(ok('ONLINE'))
    expect(await admin.rpc('get_username_and_status', { name_param: 'supabot' })).toEqual(
      ok([{ username: 'supabot', status: 'ONLINE' }]))
    expect(await admin.rpc('function_returning_row')).toMatchObject(ok({ username: 'supabot', status: 'ONLINE' }))
    expect((await admin.rpc('function_returning_set_of_rows')).data).toHaveLength(4)
  })

  test('a function with OUT parameters or RETURNS TABLE answers by their names, as PostgREST does', async () => {
    await admin.query('create function one_out(num int, out num_plus_one int) language sql as $$ select num + 1 $$')
    await admin.query('create function one_inout(inout num int) language sql as $$ select num + 1 $$')
    await admin.query('create function one_column_table() returns table (a text) language sql as $$ select \'A\' $$')
    try {
      expect(await admin.rpc('one_out', { num: 5 })).toEqual(ok({ num_plus_one: 6 }))
      expect(await admin.rpc('one_inout', { num: 2 })).toEqual(ok({ num: 3 }))
      expect(await admin.rpc('one_column_table')).toEqual(ok([{ a: 'A' }]))
    } finally {
      await admin.query('drop function one_out, one_inout, one_column_table')
    }
  })

  test('of overloads, the one the argument names fit answers in its own shape', async () => {
    await admin.query('create function overloaded() returns setof int language sql as $$ values (1), (2), (3) $$')
    await admin.query('create function overloaded(a int, b int) returns int language sql as $$ select a + b $$')
    await admin.query('create function overloaded(a text, b text, c text) returns text language sql as $$ select a || b || c $$')
    await admin.query('create function overloaded_default(opt_param text default \'x\') returns setof users language sql as $$ select * from users where username = opt_param $$')
    await admin.query('create function overloaded_default(must_param int) returns jsonb language sql as $$ select jsonb_build_object(\'x\', must_param) $$')
    try {
      expect(await admin.rpc('overloaded')).toEqual(ok([1, 2, 3]))
      expect(await admin.rpc('overloaded', { a: 1, b: 2 })).toEqual(ok(3))
      expect(await admin.rpc('overloaded', { a: '1', b: '2', c: '3' })).toEqual(ok('123'))
      expect(await admin.rpc('overloaded_default')).toEqual(ok([]))
      expect(await admin.rpc('overloaded_default', { opt_param: 'supabot' }).select('username')).toEqual(ok([{ username: 'supabot' }]))
      expect(await admin.rpc('overloaded_default', { must_param: 7 })).toEqual(ok({ x: 7 }))
    } finally {
      await admin.query('drop function overloaded(), overloaded(int, int), overloaded(text, text, text), overloaded_default(text), overloaded_default(int)')
    }
  })

  test('a function chooses the status with response.status, as PostgREST documents it', async () => {
    await admin.query(`create function send_403() returns json language plpgsql as $$
      begin perform set_config('response.status', '403', true); return json_build_object('message', 'invalid user or password'); end $$`)
    await admin.query(`create function send_bad_status() returns json language plpgsql as $$
      begin perform set_config('response.status', 'bad', true); return null; end $$`)
    try {
      expect(await admin.rpc('send_403')).toMatchObject({ status: 403, data: null, error: { message: 'invalid user or password' } })
      expect(await admin.rpc('send_bad_status')).toMatchObject({ status: 500,
        error: { code: 'PGRST112', message: 'response.status guc must be a valid status code' } })
      // The next request on the same connections answers its own status.
      expect(await admin.rpc('get_status', { name_param: 'supabot' })).toEqual(ok('ONLINE'))
    } finally {
      await admin.query('drop function send_403, send_bad_status')
    }
  })

  test('a function called by GET (get or head) runs read-only, as PostgREST runs every read: one that writes is 405', async () => {
    const refused = await admin.rpc('set_users_offline', { name_param: 'supabot' }, { get: true })
    expect(refused).toMatchObject({ data: null, status: 405, error: { code: '25006' } })
    expect((await admin.rpc('set_users_offline', { name_param: 'supabot' }, { head: true })).status).toBe(405)
    expect((await admin.from('users').select('status').eq('username', 'supabot')).data).toEqual([{ status: 'ONLINE' }])
    // By POST it writes (undone here), and a read by GET still answers.
    expect(await admin.rpc('set_users_offline', { name_param: 'supabot' }).select('username, status').rollback()).toMatchObject(
      { status: 200, data: [{ username: 'supabot', status: 'OFFLINE' }] })
    expect(await admin.rpc('get_status', { name_param: 'supabot' }, { get: true })).toEqual(ok('ONLINE'))
  })

  test('a function returning a table\'s rows embeds its resources, as a select of that table does', async () => {
    expect(await admin.rpc('function_returning_set_of_rows').select('username, messages(id)').eq('username', 'supabot')).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 1 }, { id: 2 }] }]))
    expect(await admin.rpc('function_returning_set_of_rows').select('username, messages!inner(id)').eq('messages.id', 2)).toEqual(
      ok([{ username: 'supabot', messages: [{ id: 2 }] }]))
    expect(await admin.rpc('function_returning_set_of_rows').select('username, messages()').not('messages', 'is', null)).toEqual(
      ok([{ username: 'supabot' }]))
    expect(await admin.rpc('function_returning_row').select('username, messages(count)')).toEqual(
      ok({ username: 'supabot', messages: [{ count: 2 }] }))
    // A function of scalars has no resources to embed.
    expect(await admin.rpc('get_username_and_status', { name_param: 'supabot' }).select('username, messages(id)')).toMatchObject(
      { data: null, status: 400, error: { code: 'PGRST200', message: 'Could not find a relationship between \'get_username_and_status\' and \'messages\' in the schema cache' } })
    expect(await admin.rpc('function_with_optional_param')).toEqual(ok(''))
  })

  test('a void function answers 204 without data', async () => {
    expect(await admin.rpc('void_func')).toEqual({ success: true, data: null, error: null, count: null, status: 204, statusText: 'No Content' })
  })

  test('filters and transforms over a function\'s rows; head and get', async () => {
    expect(await admin.rpc('get_username_and_status', { name_param: 'supabot' }).eq('status', 'OFFLINE')).toEqual(ok([]))
    expect(await admin.rpc('get_username_and_status', { name_param: 'supabot' }).select('status').single()).toEqual(ok({ status: 'ONLINE' }))
    const head = await admin.rpc('get_username_and_status', { name_param: 'supabot' }, { head: true, count: 'exact' })
    expect(head).toMatchObject({ data: null, error: null, count: 1 })
    expect(await admin.rpc('get_status', { name_param: 'kiwicopple' }, { get: true })).toEqual(ok('OFFLINE'))
  })

  test('an unknown function, or arguments no overload takes, is PGRST202 (404) as PostgREST words it', async () => {
    const missing = await admin.rpc('no_such_function')
    expect(missing).toMatchObject({ status: 404, data: null, error: { code: 'PGRST202', hint: null,
      message: 'Could not find the function public.no_such_function without parameters in the schema cache',
      details: 'Searched for the function public.no_such_function without parameters, but no matches were found in the schema cache.' } })
    expect(await admin.rpc('get_status', { nam: 'supabot' })).toMatchObject({ status: 404, error: { code: 'PGRST202',
      message: 'Could not find the function public.get_status(nam) in the schema cache',
      details: 'Searched for the function public.get_status with parameter nam, but no matches were found in the schema cache.',
      hint: 'Perhaps you meant to call the function public.get_status(name_param)' } })
    expect((await admin.rpc('get_status', { name_param: 'supabot', extra: 1 })).error).toMatchObject({ code: 'PGRST202',
      message: 'Could not find the function public.get_status(extra, name_param) in the schema cache' })
  })
})

describe('computed relationships (PostgREST\'s ComputedRelsSpec, on its fixture\'s tables)', () => {
  beforeAll(async () => {
    await setUp(`
      create table designers (id int primary key, name text);
      create table videogames (id int primary key, name text, designer_id int references designers(id));
      insert into designers values (1, 'Sid Meier'), (2, 'Hironobu Sakaguchi');
      insert into videogames values (1, 'Civilization I', 1), (2, 'Civilization II', 1), (3, 'Final Fantasy I', 2), (4, 'Final Fantasy II', 2);
      create function computed_designers(videogames) returns setof designers language sql stable rows 1
        as $$ select * from designers where id = $1.designer_id $$;
      create function computed_designers_noset(videogames) returns designers language sql stable
        as $$ select * from designers where id = $1.designer_id $$;
      create function computed_videogames(designers) returns setof videogames language sql stable
        as $$ select * from videogames where designer_id = $1.id $$;
      create function getallvideogames() returns setof videogames language sql stable as $$ select * from videogames $$;
      create function getalldesigners() returns setof designers language sql stable as $$ select * from designers $$;
      -- Named as the tables: they override the foreign key's relationships, and find nothing.
      create function designers(videogames) returns setof designers language sql stable rows 1
        as $$ select * from designers where false $$;
      create function videogames(designers) returns setof videogames language sql stable
        as $$ select * from videogames where false $$;`)
    DatabasePool.reloadSchema()
  })

  afterAll(async () => {
    await setUp('drop table videogames, designers cascade')
    DatabasePool.reloadSchema()
  })

  const byDesigner = [
    { name: 'Civilization I', designer: { name: 'Sid Meier' } },
    { name: 'Civilization II', designer: { name: 'Sid Meier' } },
    { name: 'Final Fantasy I', designer: { name: 'Hironobu Sakaguchi' } },
    { name: 'Final Fantasy II', designer: { name: 'Hironobu Sakaguchi' } },
  ]
  const byGame = [
    { name: 'Sid Meier', videogames: [{ name: 'Civilization I' }, { name: 'Civilization II' }] },
    { name: 'Hironobu Sakaguchi', videogames: [{ name: 'Final Fantasy I' }, { name: 'Final Fantasy II' }] },
  ]

  test('SETOF with ROWS 1, or no SETOF, is to-one (an object); SETOF is to-many (a list)', async () => {
    expect(await admin.from('videogames').select('name, designer:computed_designers(name)').order('id')).toEqual(ok(byDesigner))
    expect(await admin.from('videogames').select('name, designer:computed_designers_noset(name)').order('id')).toEqual(ok(byDesigner))
    expect(await admin.from('designers').select('name, videogames:computed_videogames(name)').order('id')).toEqual(ok(byGame))
  })

  test('!inner with an embedded filter narrows the rows and the exact count', async () => {
    const games = await admin.from('designers').select('name, videogames:computed_videogames!inner(name)', { count: 'exact' })
      .eq('videogames.name', 'Civilization I')
    expect(games).toMatchObject({ status: 200, count: 1, data: [{ name: 'Sid Meier', videogames: [{ name: 'Civilization I' }] }] })
    for (const fn of ['computed_designers', 'computed_designers_noset']) {
      const designed = await admin.from('videogames').select(`name, designer:${fn}!inner(name)`, { count: 'exact' })
        .like('designer.name', '*Hironobu*').order('id')
      expect(designed).toMatchObject({ status: 200, count: 2, data: byDesigner.slice(2) })
    }
  })

  test('over an rpc\'s rows, and over a mutation\'s', async () => {
    expect(await admin.rpc('getallvideogames').select('name, designer:computed_designers(name)').order('id')).toEqual(ok(byDesigner))
    expect(await admin.rpc('getalldesigners').select('name, videogames:computed_videogames(name)').order('id')).toEqual(ok(byGame))
    expect(await admin.from('videogames').insert({ id: 5, name: 'Chrono Trigger', designer_id: 2 }).select('name, designer:computed_designers(name)').rollback())
      .toMatchObject({ status: 201, data: [{ name: 'Chrono Trigger', designer: { name: 'Hironobu Sakaguchi' } }] })
    expect(await admin.from('designers').update({ name: 'Sidney K. Meier' }).eq('id', 1).select('name, videogames:computed_videogames(name)').rollback())
      .toMatchObject({ status: 200, data: [{ name: 'Sidney K. Meier', videogames: [{ name: 'Civilization I' }, { name: 'Civilization II' }] }] })
    expect(await admin.from('videogames').delete().eq('id', 3).select('name, designer:computed_designers(name)').rollback())
      .toMatchObject({ status: 200, data: [{ name: 'Final Fantasy I', designer: { name: 'Hironobu Sakaguchi' } }] })
  })

  test('a function named as a table overrides the foreign key\'s relationship', async () => {
    expect(await admin.from('videogames').select('*, designers!inner(*)')).toEqual(ok([]))
    expect(await admin.from('designers').select('*, videogames!inner(*)')).toEqual(ok([]))
  })

  test('ordered by a to-one one; a to-many one is PGRST118; spread; tested for null', async () => {
    expect(await admin.from('videogames').select('id, computed_designers(id)').order('computed_designers(id)', { ascending: false }).order('id')).toEqual(
      ok([{ id: 3, computed_designers: { id: 2 } }, { id: 4, computed_designers: { id: 2 } }, { id: 1, computed_designers: { id: 1 } }, { id: 2, computed_designers: { id: 1 } }]))
    expect(await admin.from('designers').select('id, computed_videogames(id)').order('computed_videogames(id)', { ascending: false })).toMatchObject({
      status: 400,
      error: { code: 'PGRST118', message: 'A related order on \'computed_videogames\' is not possible',
        details: '\'designers\' and \'computed_videogames\' do not form a many-to-one or one-to-one relationship' },
    })
    expect(await admin.from('videogames').select('name, ...computed_designers(designer_name:name)').order('id')).toEqual(
      ok(byDesigner.map(({ name, designer }) => ({ name, designer_name: designer.name }))))
    await admin.query('insert into videogames values (6, \'Tetris\', null)')
    try {
      expect(await admin.from('videogames').select('name, computed_designers()').is('computed_designers', null)).toEqual(ok([{ name: 'Tetris' }]))
      expect((await admin.from('videogames').select('id, computed_designers()').not('computed_designers', 'is', null)).data).toHaveLength(4)
    } finally {
      await admin.query('delete from videogames where id = 6')
    }
  })
})

describe('to-many spreads (PostgREST 13\'s SpreadQueriesSpec, on its fixture\'s tables)', () => {
  beforeAll(async () => {
    await setUp(`
      create table factories (id int primary key, name text);
      create table process_categories (id int primary key, name text);
      create table processes (id int primary key, name text, factory_id int references factories(id), category_id int references process_categories(id));
      create table process_costs (process_id int references processes(id) primary key, cost numeric);
      create table supervisors (id int primary key, name text);
      create table process_supervisor (process_id int references processes(id), supervisor_id int references supervisors(id), primary key (process_id, supervisor_id));
      insert into factories values (1, 'Factory A'), (2, 'Factory B'), (3, 'Factory C'), (4, 'Factory D');
      insert into process_categories values (1, 'Batch'), (2, 'Mass');
      insert into processes values (1, 'Process A1', 1, 1), (2, 'Process A2', 1, 2), (3, 'Process B1', 2, 1), (4, 'Process B2', 2, 1),
        (5, 'Process C1', 3, 2), (6, 'Process C2', 3, 2), (7, 'Process XX', 3, 2), (8, 'Process YY', 3, 2);
      insert into process_costs values (1, 150.00), (2, 200.00), (3, 180.00), (4, 70.00), (5, 40.00), (6, 70.00), (8, 40.00);
      insert into supervisors values (1, 'Mary'), (2, 'John'), (3, 'Peter'), (4, 'Sarah'), (5, 'Jane');
      insert into process_supervisor values (1, 1), (2, 2), (3, 3), (3, 4), (4, 1), (4, 2), (5, 3), (6, 3);`)
    DatabasePool.reloadSchema()
  })

  afterAll(async () => {
    await setUp('drop table process_supervisor, supervisors, process_costs, processes, process_categories, factories')
    DatabasePool.reloadSchema()
  })

  const factories = () => admin.from('factories')
  const byName = { referencedTable: 'processes' }
  const processNames = [['Process A1', 'Process A2'], ['Process B1', 'Process B2'], ['Process C1', 'Process C2', 'Process XX', 'Process YY'], []]
  const names = ['Factory A', 'Factory B', 'Factory C', 'Factory D']

  test('each column, alias or * becomes the array of its values over the related rows', async () => {
    expect(await factories().select('factory:name, ...processes(processes:name, categories:category_id)').order('name').order('name', byName)).toEqual(
      ok(names.map((factory, i) => ({ factory, processes: processNames[i], categories: [[1, 2], [1, 1], [2, 2, 2, 2], []][i] }))))
    expect(await factories().select('factory:name, ...processes(*)').order('name').order('id', byName)).toEqual(ok([
      { factory: 'Factory A', id: [1, 2], name: ['Process A1', 'Process A2'], factory_id: [1, 1], category_id: [1, 2] },
      { factory: 'Factory B', id: [3, 4], name: ['Process B1', 'Process B2'], factory_id: [2, 2], category_id: [1, 1] },
      { factory: 'Factory C', id: [5, 6, 7, 8], name: ['Process C1', 'Process C2', 'Process XX', 'Process YY'], factory_id: [3, 3, 3, 3], category_id: [2, 2, 2, 2] },
      { factory: 'Factory D', id: [], name: [], factory_id: [], category_id: [] },
    ]))
  })

  test('resources spread or embedded in it: values, arrays of arrays, objects', async () => {
    expect(await factories().select('factory:name, ...processes(process:name, ...process_costs(process_costs:cost))').order('name').order('name', byName)).toEqual(
      ok(names.map((factory, i) => ({ factory, process: processNames[i], process_costs: [[150, 200], [180, 70], [40, 70, null, 40], []][i] }))))
    expect(await factories().select('factory:name, ...processes(process:name, ...supervisors(supervisors:name))').order('name').order('name', byName)
      .order('name', { referencedTable: 'processes.supervisors' })).toEqual(
      ok(names.map((factory, i) => ({ factory, process: processNames[i], supervisors: [[['Mary'], ['John']], [['Peter', 'Sarah'], ['John', 'Mary']], [['Peter'], ['Peter'], [], []], []][i] }))))
    expect(await factories().select('factory:name, ...processes(process:name, process_categories(name))').order('name').order('name', byName)).toEqual(
      ok(names.map((factory, i) => ({ factory, process: processNames[i],
        process_categories: [['Batch', 'Mass'], ['Batch', 'Batch'], ['Mass', 'Mass', 'Mass', 'Mass'], []][i].map((name) => ({ name })) }))))
    expect(await factories().select('factory:name, ...processes(*, ...process_costs(*))').eq('id', 3).order('name', byName)).toEqual(ok([
      { factory: 'Factory C', id: [5, 6, 7, 8], name: ['Process C1', 'Process C2', 'Process XX', 'Process YY'], factory_id: [3, 3, 3, 3],
        category_id: [2, 2, 2, 2], process_id: [5, 6, null, 8], cost: [40, 70, null, 40] }]))
  })

  test('its filters, !inner, null tests and order (also by a resource spread in it) shape every array alike', async () => {
    expect(await factories().select('factory:name, ...processes(name)').not('processes.name', 'like', '*1').order('name').order('name', byName)).toEqual(
      ok(names.map((factory, i) => ({ factory, name: [['Process A2'], ['Process B2'], ['Process C2', 'Process XX', 'Process YY'], []][i] }))))
    const three = names.slice(0, 3).map((factory, i) => ({ factory, name: processNames[i] }))
    expect(await factories().select('factory:name, ...processes!inner(name)').order('name').order('name', byName)).toEqual(ok(three))
    expect(await factories().select('factory:name, ...processes(name)').not('processes', 'is', null).order('name').order('name', byName)).toEqual(ok(three))
    expect(await factories().select('factory:name, ...processes(processes:name)').is('processes', null)).toEqual(ok([{ factory: 'Factory D', processes: [] }]))
    expect(await factories().select('factory:name, ...processes(name)').order('name').order('category_id', byName).order('name', { ...byName, ascending: false })).toEqual(
      ok(names.map((factory, i) => ({ factory, name: [['Process A1', 'Process A2'], ['Process B2', 'Process B1'], ['Process YY', 'Process XX', 'Process C2', 'Process C1'], []][i] }))))
    expect(await factories().select('factory:name, ...processes(name, ...process_costs(cost))').order('name').order('process_costs(cost)', byName).order('name', byName)).toEqual(
      ok(names.map((factory, i) => ({ factory,
        name: [['Process A1', 'Process A2'], ['Process B2', 'Process B1'], ['Process C1', 'Process YY', 'Process C2', 'Process XX'], []][i],
        cost: [[150, 200], [70, 180], [40, 40, 70, null], []][i] }))))
  })
})

describe('finding a relationship as PostgREST\'s findRel does', () => {
  beforeAll(async () => {
    await setUp(`
      create table big_projects (big_project_id int primary key, name text);
      create table sites (site_id int primary key, name text, main_project_id int references big_projects);
      -- A junction: both keys within its primary key.
      create table jobs (site_id int references sites, big_project_id int references big_projects, primary key (site_id, big_project_id));
      -- Not a junction: its keys are not part of its primary key.
      create table site_notes (id int primary key, site_id int references sites, big_project_id int references big_projects);
      create view sites_view as select * from sites;
      insert into big_projects values (1, 'bridge'), (2, 'tunnel');
      insert into sites values (1, 'north', 1), (2, 'south', null);
      insert into jobs values (1, 2), (2, 1), (2, 2);`)
    DatabasePool.reloadSchema()
  })

  afterAll(async () => {
    await setUp('drop view sites_view; drop table site_notes, jobs, sites, big_projects')
    DatabasePool.reloadSchema()
  })

  test('a many-to-one and a many-to-many to the same table are ambiguous; a table whose keys are outside its primary key is no junction', async () => {
    const ambiguous = await admin.from('sites').select('*, big_projects(*)')
    expect(ambiguous).toMatchObject({ status: 300, error: { code: 'PGRST201' } })
    expect(ambiguous.error!.details as unknown).toEqual([
      { cardinality: 'many-to-one', embedding: 'sites with big_projects', relationship: 'sites_main_project_id_fkey using sites(main_project_id) and big_projects(big_project_id)' },
      { cardinality: 'many-to-many', embedding: 'sites with big_projects', relationship: 'jobs using jobs_site_id_fkey(site_id) and jobs_big_project_id_fkey(big_project_id)' },
    ])
    expect(ambiguous.error!.hint).toBe('Try changing \'big_projects\' to one of the following: \'big_projects!sites_main_project_id_fkey\', \'big_projects!jobs\'. Find the desired relationship in the \'details\' key.')
  })

  test('a hint picks one: the junction, a column; a hint that names nothing says so', async () => {
    expect(await admin.from('sites').select('name, big_projects!jobs(name)').order('site_id').order('name', { referencedTable: 'big_projects' })).toEqual(
      ok([{ name: 'north', big_projects: [{ name: 'tunnel' }] }, { name: 'south', big_projects: [{ name: 'bridge' }, { name: 'tunnel' }] }]))
    expect(await admin.from('sites').select('name, big_projects!main_project_id(name)').order('site_id')).toEqual(
      ok([{ name: 'north', big_projects: { name: 'bridge' } }, { name: 'south', big_projects: null }]))
    expect(await admin.from('sites').select('name, big_projects!nope(name)')).toMatchObject({ status: 400, error: { code: 'PGRST200',
      details: 'Searched for a foreign key relationship between \'sites\' and \'big_projects\' using the hint \'nope\' in the schema \'public\', but no matches were found.' } })
  })

  test('a view embeds a table by its foreign key column\'s name', async () => {
    expect(await admin.from('sites_view').select('name, main_project_id(name)').order('site_id')).toEqual(
      ok([{ name: 'north', main_project_id: { name: 'bridge' } }, { name: 'south', main_project_id: null }]))
  })
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
