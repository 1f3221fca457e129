// Safe to put in front of users: input from a hostile caller or a careless backend gets a typed
// error and kills nothing (a crash shows here as a child process's signal), no caller's session
// state reaches another on a shared connection, and a user client keeps its identity.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { Client } from 'pg'
import { DatabasePool, ConnectionPoolError } from '..'
import { baseUrl, eventually, rejectionOf, signToken, taggedUrl, uniqueName } from './helpers'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { setTestFault } = require('../binding.js')

const packageRoot = path.resolve(__dirname, '..')
const secret = 'hardening-jwt-secret-with-32-characters-at-least'
const table = uniqueName('cp_hard')
const userToken = () =>
  signToken({ sub: '33333333-3333-3333-3333-333333333333', role: 'authenticated', exp: Math.floor(Date.now() / 1000) + 3600 }, secret)

/** Runs `script` in a fresh Node (the package as a backend requires it); its exit code, signal and output. */
function runChild(script: string, env: Record<string, string> = {}): Promise<{ code: number | null; signal: string | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], {
      cwd: packageRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('exit', (code, signal) => resolve({ code, signal, output }))
  })
}

/** The last line of a child's output that is a JSON object. */
function reportOf(output: string): any {
  const line = output.trim().split('\n').reverse().find((l) => l.startsWith('{'))
  if (line === undefined) throw new Error(`no report in: ${output.slice(-2000)}`)
  return JSON.parse(line)
}

let observer: Client

beforeAll(async () => {
  observer = new Client({ connectionString: baseUrl(), application_name: 'cp_test_observer' })
  await observer.connect()
  await observer.query(`create table ${table} (id int primary key, parent int references ${table}(id), note text)`)
  await observer.query(`grant select on ${table} to anon`)
  await observer.query(`insert into ${table} values (1, null, 'root'), (2, 1, 'child')`)
})

afterAll(async () => {
  await observer.query(`drop table ${table}`)
  await observer.end()
  setTestFault([])
  await DatabasePool.close()
})

describe('input nested without bound is refused, in linear time, and the process lives', () => {
  test('or(), select() embedding and spreads 5,000 and 100,000 deep from the anon client: 400, then the next request', async () => {
    const { code, signal, output } = await runChild(`
      const { DatabasePool, supabase } = require('.');
      const pick = ({ status, error, data }) => ({ status, code: error ? error.code : null, data });
      const deep = (open, n, inner) => open.repeat(n) + inner + ')'.repeat(n);
      (async () => {
        DatabasePool.initialize({ maxConnections: 2 });
        const t = process.env.CP_TABLE, report = {};
        for (const n of [5000, 100000]) {
          report['or' + n] = pick(await supabase.from(t).select('id').or(deep('or(', n, 'id.eq.1')));
          report['and' + n] = pick(await supabase.from(t).select('id').or(deep('and(', n, 'id.eq.1')));
          report['select' + n] = pick(await supabase.from(t).select(deep('a(', n, 'b')));
          report['spread' + n] = pick(await supabase.from(t).select('id,' + deep('...a(', n, 'b')));
          report['path' + n] = pick(await supabase.from(t).select('id').eq('note' + '->a'.repeat(n), 'x'));
          report['after' + n] = pick(await supabase.from(t).select('id').order('id'));
        }
        // As deep as the limit allows still answers.
        report.deepestEmbedding = pick(await supabase.from(t).select('id,' + deep('parent(', 31, 'id')).eq('id', 2));
        report.deepestOr = pick(await supabase.from(t).select('id').or(deep('or(', 31, 'id.eq.1')));
        console.log(JSON.stringify(report));
        await DatabasePool.close();
      })().catch((err) => { console.error(err); process.exit(3) });
    `, { CP_TABLE: table })
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    const report = reportOf(output)
    for (const n of [5000, 100000]) {
      for (const kind of ['or', 'and', 'select', 'spread', 'path']) {
        expect([kind + n, report[kind + n]]).toEqual([kind + n, { status: 400, code: 'PGRST100', data: null }])
      }
      expect(report['after' + n]).toEqual({ status: 200, code: null, data: [{ id: 1 }, { id: 2 }] })
    }
    expect(report.deepestEmbedding).toMatchObject({ status: 200, data: [{ id: 2, parent: { parent: null } }] })
    expect(report.deepestOr).toMatchObject({ status: 200, data: [{ id: 1 }] })
  })

  test('a cyclic array, one nested 20,000 deep and a sparse one of 4 billion slots as parameters: INVALID_ARGUMENT naming $n', async () => {
    const { code, signal, output } = await runChild(`
      const { DatabasePool, supabaseAdmin } = require('.');
      const outcome = (p) => p.then((r) => ({ rows: r.rows }), (e) => ({ name: e.name, code: e.code, message: e.message }));
      (async () => {
        DatabasePool.initialize({ maxConnections: 2 });
        const report = {};
        const cyclic = [1]; cyclic.push(cyclic);
        report.cyclic = await outcome(supabaseAdmin.query('select $1::jsonb as v', [cyclic]));
        let deep = [1]; for (let i = 0; i < 20000; i++) deep = [deep];
        report.deep = await outcome(supabaseAdmin.query('select $1::int, $2::jsonb as v', [1, deep]));
        const sparse = []; sparse.length = 2 ** 32 - 1;
        report.sparse = await outcome(supabaseAdmin.query('select $1::int[] as v', [sparse]));
        const cyclicObject = { a: 1 }; cyclicObject.self = cyclicObject;
        report.cyclicObject = await outcome(supabaseAdmin.query('select $1::jsonb as v', [cyclicObject]));
        report.symbol = await outcome(supabaseAdmin.query('select $1::text as v', [Symbol('s')]));
        report.throwingToJSON = await outcome(supabaseAdmin.query('select $1::jsonb as v', [{ toJSON() { throw new Error('nope') } }]));
        report.edgeDate = await outcome(supabaseAdmin.query('select $1::timestamptz::text as v', [new Date(8.64e15)]));
        report.after = await outcome(supabaseAdmin.query('select 41 + 1 as v'));
        report.stats = DatabasePool.getStats();
        console.log(JSON.stringify(report));
        await DatabasePool.close();
      })().catch((err) => { console.error(err); process.exit(3) });
    `)
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    const report = reportOf(output)
    expect(report.cyclic).toEqual({ name: 'ConnectionPoolError', code: 'INVALID_ARGUMENT', message: 'query parameter $1: the array contains itself (a cycle)' })
    expect(report.deep).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^query parameter \$2: arrays nested deeper than 32 levels/) })
    expect(report.sparse).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('more than 10000000 elements') })
    expect(report.cyclicObject).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^query parameter \$1: JSON.stringify failed: TypeError: Converting circular structure/) })
    expect(report.symbol).toMatchObject({ code: 'INVALID_ARGUMENT', message: 'query parameter $1: a Symbol cannot be a value' })
    expect(report.throwingToJSON).toMatchObject({ code: 'INVALID_ARGUMENT', message: 'query parameter $1: JSON.stringify failed: Error: nope' })
    // The largest JS Date is a valid timestamptz: Postgres itself reads it.
    expect(report.edgeDate).toEqual({ rows: [{ v: '275760-09-13 00:00:00+00' }] })
    expect(report.after).toEqual({ rows: [{ v: 42 }] })
    expect(report.stats).toMatchObject({ internalErrors: 0, failedQueries: 6 })
  })
})

describe('no caller state on a shared connection', () => {
  beforeEach(() => {
    DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_hard')), maxConnections: 1, jwtSecret: secret })
  })

  test("one caller's BEGIN and ROLLBACK between another's insert on the same connection: refused, and the insert survives", async () => {
    const admin = DatabasePool.getAdminClient()
    const [begun, inserted, rolledBack] = await Promise.allSettled([
      admin.query('begin'),
      admin.query(`insert into ${table} (id, note) values (10, 'survives')`),
      admin.query('rollback'),
    ])
    expect(begun).toMatchObject({ status: 'rejected', reason: { code: 'STATEMENT_REFUSED' } })
    expect((begun as PromiseRejectedResult).reason.message).toMatch(/BEGIN is refused outside transaction\(\).*client\.transaction/)
    expect(inserted).toMatchObject({ status: 'fulfilled', value: { rowCount: 1 } })
    expect(rolledBack).toMatchObject({ status: 'rejected', reason: { code: 'STATEMENT_REFUSED' } })
    const { rows } = await observer.query(`select note from ${table} where id = 10`)
    expect(rows).toEqual([{ note: 'survives' }])
  })

  test('50 callers pipelined on 2 connections, one of them sending BEGIN/ROLLBACK: every insert reported done is there', async () => {
    DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_hard')), maxConnections: 2, pipelineDepth: 32 })
    const admin = DatabasePool.getAdminClient()
    const calls: Promise<unknown>[] = []
    for (let i = 0; i < 49; i++) {
      if (i % 7 === 0) calls.push(admin.query(i % 14 === 0 ? 'BEGIN' : 'ROLLBACK').catch((e) => e))
      calls.push(admin.query(`insert into ${table} (id, note) values ($1, 'pipelined')`, [100 + i]))
    }
    const outcomes = await Promise.allSettled(calls)
    const refused = outcomes.filter((o) => o.status === 'fulfilled' && (o.value as any)?.code === 'STATEMENT_REFUSED')
    const done = outcomes.filter((o) => o.status === 'fulfilled' && (o.value as any)?.rowCount === 1)
    expect(refused).toHaveLength(7)
    expect(done).toHaveLength(49)
    const { rows } = await observer.query(`select count(*)::int as n from ${table} where note = 'pipelined'`)
    expect(rows[0].n).toBe(49)
  })

  test("a user client's SET ROLE, SET statement_timeout and set_config(…, false) never reach the admin client", async () => {
    const user = DatabasePool.getUserClient({ accessToken: userToken() })
    const attempts = [
      'set role anon',
      "set statement_timeout = '1ms'",
      'set search_path = pg_catalog',
      `select set_config('request.jwt.claims', '{"sub":"alice"}', false)`,
      "do $$ begin set role anon; end $$",
      "do $$ begin perform set_config('statement_timeout', '1ms', false); end $$",
      'reset role',
      'set session authorization postgres',
    ]
    for (const sql of attempts) {
      const err = await rejectionOf(user.query(sql))
      expect([sql, err.code]).toEqual([sql, 'STATEMENT_REFUSED'])
    }
    // The admin client on the same (only) connection: the login role, the defaults, no claims.
    const { rows } = await DatabasePool.getAdminClient().query(
      "select current_user = session_user as login, current_setting('statement_timeout') as timeout, current_setting('request.jwt.claims', true) as claims, current_setting('search_path') as path",
    )
    expect(rows[0]).toMatchObject({ login: true, timeout: '0' })
    expect(rows[0].claims ?? '').toBe('')
    expect(rows[0].path).not.toBe('pg_catalog')
  })

  test('the admin client may not change the session either; SET LOCAL and set_config(…, true) still work', async () => {
    const admin = DatabasePool.getAdminClient()
    for (const sql of ["set search_path = 'x'", 'listen chan', 'discard all', 'deallocate all', 'prepare p as select 1', 'create temp table t_hard (id int)']) {
      expect([sql, (await rejectionOf(admin.query(sql))).code]).toEqual([sql, 'STATEMENT_REFUSED'])
    }
    expect((await rejectionOf(admin.query('listen chan'))).message).toMatch(/connection of its own/)
    await expect(admin.query("select set_config('app.tenant', $1, true) as v", ['t1'])).resolves.toMatchObject({ rows: [{ v: 't1' }] })
    const { rows } = await admin.query("select current_setting('app.tenant', true) as v")
    expect(rows[0].v ?? '').toBe('')
  })

  test('inside transaction(): savepoints and SET LOCAL work, a session SET is refused, temporary tables go before the connection is reused', async () => {
    const admin = DatabasePool.getAdminClient()
    const result = await admin.transaction(async (tx) => {
      await tx.query('create temp table t_hard (id int)')
      await tx.query('insert into t_hard values (1)')
      await tx.query('savepoint a')
      await tx.query('insert into t_hard values (2)')
      await tx.query('rollback to savepoint a')
      await tx.query("set local statement_timeout = '5s'")
      return (await tx.query("select count(*)::int as n, current_setting('statement_timeout') as timeout from t_hard")).rows[0]
    })
    expect(result).toEqual({ n: 1, timeout: '5s' })
    const { rows } = await admin.query("select to_regclass('pg_temp.t_hard')::text as t, current_setting('statement_timeout') as timeout")
    expect(rows[0]).toEqual({ t: null, timeout: '0' })

    const refused = await rejectionOf(admin.transaction((tx) => tx.query('set statement_timeout = 1')))
    expect(refused.code).toBe('STATEMENT_REFUSED')
    expect(refused.message).toMatch(/SET LOCAL/)
  })

  test("ROLLBACK inside a user's transaction() is refused: nothing after it runs as the login role, and transaction() rejects", async () => {
    const user = DatabasePool.getUserClient({ accessToken: userToken() })
    const seen: string[] = []
    const outcome = await rejectionOf(
      user.transaction(async (tx) => {
        // pg-style manual error handling.
        const refused = await rejectionOf(tx.query('rollback'))
        seen.push(refused.code)
        seen.push((await tx.query('select current_user as who')).rows[0].who)
        const { data, error } = await tx.from(table).select('id')
        seen.push(error ? error.code : `rows ${data!.length}`)
        return 'resolved'
      }),
    )
    expect(seen).toEqual(['STATEMENT_REFUSED', 'authenticated', '42501'])
    expect(outcome.code).toBe('25P02')
    for (const sql of ['commit', 'end', 'abort', 'set local role postgres', "select set_config('role', 'postgres', true)"]) {
      const err = await rejectionOf(user.transaction((tx) => tx.query(sql)))
      expect([sql, err.code]).toEqual([sql, 'STATEMENT_REFUSED'])
    }
  })

  test('user clients on a superuser login warn once per process (CP_SUPERUSER_LOGIN)', async () => {
    const { rows } = await DatabasePool.getAdminClient().query('select rolsuper from pg_roles where rolname = current_user')
    const { code, output } = await runChild(`
      const { DatabasePool } = require('.');
      let warnings = 0;
      process.on('warning', (w) => { if (w.code === 'CP_SUPERUSER_LOGIN') warnings++ });
      (async () => {
        for (let pool = 0; pool < 2; pool++) {
          DatabasePool.initialize({ maxConnections: 1 });
          for (let i = 0; i < 3; i++) await DatabasePool.getUserClient().query('select 1');
          await DatabasePool.getAdminClient().query('select 1');
        }
        await new Promise((resolve) => setImmediate(resolve));
        console.log(JSON.stringify({ warnings }));
        await DatabasePool.close();
      })().catch((err) => { console.error(err); process.exit(3) });
    `)
    expect(code).toBe(0)
    expect(reportOf(output)).toEqual({ warnings: rows[0].rolsuper ? 1 : 0 })
  })
})

test('initialize() with 6 statements waiting: all 6 run, on the old pool', async () => {
  const oldApp = uniqueName('cp_old')
  DatabasePool.initialize({ connectionString: taggedUrl(oldApp), maxConnections: 1 })
  const admin = DatabasePool.getAdminClient()
  let release!: () => void
  const held = new Promise<void>((resolve) => (release = resolve))
  const holding = admin.transaction(async () => held)
  await eventually(() => DatabasePool.getStats().activeConnections === 1)
  const waiting = Array.from({ length: 6 }, (_, i) => admin.query("select $1::int as i, current_setting('application_name') as app", [i]))
  await eventually(() => DatabasePool.getStats().waitingRequests === 6)

  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_new')), maxConnections: 1 })
  release()
  await holding
  const results = await Promise.all(waiting)
  expect(results.map((r) => r.rows[0])).toEqual([0, 1, 2, 3, 4, 5].map((i) => ({ i, app: oldApp })))
  await expect(admin.query("select current_setting('application_name') as app")).resolves.not.toMatchObject({ rows: [{ app: oldApp }] })
})

test('a panic inside a statement answers INTERNAL, is counted, and frees its connection', async () => {
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_hard')), maxConnections: 1 })
  const admin = DatabasePool.getAdminClient()
  await admin.query('select 1')
  const before = DatabasePool.getStats().internalErrors
  setTestFault(['statement'])
  let err: any
  try {
    err = await rejectionOf(admin.query('select 1'))
  } finally {
    setTestFault([])
  }
  expect(err).toBeInstanceOf(ConnectionPoolError)
  expect(err.code).toBe('INTERNAL')
  expect(err.message).toMatch(/injected fault/)
  expect(DatabasePool.getStats()).toMatchObject({ internalErrors: before + 1, activeConnections: 0 })
  await expect(admin.query('select 2 as two')).resolves.toMatchObject({ rows: [{ two: 2 }] })
})
