// The dashboard's script: polls the router's stats once a second and draws them with uPlot.
// Gauges are drawn as read; counters are turned into per-second rates between two polls
// (a counter that went down was reset, so its new value is the increase, as Prometheus does).
;(function () {
  'use strict'
  var POLL_MS = 1000
  var KEEP = 300 // points per series: five minutes at one poll a second

  // The token arrives once as ?token=... (a browser cannot send a header when opening a page);
  // it is moved out of the address bar at once and sent as a bearer header from then on.
  var storageKey = 'connection-pools-token:' + location.pathname
  var params = new URLSearchParams(location.search)
  var token = params.get('token')
  if (token) {
    params.delete('token')
    var rest = params.toString()
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash)
    try { sessionStorage.setItem(storageKey, token) } catch (e) { /* storage disabled: keep it in memory */ }
  } else {
    try { token = sessionStorage.getItem(storageKey) } catch (e) { token = null }
  }

  var palette = ['#1565c0', '#2e7d32', '#ef6c00', '#c62828', '#6a1b9a']
  var chartsEl = document.getElementById('charts')
  var tilesEl = document.getElementById('tiles')
  var statusEl = document.getElementById('status')

  var specs = [
    { id: 'db-connections', title: 'Database connections', unit: '', series: ['active', 'idle', 'waiting'] },
    { id: 'openai-queue', title: 'OpenAI requests: in flight and queued', unit: '', series: ['in flight', 'queued'] },
    { id: 'db-latency', title: 'Database latency (ms, last 1000 statements)', unit: 'ms', series: ['p50', 'p95', 'p99'] },
    { id: 'db-pool-times', title: 'Connection wait and use time (ms, per poll, from the histograms)', unit: 'ms', series: ['wait p50', 'wait p95', 'use p50', 'use p95'] },
    { id: 'openai-latency', title: 'OpenAI latency (ms, last 1000 requests)', unit: 'ms', series: ['p50', 'p95', 'p99'] },
    { id: 'rates', title: 'Outcomes per second', unit: '/s', series: ['db ok', 'db failed', 'openai ok', 'openai failed', 'rate limited (429)'] },
    { id: 'tokens', title: 'OpenAI tokens per minute', unit: '/min', series: ['tokens'] },
  ]

  var charts = {}
  var data = {}
  specs.forEach(function (spec) {
    var box = document.createElement('div')
    box.className = 'chart'
    box.id = spec.id
    var h = document.createElement('h2')
    h.textContent = spec.title
    box.appendChild(h)
    chartsEl.appendChild(box)
    data[spec.id] = [[]].concat(spec.series.map(function () { return [] }))
    charts[spec.id] = new uPlot(
      {
        width: Math.max(300, box.clientWidth - 24),
        height: 200,
        scales: { x: { time: true }, y: { range: function (_u, min, max) { return [0, Math.max(1, max * 1.1)] } } },
        series: [{}].concat(spec.series.map(function (label, i) {
          return { label: label, stroke: palette[i % palette.length], width: 2, value: function (_u, v) { return v == null ? '–' : round(v) + spec.unit } }
        })),
        axes: [{}, { size: 72 }],
      },
      data[spec.id],
      box,
    )
  })

  window.addEventListener('resize', function () {
    specs.forEach(function (spec) {
      var box = document.getElementById(spec.id)
      charts[spec.id].setSize({ width: Math.max(300, box.clientWidth - 24), height: 200 })
    })
  })

  function round(v) {
    return Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 100) / 100
  }

  function push(id, t, values) {
    var d = data[id]
    d[0].push(t)
    values.forEach(function (v, i) { d[i + 1].push(v) })
    if (d[0].length > KEEP) d.forEach(function (s) { s.shift() })
    charts[id].setData(d)
  }

  var previous = null
  function rate(now, prev, key, dt) {
    if (!prev || now[key] == null || prev[key] == null || dt <= 0) return null
    var increase = now[key] >= prev[key] ? now[key] - prev[key] : now[key]
    return increase / dt
  }

  /**
   * The p-th percentile (0..1) of what a histogram recorded between two polls, as the upper
   * bound of the bucket that reaches it (the last bucket's bound is Infinity: JSON's null).
   */
  function percentileBetween(now, prev, p) {
    if (!now || !prev || now.count < prev.count) return null
    var total = now.count - prev.count
    if (total === 0) return null
    var seen = 0
    for (var i = 0; i < now.buckets.length; i++) {
      seen += now.buckets[i][1] - (prev.buckets[i] ? prev.buckets[i][1] : 0)
      if (seen >= p * total) return now.buckets[i][0] == null ? now.buckets[i - 1][0] : now.buckets[i][0]
    }
    return null
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';' })
  }

  function tile(label, value) {
    return '<div class="tile"><div class="label">' + label + '</div><div class="value">' + value + '</div></div>'
  }

  function fetchSection(path) {
    var headers = token ? { Authorization: 'Bearer ' + token } : {}
    return fetch(new URL(path, location.href), { headers: headers, credentials: 'same-origin', cache: 'no-store' }).then(function (res) {
      return res.json().then(
        function (body) {
          if (!body.success) throw new Error(res.status + ' ' + (body.error && body.error.message))
          return body.data
        },
        function () { throw new Error('HTTP ' + res.status) },
      )
    })
  }

  function settle(promise) {
    return promise.then(function (v) { return { ok: v } }, function (e) { return { err: e.message } })
  }

  var polls = 0
  function poll() {
    Promise.all([settle(fetchSection('database/stats')), settle(fetchSection('openai/stats')), settle(fetchSection('openai/limits')), settle(fetchSection('leaks'))]).then(function (results) {
      var t = Date.now() / 1000
      var db = results[0].ok ? results[0].ok.stats : null
      var ai = results[1].ok ? results[1].ok.stats : null
      var queue = results[1].ok ? results[1].ok.queue : null
      var limits = results[2].ok ? results[2].ok : null
      var leaks = results[3].ok ? results[3].ok.database.concat(results[3].ok.openai) : []
      var now = {
        waitTime: db && db.waitTime, useTime: db && db.useTime,
        t: t,
        dbTotal: db && db.totalQueries, dbFailed: db && db.failedQueries,
        aiTotal: ai && ai.totalRequests, aiFailed: ai && ai.failedRequests,
        aiLimited: ai && ai.rateLimitedRequests, aiTokens: ai && ai.totalTokensUsed,
      }
      var dt = previous ? t - previous.t : 0
      if (db) {
        push('db-connections', t, [db.activeConnections, db.idleConnections, db.waitingRequests])
        push('db-latency', t, [db.p50ResponseTime, db.p95ResponseTime, db.p99ResponseTime])
      }
      if (ai && queue) {
        push('openai-queue', t, [queue.activeRequests, queue.queueLength])
        push('openai-latency', t, [ai.p50ResponseTime, ai.p95ResponseTime, ai.p99ResponseTime])
      }
      if (previous) {
        var dbAll = rate(now, previous, 'dbTotal', dt)
        var dbFailed = rate(now, previous, 'dbFailed', dt)
        var aiAll = rate(now, previous, 'aiTotal', dt)
        var aiFailed = rate(now, previous, 'aiFailed', dt)
        push('rates', t, [
          dbAll == null ? null : dbAll - (dbFailed || 0), dbFailed,
          aiAll == null ? null : aiAll - (aiFailed || 0), aiFailed,
          rate(now, previous, 'aiLimited', dt),
        ])
        var tokens = rate(now, previous, 'aiTokens', dt)
        push('tokens', t, [tokens == null ? null : tokens * 60])
        if (db && db.waitTime) {
          push('db-pool-times', t, [
            percentileBetween(now.waitTime, previous.waitTime, 0.5), percentileBetween(now.waitTime, previous.waitTime, 0.95),
            percentileBetween(now.useTime, previous.useTime, 0.5), percentileBetween(now.useTime, previous.useTime, 0.95),
          ])
        }
      }
      previous = now
      polls++

      var tiles = []
      if (db) {
        tiles.push(tile('DB connections', db.totalConnections + ' <small>(' + db.activeConnections + ' active)</small>'))
        tiles.push(tile('DB statements', db.totalQueries + ' <small>(' + db.failedQueries + ' failed)</small>'))
        tiles.push(tile('DB p95', round(db.p95ResponseTime) + ' ms'))
        // The Supabase HTTP services that have seen requests: their count, failures and p95.
        var http = db.http || {}
        ;['rest', 'auth', 'storage', 'functions'].forEach(function (name) {
          var svc = http[name]
          if (svc && svc.requests > 0) {
            tiles.push(tile('Supabase ' + name, svc.requests + ' <small>(' + svc.failures + ' failed, p95 ' + round(svc.p95ResponseTime) + ' ms)</small>'))
          }
        })
        if (http.openConnections !== undefined) tiles.push(tile('Supabase connections', http.openConnections))
      }
      if (ai && queue) {
        tiles.push(tile('OpenAI in flight', queue.activeRequests + ' / ' + queue.maxConcurrent + ' <small>(' + queue.queueLength + ' queued)</small>'))
        tiles.push(tile('OpenAI requests', ai.totalRequests + ' <small>(' + ai.failedRequests + ' failed)</small>'))
        tiles.push(tile('Rate limited', ai.rateLimitedRequests))
        tiles.push(tile('Tokens', ai.totalTokensUsed))
      }
      if (limits) {
        var budgets = []
        if (limits.requestsPerMinute != null) budgets.push(limits.requestsPerMinute + ' req')
        if (limits.tokensPerMinute != null) budgets.push(limits.tokensPerMinute + ' tokens')
        tiles.push(tile('OpenAI budgets', budgets.length ? budgets.join(' · ') + ' <small>per ' + round(limits.rateLimitWindowMs / 1000) + ' s</small>' : 'none'))
        tiles.push(tile('Rate-limit pause', limits.pausedForMs > 0 ? round(limits.pausedForMs) + ' ms left' : 'none'))
        var p = limits.byPriority
        tiles.push(tile('Queued by priority', p.high + ' / ' + p.normal + ' / ' + p.low + ' <small>(high / normal / low)</small>'))
        tiles.push(tile('Shared limits', limits.shared ? 'Redis <small>(' + limits.sharedLimitFallbacks + ' local fallbacks)</small>' : 'this process'))
      }
      // Leak warnings in force: each holder past leakDetectionThreshold, with where it was taken.
      leaks.forEach(function (leak) {
        tiles.push('<div class="tile leak">' + '<div class="label">Leak: ' + escapeHtml(leak.pool + ' ' + leak.kind) + '</div>' +
          '<div class="value">' + round(leak.ageMs / 1000) + ' s <small>' + escapeHtml(leak.site) + '</small></div></div>')
      })
      tilesEl.innerHTML = tiles.join('')
      var errors = results.filter(function (r) { return r.err }).map(function (r) { return r.err })
      statusEl.textContent = errors.length ? 'error: ' + errors.join('; ') : 'live · updated ' + new Date().toLocaleTimeString()
      statusEl.className = errors.length ? 'error' : ''
      window.connectionPoolsDashboard.polls = polls
    }).finally(function () { setTimeout(poll, POLL_MS) })
  }

  // For the browser test and for anyone scripting the page: the charts and their data.
  window.connectionPoolsDashboard = { charts: charts, data: data, polls: 0 }
  poll()
})()
