//! CancelRequest, as libpq's `PQcancel`: a connection of its own to the session's server (over
//! TLS when the session is), the session's process id and secret key, then the server closes
//! it. The server cancels whatever that session runs when the request arrives.

use std::sync::Arc;

use bytes::BytesMut;
use postgres_protocol::message::frontend;

use super::socket::{SharedTls, Stream};
use super::startup::{request_tls, tcp_connect, CancelTarget, Host};
use super::tls;

/// Sends the CancelRequest and waits for the server to close the connection (its answer).
pub async fn cancel(target: &CancelTarget) -> Result<(), String> {
    let mut stream = match &target.host {
        Host::Tcp(name) => {
            let mut tcp = tcp_connect(name, target.port, false)
                .await
                .map_err(|e| e.message)?;
            match &target.tls {
                Some(settings) if request_tls(&mut tcp).await.map_err(|e| e.message)? => {
                    let server = tls::server_name(name)?;
                    let connector = tokio_rustls::TlsConnector::from(settings.config.clone());
                    let tls = connector
                        .connect(server, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake for the cancel failed: {e}"))?;
                    Stream::Tls(Arc::new(SharedTls::new(tls)))
                }
                _ => Stream::Tcp(Arc::new(tcp)),
            }
        }
        #[cfg(unix)]
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", target.port));
            let unix = tokio::net::UnixStream::connect(&path)
                .await
                .map_err(|e| e.to_string())?;
            Stream::Unix(Arc::new(unix))
        }
        #[cfg(not(unix))]
        Host::Unix(_) => return Err("Unix sockets are not available".into()),
    };
    let mut request = BytesMut::new();
    frontend::cancel_request(target.process_id, target.secret_key, &mut request);
    stream
        .write_all(&request)
        .await
        .map_err(|e| e.to_string())?;
    // The server answers by closing the connection.
    let mut rest = BytesMut::new();
    let _ = stream.read(&mut rest).await;
    Ok(())
}
