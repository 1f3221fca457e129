// Compiled by `tsc -p .` (part of `npm test`), never run: the builder's types are postgrest-js's,
// so a client given a generated `Database` types `data` as `createClient<Database>()` does, and a
// wrong column or table name is a compile error (each `@ts-expect-error` fails the build if the
// line below it ever compiles).
import { DatabasePool } from '../..'
import type { Database } from './database.types'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
function assertType<T extends true>(): T | void {}

export async function typedRows(): Promise<void> {
  const admin = DatabasePool.getAdminClient<Database>()

  // Selected columns.
  const { data: users } = await admin.from('users').select('username, status')
  assertType<Equal<typeof users, { username: string; status: 'ONLINE' | 'OFFLINE' | null }[] | null>>()

  // An alias and single().
  const { data: one } = await admin.from('channels').select('channel_id:id, slug').eq('id', 1).single()
  assertType<Equal<typeof one, { channel_id: number; slug: string | null } | null>>()

  // maybeSingle()
  const { data: maybe } = await admin.from('channels').select('id').maybeSingle()
  assertType<Equal<typeof maybe, { id: number } | null>>()

  // An embedded resource: many-to-one through the foreign key.
  const { data: messages } = await admin.from('messages').select('id, channels(slug)')
  assertType<Equal<typeof messages, { id: number; channels: { slug: string | null } }[] | null>>()

  // A one-to-many embedding.
  const { data: channels } = await admin.from('channels').select('id, messages(id, message)')
  assertType<Equal<typeof channels, { id: number; messages: { id: number; message: string | null }[] }[] | null>>()

  // An aggregate and a spread, typed as postgrest-js types them.
  const { data: counted } = await admin.from('users').select('status, count()')
  assertType<Equal<typeof counted, { status: 'ONLINE' | 'OFFLINE' | null; count: number }[] | null>>()
  const { data: spread } = await admin.from('messages').select('id, ...channels(slug)')
  assertType<Equal<typeof spread, { id: number; slug: string | null }[] | null>>()

  // rpc(): the function's return type.
  const { data: status } = await admin.rpc('get_status', { name_param: 'kiwicopple' })
  assertType<Equal<typeof status, 'ONLINE' | 'OFFLINE' | null>>()

  // Inserts are checked against the table's Insert type.
  await admin.from('channels').insert({ slug: 'x' })
  // @ts-expect-error `slugg` is not a column of channels
  await admin.from('channels').insert({ slugg: 'x' })

  // A wrong table name.
  // @ts-expect-error there is no table `userz`
  admin.from('userz')

  // A wrong column name in a filter.
  // @ts-expect-error `nmae` is not a column of users
  admin.from('users').select('username').eq('nmae', 'x')

  // A user client and a transaction are typed the same way.
  const user = DatabasePool.getUserClient<Database>()
  const { data: mine } = await user.from('messages').select('message')
  assertType<Equal<typeof mine, { message: string | null }[] | null>>()
  await admin.transaction(async (tx) => {
    const { data } = await tx.from('users').select('username').single()
    assertType<Equal<typeof data, { username: string } | null>>()
  })
}
