// Conformance with PostgREST as postgrest-js's own test suite records it (embedding, spreads and relationships): the fixture of
// supabase/postgrest-js (test/db/, without the postgis parts) in a database of its own, the
// builder calls of its tests, and the answers PostgREST gave them (adapted to the fixture's own
// rows where the suite had added more), or PostgREST's documentation where the suite is silent.
import { Client } from 'pg'
import { DatabasePool } from '..'
import type { DatabaseClient } from '..'
import { conformanceDatabase, ok, urlOf } from './conformance/setup'

const db = conformanceDatabase()
const database = db.name
const setUp = db.setUp
let admin: DatabaseClient
beforeAll(() => {
  admin = db.admin()
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

describe('more embedding: null tests, spreads, views, relationships', () => {
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

  test('a resource with nothing selected below it only filters and stays out of the answer', async () => {
    expect(await admin.from('users').select('username, messages(channels())').eq('username', 'supabot')).toEqual(ok([{ username: 'supabot' }]))
    expect(await admin.from('users').select('username, messages!inner(channels!inner())').eq('messages.channels.slug', 'random'))
      .toEqual(ok([{ username: 'supabot' }]))
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
