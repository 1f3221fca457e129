//! The identity a user client's statement runs under, as PostgREST runs a request: a transaction
//! whose role and JWT claims are local to it, so nothing carries over to the connection's next
//! user.

use super::ident::quote_literal;
use crate::error::PoolError;

/// The role a user client's statements run as, and the JWT claims they see.
#[derive(Debug, Clone)]
pub struct RoleContext {
    pub role: String,
    /// JSON text for `request.jwt.claims`.
    pub claims: String,
}

impl RoleContext {
    /// `BEGIN` and the role and claims for this transaction only (`set_config(..., true)`), as
    /// one simple-query text that goes out in the same flight as the statement and its `COMMIT`.
    /// The values are escape-string literals (`ident::quote_literal`), the one place a
    /// caller-influenced value is not a bound parameter: the simple-query protocol has none, and
    /// one flight instead of two is most of a user client's cost.
    pub fn begin_sql(&self) -> Result<String, PoolError> {
        let (Some(role), Some(claims)) = (quote_literal(&self.role), quote_literal(&self.claims))
        else {
            return Err(PoolError::InvalidToken(
                "invalid access token: its role or claims contain a NUL character".into(),
            ));
        };
        Ok(format!(
            "BEGIN; SELECT set_config('role', {role}, true), set_config('request.jwt.claims', {claims}, true)"
        ))
    }
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
    }
}
