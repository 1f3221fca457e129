//! Opening one connection: the connection string read into tokio-postgres's `Config`, TLS as
//! libpq's `sslmode` means it, and the connection task that owns the socket.
//!
//! The URL is read here (not by `Config::from_str`) so that every accepted parameter is one we
//! understand and an unknown one is an `INVALID_CONFIG` naming it, never a silent ignore. TLS is
//! rustls with ring (as the HTTP clients): `disable` sends no TLS request, `prefer` tries TLS and
//! falls back to plain text, `require` insists on TLS but, as libpq, does not verify the
//! certificate (unless `sslrootcert` is given), `verify-ca` and `verify-full` check the chain
//! against the Mozilla roots (or `sslrootcert`) and the host name.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::db::engine::connection::SessionEnd;
use crate::error::PoolError;

/// A new connection: the client, the task that drives its socket, and how its session ends.
pub struct Opened {
    pub client: tokio_postgres::Client,
    pub task: tokio::task::JoinHandle<()>,
    pub end: Arc<SessionEnd>,
    /// The server's `is_superuser` for the login role, when it reported one.
    pub superuser: Option<bool>,
}

/// Shown in `pg_stat_activity` unless the connection string names its own.
const APPLICATION_NAME: &str = "connection-pools";

/// Everything needed to open a connection, parsed once.
#[derive(Clone)]
pub struct ConnectOptions {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// `pgbouncer=true` in the URL, or Supavisor's transaction-mode port.
    transaction_pooler_hint: bool,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio-postgres's own Debug redacts the password; the TLS connector has nothing to show.
        f.debug_struct("ConnectOptions")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn invalid(message: String) -> PoolError {
    PoolError::InvalidConfig(message)
}

impl ConnectOptions {
    /// Reads a `postgres://user:password@host:port/database?param=value` URL. Errors never quote
    /// the URL: it may hold the password.
    pub fn from_url(parsed: &url::Url) -> Result<Self, PoolError> {
        let mut config = tokio_postgres::Config::new();
        let decode = |s: &str| {
            percent_decode(s)
                .ok_or_else(|| invalid("connectionString has invalid %-escapes".into()))
        };
        if !parsed.username().is_empty() {
            config.user(decode(parsed.username())?);
        }
        if let Some(password) = parsed.password() {
            config.password(decode(password)?);
        }
        let database = parsed.path().trim_start_matches('/');
        if !database.is_empty() {
            config.dbname(decode(database)?);
        }
        if let Some(host) = parsed.host_str() {
            // IPv6 hosts arrive bracketed from the URL parser.
            config.host(host.trim_start_matches('[').trim_end_matches(']'));
        }
        if let Some(port) = parsed.port() {
            config.port(port);
        }
        let mut ssl_mode = "prefer".to_string();
        let mut root_cert: Option<String> = None;
        let mut application_name = None;
        let mut pgbouncer = false;
        for (key, value) in parsed.query_pairs() {
            let value = value.into_owned();
            match &*key {
                "sslmode" => ssl_mode = value,
                "sslrootcert" => root_cert = Some(value),
                "application_name" => application_name = Some(value),
                // Prisma's and Supabase's mark of a transaction pooler.
                "pgbouncer" => {
                    pgbouncer = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(invalid(
                                "connectionString: pgbouncer must be true or false".into(),
                            ))
                        }
                    }
                }
                "options" => {
                    config.options(value);
                }
                "user" => {
                    config.user(value);
                }
                "password" => {
                    config.password(value);
                }
                "dbname" => {
                    config.dbname(value);
                }
                "host" if value.starts_with('/') => {
                    config.host_path(value);
                }
                "host" => {
                    config.host(value);
                }
                "port" => {
                    let port = value
                        .parse()
                        .map_err(|_| invalid("connectionString: port must be a number".into()))?;
                    config.port(port);
                }
                "connect_timeout" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        invalid("connectionString: connect_timeout must be whole seconds".into())
                    })?;
                    config.connect_timeout(Duration::from_secs(secs));
                }
                other => {
                    return Err(invalid(format!(
                        "connectionString has a parameter connection-pools does not understand: '{other}' \
                         (known: sslmode, sslrootcert, application_name, pgbouncer, options, user, password, dbname, host, port, connect_timeout)"
                    )))
                }
            }
        }
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        config.application_name(application_name.as_deref().unwrap_or(APPLICATION_NAME));
        let transaction_pooler_hint = pgbouncer || config.get_ports().first() == Some(&6543);
        let tls = tls_for(&ssl_mode, root_cert.as_deref(), &mut config)?;
        let mut options = ConnectOptions {
            config,
            tls,
            transaction_pooler_hint,
        };
        options.set_keep_alive(true);
        Ok(options)
    }

    pub fn looks_like_transaction_pooler(&self) -> bool {
        self.transaction_pooler_hint
    }

    /// TCP keepalive: a peer that vanished (a dead path, a dropped NAT entry) is noticed while
    /// the connection sits idle, not only when it is next used.
    pub fn set_keep_alive(&mut self, on: bool) {
        self.config.keepalives(on);
        if on {
            self.config.keepalives_idle(Duration::from_secs(30));
            self.config.keepalives_interval(Duration::from_secs(10));
            self.config.keepalives_retries(3);
        }
    }

    /// Asks the server to cancel what `token`'s session is running, over a connection of its own.
    pub async fn cancel(&self, token: &tokio_postgres::CancelToken) -> Result<(), String> {
        token
            .cancel_query(self.tls.clone())
            .await
            .map_err(|e| e.to_string())
    }

    /// Opens a connection; its socket is driven by a task of its own until the client is dropped
    /// or the server goes away (then `Client::is_closed()` turns true).
    pub async fn connect(&self) -> Result<Opened, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        let superuser = connection.parameter("is_superuser").map(|v| v == "on");
        let end = Arc::new(SessionEnd::default());
        let task = tokio::spawn({
            let end = end.clone();
            async move { end.finished(&connection.await) }
        });
        Ok(Opened {
            client,
            task,
            end,
            superuser,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn tls_for(
    ssl_mode: &str,
    root_cert: Option<&str>,
    config: &mut tokio_postgres::Config,
) -> Result<MakeRustlsConnect, PoolError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mode, verify) = match ssl_mode {
        "disable" => (SslMode::Disable, false),
        "allow" | "prefer" => (SslMode::Prefer, root_cert.is_some()),
        "require" => (SslMode::Require, root_cert.is_some()),
        "verify-ca" | "verify-full" => (SslMode::Require, true),
        other => {
            return Err(invalid(format!(
                "connectionString: sslmode '{other}' is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )))
        }
    };
    config.ssl_mode(mode);
    let builder = rustls::ClientConfig::builder();
    let client_config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        match root_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    invalid(format!(
                        "connectionString: sslrootcert could not be read ({e})"
                    ))
                })?;
                for cert in rustls_pemfile_certs(&pem)? {
                    roots.add(cert).map_err(|e| {
                        invalid(format!(
                            "connectionString: sslrootcert holds a bad certificate ({e})"
                        ))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly::new()))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(client_config))
}

fn rustls_pemfile_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PoolError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("connectionString: sslrootcert is not PEM ({e})")))
}

/// `sslmode=require` as libpq means it: the session is encrypted, the certificate is not checked
/// (the handshake signature still is, so the server must hold the key of the certificate it sent).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl EncryptOnly {
    fn new() -> Self {
        EncryptOnly(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> Result<ConnectOptions, PoolError> {
        ConnectOptions::from_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn reads_the_parts_of_a_url() {
        let o = options("postgres://app:p%40ss@db.example:6543/main?options=-c%20search_path%3Dx")
            .unwrap();
        assert_eq!(o.config.get_user(), Some("app"));
        assert_eq!(o.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(o.config.get_dbname(), Some("main"));
        assert_eq!(o.config.get_ports(), &[6543]);
        assert_eq!(o.config.get_options(), Some("-c search_path=x"));
        assert_eq!(o.config.get_application_name(), Some("connection-pools"));
        assert_eq!(o.config.get_ssl_mode(), SslMode::Prefer);
    }

    #[test]
    fn ssl_modes_and_unknown_parameters() {
        assert_eq!(
            options("postgres://u@h/d?sslmode=disable")
                .unwrap()
                .config
                .get_ssl_mode(),
            SslMode::Disable
        );
        assert_eq!(
            options("postgres://u@h/d?sslmode=verify-full")
                .unwrap()
                .config
                .get_ssl_mode(),
            SslMode::Require
        );
        for bad in [
            "postgres://u@h/d?sslmode=sometimes",
            "postgres://u@h/d?statement_cache=1",
        ] {
            assert_eq!(options(bad).unwrap_err().code(), "INVALID_CONFIG", "{bad}");
        }
        let err = options("postgres://u:hunter22@h/d?bogus=1").unwrap_err();
        assert!(!err.to_string().contains("hunter22"));
        assert!(err.to_string().contains("'bogus'"));
    }

    #[test]
    fn an_explicit_application_name_wins() {
        let o = options("postgres://u@h/d?application_name=mine").unwrap();
        assert_eq!(o.config.get_application_name(), Some("mine"));
    }
}
