// The dashboard in a real headless Chromium (Debian's, driven by playwright-core): the page loads
// with the API's auth, polls under live traffic, and every chart draws its series. A screenshot
// is left in test-output/dashboard.png. Without /usr/bin/chromium the spec is skipped outside CI
// and fails in CI (.ci/run installs Chromium).
import express from 'express'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Server } from 'node:http'
import { chromium, Browser } from 'playwright-core'
import { createConnectionsRouter, DatabasePool, OpenAIPool, supabaseAdmin, openai } from '..'
import { taggedUrl, uniqueName } from './helpers'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startOpenAIStandIn } = require('../scripts/openai-stand-in.js')

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const TOKEN = 'dashboard-token-Kp3-not-in-the-url'
const CHART_IDS = ['db-connections', 'openai-queue', 'db-latency', 'db-pool-times', 'openai-latency', 'rates', 'tokens']
// The series stroke colours in lib/dashboard/page.js (axes and grid are grey, so a pixel of one
// of these on a chart's canvas is a drawn series).
const SERIES_RGB = [
  [0x15, 0x65, 0xc0],
  [0x2e, 0x7d, 0x32],
  [0xef, 0x6c, 0x00],
  [0xc6, 0x28, 0x28],
  [0x6a, 0x1b, 0x9a],
]

const haveChromium = existsSync(CHROMIUM)
if (!haveChromium) console.warn(`${CHROMIUM} is missing: the dashboard browser spec is skipped (apt-get install chromium)`)
const browserTest = haveChromium || process.env.CI ? test : test.skip

let stand: any
let server: Server
let base: string
let browser: Browser | undefined

beforeAll(async () => {
  stand = await startOpenAIStandIn({ latencyMs: 15 })
  DatabasePool.initialize({ connectionString: taggedUrl(uniqueName('cp_dash')), maxConnections: 4, leakDetectionThreshold: 300 })
  OpenAIPool.initialize({ baseURL: stand.url, apiKey: 'sk-test-DashKey-777', retryDelay: 5, maxConcurrentRequests: 3 })
  const app = express()
  // An app-wide policy as helmet sets it, which forbids inline scripts: the dashboard must still
  // work (its response carries its own policy with a per-response nonce).
  app.use((_req, res, next) => {
    res.set('Content-Security-Policy', "default-src 'self'")
    next()
  })
  app.use('/api/connections', createConnectionsRouter({ token: TOKEN }))
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  base = `http://127.0.0.1:${address.port}/api/connections`
})

afterAll(async () => {
  await browser?.close()
  await new Promise((resolve) => server.close(resolve))
  await DatabasePool.close()
  await OpenAIPool.close()
  await stand.close()
})

/** Keeps both pools busy (successes, failures and a 429 now and then) until stopped. */
function startTraffic() {
  let running = true
  let round = 0
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      round++
      await supabaseAdmin.query('select pg_sleep(0.002), $1::int as n', [round])
      if (round % 7 === 0) await supabaseAdmin.query('select * from missing_dashboard_table').catch(() => {})
      if (round % 11 === 0) stand.enqueue({ status: 429, headers: { 'retry-after-ms': '5' }, body: { error: { message: 'slow down' } } })
      await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hi ${round}` }] })
    }
  })
  return async () => {
    running = false
    await Promise.all(loops)
  }
}

browserTest('the dashboard draws every chart from live stats, behind the API token', async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
  })
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } })
  // Without the token the page itself is refused (in a page of its own: the browser's favicon
  // request for that JSON answer would otherwise land among the dashboard's console errors).
  const probe = await browser.newPage()
  const refused = await probe.goto(`${base}/dashboard`)
  expect(refused?.status()).toBe(401)
  await probe.close()

  const pageErrors: string[] = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text())
  })
  const requested: string[] = []
  page.on('request', (req) => requested.push(req.url()))
  page.on('response', (res) => {
    if (res.status() >= 400) pageErrors.push(`${res.status()} ${res.url()}`)
  })

  const stopTraffic = startTraffic()
  // A transaction left open past leakDetectionThreshold: the page shows it, and where it began.
  let release!: () => void
  const gate = new Promise<void>((resolve) => (release = resolve))
  const leaked = supabaseAdmin.transaction(() => gate)
  let leakTile: string | null = null
  try {
    const response = await page.goto(`${base}/dashboard?token=${TOKEN}`)
    expect(response?.status()).toBe(200)
    expect(response?.headers()['content-security-policy']).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]{24}'/)
    // Five polls: four rate samples after the first reading.
    await page.waitForFunction(() => (window as any).connectionPoolsDashboard?.polls >= 5, null, { timeout: 30000 })
    leakTile = await page.locator('.tile.leak').first().textContent({ timeout: 30000 })
  } finally {
    release()
    await leaked
    await stopTraffic()
  }
  expect(leakTile).toMatch(/Leak: database transaction/)
  expect(leakTile).toContain('dashboard.spec.ts')

  // The token left the address bar; every request stayed on our origin (no CDN).
  expect(page.url()).toBe(`${base}/dashboard`)
  expect(requested.every((url) => url.startsWith(base))).toBe(true)
  expect(pageErrors).toEqual([])
  expect(await page.locator('#status').textContent()).toMatch(/^live/)

  const charts = await page.evaluate(
    ({ ids, colours }) => {
      const dash = (window as any).connectionPoolsDashboard
      return ids.map((id: string) => {
        const d = dash.data[id] as Array<Array<number | null>>
        const canvas = document.querySelector(`#${id} canvas`) as HTMLCanvasElement
        const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data
        let seriesPixels = 0
        for (let i = 0; i < pixels.length; i += 4) {
          const near = (c: number[]) => Math.abs(pixels[i] - c[0]) < 8 && Math.abs(pixels[i + 1] - c[1]) < 8 && Math.abs(pixels[i + 2] - c[2]) < 8
          if (colours.some(near)) seriesPixels++
        }
        const values = d.slice(1).flat().filter((v): v is number => typeof v === 'number')
        return { id, points: d[0].length, max: Math.max(0, ...values), seriesPixels }
      })
    },
    { ids: CHART_IDS, colours: SERIES_RGB },
  )

  for (const chart of charts) {
    expect([chart.id, chart.points >= 4]).toEqual([chart.id, true])
    expect([chart.id, chart.seriesPixels > 20]).toEqual([chart.id, true])
  }
  const byId = Object.fromEntries(charts.map((c) => [c.id, c]))
  expect(byId['db-connections'].max).toBeGreaterThan(0)
  expect(byId['db-latency'].max).toBeGreaterThan(0)
  expect(byId['db-pool-times'].max).toBeGreaterThan(0)
  expect(byId['openai-latency'].max).toBeGreaterThan(0)
  expect(byId['rates'].max).toBeGreaterThan(0)
  expect(byId['tokens'].max).toBeGreaterThan(0)

  const tiles = await page.locator('.tile').count()
  expect(tiles).toBeGreaterThanOrEqual(7)

  const outDir = join(__dirname, '..', 'test-output')
  mkdirSync(outDir, { recursive: true })
  await page.screenshot({ path: join(outDir, 'dashboard.png'), fullPage: true })
  expect(existsSync(join(outDir, 'dashboard.png'))).toBe(true)
})
