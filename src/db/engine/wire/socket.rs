//! The byte stream under a session: TCP, a Unix socket, or TLS over TCP, read and written
//! without blocking by the connection's task.
//!
//! A plain stream is shared (`Arc`): besides the task, whoever queues a request on an idle
//! connection may write it at once with a non-blocking `try_write` (`DirectWriter`), so that a
//! statement from Node's thread reaches the server without waking a tokio thread first. A TLS
//! stream belongs to the task alone (rustls keeps the session's state); its requests are written
//! by the task.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// One session's stream.
pub enum Stream {
    Tcp(Arc<TcpStream>),
    #[cfg(unix)]
    Unix(Arc<UnixStream>),
    Tls(Box<TlsStream>),
}

/// Writes to a plain stream from any thread, never blocking.
#[derive(Clone)]
pub enum DirectWriter {
    Tcp(Arc<TcpStream>),
    #[cfg(unix)]
    Unix(Arc<UnixStream>),
}

impl DirectWriter {
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            DirectWriter::Tcp(s) => s.try_write(bytes),
            #[cfg(unix)]
            DirectWriter::Unix(s) => s.try_write(bytes),
        }
    }
}

/// Room kept free at the end of the read buffer: one read takes what the kernel has, up to this.
const READ_CHUNK: usize = 16 * 1024;

impl Stream {
    /// The writer others may use, for a plain stream.
    pub fn direct_writer(&self) -> Option<DirectWriter> {
        match self {
            Stream::Tcp(s) => Some(DirectWriter::Tcp(s.clone())),
            #[cfg(unix)]
            Stream::Unix(s) => Some(DirectWriter::Unix(s.clone())),
            Stream::Tls(_) => None,
        }
    }

    /// Reads what has arrived into `buf`; `Ok(0)` at the end of the stream.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match self {
            Stream::Tcp(s) => loop {
                ready!(s.poll_read_ready(cx))?;
                match s.try_read_buf(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return Poll::Ready(other),
                }
            },
            #[cfg(unix)]
            Stream::Unix(s) => loop {
                ready!(s.poll_read_ready(cx))?;
                match s.try_read_buf(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return Poll::Ready(other),
                }
            },
            Stream::Tls(s) => tokio_util::io::poll_read_buf(Pin::new(s.as_mut()), cx, buf),
        }
    }

    /// Writes some of `bytes`; how many went.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => loop {
                ready!(s.poll_write_ready(cx))?;
                match s.try_write(bytes) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return Poll::Ready(other),
                }
            },
            #[cfg(unix)]
            Stream::Unix(s) => loop {
                ready!(s.poll_write_ready(cx))?;
                match s.try_write(bytes) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return Poll::Ready(other),
                }
            },
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, bytes),
        }
    }

    /// Pushes out what TLS keeps buffered (plain streams keep nothing).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// For the handshake: reads what has arrived.
    pub async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// For the handshake: writes all of `bytes`.
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = std::future::poll_fn(|cx| self.poll_write(cx, bytes)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Closes the write side (after a Terminate), so that the server sees the session end.
    pub async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Tls(s) => s.shutdown().await,
            Stream::Tcp(s) => {
                socket2::SockRef::from(s.as_ref()).shutdown(std::net::Shutdown::Write)
            }
            #[cfg(unix)]
            Stream::Unix(s) => {
                socket2::SockRef::from(s.as_ref()).shutdown(std::net::Shutdown::Write)
            }
        };
    }

    /// The server's certificate, for channel binding (TLS only).
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            Stream::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| cert.as_ref().to_vec()),
            _ => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}
