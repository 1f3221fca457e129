'use strict'
// The /dashboard page: one HTML document with everything inlined (uPlot for the charts, the
// page's own script and styles), so it needs no build step, no CDN and no second authenticated
// request. Built once, on first use; each response gets its own script nonce and a
// Content-Security-Policy that allows exactly those scripts, so the page keeps working behind an
// app-wide CSP (helmet's, say) and an injected script could not run in it.

const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')

let cached = null

/** Text that can sit inside <script> or <style> without closing it early. */
function inlineSafe(text) {
  return text.replace(/<\/(script|style)/gi, '<\\/$1')
}

function template() {
  if (cached !== null) return cached
  const read = (file) => fs.readFileSync(file, 'utf8')
  const uplotDir = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'))
  const page = read(path.join(__dirname, 'dashboard', 'page.html'))
  const parts = {
    '/*UPLOT_CSS*/': read(path.join(uplotDir, 'uPlot.min.css')),
    '/*UPLOT_JS*/': read(path.join(uplotDir, 'uPlot.iife.min.js')),
    '/*PAGE_JS*/': read(path.join(__dirname, 'dashboard', 'page.js')),
  }
  cached = page.replace(/\/\*(UPLOT_CSS|UPLOT_JS|PAGE_JS)\*\//g, (marker) => inlineSafe(parts[marker]))
  return cached
}

/** The page and the Content-Security-Policy header value to serve it with. */
function dashboardPage() {
  const nonce = crypto.randomBytes(16).toString('base64')
  return {
    html: template().replaceAll('__CSP_NONCE__', nonce),
    contentSecurityPolicy: [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      "style-src 'unsafe-inline'",
      "connect-src 'self'",
      "img-src 'self' data:",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
  }
}

module.exports = { dashboardPage }
