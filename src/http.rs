//! The HTTP transport under the OpenAI pool and the key-set fetcher: hyper's pooled client over a
//! connector that holds one permit for each open connection.
//!
//! Why not reqwest: a queue slot is released when a response body has been read, but hyper puts
//! the connection back in its idle pool a moment later, from its own task. A caller given the
//! slot in that moment finds no idle connection and opens another, so a pool capped at 10
//! requests went to 11 TCP connections now and then (seen in CI). reqwest's connector hands hyper
//! a sealed connection type that cannot carry a permit; here the permit lives inside the
//! connection's stream and is returned when hyper drops the connection, so the number of open
//! connections can never pass the cap. A request that finds every connection busy waits for one
//! to come back to the idle pool (or to close), which the slot queue above makes a short wait.

use std::error::Error as StdError;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

pub use hyper::header;
pub use hyper::{Method, Request, Response, StatusCode};

type BoxError = Box<dyn StdError + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Limits for one [`Transport`].
pub struct TransportOptions {
    /// Open connections at most (idle ones included).
    pub max_connections: usize,
    /// How long a new connection may wait for one of the others to close.
    pub connection_wait: Duration,
    /// How long an unused connection stays open.
    pub idle_timeout: Duration,
}

/// A pooled HTTP/1.1 and HTTP/2 client (TLS by rustls with the webpki roots) that never holds more
/// than `max_connections` connections.
#[derive(Clone)]
pub struct Transport {
    client: Client<CappedConnector, Full<Bytes>>,
    opened: Arc<AtomicU64>,
    permits: Arc<Semaphore>,
    max_connections: usize,
}

impl Transport {
    pub fn new(options: TransportOptions) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.connection_wait));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let opened = Arc::new(AtomicU64::new(0));
        let max_connections = options.max_connections.max(1);
        let permits = Arc::new(Semaphore::new(max_connections));
        let connector = CappedConnector {
            inner: https,
            permits: permits.clone(),
            wait: options.connection_wait,
            opened: opened.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(options.idle_timeout)
            .pool_max_idle_per_host(options.max_connections.max(1))
            .build(connector);
        Transport {
            client,
            opened,
            permits,
            max_connections,
        }
    }

    /// Connections open now (each holds a permit until hyper drops it).
    pub fn open_connections(&self) -> u64 {
        (self.max_connections - self.permits.available_permits()) as u64
    }

    /// Sends a request; resolves when the response's head has arrived.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
        self.client.request(request).await.map_err(|e| describe(&e))
    }

    /// Connections opened since this transport was made.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

/// A response body read whole, refused past `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, String> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| describe(e.as_ref()))
}

/// An error with its causes, which is where hyper puts what actually went wrong. None of them
/// carries request headers, so no API key can appear here.
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[derive(Clone)]
struct CappedConnector {
    inner: HttpsConnector<HttpConnector>,
    permits: Arc<Semaphore>,
    wait: Duration,
    opened: Arc<AtomicU64>,
}

impl Service<Uri> for CappedConnector {
    type Response = Capped;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Capped, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let permits = self.permits.clone();
        let opened = self.opened.clone();
        let wait = self.wait;
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            // hyper may start a connection and then use an idle one that came back first; the
            // started one carries on in the background and waits here like any other, so it
            // opens only once a connection has closed.
            let permit = tokio::time::timeout(wait, permits.acquire_owned())
                .await
                .map_err(|_| "every connection stayed busy")?
                .map_err(|_| "the transport is closed")?;
            let stream = connecting.await?;
            opened.fetch_add(1, Ordering::Relaxed);
            Ok(Capped {
                stream,
                _permit: permit,
            })
        })
    }
}

/// A connection's stream with the permit it was opened under.
struct Capped {
    stream: Stream,
    _permit: OwnedSemaphorePermit,
}

impl Connection for Capped {
    fn connected(&self) -> Connected {
        self.stream.connected()
    }
}

impl Read for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Write for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
