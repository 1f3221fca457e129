'use strict'
// The /dashboard page: one HTML document with everything inlined (uPlot for the charts, the
// page's own script and styles), so it needs no build step, no CDN and no second authenticated
// request. Built once, on first use.

const fs = require('node:fs')
const path = require('node:path')

let cached = null

/** Text that can sit inside <script> or <style> without closing it early. */
function inlineSafe(text) {
  return text.replace(/<\/(script|style)/gi, '<\\/$1')
}

function dashboardHtml() {
  if (cached !== null) return cached
  const read = (file) => fs.readFileSync(file, 'utf8')
  const uplotDir = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'))
  const template = read(path.join(__dirname, 'dashboard', 'page.html'))
  const parts = {
    '/*UPLOT_CSS*/': read(path.join(uplotDir, 'uPlot.min.css')),
    '/*UPLOT_JS*/': read(path.join(uplotDir, 'uPlot.iife.min.js')),
    '/*PAGE_JS*/': read(path.join(__dirname, 'dashboard', 'page.js')),
  }
  cached = template.replace(/\/\*(UPLOT_CSS|UPLOT_JS|PAGE_JS)\*\//g, (marker) => inlineSafe(parts[marker]))
  return cached
}

module.exports = { dashboardHtml }
