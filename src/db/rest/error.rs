//! PostgREST's errors, in one place: the one constructor of every `PGRST…` error this layer
//! raises (`pgrst`), and the one table of the HTTP status each error answers with (`status_of`:
//! PostgREST's own codes, SQLSTATEs by PostgREST's rules, and the pool's own codes), used by every
//! reply, including the token errors the JS facade answers before a request reaches Postgres
//! (`PGRST301`, `PGRST303`).

use crate::error::{DatabaseErrorFields, PoolError};

/// A PostgREST error: `code` (`PGRST100`, ...), its message, details and hint.
pub fn pgrst(
    code: &str,
    message: String,
    details: Option<String>,
    hint: Option<String>,
) -> PoolError {
    PoolError::Database(Box::new(DatabaseErrorFields {
        code: code.into(),
        message,
        detail: details,
        hint,
        severity: "ERROR".into(),
        ..Default::default()
    }))
}

/// `PGRST100`: a request the builder cannot turn into SQL.
pub fn request_error(message: impl Into<String>, hint: Option<String>) -> PoolError {
    pgrst("PGRST100", message.into(), None, hint)
}

/// The HTTP status PostgREST answers an error of `code` with. `anonymous`: an insufficient
/// privilege is 401 for a request without a user (PostgREST: "JWT required"), 403 with one.
pub fn status_of(code: &str, anonymous: bool) -> u16 {
    match code {
        // The pool's own.
        "POOL_TIMEOUT" => 504,
        "CONNECTION_FAILED" | "POOL_CLOSED" => 503,
        "INTERNAL" => 500,
        "UNSUPPORTED_TYPE" | "INVALID_ARGUMENT" => 400,
        "INVALID_TOKEN" | "PGRST301" | "PGRST302" | "PGRST303" => 401,
        // PostgREST's.
        "PGRST111" | "PGRST112" => 500,
        "PGRST117" => 405,
        "PGRST116" | "PGRST106" | "PGRST107" => 406,
        "PGRST125" | "PGRST202" | "PGRST205" => 404,
        "PGRST201" => 300,
        "PGRST103" => 416,
        c if c.starts_with("PGRST") => 400,
        // SQLSTATEs, as PostgREST maps them.
        c => sqlstate_status(c, anonymous),
    }
}

fn sqlstate_status(code: &str, anonymous: bool) -> u16 {
    match code {
        "42501" if anonymous => 401,
        "42501" => 403,
        "23503" | "23505" => 409,
        "42P01" | "42883" => 404,
        "42P17" => 500,
        "25006" => 405,
        // `RAISE SQLSTATE 'PT402'`: the status a function asks for, as PostgREST answers it.
        c if c.len() == 5 && c.starts_with("PT") && c[2..].bytes().all(|b| b.is_ascii_digit()) => {
            c[2..].parse().unwrap_or(400)
        }
        // A `PT` code that is no status: PostgREST answers 500.
        c if c.starts_with("PT") => 500,
        // cardinality_violation (a subquery of several rows): a fault of the schema's SQL.
        c if c.starts_with("21") => 500,
        "53400" => 500,
        c if c.starts_with("53") || c.starts_with("08") => 503,
        c if c.starts_with("28") || c.starts_with("0L") || c.starts_with("0P") => 403,
        c if c != "P0001" && SERVER_FAULT_CLASSES.iter().any(|p| c.starts_with(p)) => 500,
        _ => 400,
    }
}

/// SQLSTATE classes PostgREST answers 500: faults of the server or the schema, not the request.
const SERVER_FAULT_CLASSES: [&str; 15] = [
    "09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "XX", "P0",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_table() {
        let cases: &[(&str, bool, u16)] = &[
            ("42501", true, 401),
            ("42501", false, 403),
            ("23505", false, 409),
            ("23503", false, 409),
            ("42P01", false, 404),
            ("42883", false, 404),
            ("42P17", false, 500),
            ("25006", false, 405),
            ("PT402", false, 402),
            ("PT418", false, 418),
            ("PTABC", false, 500),
            ("PT4x2", false, 500),
            ("HV000", false, 500),
            ("21000", false, 500),
            ("53400", false, 500),
            ("53300", false, 503),
            ("08006", false, 503),
            ("28000", false, 403),
            ("0L000", false, 403),
            ("0P000", false, 403),
            ("40001", false, 500),
            ("57014", false, 500),
            ("XX000", false, 500),
            ("P0002", false, 500),
            ("P0001", false, 400),
            ("22P02", false, 400),
            ("PGRST100", false, 400),
            ("PGRST103", false, 416),
            ("PGRST106", false, 406),
            ("PGRST116", false, 406),
            ("PGRST117", false, 405),
            ("PGRST111", false, 500),
            ("PGRST201", false, 300),
            ("PGRST202", false, 404),
            ("PGRST205", false, 404),
            ("PGRST204", false, 400),
            ("PGRST301", true, 401),
            ("PGRST303", true, 401),
            ("INVALID_TOKEN", true, 401),
            ("POOL_TIMEOUT", false, 504),
            ("POOL_CLOSED", false, 503),
            ("CONNECTION_FAILED", false, 503),
            ("INTERNAL", false, 500),
            ("INVALID_ARGUMENT", false, 400),
            ("UNSUPPORTED_TYPE", false, 400),
        ];
        for &(code, anonymous, status) in cases {
            assert_eq!(
                status_of(code, anonymous),
                status,
                "{code}, anonymous {anonymous}"
            );
        }
    }

    #[test]
    fn one_constructor() {
        let err = pgrst("PGRST116", "no rows".into(), Some("0 rows".into()), None);
        let PoolError::Database(fields) = &err else {
            panic!("not a database error")
        };
        assert_eq!(fields.code, "PGRST116");
        assert_eq!(fields.detail.as_deref(), Some("0 rows"));
        assert_eq!(err.code(), "PGRST116");
        assert_eq!(request_error("bad", None).code(), "PGRST100");
    }
}
