// Conformance with PostgREST as postgrest-js's own test suite records it (filters): the fixture of
// supabase/postgrest-js (test/db/, without the postgis parts) in a database of its own, the
// builder calls of its tests, and the answers PostgREST gave them (adapted to the fixture's own
// rows where the suite had added more), or PostgREST's documentation where the suite is silent.
import type { DatabaseClient } from '..'
import { conformanceDatabase, ok } from './conformance/setup'

const db = conformanceDatabase()
let admin: DatabaseClient
beforeAll(() => {
  admin = db.admin()
})

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
