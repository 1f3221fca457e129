//! The connection string read into the options a session opens with (`wire::startup`).
//!
//! The URL is read here so that every accepted parameter is one we understand and an unknown one
//! is an `INVALID_CONFIG` naming it, never a silent ignore. Errors never quote the URL: it may
//! hold the password.

use std::path::PathBuf;
use std::time::Duration;

use crate::db::engine::wire::startup::{Host, StartupOptions};
use crate::db::engine::wire::tls;
use crate::error::PoolError;

/// Shown in `pg_stat_activity` unless the connection string names its own.
const APPLICATION_NAME: &str = "connection-pools";

/// Everything needed to open a connection, parsed once.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    startup: StartupOptions,
    /// `pgbouncer=true` in the URL, or Supavisor's transaction-mode port.
    transaction_pooler_hint: bool,
}

fn invalid(message: String) -> PoolError {
    PoolError::InvalidConfig(message)
}

/// What the URL's query string may set, beside the parts of the URL itself.
#[derive(Default)]
struct Parameters {
    ssl_mode: Option<String>,
    root_cert: Option<String>,
    application_name: Option<String>,
    pgbouncer: bool,
    host: Option<Host>,
    port: Option<u16>,
}

impl ConnectOptions {
    /// Reads a `postgres://user:password@host:port/database?param=value` URL.
    pub fn from_url(parsed: &url::Url) -> Result<Self, PoolError> {
        let decode = |s: &str| {
            percent_decode(s)
                .ok_or_else(|| invalid("connectionString has invalid %-escapes".into()))
        };
        let mut startup = StartupOptions {
            hosts: Vec::new(),
            user: decode(parsed.username())?,
            password: parsed
                .password()
                .map(decode)
                .transpose()?
                .map(String::into_bytes),
            database: Some(decode(parsed.path().trim_start_matches('/'))?)
                .filter(|d| !d.is_empty()),
            application_name: APPLICATION_NAME.into(),
            options: None,
            connect_timeout: None,
            keepalive: true,
            tls: tls::tls_for("disable", None)?,
        };
        let mut extra = Parameters::default();
        for (key, value) in parsed.query_pairs() {
            read_parameter(&key, value.into_owned(), &mut startup, &mut extra)?;
        }
        if startup.user.is_empty() {
            // As libpq: the operating system's user name.
            startup.user = std::env::var("USER")
                .or_else(|_| std::env::var("USERNAME"))
                .unwrap_or_else(|_| "postgres".into());
        }
        let port = extra.port.or(parsed.port()).unwrap_or(5432);
        if let Some(host) = parsed.host_str() {
            // IPv6 hosts arrive bracketed from the URL parser.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            startup.hosts.push((Host::Tcp(host.to_string()), port));
        }
        if let Some(host) = extra.host {
            startup.hosts.push((host, port));
        }
        if startup.hosts.is_empty() {
            startup.hosts.push((Host::Tcp("localhost".into()), port));
        }
        if let Some(name) = extra.application_name {
            startup.application_name = name;
        }
        startup.tls = tls::tls_for(
            extra.ssl_mode.as_deref().unwrap_or("prefer"),
            extra.root_cert.as_deref(),
        )?;
        Ok(ConnectOptions {
            transaction_pooler_hint: extra.pgbouncer || port == 6543,
            startup,
        })
    }

    /// `host:port/database` of the first host, as OpenTelemetry names a pool by default (no
    /// user, no password).
    pub fn display_name(&self) -> String {
        let (host, port) = self.server();
        format!("{host}:{port}/{}", self.database())
    }

    /// The first host and port, for `server.address` and `server.port` in telemetry.
    pub fn server(&self) -> (String, u16) {
        match self.startup.hosts.first() {
            Some((Host::Tcp(name), port)) => (name.clone(), *port),
            Some((Host::Unix(dir), port)) => (dir.display().to_string(), *port),
            None => (String::new(), 0),
        }
    }

    /// The database the sessions open (the user's name when the URL names none).
    pub fn database(&self) -> &str {
        self.startup
            .database
            .as_deref()
            .unwrap_or(&self.startup.user)
    }

    pub fn looks_like_transaction_pooler(&self) -> bool {
        self.transaction_pooler_hint
    }

    /// TCP keepalive: a peer that vanished (a dead path, a dropped NAT entry) is noticed while
    /// the connection sits idle, not only when it is next used.
    pub fn set_keep_alive(&mut self, on: bool) {
        self.startup.keepalive = on;
    }

    /// What a session opens with.
    pub fn startup(&self) -> &StartupOptions {
        &self.startup
    }
}

fn read_parameter(
    key: &str,
    value: String,
    startup: &mut StartupOptions,
    extra: &mut Parameters,
) -> Result<(), PoolError> {
    match key {
        "sslmode" => extra.ssl_mode = Some(value),
        "sslrootcert" => extra.root_cert = Some(value),
        "application_name" => extra.application_name = Some(value),
        // Prisma's and Supabase's mark of a transaction pooler.
        "pgbouncer" => {
            extra.pgbouncer = match value.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(invalid("connectionString: pgbouncer must be true or false".into())),
            }
        }
        "options" => startup.options = Some(value),
        "user" => startup.user = value,
        "password" => startup.password = Some(value.into_bytes()),
        "dbname" => startup.database = Some(value),
        "host" if value.starts_with('/') => extra.host = Some(Host::Unix(PathBuf::from(value))),
        "host" => extra.host = Some(Host::Tcp(value)),
        "port" => {
            extra.port = Some(
                value
                    .parse()
                    .map_err(|_| invalid("connectionString: port must be a number".into()))?,
            )
        }
        "connect_timeout" => {
            let secs: u64 = value.parse().map_err(|_| {
                invalid("connectionString: connect_timeout must be whole seconds".into())
            })?;
            startup.connect_timeout = Some(Duration::from_secs(secs));
        }
        other => {
            return Err(invalid(format!(
                "connectionString has a parameter connection-pools does not understand: '{other}' \
                 (known: sslmode, sslrootcert, application_name, pgbouncer, options, user, password, dbname, host, port, connect_timeout)"
            )))
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::engine::wire::tls::SslMode;

    fn options(url: &str) -> Result<ConnectOptions, PoolError> {
        ConnectOptions::from_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn reads_the_parts_of_a_url() {
        let o = options("postgres://app:p%40ss@db.example:6543/main?options=-c%20search_path%3Dx")
            .unwrap();
        let s = o.startup();
        assert_eq!(s.user, "app");
        assert_eq!(s.password.as_deref(), Some(&b"p@ss"[..]));
        assert_eq!(s.database.as_deref(), Some("main"));
        assert_eq!(s.hosts, vec![(Host::Tcp("db.example".into()), 6543)]);
        assert_eq!(s.options.as_deref(), Some("-c search_path=x"));
        assert_eq!(s.application_name, "connection-pools");
        assert_eq!(s.tls.mode, SslMode::Prefer);
        assert!(
            o.looks_like_transaction_pooler(),
            "Supavisor's transaction port"
        );
    }

    #[test]
    fn ssl_modes_and_unknown_parameters() {
        let mode = |url: &str| options(url).unwrap().startup().tls.mode;
        assert_eq!(mode("postgres://u@h/d?sslmode=disable"), SslMode::Disable);
        assert_eq!(
            mode("postgres://u@h/d?sslmode=verify-full"),
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
    fn an_explicit_application_name_and_a_socket_directory() {
        let o =
            options("postgres://u@h/d?application_name=mine&host=/var/run/postgresql&port=5433")
                .unwrap();
        assert_eq!(o.startup().application_name, "mine");
        assert_eq!(
            o.startup().hosts,
            vec![
                (Host::Tcp("h".into()), 5433),
                (Host::Unix("/var/run/postgresql".into()), 5433)
            ]
        );
        assert!(!format!("{o:?}").contains("hunter"));
    }
}
