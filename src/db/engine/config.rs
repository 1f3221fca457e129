//! `DatabasePool.initialize(config)`: the options, their defaults, and their validation.
//!
//! The facade hands the options over as JSON text so that every malformed value (a string where
//! a number belongs, a typo in a key, a negative timeout) is caught here with one clear
//! `INVALID_CONFIG` message, instead of a napi type error with some other code. Defaults live in
//! `Defaults` below and nowhere else. The connection string is kept only as parsed options and as
//! a masked copy for display, so the password cannot leak through `getPoolConfig()`.

use std::time::Duration;

use serde::Deserialize;

use crate::db::engine::connect::ConnectOptions;
use crate::error::PoolError;
use crate::options::whole_number;

/// The seed's defaults plus ours, in one place.
struct Defaults;
impl Defaults {
    const MAX_CONNECTIONS: u32 = 20;
    const MIN_CONNECTIONS: u32 = 5;
    const CONNECTION_TIMEOUT_MS: u64 = 30_000;
    const IDLE_TIMEOUT_MS: u64 = 60_000;
    const MAX_RETRIES: u32 = 3;
    const RETRY_DELAY_MS: u64 = 1_000;
    const ANON_ROLE: &'static str = "anon";
    const AUTHENTICATED_ROLE: &'static str = "authenticated";
    /// Supabase's role for trusted server-side tokens; allowed by default, as Supabase does.
    const SERVICE_ROLE: &'static str = "service_role";
    /// Statements in flight on one connection at once (pipelined).
    const PIPELINE_DEPTH: u32 = 8;
    const STATEMENT_TIMEOUT_MS: u64 = 60_000;
    /// A Supabase HTTP service's answer (Auth, Storage, Functions, REST over HTTP).
    const HTTP_TIMEOUT_MS: u64 = 60_000;
    /// A connection's lifetime before jitter (postgres.js recycles at 30 to 60 minutes too), so
    /// that a DNS failover or a pooler's rebalance reaches long-lived connections.
    const MAX_LIFETIME_MS: u64 = 30 * 60_000;
    /// Off: stacks are captured only while leak detection is on.
    const LEAK_DETECTION_THRESHOLD_MS: u64 = 0;
}

/// What sits between the pool and Postgres, which decides whether a statement may rely on
/// server state from an earlier flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// A transaction pooler (PgBouncer `pool_mode = transaction`, Supavisor on port 6543): each
    /// transaction may land on another server connection, so no named statements, and each
    /// statement goes out in one flight with its parameters typed by the server.
    Transaction,
    /// A session pooler: one server connection per client connection, as if direct.
    Session,
    None,
}

impl Pooler {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooler::Transaction => "transaction",
            Pooler::Session => "session",
            Pooler::None => "none",
        }
    }
}

/// Upper bounds that catch unit mistakes (seconds passed as ms is fine; ms passed as µs is not).
const MAX_CONNECTIONS_LIMIT: f64 = 10_000.0;
const MAX_DURATION_MS: f64 = 2_147_483_647.0;
const MAX_RETRIES_LIMIT: f64 = 100.0;

/// The options as JS passes them; every field optional, unknown fields refused.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    max_connections: Option<f64>,
    min_connections: Option<f64>,
    connection_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    max_retries: Option<f64>,
    retry_delay: Option<f64>,
    pipeline_depth: Option<f64>,
    statement_timeout: Option<f64>,
    pooler: Option<String>,
    keep_alive: Option<bool>,
    connection_string: Option<String>,
    anon_role: Option<String>,
    authenticated_role: Option<String>,
    jwt_secret: Option<String>,
    jwks_url: Option<String>,
    allowed_roles: Option<Vec<String>>,
    schemas: Option<Vec<String>>,
    plan_enabled: Option<bool>,
    http_timeout: Option<f64>,
    max_lifetime: Option<f64>,
    leak_detection_threshold: Option<f64>,
    pool_name: Option<String>,
}

/// The environment variables that supply defaults, read by the facade from `process.env`.
#[derive(Debug, Default, Deserialize)]
pub struct ConfigEnv {
    #[serde(rename = "DATABASE_URL")]
    pub database_url: Option<String>,
    #[serde(rename = "SUPABASE_JWT_SECRET")]
    pub supabase_jwt_secret: Option<String>,
    #[serde(rename = "SUPABASE_JWKS_URL")]
    pub supabase_jwks_url: Option<String>,
    #[serde(rename = "SUPABASE_URL")]
    pub supabase_url: Option<String>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub min_connections: u32,
    pub connection_timeout: Duration,
    /// `None` disables idle reaping (an `idleTimeout` of 0).
    pub idle_timeout: Option<Duration>,
    pub max_retries: u32,
    pub retry_delay: Duration,
    /// Most statements in flight on one connection at once; 1 turns pipelining off.
    pub pipeline_depth: u32,
    /// Past it a statement is cancelled on the server; `None` for `statementTimeout: 0`.
    pub statement_timeout: Option<Duration>,
    pub pooler: Pooler,
    /// TCP keepalive on every connection.
    pub keep_alive: bool,
    pub connect_options: ConnectOptions,
    /// False when neither `connectionString` nor `DATABASE_URL` gave one: SQL is then refused
    /// with `INVALID_CONFIG`, and the Supabase clients answer REST over HTTP.
    pub has_connection_string: bool,
    /// The connection string with its password replaced by `****` (empty when there is none).
    pub masked_connection_string: String,
    /// How long one request to a Supabase HTTP service (Auth, Storage, Functions, REST without a
    /// connection string) may take, response body included.
    pub http_timeout: Duration,
    pub anon_role: String,
    pub authenticated_role: String,
    pub jwt_secret: Option<String>,
    /// Where the asymmetric signing keys are published (a JWKS document).
    pub jwks_url: Option<String>,
    /// The roles a verified token may run as.
    pub allowed_roles: Vec<String>,
    /// The schemas the builder may reach (PostgREST's `db-schemas`); the first is the default.
    pub schemas: Vec<String>,
    /// The builder answers `explain()` (PostgREST's `db-plan-enabled`, off by default: a plan
    /// tells a client about tables and indexes it may not read).
    pub plan_enabled: bool,
    /// A connection older than this (plus its own random jitter of up to half) is closed once
    /// its work is done; `None` for `maxLifetime: 0`.
    pub max_lifetime: Option<Duration>,
    /// Transactions held longer than this are reported with the stack that began them (the JS
    /// layer does the reporting); `None` when off.
    pub leak_detection_threshold: Option<Duration>,
    /// `db.client.connection.pool.name` in telemetry; by default `host:port/database`.
    pub pool_name: String,
}

impl PoolConfig {
    /// Parses and validates `config_json` (the options object) against `env_json` (defaults).
    pub fn from_json(config_json: &str, env_json: &str) -> Result<Self, PoolError> {
        let raw: RawConfig = crate::options::parse(config_json)?;
        let env: ConfigEnv = serde_json::from_str(env_json).unwrap_or_default();
        Self::validate(raw, env)
    }

    fn validate(raw: RawConfig, env: ConfigEnv) -> Result<Self, PoolError> {
        let jwks_url = jwks_url(raw.jwks_url.clone(), &env)?;
        let (max_connections, min_connections) = connection_counts(&raw)?;
        let connection_timeout = duration(
            "connectionTimeout",
            raw.connection_timeout,
            Defaults::CONNECTION_TIMEOUT_MS,
            1.0,
        )?;
        let idle_timeout =
            optional_duration("idleTimeout", raw.idle_timeout, Defaults::IDLE_TIMEOUT_MS)?;
        let max_retries = whole_number(
            "maxRetries",
            raw.max_retries,
            Defaults::MAX_RETRIES as f64,
            0.0,
            MAX_RETRIES_LIMIT,
        )? as u32;
        let retry_delay = duration("retryDelay", raw.retry_delay, Defaults::RETRY_DELAY_MS, 0.0)?;
        let pipeline_depth = whole_number(
            "pipelineDepth",
            raw.pipeline_depth,
            Defaults::PIPELINE_DEPTH as f64,
            1.0,
            1000.0,
        )? as u32;
        let url = raw
            .connection_string
            .or(env.database_url)
            .filter(|s| !s.trim().is_empty());
        let has_connection_string = url.is_some();
        let (mut connect_options, masked_connection_string) = match &url {
            Some(url) => parse_connection_string(url)?,
            // Never connected to: every statement is refused before it needs a connection.
            None => (parse_connection_string(UNCONFIGURED)?.0, String::new()),
        };
        let http_timeout = duration(
            "httpTimeout",
            raw.http_timeout,
            Defaults::HTTP_TIMEOUT_MS,
            1.0,
        )?;
        let statement_timeout = optional_duration(
            "statementTimeout",
            raw.statement_timeout,
            Defaults::STATEMENT_TIMEOUT_MS,
        )?;
        let pooler = pooler_of(raw.pooler.as_deref(), &connect_options)?;
        let keep_alive = raw.keep_alive.unwrap_or(true);
        connect_options.set_keep_alive(keep_alive);
        let (anon_role, authenticated_role, allowed_roles) =
            roles(raw.anon_role, raw.authenticated_role, raw.allowed_roles)?;
        let max_lifetime =
            optional_duration("maxLifetime", raw.max_lifetime, Defaults::MAX_LIFETIME_MS)?;
        let leak_detection_threshold = optional_duration(
            "leakDetectionThreshold",
            raw.leak_detection_threshold,
            Defaults::LEAK_DETECTION_THRESHOLD_MS,
        )?;
        let pool_name = match raw.pool_name {
            Some(name) if name.trim().is_empty() => {
                return Err(invalid("poolName must not be empty".into()))
            }
            Some(name) => name,
            None => connect_options.display_name(),
        };
        let jwt_secret = raw
            .jwt_secret
            .or(env.supabase_jwt_secret)
            .filter(|s| !s.is_empty());
        Ok(PoolConfig {
            max_connections,
            min_connections,
            connection_timeout,
            idle_timeout,
            max_retries,
            retry_delay,
            pipeline_depth,
            statement_timeout,
            pooler,
            keep_alive,
            connect_options,
            has_connection_string,
            masked_connection_string,
            http_timeout,
            anon_role,
            authenticated_role,
            jwt_secret,
            jwks_url,
            allowed_roles,
            schemas: schemas_of(raw.schemas)?,
            plan_enabled: raw.plan_enabled.unwrap_or(false),
            max_lifetime,
            leak_detection_threshold,
            pool_name,
        })
    }
}

/// `maxConnections` and `minConnections`, the second at most the first.
fn connection_counts(raw: &RawConfig) -> Result<(u32, u32), PoolError> {
    let max_connections = whole_number(
        "maxConnections",
        raw.max_connections,
        Defaults::MAX_CONNECTIONS as f64,
        1.0,
        MAX_CONNECTIONS_LIMIT,
    )? as u32;
    let min_connections = whole_number(
        "minConnections",
        raw.min_connections,
        (Defaults::MIN_CONNECTIONS as f64).min(max_connections as f64),
        0.0,
        MAX_CONNECTIONS_LIMIT,
    )? as u32;
    if min_connections > max_connections {
        return Err(invalid(format!(
            "minConnections ({min_connections}) must not exceed maxConnections ({max_connections})"
        )));
    }
    Ok((max_connections, min_connections))
}

/// A duration option in milliseconds, at least `min`.
fn duration(
    name: &str,
    value: Option<f64>,
    default_ms: u64,
    min: f64,
) -> Result<Duration, PoolError> {
    let ms = whole_number(name, value, default_ms as f64, min, MAX_DURATION_MS)?;
    Ok(Duration::from_millis(ms as u64))
}

/// A duration option in milliseconds where 0 means none.
fn optional_duration(
    name: &str,
    value: Option<f64>,
    default_ms: u64,
) -> Result<Option<Duration>, PoolError> {
    let duration = duration(name, value, default_ms, 0.0)?;
    Ok((!duration.is_zero()).then_some(duration))
}

/// `pooler`: as given, else a transaction pooler when the connection string looks like one
/// (port 6543, Supavisor's transaction port, or `pgbouncer=true` in it).
fn pooler_of(pooler: Option<&str>, connect_options: &ConnectOptions) -> Result<Pooler, PoolError> {
    match pooler {
        Some("transaction") => Ok(Pooler::Transaction),
        Some("session") => Ok(Pooler::Session),
        Some("none") => Ok(Pooler::None),
        Some(_) => Err(invalid(
            "pooler must be 'transaction', 'session' or 'none'".into(),
        )),
        None if connect_options.looks_like_transaction_pooler() => Ok(Pooler::Transaction),
        None => Ok(Pooler::None),
    }
}

/// `anonRole`, `authenticatedRole` and `allowedRoles` (by default those two and
/// `service_role`), each a valid role name.
fn roles(
    anon: Option<String>,
    authenticated: Option<String>,
    allowed: Option<Vec<String>>,
) -> Result<(String, String, Vec<String>), PoolError> {
    let anon_role = role_name("anonRole", anon, Defaults::ANON_ROLE)?;
    let authenticated_role = role_name(
        "authenticatedRole",
        authenticated,
        Defaults::AUTHENTICATED_ROLE,
    )?;
    let allowed_roles = match allowed {
        None => vec![
            anon_role.clone(),
            authenticated_role.clone(),
            Defaults::SERVICE_ROLE.to_string(),
        ],
        Some(roles) => roles
            .into_iter()
            .map(|role| role_name("allowedRoles", Some(role), ""))
            .collect::<Result<_, _>>()?,
    };
    Ok((anon_role, authenticated_role, allowed_roles))
}

/// `schemas`: the exposed schemas, `public` by default, at least one.
fn schemas_of(schemas: Option<Vec<String>>) -> Result<Vec<String>, PoolError> {
    match schemas {
        None => Ok(vec!["public".to_string()]),
        Some(list) if list.is_empty() => {
            Err(invalid("schemas must name at least one schema".into()))
        }
        Some(list) => list
            .into_iter()
            .map(|schema| schema_name(&schema).map(|()| schema))
            .collect(),
    }
}

/// Stands in for a connection string when there is none; never dialed.
const UNCONFIGURED: &str = "postgres://connection-pools.invalid/unconfigured";

/// The refusal of a statement when no connection string was given.
pub fn no_connection_string() -> PoolError {
    invalid(
        "no connection string: set DATABASE_URL (or pass connectionString) to run SQL; without \
         one the Supabase clients answer from()/rpc() over HTTP at SUPABASE_URL"
            .into(),
    )
}

/// A schema name for `schemas`: any identifier Postgres accepts (it is always quoted).
fn schema_name(schema: &str) -> Result<(), PoolError> {
    if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
        return Err(invalid(
            "schemas must be names of 1 to 63 bytes without NUL characters".into(),
        ));
    }
    Ok(())
}

/// The key set's address: the option, else env `SUPABASE_JWKS_URL`, else the one Supabase
/// publishes under env `SUPABASE_URL`. HTTPS only, except on loopback: keys fetched in the clear
/// over a network could be swapped by anyone on the path, and would then sign any role.
fn jwks_url(option: Option<String>, env: &ConfigEnv) -> Result<Option<String>, PoolError> {
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let Some(url) = non_empty(&option)
        .or_else(|| non_empty(&env.supabase_jwks_url))
        .or_else(|| {
            non_empty(&env.supabase_url).map(|base| {
                format!(
                    "{}/auth/v1/.well-known/jwks.json",
                    base.trim().trim_end_matches('/')
                )
            })
        })
    else {
        return Ok(None);
    };
    let parsed =
        url::Url::parse(url.trim()).map_err(|_| invalid("jwksUrl is not a valid URL".into()))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(invalid(
                "jwksUrl must be an https:// URL (http:// only on loopback)".into(),
            ))
        }
    }
    Ok(Some(parsed.to_string()))
}

fn invalid(message: String) -> PoolError {
    PoolError::InvalidConfig(message)
}

/// Role names go into `set_config('role', …)` later; they must be plain identifiers.
fn role_name(name: &str, value: Option<String>, default: &str) -> Result<String, PoolError> {
    let role = value.unwrap_or_else(|| default.to_string());
    let valid = !role.is_empty()
        && role.len() <= 63
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !role.starts_with(|c: char| c.is_ascii_digit() || c == '$');
    if !valid {
        return Err(invalid(format!(
            "{name} must be a role name of letters, digits and underscores (at most 63 bytes)"
        )));
    }
    Ok(role)
}

/// Parses a `postgres://` URL into connection options and a copy with the password masked.
///
/// Errors never quote the input: it may hold the password.
pub fn parse_connection_string(url: &str) -> Result<(ConnectOptions, String), PoolError> {
    let parsed = url::Url::parse(url).map_err(|e| {
        invalid(format!(
            "connectionString is not a valid URL ({e}); expected postgres://user:password@host:port/database"
        ))
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(invalid(format!(
            "connectionString must start with postgres:// or postgresql://, not {}://",
            parsed.scheme()
        )));
    }
    let options = ConnectOptions::from_url(&parsed)?;
    Ok((options, crate::secrets::masked(&parsed, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "postgres://app:s3cret-pw@db.example:5433/main";

    fn cfg(json: &str) -> Result<PoolConfig, PoolError> {
        PoolConfig::from_json(json, &format!(r#"{{"DATABASE_URL":"{URL}"}}"#))
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = cfg("{}").unwrap();
        assert_eq!(c.max_connections, 20);
        assert_eq!(c.min_connections, 5);
        assert_eq!(c.connection_timeout, Duration::from_millis(30_000));
        assert_eq!(c.idle_timeout, Some(Duration::from_millis(60_000)));
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.retry_delay, Duration::from_millis(1_000));
        assert_eq!(c.anon_role, "anon");
        assert_eq!(c.authenticated_role, "authenticated");
        assert_eq!(c.allowed_roles, ["anon", "authenticated", "service_role"]);
        assert_eq!(c.jwks_url, None);
    }

    #[test]
    fn allowed_roles_follow_the_configured_roles_or_the_option() {
        let c = cfg(r#"{"anonRole":"web_anon"}"#).unwrap();
        assert_eq!(
            c.allowed_roles,
            ["web_anon", "authenticated", "service_role"]
        );
        let c = cfg(r#"{"allowedRoles":["authenticated","editor"]}"#).unwrap();
        assert_eq!(c.allowed_roles, ["authenticated", "editor"]);
        for bad in [
            r#"{"allowedRoles":["x; drop"]}"#,
            r#"{"allowedRoles":"anon"}"#,
        ] {
            assert_eq!(cfg(bad).unwrap_err().code(), "INVALID_CONFIG", "{bad}");
        }
    }

    #[test]
    fn the_key_set_url_comes_from_the_option_or_the_environment() {
        let with_env = |env: &str| {
            PoolConfig::from_json("{}", &format!(r#"{{"DATABASE_URL":"{URL}",{env}}}"#)).unwrap()
        };
        assert_eq!(
            with_env(r#""SUPABASE_URL":"https://abc.supabase.co/""#)
                .jwks_url
                .as_deref(),
            Some("https://abc.supabase.co/auth/v1/.well-known/jwks.json")
        );
        assert_eq!(
            with_env(
                r#""SUPABASE_URL":"https://a.co","SUPABASE_JWKS_URL":"https://keys.example/j""#
            )
            .jwks_url
            .as_deref(),
            Some("https://keys.example/j")
        );
        let c = cfg(r#"{"jwksUrl":"http://127.0.0.1:8080/jwks"}"#).unwrap();
        assert_eq!(c.jwks_url.as_deref(), Some("http://127.0.0.1:8080/jwks"));
        for bad in [
            r#"{"jwksUrl":"http://auth.example/jwks"}"#,
            r#"{"jwksUrl":"ftp://127.0.0.1/jwks"}"#,
            r#"{"jwksUrl":"not a url"}"#,
        ] {
            assert_eq!(cfg(bad).unwrap_err().code(), "INVALID_CONFIG", "{bad}");
        }
    }

    #[test]
    fn the_pooler_is_detected_from_the_url_and_can_be_overridden() {
        let with = |url: &str, extra: &str| {
            cfg(&format!(r#"{{"connectionString":"{url}"{extra}}}"#))
                .unwrap()
                .pooler
        };
        assert_eq!(with("postgres://u@h:5432/db", ""), Pooler::None);
        assert_eq!(with("postgres://u@h:6543/db", ""), Pooler::Transaction);
        assert_eq!(
            with("postgres://u@h:5432/db?pgbouncer=true", ""),
            Pooler::Transaction
        );
        assert_eq!(
            with("postgres://u@h:6543/db", r#","pooler":"session""#),
            Pooler::Session
        );
        assert_eq!(
            with("postgres://u@h:5432/db", r#","pooler":"transaction""#),
            Pooler::Transaction
        );
        assert!(cfg(r#"{"connectionString":"postgres://u@h/db","pooler":"yes"}"#).is_err());
        assert!(cfg(r#"{"connectionString":"postgres://u@h/db?pgbouncer=maybe"}"#).is_err());
    }

    #[test]
    fn statement_timeout_defaults_to_a_minute_and_zero_turns_it_off() {
        let base = r#""connectionString":"postgres://u@h/db""#;
        assert_eq!(
            cfg(&format!("{{{base}}}")).unwrap().statement_timeout,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            cfg(&format!(r#"{{{base},"statementTimeout":0}}"#))
                .unwrap()
                .statement_timeout,
            None
        );
        assert!(cfg(&format!(r#"{{{base},"statementTimeout":-1}}"#)).is_err());
    }

    #[test]
    fn small_max_lowers_the_default_min() {
        let c = cfg(r#"{"maxConnections":2}"#).unwrap();
        assert_eq!((c.max_connections, c.min_connections), (2, 2));
    }

    #[test]
    fn rejects_bad_values_with_invalid_config() {
        for bad in [
            r#"{"maxConnections":0}"#,
            r#"{"maxConnections":1.5}"#,
            r#"{"maxConnections":-3}"#,
            r#"{"maxConnections":"10"}"#,
            r#"{"minConnections":9,"maxConnections":3}"#,
            r#"{"connectionTimeout":0}"#,
            r#"{"retryDelay":null,"idleTimeout":-1}"#,
            r#"{"maxConection":3}"#,
            r#"{"anonRole":"anon; drop table x"}"#,
            r#"{"connectionString":"mysql://u:p@h/db"}"#,
            r#"[1,2]"#,
        ] {
            let err = cfg(bad).expect_err(bad);
            assert_eq!(err.code(), "INVALID_CONFIG", "{bad}");
        }
    }

    #[test]
    fn unknown_option_is_named() {
        let err = cfg(r#"{"maxConection":3}"#).unwrap_err();
        assert!(err.to_string().contains("maxConection"), "{err}");
    }

    #[test]
    fn without_a_connection_string_the_pool_exists_and_sql_is_explained() {
        let c = PoolConfig::from_json("{}", "{}").unwrap();
        assert!(!c.has_connection_string);
        assert_eq!(c.masked_connection_string, "");
        let err = no_connection_string();
        assert_eq!(err.code(), "INVALID_CONFIG");
        assert!(err.to_string().contains("set DATABASE_URL"), "{err}");
    }

    #[test]
    fn explicit_connection_string_beats_env() {
        let c = cfg(r#"{"connectionString":"postgres://other@h2/db2"}"#).unwrap();
        assert_eq!(c.masked_connection_string, "postgres://other@h2/db2");
    }

    #[test]
    fn password_is_masked_everywhere() {
        let c = cfg("{}").unwrap();
        assert_eq!(
            c.masked_connection_string,
            "postgres://app:****@db.example:5433/main"
        );
        let (_, masked) =
            parse_connection_string("postgres://u@h/db?password=hunter22&sslmode=disable").unwrap();
        assert!(!masked.contains("hunter22"), "{masked}");
        assert!(masked.contains("sslmode=disable"));
    }

    #[test]
    fn errors_never_quote_the_connection_string() {
        let err = cfg(r#"{"connectionString":"postgres://u:hunter22@[bad"}"#).unwrap_err();
        assert!(!err.to_string().contains("hunter22"), "{err}");
        let err = cfg(r#"{"connectionString":12}"#).unwrap_err();
        assert_eq!(err.code(), "INVALID_CONFIG");
    }

    #[test]
    fn zero_idle_timeout_disables_reaping() {
        assert_eq!(cfg(r#"{"idleTimeout":0}"#).unwrap().idle_timeout, None);
    }
}
