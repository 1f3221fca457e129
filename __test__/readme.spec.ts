// Every TypeScript and JavaScript sample in README runs, as a backend would run it: each block is
// compiled by TypeScript (types are not checked: the samples leave out the backend's own
// variables, which the prelude supplies) and run in a Node of its own whose `connection-pools`
// is this checkout, against a database of its own on the test server, the Supabase and OpenAI
// stand-ins, and the environment a backend has. README holds no dated run either.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Client } from 'pg'
import ts from 'typescript'
import { baseUrl, signToken } from './helpers'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startSupabaseStandIn } = require('../scripts/supabase-stand-in.js')
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')

const root = path.resolve(__dirname, '..')
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
const secret = 'readme-jwt-secret-with-at-least-32-characters'
const serviceKey = 'readme-service-role-key'
const anonKey = 'readme-anon-key'
const user = '44444444-4444-4444-4444-444444444444'
const database = `cp_readme_${process.pid}`

/** The ```ts and ```js blocks of README, with the line each starts on. */
function samples(): { line: number; code: string }[] {
  const found: { line: number; code: string }[] = []
  const fence = /^```(ts|js)\n([\s\S]*?)^```$/gm
  for (let m = fence.exec(readme); m !== null; m = fence.exec(readme)) {
    found.push({ line: readme.slice(0, m.index).split('\n').length, code: m[2] })
  }
  return found
}

/** What a backend's code around the samples would have defined. */
const prelude = `
const Module = require('node:module')
const resolve = Module._resolveFilename
Module._resolveFilename = function (request, ...rest) {
  return resolve.call(this, request === 'connection-pools' ? ${JSON.stringify(root)} : request, ...rest)
}
globalThis.jwt = process.env.README_JWT
globalThis.bytes = Buffer.from('\\x89PNG readme')
globalThis.messages = [{ role: 'user', content: 'Hello' }]
globalThis.chat = { model: 'gpt-4o-mini', messages }
`

function run(code: string, env: Record<string, string>): Promise<{ status: number | null; output: string }> {
  const { outputText } = ts.transpileModule(code, {
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  })
  const script = `${prelude}\n;(async () => {\n${outputText}\n})().then(() => process.exit(0), (err) => { console.error(err); process.exit(1) })`
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('exit', (status) => resolve({ status, output }))
  })
}

let supabase: any
let openai: any
let env: Record<string, string>

beforeAll(async () => {
  supabase = await startSupabaseStandIn({ jwtSecret: secret, serviceKey, anonKey })
  openai = await startOpenAIStandIn()
  const admin = new Client({ connectionString: baseUrl() })
  await admin.connect()
  await admin.query(`create database ${database}`)
  await admin.end()
  const url = new URL(baseUrl())
  url.pathname = `/${database}`
  const db = new Client({ connectionString: url.toString() })
  await db.connect()
  await db.query(`
    create table users (id serial primary key, email text, full_name text, age int, created_at timestamptz default now());
    insert into users (email, full_name, age) values ('ada@example.com', 'Ada', 36), ('alan@example.com', 'Alan', 41);
    create table accounts (id int primary key, balance int);
    insert into accounts values (1, 100), (2, 100);
    create table todos (id serial primary key, owner uuid not null, title text);
    insert into todos (owner, title) values ('${user}', 'write the README');
    alter table todos enable row level security;
    create policy own on todos for select to authenticated
      using (owner = nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::uuid);
    grant select on todos to authenticated;
  `)
  await db.end()
  env = {
    DATABASE_URL: url.toString(),
    SUPABASE_URL: supabase.url,
    SUPABASE_SERVICE_ROLE_KEY: serviceKey,
    SUPABASE_ANON_KEY: anonKey,
    SUPABASE_JWT_SECRET: secret,
    OPENAI_API_KEY: 'sk-readme',
    OPENAI_BASE_URL: openai.url,
    CONNECTIONS_API_TOKEN: 'readme-token',
    README_JWT: signToken({ sub: user, role: 'authenticated', exp: Math.floor(Date.now() / 1000) + 3600 }, secret),
  }
})

afterAll(async () => {
  const admin = new Client({ connectionString: baseUrl() })
  await admin.connect()
  await admin.query(`drop database if exists ${database} with (force)`)
  await admin.end()
  await supabase.close()
  await openai.close()
})

test('README has its samples, and no dated run or run letter', () => {
  expect(samples().length).toBeGreaterThanOrEqual(6)
  expect(readme).not.toMatch(/\b[Rr]uns? [A-Z]\b(?! ?=)/)
  expect(readme.match(/\b20\d\d-\d\d-\d\d\b/g) ?? []).toHaveLength(1) // the one current run
  expect(readme.split('\n').length).toBeLessThanOrEqual(450)
})

test.each(samples().map((s) => [s.line, s.code]))('the sample at README line %i runs', async (_line, code) => {
  const { status, output } = await run(code as string, env)
  if (status !== 0) throw new Error(`exit ${status}:\n${output.slice(-3000)}`)
  expect(status).toBe(0)
})

test('the samples reached the services they name', () => {
  // Storage got the upload, the function its call, OpenAI the requests of its samples.
  expect(supabase.seen('storage').length).toBeGreaterThan(0)
  expect(supabase.seen('functions').length).toBeGreaterThan(0)
  expect(openai.state.paths.some((p: string) => p.endsWith('/responses'))).toBe(true)
  expect(openai.state.paths.some((p: string) => p.endsWith('/embeddings'))).toBe(true)
})
