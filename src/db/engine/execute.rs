//! Running one statement on a leased connection: prepare it (cached per connection), encode its
//! values as the types the server described, write one request, and read the reply.
//!
//! A user client's statement is one request under one Sync: Bind and Execute of
//! `set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`, then Bind and
//! Execute of the statement. The server runs everything up to a Sync as one implicit
//! transaction, so the role and claims are the statement's alone: if taking the role fails the
//! statement does not run, and whatever happens nothing of them outlives the Sync.
//!
//! Behind a transaction pooler (`policy.one_flight`) nothing may rely on server state from an
//! earlier flight, so there is no prepare: the statement goes out as Parse, Bind, Describe and
//! Execute, unnamed, its parameters as text of type `unknown`, and its reply's shape is read
//! from the RowDescription that comes before its rows.

use std::sync::Arc;

use bytes::BytesMut;

use crate::db::auth::context::{RoleContext, SET_ROLE_SQL};
use crate::db::codec::output::QueryOutput;
use crate::db::codec::params::{encode_all, Param, TextParam};
use crate::db::codec::rows::ValueStyle;
use crate::db::codec::types::{oid, Column};
use crate::db::engine::connection::{Conn, Prepared};
use crate::db::engine::policy::StatementPolicy;
use crate::db::engine::request;
use crate::db::engine::retry::{self, Failure};
use crate::db::engine::typeinfo;
use crate::db::engine::wire::exchange::{Answer, Expect, Failed, RowsSink, Sink};
use crate::error::PoolError;

/// Runs one statement on `conn`, as the login role or under a user client's role, within the
/// statement timeout. `expect` is `Idle` on a shared connection, `Any` inside `transaction()`.
pub async fn run(
    conn: &Conn,
    policy: &StatementPolicy,
    sql: &str,
    params: &[Param],
    style: ValueStyle,
    role: Option<&RoleContext>,
    expect: Expect,
) -> Result<QueryOutput, Failure> {
    if policy.one_flight {
        return run_one_flight(conn, policy, sql, params, style, role, expect).await;
    }
    let statement = prepare_cached(conn, policy, sql, expect).await?;
    let set_role = match role {
        Some(role) => Some((
            prepare_cached(conn, policy, SET_ROLE_SQL, expect).await?,
            role,
        )),
        None => None,
    };
    let role = set_role
        .as_ref()
        .map(|(set_role, role)| (&**set_role, *role));
    let (bytes, sinks) = statement_request(conn, &statement, params, role, style)?;
    let outcome = request::exchange(conn, &bytes, sinks, expect, policy.deadline()).await;
    reply(policy, outcome, || conn.forget(&statement))
}

/// The request of a prepared statement: Close of evicted statements, the role and claims when
/// there are (`set_config` prepared, and the user client's context), the statement, one Sync;
/// and the sinks that read its answer. A statement whose result cannot be decoded, or whose
/// values do not fit its parameters, is refused before it runs.
pub fn statement_request(
    conn: &Conn,
    statement: &Prepared,
    params: &[Param],
    role: Option<(&Prepared, &RoleContext)>,
    style: ValueStyle,
) -> Result<(BytesMut, Vec<Sink>), Failure> {
    statement.decodable().map_err(Failure::Final)?;
    let encoded = encode_all(params, &statement.params).map_err(Failure::Final)?;
    // Bound before the Closes are taken from the cache: an error after that would drop them.
    let role = match role {
        Some((set_role, role)) => Some((set_role, role.bound_values().map_err(Failure::Final)?)),
        None => None,
    };
    let unsendable = |e: String| Failure::Final(PoolError::InvalidArgument(e));
    let mut bytes = BytesMut::with_capacity(64);
    let mut sinks = Vec::with_capacity(2);
    conn.close_evicted(&mut bytes);
    if let Some((set_role, values)) = role {
        request::bind_execute_text(&mut bytes, &set_role.name, &values).map_err(unsendable)?;
        sinks.push(Sink::Discard);
    }
    request::bind_execute(&mut bytes, &statement.name, &encoded).map_err(unsendable)?;
    sinks.push(Sink::Rows(RowsSink::prepared(
        statement.encoder(style),
        style,
    )));
    request::sync(&mut bytes);
    Ok((bytes, sinks))
}

/// The reply of a statement's exchange: its rows, the server's error, or why there is none.
/// `stale_plan` forgets the prepared statement when the server refused it as stale.
pub fn reply(
    policy: &StatementPolicy,
    outcome: Result<Answer, Failed>,
    stale_plan: impl FnOnce(),
) -> Result<QueryOutput, Failure> {
    let answer = outcome.map_err(|failed| policy.unanswered(failed))?;
    if let Some(error) = answer.error {
        if retry::is_stale_plan(&error) {
            stale_plan();
        }
        return Err(retry::answered(error));
    }
    match answer.sinks.into_iter().last() {
        Some(Sink::Rows(rows)) => rows.finish().map_err(|err| match err {
            PoolError::UnsupportedType(_) => Failure::Final(err),
            other => Failure::Final(PoolError::Internal(other.to_string())),
        }),
        _ => Err(Failure::Final(PoolError::Internal(
            "a reply without its rows".into(),
        ))),
    }
}

/// The statement prepared on this connection for `sql`, preparing it on first use: Parse and
/// Describe, then the types the server named that this connection does not know yet.
pub async fn prepare_cached(
    conn: &Conn,
    policy: &StatementPolicy,
    sql: &str,
    expect: Expect,
) -> Result<Arc<Prepared>, Failure> {
    if let Some(statement) = conn.cached(sql) {
        return Ok(statement);
    }
    let name = conn.statement_name();
    let mut bytes = BytesMut::new();
    conn.close_evicted(&mut bytes);
    request::parse_describe(&mut bytes, &name, sql)
        .map_err(|e| Failure::Final(PoolError::InvalidArgument(e)))?;
    request::sync(&mut bytes);
    let sinks = vec![Sink::Describe(Default::default())];
    let answer = request::exchange(conn, &bytes, sinks, expect, policy.deadline())
        .await
        .map_err(|failed| not_prepared(policy, failed))?;
    if let Some(error) = answer.error {
        return Err(retry::answered(error));
    }
    let Some(Sink::Describe(description)) = answer.sinks.into_iter().next() else {
        return Err(Failure::Final(PoolError::Internal(
            "a prepare without its description".into(),
        )));
    };
    let params = typeinfo::resolve_all(conn, policy, &description.params).await?;
    let oids: Vec<u32> = description.columns.iter().map(|(_, oid)| *oid).collect();
    let types = typeinfo::resolve_all(conn, policy, &oids).await?;
    let columns = description
        .columns
        .into_iter()
        .zip(types)
        .map(|((name, _), ty)| Column::new(name, ty))
        .collect();
    Ok(conn.remember(Prepared::new(sql, name, params, columns)))
}

/// A prepare that got no answer ran nothing of the statement: it may go to another connection
/// (unless it is past its time).
fn not_prepared(policy: &StatementPolicy, failed: Failed) -> Failure {
    match policy.unanswered(failed) {
        Failure::Final(PoolError::StatementTimeout(message)) => {
            Failure::Final(PoolError::StatementTimeout(message))
        }
        other => Failure::Retry(other.into_error()),
    }
}

/// Behind a transaction pooler: the role (when there is one) and the statement, unnamed, in one
/// flight under one Sync.
async fn run_one_flight(
    conn: &Conn,
    policy: &StatementPolicy,
    sql: &str,
    params: &[Param],
    style: ValueStyle,
    role: Option<&RoleContext>,
    expect: Expect,
) -> Result<QueryOutput, Failure> {
    let (bytes, sinks) = one_flight_request(sql, params, style, role)?;
    let outcome = request::exchange(conn, &bytes, sinks, expect, policy.deadline()).await;
    reply(policy, outcome, || {})
}

/// The request of a statement in one flight: the unnamed `set_config` of a user client's role
/// and claims (bound), the statement (its parameters as text of type `unknown`), one Sync; and
/// the sinks that read its answer (the rows' shape comes with them).
pub fn one_flight_request(
    sql: &str,
    params: &[Param],
    style: ValueStyle,
    role: Option<&RoleContext>,
) -> Result<(BytesMut, Vec<Sink>), Failure> {
    let unsendable = |e: String| Failure::Final(PoolError::InvalidArgument(e));
    let mut bytes = BytesMut::with_capacity(128);
    let mut sinks = Vec::with_capacity(2);
    if let Some(role) = role {
        let values = role.bound_values().map_err(Failure::Final)?;
        request::unnamed_text(&mut bytes, SET_ROLE_SQL, &[oid::TEXT, oid::TEXT], &values)
            .map_err(unsendable)?;
        sinks.push(Sink::Discard);
    }
    let text: Vec<TextParam> = params.iter().map(TextParam::new).collect();
    request::one_flight(&mut bytes, sql, &text).map_err(unsendable)?;
    sinks.push(Sink::Rows(RowsSink::described(style)));
    request::sync(&mut bytes);
    Ok((bytes, sinks))
}
