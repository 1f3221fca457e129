// The type mapping documented in README, checked value by value against a real server,
// in both directions, including the values that lose precision in naive drivers.
import { DatabasePool } from '..'
import { taggedUrl, uniqueName } from './helpers'
import { parameterCases, resultCases } from './type-cases'

const app = uniqueName('cp_types')

beforeAll(() => {
  DatabasePool.initialize({ connectionString: taggedUrl(app), minConnections: 0, maxConnections: 4 })
})
afterAll(() => DatabasePool.close())

async function one(sql: string, params: unknown[] = []): Promise<any> {
  const { rows } = await DatabasePool.getAdminClient().query(sql, params as any[])
  return rows[0].v
}

describe('results', () => {
  test.each(resultCases)('%s', async (expr, expected) => {
    expect(await one(`select ${expr} as v`)).toEqual(expected)
  })

  // Past a few rows a raw reply is packed (numbers in a Float64Array, strings sliced from one
  // text): every value, and a NULL among them, must come out as in a one-row reply.
  test.each(resultCases)('%s, in a reply of 20 rows (packed) with a NULL among them', async (expr, expected) => {
    const { rows } = await DatabasePool.getAdminClient().query(
      `select case when g = 5 then null else ${expr} end as v, g from generate_series(1, 20) g`,
    )
    expect(rows).toEqual(Array.from({ length: 20 }, (_, i) => ({ v: i === 4 ? null : expected, g: i + 1 })))
  })

  test('timestamps, dates and json render exactly as Postgres to_json does', async () => {
    for (const expr of [
      `'2024-01-31 12:00:00.5+00'::timestamptz`,
      `'2024-01-31 12:00:00'::timestamp`,
      `'2024-01-31'::date`,
      `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid`,
      `'{"k": [1, 2.5, "x"]}'::jsonb`,
      `42::int4`,
      `0.25::float8`,
      `true`,
      `'q"uote'::text`,
    ]) {
      // to_json prints timestamptz in the session time zone; ours is always UTC, so compare
      // with the UTC wall time plus the offset Postgres would print for a UTC session.
      const tz = expr.endsWith('timestamptz')
      const { rows } = await DatabasePool.getAdminClient().query(
        `select ${expr} as v, to_json(${tz ? `(${expr}) at time zone 'UTC'` : expr})::text as json`,
      )
      if (tz) rows[0].json = rows[0].json.replace(/"$/, '+00:00"')
      expect(JSON.stringify(rows[0].v)).toBe(JSON.stringify(JSON.parse(rows[0].json)))
    }
  })

  test.each([1, 20])('column names of any shape become own properties; the last duplicate wins (%i rows)', async (count) => {
    const { rows } = await DatabasePool.getAdminClient().query(
      `select 1 as "__proto__", 2 as "a""b", 3 as "ü n", 4 as "x", 5 as "x", 6 as "constructor" from generate_series(1, $1::int)`,
      [count],
    )
    expect(rows).toHaveLength(count)
    const row = rows[count - 1]
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(row, '__proto__')?.value).toBe(1)
    expect(row['a"b']).toBe(2)
    expect(row['ü n']).toBe(3)
    expect(row.x).toBe(5)
    expect(row.constructor).toBe(6)
  })

  test('an empty result has no rows and counts zero', async () => {
    await expect(DatabasePool.getAdminClient().query('select 1 as a where false')).resolves.toEqual({ rows: [], rowCount: 0 })
  })

  test('enums travel as their labels and domains as their base type, both ways', async () => {
    const mood = uniqueName('mood')
    const positive = uniqueName('positive')
    const client = DatabasePool.getAdminClient()
    await client.query(`create type ${mood} as enum ('sad', 'happy')`)
    await client.query(`create domain ${positive} as int check (value > 0)`)
    try {
      expect(await one(`select $1::${mood} as v`, ['happy'])).toBe('happy')
      expect(await one(`select array['sad','happy']::${mood}[] as v`)).toEqual(['sad', 'happy'])
      expect(await one(`select $1::${positive} as v`, [5])).toBe(5)
      const err = await client.query(`select $1::${mood} as v`, ['angry']).catch((e) => e)
      expect(err.code).toBe('22P02')
    } finally {
      await client.query(`drop type ${mood}`)
      await client.query(`drop domain ${positive}`)
    }
  })

  test('an unsupported result type is refused before the statement runs, with a hint', async () => {
    const table = uniqueName('types_points')
    const client = DatabasePool.getAdminClient()
    await client.query(`create table ${table} (p point)`)
    try {
      const err = await client.query(`insert into ${table} values ('(1,2)') returning p`).catch((e) => e)
      expect(err.code).toBe('UNSUPPORTED_TYPE')
      expect(err.message).toContain('p::text')
      const { rows } = await client.query(`select count(*)::int as n from ${table}`)
      expect(rows[0].n).toBe(0)
      const cast = await client.query(`select '(1,2)'::point::text as p`)
      expect(cast.rows[0].p).toBe('(1,2)')
    } finally {
      await client.query(`drop table ${table}`)
    }
  })
})

describe('parameters', () => {
  test.each(parameterCases)('%s ← %p', async (sql, param, expected) => {
    expect(await one(`select ${sql} as v`, [param])).toEqual(expected)
  })

  test('a parameter of a type without a binary encoder goes as text, which the server reads as a literal', async () => {
    expect(await one('select ($1::point)::text as v', ['(1,2)'])).toBe('(1,2)')
    expect(await one('select ($1::inet)::text as v', ['10.0.0.1/8'])).toBe('10.0.0.1/8')
    expect(await one('select ($1::int4range)::text as v', ['[1,5)'])).toBe('[1,5)')
    expect(await one('select ($1::interval)::text as v', [90])).toBe('00:01:30')
    // Text the server cannot read is its error, with its own SQLSTATE.
    const err = await one('select ($1::point)::text as v', ['nowhere']).catch((e) => e)
    expect(err).toMatchObject({ code: '22P02' })
    expect(err.message).toMatch(/invalid input syntax for type point/)
    // Bytes only go where bytea is expected.
    expect((await one('select ($1::point)::text as v', [Buffer.from([1])]).catch((e) => e)).code).toBe('UNSUPPORTED_TYPE')
  })

  test('values are bound, never spliced into the SQL', async () => {
    const hostile = `'); drop table pg_class; --`
    expect(await one('select $1::text as v', [hostile])).toBe(hostile)
  })

  test('values that do not fit their type get the SQLSTATE Postgres would give', async () => {
    const client = DatabasePool.getAdminClient()
    const codes = await Promise.all(
      [
        ['select $1::int2 as v', [70000]],
        ['select $1::int4 as v', [1.5]],
        ['select $1::uuid as v', ['not-a-uuid']],
        ['select $1::int4 as v', [true]],
        ['select $1::int4[] as v', [[[1], [2, 3]]]],
        ['select $1::int4 as v, $2::int4 as w', [1]],
      ].map(([sql, params]) => client.query(sql as string, params as unknown[] as any[]).catch((e) => e.code)),
    )
    expect(codes).toEqual(['22003', '22P02', '22P02', '42804', '2202E', '08P01'])
  })
})
