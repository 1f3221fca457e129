//! The identity a user client's statement runs under, as PostgREST runs a request: a transaction
//! whose role and JWT claims are local to it, so nothing carries over to the connection's next
//! user.

use crate::db::codec::literal::quote_literal;
use crate::error::PoolError;

/// The role a user client's statements run as, and the JWT claims they see.
#[derive(Debug, Clone)]
pub struct RoleContext {
    pub role: String,
    /// JSON text for `request.jwt.claims`.
    pub claims: String,
}

/// The statement that takes the role and claims for the current transaction only; prepared once
/// per connection, its values bound.
pub const SET_ROLE_SQL: &str =
    "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)";

impl RoleContext {
    /// The role and claims as `SET_ROLE_SQL`'s two bound values. A NUL cannot reach the server
    /// as text, so it is refused here with the error a bad token gets.
    pub fn bound_values(&self) -> Result<[&str; 2], PoolError> {
        if self.role.contains('\0') || self.claims.contains('\0') {
            return Err(nul_refused());
        }
        Ok([&self.role, &self.claims])
    }

    /// `BEGIN` and the role and claims for this transaction only (`set_config(..., true)`), as
    /// one simple-query text that goes out in the same flight as the statement and its `COMMIT`.
    /// Used where nothing may be prepared (behind a transaction pooler): the values are
    /// escape-string literals (`codec::literal::quote_literal`), as the simple-query protocol has no
    /// parameters. Elsewhere `SET_ROLE_SQL` is prepared and its values bound.
    pub fn begin_sql(&self) -> Result<String, PoolError> {
        let (Some(role), Some(claims)) = (quote_literal(&self.role), quote_literal(&self.claims))
        else {
            return Err(nul_refused());
        };
        Ok(format!(
            "BEGIN; SELECT set_config('role', {role}, true), set_config('request.jwt.claims', {claims}, true)"
        ))
    }
}

fn nul_refused() -> PoolError {
    PoolError::InvalidToken(
        "invalid access token: its role or claims contain a NUL character".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_and_claims_are_literals_local_to_the_transaction() {
        let context = RoleContext {
            role: "authenticated".into(),
            claims: r#"{"sub":"o'brien\\"}"#.into(),
        };
        let sql = context.begin_sql().unwrap();
        assert!(
            sql.starts_with("BEGIN; SELECT set_config('role', "),
            "{sql}"
        );
        assert!(
            sql.contains(", true), set_config('request.jwt.claims', "),
            "{sql}"
        );
        assert!(sql.contains(r#"E'{"sub":"o\'brien\\\\"}'"#), "{sql}");
    }

    #[test]
    fn a_nul_is_refused() {
        let context = RoleContext {
            role: "anon".into(),
            claims: "{\"x\":\"\0\"}".into(),
        };
        assert_eq!(context.begin_sql().unwrap_err().code(), "INVALID_TOKEN");
        assert_eq!(context.bound_values().unwrap_err().code(), "INVALID_TOKEN");
    }
}
