'use strict'
// A request to Supabase's Auth, Storage or Functions (or REST over HTTP) as telemetry sees it, in
// the HTTP client conventions: a CLIENT span named by its method, `http.client.request.duration`,
// and the channel `connection-pools:http`. The URL's query (a signed Storage URL's token) and
// every header stay out; the path is on the span only. Built only when someone observes.

const { channels, traceCall, statusFailure } = require('./telemetry')

/** Runs one service request (`run`, resolving to its Response) traced. */
function traceService(service, request, run) {
  const url = new URL(request.url)
  const metric = {
    'http.request.method': request.method,
    'server.address': url.hostname,
    'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    'connection_pools.service': service,
  }
  const call = {
    name: request.method,
    attributes: { ...metric, 'url.scheme': url.protocol.slice(0, -1), 'url.path': url.pathname },
    contextOf: () => ({ service, method: request.method, path: url.pathname }),
    outcome: (response) => ({ failure: statusFailure(response.status, 500), attributes: { 'http.response.status_code': response.status } }),
    record: (made, seconds, failure, attributes) => {
      const status = attributes?.['http.response.status_code']
      const recorded = status === undefined ? { ...metric } : { ...metric, 'http.response.status_code': status }
      if (failure !== null) recorded['error.type'] = failure.type
      made.http.requestDuration.record(seconds, recorded)
    },
  }
  return traceCall(channels.http, call, run)
}

module.exports = { traceService }
