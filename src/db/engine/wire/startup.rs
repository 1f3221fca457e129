//! Opening a session: the socket (TCP or a Unix socket), TLS when asked for, the startup
//! message, authentication and the server's greeting up to its first ReadyForQuery.
//!
//! Authentication covers what the server may ask of a client that knows a password: trust,
//! cleartext `password`, `md5` and SCRAM-SHA-256 (with the `-PLUS` channel binding over TLS),
//! with the message codec and the SCRAM exchange of the `postgres-protocol` crate. A failure
//! says which step failed (the name lookup, the TCP connect, TLS, authentication, the server's
//! refusal) and never includes the password.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{AuthenticationSaslBody, Message};
use postgres_protocol::message::frontend;
use tokio::net::TcpStream;

use super::db_error;
use super::socket::{SharedTls, Stream};
use super::tls::{self, SslMode, Tls};

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// The directory of a Unix socket (`.s.PGSQL.<port>` in it).
    Unix(PathBuf),
}

/// Everything needed to open a session.
#[derive(Clone)]
pub struct StartupOptions {
    /// Tried in order; the first that accepts the session is used.
    pub hosts: Vec<(Host, u16)>,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub database: Option<String>,
    pub application_name: String,
    /// Command-line options for the session (`-c search_path=x`).
    pub options: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub keepalive: bool,
    pub tls: Tls,
}

impl std::fmt::Debug for StartupOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartupOptions")
            .field("hosts", &self.hosts)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("application_name", &self.application_name)
            .field("options", &self.options)
            .field("tls", &self.tls)
            .finish()
    }
}

/// What a CancelRequest for this session needs: where it is, and its key.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    pub host: Host,
    pub port: u16,
    pub process_id: i32,
    pub secret_key: i32,
    /// The session used TLS: so does its CancelRequest.
    pub tls: Option<Tls>,
}

/// An open session, ready for queries.
pub struct Session {
    pub stream: Stream,
    /// Bytes read past the first ReadyForQuery (none, unless the server sent something early).
    pub read_buf: BytesMut,
    pub cancel: Option<CancelTarget>,
    /// ParameterStatus values the server sent (`is_superuser`, `server_version`, ...).
    pub parameters: HashMap<String, String>,
}

/// Which step of opening a session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The host name did not resolve.
    Dns,
    /// Nothing listens there, or the network refused.
    Refused,
    Tls,
    /// The server refused the credentials (or asked for one we do not have).
    Authentication,
    /// The server refused the session for another reason (too many clients, starting up).
    Server,
    /// The connection broke, or the server spoke no protocol we know.
    Io,
}

#[derive(Debug, Clone)]
pub struct ConnectError {
    pub cause: Cause,
    /// The server's SQLSTATE, when it sent an error.
    pub code: Option<String>,
    pub message: String,
}

impl Cause {
    /// How `CONNECTION_FAILED` names it.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Dns => "DNS",
            Cause::Refused => "unreachable",
            Cause::Tls => "TLS",
            Cause::Authentication => "authentication",
            Cause::Server => "refused by the server",
            Cause::Io => "connection broken",
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (cause: {})", self.message, self.cause.label())
    }
}

impl ConnectError {
    fn new(cause: Cause, message: impl Into<String>) -> Self {
        ConnectError {
            cause,
            code: None,
            message: message.into(),
        }
    }

    /// `connect_timeout` of the connection string ran out.
    pub fn timed_out(limit: Duration) -> Self {
        ConnectError::new(
            Cause::Refused,
            format!("no session within connect_timeout ({} s)", limit.as_secs()),
        )
    }

    fn io(what: &str, err: std::io::Error) -> Self {
        ConnectError::new(Cause::Io, format!("{what}: {err}"))
    }

    /// Whether another attempt may succeed: a network failure or a server that is starting up
    /// or full may, refused credentials will not.
    pub fn retryable(&self) -> bool {
        match self.cause {
            Cause::Authentication | Cause::Tls => false,
            Cause::Server => matches!(
                self.code.as_deref(),
                Some("57P03" | "53300" | "53400" | "08006" | "08001" | "08004")
            ),
            Cause::Dns | Cause::Refused | Cause::Io => true,
        }
    }
}

/// Opens a session on the first host that accepts one.
pub async fn open(options: &StartupOptions) -> Result<Session, ConnectError> {
    let mut last = ConnectError::new(Cause::Refused, "no host to connect to");
    for (host, port) in &options.hosts {
        match open_one(options, host, *port).await {
            Ok(session) => return Ok(session),
            Err(err) if matches!(err.cause, Cause::Authentication) => return Err(err),
            Err(err) => last = err,
        }
    }
    Err(last)
}

async fn open_one(
    options: &StartupOptions,
    host: &Host,
    port: u16,
) -> Result<Session, ConnectError> {
    let (stream, tls) = match host {
        Host::Tcp(name) => {
            let tcp = tcp_connect(name, port, options.keepalive).await?;
            negotiate_tls(tcp, name, &options.tls).await?
        }
        #[cfg(unix)]
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            let unix = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
                ConnectError::new(
                    Cause::Refused,
                    format!("could not connect to the socket {}: {e}", path.display()),
                )
            })?;
            (Stream::Unix(Arc::new(unix)), None)
        }
        #[cfg(not(unix))]
        Host::Unix(_) => {
            return Err(ConnectError::new(
                Cause::Refused,
                "Unix sockets are not available on this platform",
            ))
        }
    };
    let mut handshake = Handshake {
        stream,
        buf: BytesMut::with_capacity(8192),
    };
    handshake.startup(options).await?;
    handshake.authenticate(options).await?;
    let (key, parameters) = handshake.greeting().await?;
    Ok(Session {
        stream: handshake.stream,
        read_buf: handshake.buf,
        cancel: key.map(|(process_id, secret_key)| CancelTarget {
            host: host.clone(),
            port,
            process_id,
            secret_key,
            tls,
        }),
        parameters,
    })
}

/// A TCP connection to the first address of `name` that answers, with TCP_NODELAY (requests
/// are whole when written) and keepalive (a vanished peer is noticed while the session idles).
pub async fn tcp_connect(
    name: &str,
    port: u16,
    keepalive: bool,
) -> Result<TcpStream, ConnectError> {
    let addresses: Vec<_> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| ConnectError::new(Cause::Dns, format!("could not resolve {name}: {e}")))?
        .collect();
    let mut last = ConnectError::new(Cause::Dns, format!("{name} resolved to no address"));
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                if keepalive {
                    let params = socket2::TcpKeepalive::new()
                        .with_time(Duration::from_secs(30))
                        .with_interval(Duration::from_secs(10));
                    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
                    let params = params.with_retries(3);
                    let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&params);
                }
                return Ok(tcp);
            }
            Err(e) => {
                last = ConnectError::new(
                    Cause::Refused,
                    format!("could not connect to {address}: {e}"),
                )
            }
        }
    }
    Err(last)
}

/// Asks for TLS as `sslmode` says; the stream the session goes on with, and the TLS settings
/// when it is encrypted (its CancelRequest will be too).
async fn negotiate_tls(
    mut tcp: TcpStream,
    name: &str,
    settings: &Tls,
) -> Result<(Stream, Option<Tls>), ConnectError> {
    if settings.mode == SslMode::Disable {
        return Ok((Stream::Tcp(Arc::new(tcp)), None));
    }
    if !request_tls(&mut tcp).await? {
        if settings.mode == SslMode::Require {
            return Err(ConnectError::new(
                Cause::Tls,
                "the server does not accept TLS, and sslmode requires it",
            ));
        }
        return Ok((Stream::Tcp(Arc::new(tcp)), None));
    }
    let server = tls::server_name(name).map_err(|e| ConnectError::new(Cause::Tls, e))?;
    let connector = tokio_rustls::TlsConnector::from(settings.config.clone());
    let stream = connector.connect(server, tcp).await.map_err(|e| {
        ConnectError::new(Cause::Tls, format!("TLS handshake with {name} failed: {e}"))
    })?;
    Ok((
        Stream::Tls(Arc::new(SharedTls::new(stream))),
        Some(settings.clone()),
    ))
}

/// SSLRequest: whether the server agrees to TLS ('S') or not ('N').
pub async fn request_tls(tcp: &mut TcpStream) -> Result<bool, ConnectError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request)
        .await
        .map_err(|e| ConnectError::io("could not ask for TLS", e))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(|e| ConnectError::io("no answer to the TLS request", e))?;
    match answer[0] {
        b'S' => Ok(true),
        b'N' => Ok(false),
        other => Err(ConnectError::new(
            Cause::Io,
            format!("unexpected answer to the TLS request: {other:#x}"),
        )),
    }
}

/// The exchange before the session is ready.
struct Handshake {
    stream: Stream,
    buf: BytesMut,
}

impl Handshake {
    async fn send(&mut self, message: BytesMut) -> Result<(), ConnectError> {
        self.stream
            .write_all(&message)
            .await
            .map_err(|e| ConnectError::io("the connection broke during the handshake", e))
    }

    async fn next(&mut self) -> Result<Message, ConnectError> {
        loop {
            let parsed = Message::parse(&mut self.buf)
                .map_err(|e| ConnectError::io("the server sent a malformed message", e))?;
            if let Some(message) = parsed {
                if let Message::ErrorResponse(body) = &message {
                    return Err(refusal(db_error::read_fields(body.fields())));
                }
                return Ok(message);
            }
            let read =
                self.stream.read(&mut self.buf).await.map_err(|e| {
                    ConnectError::io("the connection broke during the handshake", e)
                })?;
            if read == 0 {
                return Err(ConnectError::new(
                    Cause::Io,
                    "the server closed the connection during the handshake",
                ));
            }
        }
    }

    async fn startup(&mut self, options: &StartupOptions) -> Result<(), ConnectError> {
        let mut params: Vec<(&str, &str)> = vec![
            ("user", &options.user),
            ("client_encoding", "UTF8"),
            ("application_name", &options.application_name),
        ];
        if let Some(database) = &options.database {
            params.push(("database", database));
        }
        if let Some(session_options) = &options.options {
            params.push(("options", session_options));
        }
        let mut message = BytesMut::new();
        frontend::startup_message(params, &mut message)
            .map_err(|e| ConnectError::new(Cause::Io, format!("bad startup parameter: {e}")))?;
        self.send(message).await
    }

    async fn authenticate(&mut self, options: &StartupOptions) -> Result<(), ConnectError> {
        loop {
            match self.next().await? {
                Message::AuthenticationOk => return Ok(()),
                Message::AuthenticationCleartextPassword => {
                    let password = password_of(options)?;
                    self.send_password(password).await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let password = password_of(options)?;
                    let hash = md5_hash(options.user.as_bytes(), password, body.salt());
                    self.send_password(hash.as_bytes()).await?;
                }
                Message::AuthenticationSasl(body) => {
                    self.scram(options, &body).await?;
                    return self.expect_ok().await;
                }
                Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGss
                | Message::AuthenticationSspi => {
                    return Err(ConnectError::new(
                        Cause::Authentication,
                        "the server asks for an authentication method connection-pools does not \
                         support (Kerberos, GSSAPI, SSPI or SCM credentials); use password, md5 \
                         or scram-sha-256 in pg_hba.conf",
                    ))
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    async fn send_password(&mut self, password: &[u8]) -> Result<(), ConnectError> {
        let mut message = BytesMut::new();
        frontend::password_message(password, &mut message)
            .map_err(|e| ConnectError::new(Cause::Authentication, format!("bad password: {e}")))?;
        self.send(message).await
    }

    async fn expect_ok(&mut self) -> Result<(), ConnectError> {
        match self.next().await? {
            Message::AuthenticationOk => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// SCRAM-SHA-256, with channel binding when the session is TLS and the server offers it.
    async fn scram(
        &mut self,
        options: &StartupOptions,
        offer: &AuthenticationSaslBody,
    ) -> Result<(), ConnectError> {
        let password = password_of(options)?;
        let (mechanism, binding) = choose_mechanism(offer, self.stream.peer_certificate())?;
        let mut scram = sasl::ScramSha256::new(password, binding);
        let mut message = BytesMut::new();
        frontend::sasl_initial_response(mechanism, scram.message(), &mut message)
            .map_err(|e| ConnectError::io("SCRAM", e))?;
        self.send(message).await?;
        let server_first = match self.next().await? {
            Message::AuthenticationSaslContinue(body) => body,
            other => return Err(unexpected(&other)),
        };
        scram
            .update(server_first.data())
            .map_err(|e| scram_failed(&e))?;
        let mut message = BytesMut::new();
        frontend::sasl_response(scram.message(), &mut message)
            .map_err(|e| ConnectError::io("SCRAM", e))?;
        self.send(message).await?;
        let server_final = match self.next().await? {
            Message::AuthenticationSaslFinal(body) => body,
            other => return Err(unexpected(&other)),
        };
        scram
            .finish(server_final.data())
            .map_err(|e| scram_failed(&e))
    }

    /// BackendKeyData and ParameterStatus until ReadyForQuery.
    async fn greeting(
        &mut self,
    ) -> Result<(Option<(i32, i32)>, HashMap<String, String>), ConnectError> {
        let mut key = None;
        let mut parameters = HashMap::new();
        loop {
            match self.next().await? {
                Message::BackendKeyData(body) => key = Some((body.process_id(), body.secret_key())),
                Message::ParameterStatus(body) => {
                    if let (Ok(name), Ok(value)) = (body.name(), body.value()) {
                        parameters.insert(name.to_string(), value.to_string());
                    }
                }
                Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => return Ok((key, parameters)),
                other => return Err(unexpected(&other)),
            }
        }
    }
}

/// SCRAM-SHA-256-PLUS when the session is TLS, the certificate's hash is known and the server
/// offers it; plain SCRAM-SHA-256 otherwise, telling the server whether we could have bound
/// (so that a man in the middle who strips the `-PLUS` offer is caught).
fn choose_mechanism(
    offer: &AuthenticationSaslBody,
    certificate: Option<Vec<u8>>,
) -> Result<(&'static str, sasl::ChannelBinding), ConnectError> {
    use fallible_iterator::FallibleIterator;
    let mut plain = false;
    let mut plus = false;
    let mut mechanisms = offer.mechanisms();
    while let Some(mechanism) = mechanisms
        .next()
        .map_err(|e| ConnectError::io("bad SASL offer", e))?
    {
        match mechanism {
            sasl::SCRAM_SHA_256 => plain = true,
            sasl::SCRAM_SHA_256_PLUS => plus = true,
            _ => {}
        }
    }
    let end_point = certificate.as_deref().and_then(tls::server_end_point);
    match (plus, plain, end_point) {
        (true, _, Some(hash)) => Ok((
            sasl::SCRAM_SHA_256_PLUS,
            sasl::ChannelBinding::tls_server_end_point(hash),
        )),
        (_, true, Some(_)) => Ok((sasl::SCRAM_SHA_256, sasl::ChannelBinding::unrequested())),
        (_, true, None) => Ok((sasl::SCRAM_SHA_256, sasl::ChannelBinding::unsupported())),
        _ => Err(ConnectError::new(
            Cause::Authentication,
            "the server offers no SASL mechanism connection-pools supports (SCRAM-SHA-256)",
        )),
    }
}

fn password_of(options: &StartupOptions) -> Result<&[u8], ConnectError> {
    options.password.as_deref().ok_or_else(|| {
        ConnectError::new(
            Cause::Authentication,
            format!(
                "the server asks for a password for user \"{}\" and the connection string has none",
                options.user
            ),
        )
    })
}

fn scram_failed(err: &std::io::Error) -> ConnectError {
    ConnectError::new(
        Cause::Authentication,
        format!("SCRAM authentication failed: {err}"),
    )
}

/// The server's ErrorResponse during the handshake, with the step it stands for.
fn refusal(fields: crate::error::DatabaseErrorFields) -> ConnectError {
    let cause = if fields.code.starts_with("28") {
        Cause::Authentication
    } else {
        Cause::Server
    };
    let what = if cause == Cause::Authentication {
        "authentication failed"
    } else {
        "the server refused the session"
    };
    ConnectError {
        cause,
        message: format!("{what}: {} ({})", fields.message, fields.code),
        code: Some(fields.code),
    }
}

fn unexpected(message: &Message) -> ConnectError {
    let name = match message {
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::AuthenticationOk => "AuthenticationOk",
        _ => "a message",
    };
    ConnectError::new(
        Cause::Io,
        format!("the server sent {name} out of turn during the handshake"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl_offer(mechanisms: &[&str]) -> AuthenticationSaslBody {
        let mut body = Vec::new();
        body.extend_from_slice(&10i32.to_be_bytes());
        for m in mechanisms {
            body.extend_from_slice(m.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut buf = BytesMut::from(&crate::db::engine::wire::testing::message(b'R', &body)[..]);
        match Message::parse(&mut buf).unwrap() {
            Some(Message::AuthenticationSasl(body)) => body,
            _ => panic!("not a SASL offer"),
        }
    }

    #[test]
    fn plain_scram_without_tls() {
        let offer = sasl_offer(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        let (mechanism, _) = choose_mechanism(&offer, None).unwrap();
        assert_eq!(mechanism, "SCRAM-SHA-256");
        let none = sasl_offer(&["SOMETHING-ELSE"]);
        let Err(refused) = choose_mechanism(&none, None) else {
            panic!("no mechanism in common")
        };
        assert_eq!(refused.cause, Cause::Authentication);
    }

    #[test]
    fn refusals_name_their_step_and_retry_only_what_may_pass() {
        let auth = refusal(crate::error::DatabaseErrorFields {
            code: "28P01".into(),
            message: "password authentication failed for user \"app\"".into(),
            ..Default::default()
        });
        assert_eq!(auth.cause, Cause::Authentication);
        assert!(auth
            .message
            .starts_with("authentication failed: password authentication"));
        assert!(!auth.retryable());
        let starting = refusal(crate::error::DatabaseErrorFields {
            code: "57P03".into(),
            message: "the database system is starting up".into(),
            ..Default::default()
        });
        assert!(starting.retryable());
        assert!(ConnectError::new(Cause::Refused, "refused").retryable());
    }

    #[test]
    fn debug_hides_the_password() {
        let options = StartupOptions {
            hosts: vec![(Host::Tcp("h".into()), 5432)],
            user: "u".into(),
            password: Some(b"hunter22".to_vec()),
            database: None,
            application_name: "a".into(),
            options: None,
            connect_timeout: None,
            keepalive: true,
            tls: tls::tls_for("disable", None).unwrap(),
        };
        assert!(!format!("{options:?}").contains("hunter22"));
    }
}
