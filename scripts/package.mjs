#!/usr/bin/env node
// `npm run package`: the tarballs a backend installs, written to dist/.
//
// The napi-rs package convention: the main package carries the JS (index.js, lib/, the loader
// binding.js, the types) and lists one platform package per target in optionalDependencies; each
// platform package (npm/<platform>/, made by `napi create-npm-dirs`) carries only its `.node`
// binary. npm installs the one whose os/cpu/libc match, so a backend needs Node and nothing else.
//
// The repository's own package.json does not list those optionalDependencies: until the
// platform packages are on the registry, `npm ci` would refuse a lockfile without them. So, as
// `napi pre-publish` does at publish time, the main package is staged with them added (same
// version for every package), and without the scripts and devDependencies that only a checkout
// uses.
//
//   node scripts/package.mjs                  build this machine's binary, pack main + this platform
//   node scripts/package.mjs --no-build       pack what is built already
//   node scripts/package.mjs --artifacts DIR  also pack every `<binaryName>.<platform>.node` in DIR
//                                             (the release workflow's downloaded build artifacts)
import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { readNapiConfig } from '@napi-rs/cli'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dist = path.join(root, 'dist')
const args = process.argv.slice(2)
const artifactsDir = args.includes('--artifacts') ? path.resolve(args[args.indexOf('--artifacts') + 1] ?? '') : null

function fail(message) {
  console.error(`npm run package: ${message}`)
  process.exit(1)
}

function run(command, commandArgs, cwd) {
  const result = spawnSync(command, commandArgs, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })
  if (result.status !== 0) fail(`${command} ${commandArgs.join(' ')} failed in ${cwd}`)
  return result.stdout
}

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'))

/** The platform package this machine installs (glibc or musl on Linux, as binding.js decides). */
function hostTarget(targets) {
  const glibc = process.platform !== 'linux' || Boolean(process.report?.getReport()?.header?.glibcVersionRuntime)
  return targets.find(
    (t) => t.platform === process.platform && t.arch === process.arch && (t.platform !== 'linux' || (t.abi === 'gnu') === glibc),
  )
}

if (!args.includes('--no-build')) run('npm', ['run', '--silent', 'build'], root)

const config = await readNapiConfig(path.join(root, 'package.json'))
const manifest = readJson(path.join(root, 'package.json'))
const { version } = manifest
const binaryFile = (target) => `${config.binaryName}.${target.platformArchABI}.node`

// Every platform package must exist and carry the main package's version: the loader refuses a
// binary of another version, and the optionalDependencies below pin this one.
for (const target of config.targets) {
  const platformManifest = path.join(root, 'npm', target.platformArchABI, 'package.json')
  if (!existsSync(platformManifest)) fail(`${platformManifest} is missing: run \`npx napi create-npm-dirs\``)
  const platformVersion = readJson(platformManifest).version
  if (platformVersion !== version) {
    fail(`npm/${target.platformArchABI} is version ${platformVersion}, the package is ${version}: run \`npx napi version\``)
  }
}

/** Where each target's binary is, for the targets that have one here. */
const binaries = new Map()
for (const target of config.targets) {
  const candidates = [path.join(root, binaryFile(target))]
  if (artifactsDir) candidates.unshift(path.join(artifactsDir, binaryFile(target)))
  const found = candidates.find((file) => existsSync(file))
  if (found) binaries.set(target, found)
}
const host = hostTarget(config.targets)
if (host === undefined) fail(`no target in package.json's napi.targets runs on ${process.platform}-${process.arch}`)
if (!binaries.has(host)) fail(`${binaryFile(host)} is not built: run \`npm run build\``)

rmSync(dist, { recursive: true, force: true })
const stage = path.join(dist, '.stage')
mkdirSync(stage, { recursive: true })

function pack(dir) {
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dist], dir))
  return packed
}

const tarballs = []
for (const [target, binary] of binaries) {
  const dir = path.join(stage, target.platformArchABI)
  cpSync(path.join(root, 'npm', target.platformArchABI), dir, { recursive: true })
  copyFileSync(binary, path.join(dir, binaryFile(target)))
  tarballs.push(pack(dir))
}

const mainDir = path.join(stage, 'main')
for (const entry of [...manifest.files, 'README.md']) {
  cpSync(path.join(root, entry), path.join(mainDir, entry), { recursive: true })
}
const { scripts, devDependencies, allowScripts, ...published } = manifest
published.optionalDependencies = Object.fromEntries(
  config.targets.map((target) => [`${config.packageName}-${target.platformArchABI}`, version]),
)
writeFileSync(path.join(mainDir, 'package.json'), `${JSON.stringify(published, null, 2)}\n`)
const main = pack(mainDir)
if (main.files.some((file) => file.path.endsWith('.node'))) fail('the main package must not carry a .node binary')
tarballs.unshift(main)

rmSync(stage, { recursive: true, force: true })
for (const packed of tarballs) {
  console.log(`${path.relative(process.cwd(), path.join(dist, packed.filename))}  (${(packed.size / 1024).toFixed(0)} KiB)`)
}
const leftover = readdirSync(dist).filter((name) => !tarballs.some((packed) => packed.filename === name))
if (leftover.length > 0) fail(`unexpected files in dist/: ${leftover.join(', ')}`)
