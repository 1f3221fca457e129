//! The Supabase HTTP services a supabase-js client talks to: Auth (`/auth/v1`), Storage
//! (`/storage/v1`), Functions (`/functions/v1`), and REST (`/rest/v1`) when there is no
//! connection string to answer it from. One keep-alive transport (`crate::http`, capped at
//! `maxConnections` open connections, TLS by rustls) carries them all, each request bounded by
//! `httpTimeout`, and each service is counted on its own: requests, failures (a transport error
//! or a 5xx), latency percentiles, requests in flight.
//!
//! Requests are the SDK's own (`crate::forward::Outgoing`): its headers (the `apikey` and
//! `Authorization` supabase-js sets), its body. Nothing is retried here: supabase-js decides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::forward::{body_kind, head_json, BodyKind, ByteStream, Outgoing, Reply};
use crate::http::{read_body, Transport, TransportOptions};
use crate::stats::{OutcomeCounters, OutcomeSnapshot};

/// The most a reply body may hold (a Storage download larger than this is refused).
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Which Supabase service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Rest,
    Auth,
    Storage,
    Functions,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Rest,
        Service::Auth,
        Service::Storage,
        Service::Functions,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Rest => "rest",
            Service::Auth => "auth",
            Service::Storage => "storage",
            Service::Functions => "functions",
        }
    }
}

#[derive(Default)]
struct Counters {
    outcomes: OutcomeCounters,
    in_flight: AtomicU64,
}

/// One service's figures.
#[derive(Debug, Clone)]
pub struct ServiceSnapshot {
    pub service: Service,
    pub outcomes: OutcomeSnapshot,
    pub in_flight: u64,
}

pub struct ServicePool {
    transport: Transport,
    timeout: Duration,
    counters: [Counters; 4],
}

/// Counts a request in flight until dropped, and its outcome when told.
struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServicePool {
    pub fn new(max_connections: usize, timeout: Duration) -> Self {
        ServicePool {
            transport: Transport::new(TransportOptions {
                max_connections,
                connection_wait: timeout,
                idle_timeout: Duration::from_secs(90),
            }),
            timeout,
            counters: Default::default(),
        }
    }

    fn counters(&self, service: Service) -> &Counters {
        &self.counters[service as usize]
    }

    /// Sends `outgoing` to `service` and reads its answer (a stream's body is handed over as it
    /// arrives, each chunk bounded by `httpTimeout`). An HTTP error status is an answer like any
    /// other; only a transport failure or the timeout is an error.
    pub async fn fetch(&self, service: Service, outgoing: Outgoing) -> Result<Reply, String> {
        let started = Instant::now();
        let counters = self.counters(service);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(counters);
        let result = self.exchange(&outgoing).await;
        let ok = matches!(&result, Ok((status, _)) if *status < 500);
        counters
            .outcomes
            .record(ok, started.elapsed().as_secs_f64() * 1000.0);
        drop(in_flight);
        result.map(|(_, reply)| reply)
    }

    async fn exchange(&self, outgoing: &Outgoing) -> Result<(u16, Reply), String> {
        let deadline = Instant::now() + self.timeout;
        let request = outgoing.to_request(&[])?;
        let response = tokio::time::timeout(self.timeout, self.transport.send(request))
            .await
            .map_err(|_| timed_out(self.timeout))?
            .map_err(|e| format!("connection error: {e}"))?;
        let status = response.status().as_u16();
        let head = head_json(status, response.headers());
        let kind = body_kind(response.headers());
        if kind == BodyKind::Stream {
            let stream =
                ByteStream::new(response.into_body(), self.timeout, Box::new(()), None, None);
            return Ok((status, Reply::Stream { head, stream }));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let body = tokio::time::timeout(left, read_body(response.into_body(), MAX_BODY_BYTES))
            .await
            .map_err(|_| timed_out(self.timeout))?
            .map_err(|e| format!("connection error: {e}"))?;
        Ok((status, Reply::Whole { head, body, kind }))
    }

    /// Every service's figures.
    pub fn snapshot(&self) -> Vec<ServiceSnapshot> {
        Service::ALL
            .into_iter()
            .map(|service| {
                let counters = self.counters(service);
                ServiceSnapshot {
                    service,
                    outcomes: counters.outcomes.snapshot(),
                    in_flight: counters.in_flight.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    pub fn reset(&self) {
        for counters in &self.counters {
            counters.outcomes.reset();
        }
    }

    /// TCP connections open now (never more than `maxConnections`).
    pub fn open_connections(&self) -> u64 {
        self.transport.open_connections()
    }
}

fn timed_out(timeout: Duration) -> String {
    format!(
        "the service did not answer within httpTimeout ({} ms): timed out",
        timeout.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_by_name() {
        for service in Service::ALL {
            assert_eq!(Service::parse(service.name()), Some(service));
        }
        assert_eq!(Service::parse("realtime"), None);
    }
}
