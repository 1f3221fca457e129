//! The one error type of the library and the stable `code` each variant carries to JavaScript.
//!
//! JS code switches on `error.code`, so codes never change once shipped: the SQLSTATE for errors
//! the server reported, and an upper-case word for everything the library decided itself. An
//! error crosses the FFI as a JSON envelope (`{"error":{…}}`) that the facade turns
//! into a real `Error` with every field set (`lib/errors.js`); no message ever embeds JSON, and no message ever
//! contains a password (connection strings are masked before they reach any text).

use serde::Serialize;

/// Every code the library raises itself: `error.code` in JS, and `ConnectionPoolErrorCode` in
/// index.d.ts lists the same words (`__test__/error-codes.spec.ts` checks both ways). The
/// database pool's `PoolError` and the OpenAI pool's `ApiError` both take theirs from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidConfig,
    InvalidArgument,
    PoolTimeout,
    PoolClosed,
    ConnectionFailed,
    InvalidToken,
    UnsupportedType,
    StatementTimeout,
    StatementRefused,
    /// The OpenAI queue is full (`maxQueueSize`).
    QueueFull,
    /// An OpenAI call's `timeout` passed (queue, attempts and backoff together).
    Timeout,
    /// A success whose body is not the JSON asked for.
    InvalidResponse,
    /// The client of an `executeRequest` callback, used after the callback ended.
    SlotReleased,
    /// An abort of the caller's signal; JS turns it into the platform's `AbortError`.
    Aborted,
    Internal,
}

impl Code {
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::InvalidConfig => "INVALID_CONFIG",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::PoolTimeout => "POOL_TIMEOUT",
            Code::PoolClosed => "POOL_CLOSED",
            Code::ConnectionFailed => "CONNECTION_FAILED",
            Code::InvalidToken => "INVALID_TOKEN",
            Code::UnsupportedType => "UNSUPPORTED_TYPE",
            Code::StatementTimeout => "STATEMENT_TIMEOUT",
            Code::StatementRefused => "STATEMENT_REFUSED",
            Code::QueueFull => "QUEUE_FULL",
            Code::Timeout => "TIMEOUT",
            Code::InvalidResponse => "INVALID_RESPONSE",
            Code::SlotReleased => "SLOT_RELEASED",
            Code::Aborted => "ABORTED",
            Code::Internal => "INTERNAL",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// A config value is out of range or of the wrong kind.
    #[error("invalid config: {0}")]
    InvalidConfig(String),

    /// Every connection was busy for the whole `connectionTimeout`.
    #[error("timed out after {waited_ms} ms waiting for a database connection: {occupancy}")]
    PoolTimeout {
        waited_ms: u64,
        /// How the connections were held at that moment.
        occupancy: Box<crate::db::engine::occupancy::Occupancy>,
    },

    /// `close()` was called; a later `initialize()` opens a new pool.
    #[error("the pool is closed")]
    PoolClosed,

    /// The server could not be reached, or the connection broke with the outcome unknown.
    #[error("{0}")]
    ConnectionFailed(String),

    /// A user's access token failed verification (signature, algorithm, expiry, shape).
    #[error("{0}")]
    InvalidToken(String),

    /// A call was made with arguments it cannot take (an unknown isolation level, a statement
    /// in a transaction that has ended).
    #[error("{0}")]
    InvalidArgument(String),

    /// A raw statement that would change a pooled connection's transaction or session state, or a
    /// user client's identity (`db::guard` says which and why); refused before it is sent.
    #[error("{0}")]
    StatementRefused(String),

    /// A statement ran past `statementTimeout`; it was cancelled on the server.
    #[error("{0}")]
    StatementTimeout(String),

    /// A result column has a type this library cannot decode; checked before the statement runs.
    #[error("{0}")]
    UnsupportedType(String),

    /// The server rejected the statement; `code` is the SQLSTATE.
    #[error("{}", .0.message)]
    Database(Box<DatabaseErrorFields>),

    /// A bug in this library (a caught panic, a protocol surprise).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What Postgres said about a failed statement, as node-postgres exposes it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseErrorFields {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    pub severity: String,
}

impl PoolError {
    /// The stable code JS sees as `error.code`.
    pub fn code(&self) -> &str {
        let code = match self {
            PoolError::Database(fields) => return &fields.code,
            PoolError::InvalidConfig(_) => Code::InvalidConfig,
            PoolError::PoolTimeout { .. } => Code::PoolTimeout,
            PoolError::PoolClosed => Code::PoolClosed,
            PoolError::ConnectionFailed(_) => Code::ConnectionFailed,
            PoolError::InvalidToken(_) => Code::InvalidToken,
            PoolError::InvalidArgument(_) => Code::InvalidArgument,
            PoolError::UnsupportedType(_) => Code::UnsupportedType,
            PoolError::StatementTimeout(_) => Code::StatementTimeout,
            PoolError::StatementRefused(_) => Code::StatementRefused,
            PoolError::Internal(_) => Code::Internal,
        };
        code.as_str()
    }

    /// The JSON envelope the facade turns into a JS `Error`.
    pub fn to_envelope(&self) -> String {
        let error = match self {
            PoolError::Database(fields) => serde_json::json!(fields),
            other => serde_json::json!({ "code": other.code(), "message": other.to_string() }),
        };
        serde_json::json!({ "error": error }).to_string()
    }

    /// Turns a caught panic payload into an error instead of letting it cross the FFI, and
    /// counts it (`panics_caught`).
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        PANICS_CAUGHT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        PoolError::Internal(format!("panic in connection-pools: {what}"))
    }
}

/// Panics caught at the boundary since the library was loaded (each one a bug to report):
/// shown in both pools' stats as `internalErrors`.
static PANICS_CAUGHT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn panics_caught() -> u64 {
    PANICS_CAUGHT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs a synchronous napi entry point; a panic in it becomes an `INTERNAL` error with its
/// message (napi's own `catch_unwind` would answer `GenericFailure`).
pub fn sync_boundary<T, E: From<PoolError>>(work: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(panic) => Err(PoolError::from_panic(panic).into()),
    }
}

/// An error that can be sent to JS as a JSON error reply.
pub trait ErrorReply {
    fn reply(&self) -> String;
}

impl ErrorReply for PoolError {
    fn reply(&self) -> String {
        self.to_envelope()
    }
}

/// Runs an async entry point to its JSON reply: the result, an error envelope, or, if the code
/// panicked, an `INTERNAL` error envelope. Nothing unwinds into napi.
pub async fn settle_to_json<F, E>(work: F) -> String
where
    F: std::future::Future<Output = Result<String, E>>,
    E: ErrorReply,
{
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(Ok(json)) => json,
        Ok(Err(err)) => err.reply(),
        Err(panic) => PoolError::from_panic(panic).to_envelope(),
    }
}

impl From<PoolError> for napi::Error<String> {
    fn from(err: PoolError) -> Self {
        napi::Error::new(err.code().to_string(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(PoolError::PoolClosed.code(), "POOL_CLOSED");
        assert_eq!(
            PoolError::PoolTimeout {
                waited_ms: 5,
                occupancy: Default::default(),
            }
            .code(),
            "POOL_TIMEOUT"
        );
        let db = PoolError::Database(Box::new(DatabaseErrorFields {
            code: "23505".into(),
            message: "duplicate key".into(),
            ..Default::default()
        }));
        assert_eq!(db.code(), "23505");
    }

    #[test]
    fn envelope_carries_code_and_fields() {
        let db = PoolError::Database(Box::new(DatabaseErrorFields {
            code: "23505".into(),
            message: "duplicate key".into(),
            detail: Some("Key (id)=(1) already exists.".into()),
            severity: "ERROR".into(),
            ..Default::default()
        }));
        let v: serde_json::Value = serde_json::from_str(&db.to_envelope()).unwrap();
        assert_eq!(v["error"]["code"], "23505");
        assert_eq!(v["error"]["detail"], "Key (id)=(1) already exists.");
        assert!(v["error"].get("hint").is_none());

        let v: serde_json::Value =
            serde_json::from_str(&PoolError::PoolClosed.to_envelope()).unwrap();
        assert_eq!(v["error"]["code"], "POOL_CLOSED");
        assert_eq!(v["error"]["message"], "the pool is closed");
    }

    #[test]
    fn a_panicking_entry_point_settles_as_an_internal_error() {
        let reply = futures::executor::block_on(settle_to_json(async {
            if true {
                panic!("decoder exploded");
            }
            Ok::<_, PoolError>(String::new())
        }));
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["error"]["code"], "INTERNAL");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("decoder exploded"));
    }

    #[test]
    fn a_panicking_sync_entry_point_answers_internal_and_is_counted() {
        let before = panics_caught();
        let err = sync_boundary::<(), PoolError>(|| panic!("a bug")).unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
        assert!(err.to_string().contains("a bug"), "{err}");
        assert!(panics_caught() > before);
    }

    #[test]
    fn panic_payloads_become_internal_errors() {
        let err = PoolError::from_panic(Box::new("boom"));
        assert_eq!(err.code(), "INTERNAL");
        assert!(err.to_string().contains("boom"));
    }
}
