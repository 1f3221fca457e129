//! The byte stream under a session: TCP, a Unix socket, or TLS over TCP, read and written
//! without blocking by the connection's task.
//!
//! Every stream is shared (`Arc`): besides the task, whoever queues a request on an idle
//! connection may write it at once without blocking (`DirectWriter`), so that a statement from
//! Node's thread reaches the server without waking a tokio thread first. TLS too: after the
//! handshake (tokio-rustls), the session's rustls state sits under a lock (`SharedTls`), so that
//! the caller's thread encrypts and writes while the task reads and decrypts.

use std::io::{self, BufRead, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use rustls::ClientConnection;
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

/// One session's stream (shared: the task reads and writes it, callers write to an idle one
/// through its `DirectWriter`).
#[derive(Clone)]
pub enum Stream {
    Tcp(Arc<TcpStream>),
    #[cfg(unix)]
    Unix(Arc<UnixStream>),
    Tls(Arc<SharedTls>),
}

/// A TLS session over TCP whose state any thread may use, one at a time.
pub struct SharedTls {
    tcp: TcpStream,
    session: Mutex<ClientConnection>,
}

/// What a write without blocking did.
pub struct Written {
    /// Bytes of the request taken (for TLS, encrypted into the session's buffer).
    pub taken: usize,
    /// Encrypted bytes the socket did not take yet: the task must flush them.
    pub pending: bool,
}

/// Writes to a stream from any thread, never blocking.
#[derive(Clone)]
pub struct DirectWriter(Stream);

impl DirectWriter {
    /// Writes what the socket takes now; `WouldBlock` when it takes nothing.
    pub fn try_write(&self, bytes: &[u8]) -> io::Result<Written> {
        let plain = |taken| Written {
            taken,
            pending: false,
        };
        match &self.0 {
            Stream::Tcp(s) => s.try_write(bytes).map(plain),
            #[cfg(unix)]
            Stream::Unix(s) => s.try_write(bytes).map(plain),
            Stream::Tls(s) => s.try_write(bytes),
        }
    }
}

/// The socket as rustls reads and writes it: without blocking.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SharedTls {
    /// The session a tokio-rustls handshake left.
    pub fn new(stream: tokio_rustls::client::TlsStream<TcpStream>) -> Self {
        let (tcp, session) = stream.into_inner();
        SharedTls {
            tcp,
            session: Mutex::new(session),
        }
    }

    fn session(&self) -> MutexGuard<'_, ClientConnection> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Encrypts `bytes` and writes what the socket takes now.
    fn try_write(&self, bytes: &[u8]) -> io::Result<Written> {
        let mut session = self.session();
        let taken = session.writer().write(bytes)?;
        let flushed = self.flush(&mut session)?;
        Ok(Written {
            taken,
            pending: !flushed,
        })
    }

    /// Writes encrypted bytes until none are left (true) or the socket takes no more (false).
    fn flush(&self, session: &mut ClientConnection) -> io::Result<bool> {
        while session.wants_write() {
            match session.write_tls(&mut NonBlocking(&self.tcp)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Reads decrypted bytes into `buf`; `Ok(0)` at the end of the session.
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        loop {
            {
                let mut session = self.session();
                let mut reader = session.reader();
                match reader.fill_buf() {
                    Ok(plaintext) => {
                        let n = plaintext.len();
                        buf.extend_from_slice(plaintext);
                        reader.consume(n);
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(Ok(0))
                    }
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
                    Err(_) => {}
                }
                match session.read_tls(&mut NonBlocking(&self.tcp)) {
                    Ok(_) => {
                        session
                            .process_new_packets()
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        // A key update or an alert may want an answer.
                        self.flush(&mut session)?;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            ready!(self.tcp.poll_read_ready(cx))?;
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let written = self.try_write(bytes)?;
        if written.pending {
            // Woken when the socket takes more; what is taken is flushed then.
            let _ = self.tcp.poll_write_ready(cx)?;
        }
        if written.taken == 0 && written.pending {
            return Poll::Pending;
        }
        Poll::Ready(Ok(written.taken))
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.flush(&mut self.session())? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.tcp.poll_write_ready(cx))?;
        }
    }
}

/// Waits for readiness (`$ready`), then does `$io` without blocking, again while it would block
/// (readiness was stale): the same for a TCP and a Unix socket.
macro_rules! when_ready {
    ($cx:expr, $stream:ident . $ready:ident, $io:expr) => {
        loop {
            ready!($stream.$ready($cx))?;
            match $io {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    };
}

/// Room kept free at the end of the read buffer: one read takes what the kernel has, up to this.
const READ_CHUNK: usize = 16 * 1024;

impl Stream {
    /// The writer others may use.
    pub fn direct_writer(&self) -> DirectWriter {
        DirectWriter(self.clone())
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
            Stream::Tcp(s) => when_ready!(cx, s.poll_read_ready, s.try_read_buf(buf)),
            #[cfg(unix)]
            Stream::Unix(s) => when_ready!(cx, s.poll_read_ready, s.try_read_buf(buf)),
            Stream::Tls(s) => s.poll_read(cx, buf),
        }
    }

    /// Writes some of `bytes`; how many went.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => when_ready!(cx, s.poll_write_ready, s.try_write(bytes)),
            #[cfg(unix)]
            Stream::Unix(s) => when_ready!(cx, s.poll_write_ready, s.try_write(bytes)),
            Stream::Tls(s) => s.poll_write(cx, bytes),
        }
    }

    /// Pushes out what TLS keeps buffered (plain streams keep nothing).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tls(s) => s.poll_flush(cx),
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

    /// The server's certificate, for channel binding (TLS only).
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            Stream::Tls(s) => s
                .session()
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| cert.as_ref().to_vec()),
            _ => None,
        }
    }
}
