//! Transactions: a connection to itself (an exclusive lease) from `BEGIN` to `COMMIT` or
//! `ROLLBACK`, with a user client's role and claims set once for the whole transaction.
//!
//! A statement that fails inside marks the transaction aborted, and committing it then rolls back
//! and says so (Postgres itself would answer `COMMIT` with a silent `ROLLBACK`). A transaction
//! dropped without an end (its owner went away) retires its connection: the server rolls back when
//! the session closes, and no borrower ever gets a connection in the middle of someone else's
//! transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::BytesMut;

use crate::db::auth::context::RoleContext;
use crate::db::codec::literal::quote_literal;
use crate::db::codec::output::QueryOutput;
use crate::db::codec::params::Param;
use crate::db::codec::rows::ValueStyle;
use crate::db::engine::connection::Conn;
use crate::db::engine::execute;
use crate::db::engine::guard::{self, Caller, Scope};
use crate::db::engine::policy::StatementPolicy;
use crate::db::engine::pool::{Lease, LeaseKind};
use crate::db::engine::request;
use crate::db::engine::retry::Failure;
use crate::db::engine::wire::exchange::{Expect, Sink};
use crate::db::engine::DbPool;
use crate::error::{DatabaseErrorFields, PoolError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    /// Postgres's names, in any case, with spaces, dashes or underscores, or camelCase.
    pub fn parse(name: &str) -> Result<Self, PoolError> {
        let key: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "readcommitted" => Ok(Isolation::ReadCommitted),
            "repeatableread" => Ok(Isolation::RepeatableRead),
            "serializable" => Ok(Isolation::Serializable),
            _ => Err(PoolError::InvalidArgument(
                "isolationLevel must be 'read committed', 'repeatable read' or 'serializable'"
                    .into(),
            )),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TxOptions {
    pub isolation: Option<Isolation>,
    pub read_only: bool,
}

/// `BEGIN` with the options, and the role and claims local to the transaction, as one text.
pub fn begin_sql(role: Option<&RoleContext>, options: TxOptions) -> Result<String, PoolError> {
    let mut sql = String::from("BEGIN");
    if let Some(isolation) = options.isolation {
        sql.push_str(" ISOLATION LEVEL ");
        sql.push_str(isolation.sql());
    }
    if options.read_only {
        sql.push_str(" READ ONLY");
    }
    if let Some(role) = role {
        let (Some(name), Some(claims)) = (quote_literal(&role.role), quote_literal(&role.claims))
        else {
            return Err(PoolError::InvalidToken(
                "invalid access token: its role or claims contain a NUL character".into(),
            ));
        };
        sql.push_str(&format!(
            "; SELECT set_config('role', {name}, true), set_config('request.jwt.claims', {claims}, true)"
        ));
    }
    Ok(sql)
}

pub struct Transaction {
    lease: Option<Lease>,
    aborted: AtomicBool,
    /// Begun for a user client (with a role and claims): raw statements may not change them.
    user: bool,
    /// A raw statement may have created temporary objects: dropped before it commits.
    temporary_objects: AtomicBool,
}

impl Transaction {
    /// Takes a connection to itself (waiting at most `connectionTimeout`) and begins.
    pub async fn begin(
        pool: &DbPool,
        role: Option<&RoleContext>,
        options: TxOptions,
    ) -> Result<Self, PoolError> {
        let sql = begin_sql(role, options)?;
        let deadline = Instant::now() + pool.config().connection_timeout;
        let lease = pool
            .lease(LeaseKind::Exclusive, deadline)
            .await
            .map_err(Failure::into_error)?;
        let conn = lease.conn();
        if let Err(failure) = simple(conn, pool.policy(), &sql).await {
            // Whatever state the session is in, nobody else gets it.
            conn.retire();
            return Err(failure.into_error());
        }
        Ok(Transaction {
            lease: Some(lease),
            aborted: AtomicBool::new(false),
            user: role.is_some(),
            temporary_objects: AtomicBool::new(false),
        })
    }

    fn lease(&self) -> Result<&Lease, PoolError> {
        self.lease
            .as_ref()
            .ok_or_else(|| PoolError::InvalidArgument("the transaction has already ended".into()))
    }

    /// A statement in it failed: it can only roll back.
    pub fn failed(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Runs a caller's raw statement (`tx.query()`), checked by the statement guard first: one it
    /// refuses fails the transaction, as a statement Postgres refused would (a refused `ROLLBACK`
    /// was asked for by a caller that wanted the transaction undone).
    pub async fn query_raw(
        &self,
        pool: &DbPool,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
    ) -> Result<QueryOutput, PoolError> {
        let caller = Caller {
            scope: Scope::Transaction,
            user: self.user,
        };
        match guard::check(sql, params, caller) {
            Ok(effects) => {
                if effects.temporary_objects {
                    self.temporary_objects.store(true, Ordering::Release);
                }
                self.query(pool, sql, params, style).await
            }
            Err(refused) => {
                self.aborted.store(true, Ordering::Release);
                pool.record(false, Instant::now());
                Err(refused)
            }
        }
    }

    /// Runs one statement inside the transaction; counted in the pool's stats like any other.
    pub async fn query(
        &self,
        pool: &DbPool,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
    ) -> Result<QueryOutput, PoolError> {
        let started = Instant::now();
        let result = match self.lease() {
            Ok(lease) => {
                let conn = lease.conn();
                execute::run(conn, pool.policy(), sql, params, style, None, Expect::Any)
                    .await
                    .map_err(Failure::into_error)
            }
            Err(err) => Err(err),
        };
        // A type the codec cannot render is refused after Describe, before anything runs: the
        // server's transaction is still good (the builder then asks Postgres for JSON instead).
        if result
            .as_ref()
            .is_err_and(|err| !matches!(err, PoolError::UnsupportedType(_)))
        {
            self.aborted.store(true, Ordering::Release);
        }
        pool.record(result.is_ok(), started);
        result
    }

    /// Commits (or rolls back); a transaction in which a statement failed is rolled back and
    /// reported as 25P02.
    pub async fn finish(mut self, pool: &DbPool, commit: bool) -> Result<(), PoolError> {
        let lease = self.lease.take().ok_or_else(|| {
            PoolError::InvalidArgument("the transaction has already ended".into())
        })?;
        let conn = lease.conn();
        let aborted = self.aborted.load(Ordering::Acquire);
        // Temporary objects would outlive the commit on a connection other callers share next.
        let end = match (
            commit && !aborted,
            self.temporary_objects.load(Ordering::Acquire),
        ) {
            (true, false) => "COMMIT",
            (true, true) => "DISCARD TEMP; COMMIT",
            (false, _) => "ROLLBACK",
        };
        if let Err(failure) = simple(conn, pool.policy(), end).await {
            conn.retire();
            return Err(failure.into_error());
        }
        if commit && aborted {
            return Err(PoolError::Database(Box::new(DatabaseErrorFields {
                code: "25P02".into(),
                message: "a statement in the transaction failed, so it was rolled back".into(),
                severity: "ERROR".into(),
                ..Default::default()
            })));
        }
        Ok(())
    }
}

/// Runs a simple query (transaction control, one or more statements) on the transaction's
/// connection, its results dropped.
async fn simple(conn: &Conn, policy: &StatementPolicy, sql: &str) -> Result<(), Failure> {
    let mut bytes = BytesMut::new();
    request::simple(&mut bytes, sql).map_err(|e| Failure::Final(PoolError::InvalidArgument(e)))?;
    let sinks = vec![Sink::DiscardAll];
    request::answered(conn, policy, &bytes, sinks, Expect::Any).await?;
    Ok(())
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.conn().retire();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_names() {
        for name in ["serializable", "SERIALIZABLE", "Serializable"] {
            assert_eq!(Isolation::parse(name).unwrap(), Isolation::Serializable);
        }
        for name in [
            "repeatable read",
            "REPEATABLE_READ",
            "repeatableRead",
            "repeatable-read",
        ] {
            assert_eq!(Isolation::parse(name).unwrap(), Isolation::RepeatableRead);
        }
        assert_eq!(
            Isolation::parse("read uncommitted; drop table x")
                .unwrap_err()
                .code(),
            "INVALID_ARGUMENT"
        );
    }

    #[test]
    fn begin_text() {
        assert_eq!(begin_sql(None, TxOptions::default()).unwrap(), "BEGIN");
        let options = TxOptions {
            isolation: Some(Isolation::Serializable),
            read_only: true,
        };
        let role = RoleContext {
            role: "anon".into(),
            claims: r#"{"role":"anon"}"#.into(),
        };
        assert_eq!(
            begin_sql(Some(&role), options).unwrap(),
            r#"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY; SELECT set_config('role', E'anon', true), set_config('request.jwt.claims', E'{"role":"anon"}', true)"#
        );
    }
}
