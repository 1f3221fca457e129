// Conformance with PostgREST as postgrest-js's own test suite records it (rpc): the fixture of
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
