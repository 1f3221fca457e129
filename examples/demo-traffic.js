'use strict'
// A little traffic against the demo backend's own endpoints, so the dashboard moves: user
// lookups, a chat completion now and then, an occasional bad request (a failure on the charts)
// and, against the local OpenAI stand-in only, an occasional 429 that the pool retries.
// It only ever runs against the local stand-ins, never against a real database or API key.

function startDemoTraffic({ baseUrl, standIn }) {
  let stopped = false
  let tick = 0
  const get = (path) => fetch(baseUrl + path).then((res) => res.arrayBuffer()).catch(() => {})
  const post = (path, body) =>
    fetch(baseUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then((res) => res.arrayBuffer())
      .catch(() => {})

  async function loop(worker) {
    while (!stopped) {
      tick++
      const burst = 1 + (Math.floor(tick / 40) % 4) // load rises and falls so the charts have a shape
      const calls = []
      for (let i = 0; i < burst; i++) calls.push(get(`/api/users/${1 + ((tick + i) % 5)}`))
      calls.push(get('/api/users'))
      if ((tick + worker) % 2 === 0) calls.push(post('/api/chat', { message: `demo message ${tick}` }))
      if (tick % 5 === worker) calls.push(post('/api/embed', { text: `demo text ${tick}` }))
      if (tick % 25 === 0) calls.push(get('/api/users/not-a-number'))
      if (tick % 30 === 0) standIn.enqueue({ status: 429, headers: { 'retry-after-ms': '200' }, body: { error: { message: 'Rate limit reached (demo)', type: 'requests' } } })
      await Promise.all(calls)
      await new Promise((resolve) => setTimeout(resolve, 150))
    }
  }

  const loops = [0, 1, 2].map(loop)
  return async function stop() {
    stopped = true
    await Promise.all(loops)
  }
}

module.exports = { startDemoTraffic }
