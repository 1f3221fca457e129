//! Running one statement on a leased connection: prepare (cached per connection), encode the
//! parameters as the types the server described, queue the request, and write the rows as JSON
//! text while they stream in.
//!
//! A user client's statement goes out as one group, queued together so that nothing lands
//! between its parts: `BEGIN`, `set_config(role…), set_config(claims…)`, the statement,
//! `COMMIT`, each a prepared statement (the role and claims bound). One flight, one transaction:
//! if the role cannot be taken the statement fails with 25P02 instead of running as anyone else,
//! and if the statement fails `COMMIT` rolls back. Prepared, the role and claims are bound values
//! and the server does not parse `BEGIN; select set_config(…)` per statement.
//!
//! Behind a transaction pooler (`policy.one_flight`) nothing may rely on server state from an
//! earlier flight, so there is no prepare: the statement goes out as Parse, Bind, Describe,
//! Execute and Sync together (`query_typed`), unnamed, its parameters as text of type `unknown`.

use futures::TryStreamExt;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::db::auth::context::{RoleContext, SET_ROLE_SQL};
use crate::db::codec::params::{encode_all, EncodedParam, Param, TextParam};
use crate::db::codec::rows::{check_columns, check_pooled_columns, RowEncoder, ValueStyle};
use crate::db::engine::connection::Conn;
use crate::db::engine::policy::StatementPolicy;
use crate::db::engine::retry::{classify, is_session_end, Failure, Stage};
use crate::error::PoolError;

/// One statement's reply: the JSON text JS parses, `{"columns":[…],"rows":[[…],…],"rowCount":n}`,
/// built once as the rows arrive; where its rows are in it; and how many rows the statement
/// returned or changed. The REST layer reads the rows and the count from here, as Rust values,
/// instead of reading them back out of the text.
#[derive(Debug)]
pub struct QueryOutput {
    text: String,
    rows: std::ops::Range<usize>,
    row_count: u64,
}

impl QueryOutput {
    /// The reply from its parts (the one-flight path, whose columns are known only at the end).
    fn assemble(columns_json: &str, rows: &str, row_count: u64) -> Self {
        let mut text = String::with_capacity(rows.len() + columns_json.len() + 48);
        text.push_str("{\"columns\":");
        text.push_str(columns_json);
        text.push_str(",\"rows\":");
        let start = text.len();
        text.push('[');
        text.push_str(rows);
        text.push(']');
        let end = text.len();
        QueryOutput::finish(text, start..end, row_count)
    }

    fn finish(mut text: String, rows: std::ops::Range<usize>, row_count: u64) -> Self {
        text.push_str(",\"rowCount\":");
        text.push_str(itoa::Buffer::new().format(row_count));
        text.push('}');
        QueryOutput {
            text,
            rows,
            row_count,
        }
    }

    /// The reply text, as it crosses to JS.
    pub fn into_text(self) -> String {
        self.text
    }

    /// The rows, a JSON array: arrays of values, or objects (`ValueStyle::ToJsonObjects`).
    pub fn rows_json(&self) -> &str {
        &self.text[self.rows.clone()]
    }

    /// Rows returned, or changed by a statement that returns none.
    pub fn row_count(&self) -> u64 {
        self.row_count
    }

    /// The rows, each read as a `T` (a tuple for rows of values).
    pub fn rows<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, PoolError> {
        serde_json::from_str(self.rows_json())
            .map_err(|e| PoolError::Internal(format!("unexpected statement reply: {e}")))
    }

    /// The first row, read as a `T`.
    pub fn first_row<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, PoolError> {
        Ok(self.rows::<T>()?.into_iter().next())
    }
}

/// Why collecting a statement's rows stopped.
enum RowsError {
    Postgres(tokio_postgres::Error),
    Decode(PoolError),
}

impl From<tokio_postgres::Error> for RowsError {
    fn from(err: tokio_postgres::Error) -> Self {
        RowsError::Postgres(err)
    }
}

/// A statement ready to run on this connection.
enum Prepared {
    /// Prepared, its parameters encoded in binary as the types the server described.
    Binary(Statement, Vec<EncodedParam>),
    /// A parameter type the encoder does not know (a range, an interval, ...), for a request
    /// whose values are text literals anyway (`ValueStyle::ToJson`: the builder's PostgREST
    /// filters): sent in one flight as text of type `unknown`, parsed by the server as PostgREST
    /// has it parse them.
    ServerParsed,
}

/// Prepares (or finds) the statement and encodes its parameters; nothing has run yet.
async fn prepare(
    conn: &Conn,
    sql: &str,
    params: &[Param],
    style: ValueStyle,
) -> Result<Prepared, Failure> {
    if conn.is_closed() {
        return Err(closed_before_send());
    }
    let statement = conn
        .prepare_cached(sql)
        .await
        .map_err(|e| classify(&e, Stage::BeforeSend))?;
    check_columns(statement.columns()).map_err(Failure::Final)?;
    match encode_all(params, statement.params()) {
        Ok(encoded) => Ok(Prepared::Binary(statement, encoded)),
        Err(PoolError::UnsupportedType(_)) if style.is_json() => Ok(Prepared::ServerParsed),
        Err(err) => Err(Failure::Final(err)),
    }
}

/// Runs the statement and writes its rows; the request is queued on the first poll.
async fn collect(
    client: &Client,
    statement: &Statement,
    params: &[EncodedParam],
    style: ValueStyle,
) -> Result<QueryOutput, RowsError> {
    let stream = client.query_raw(statement, params.iter()).await?;
    futures::pin_mut!(stream);
    let encoder = RowEncoder::new(statement.columns(), style);
    let mut out = String::with_capacity(256);
    out.push_str("{\"columns\":");
    out.push_str(encoder.columns_json());
    out.push_str(",\"rows\":");
    let start = out.len();
    out.push('[');
    let mut rows_written = 0u64;
    while let Some(row) = stream.try_next().await? {
        append_row(&encoder, &row, &mut out, &mut rows_written)?;
    }
    out.push(']');
    let end = out.len();
    let row_count = stream.rows_affected().unwrap_or(0).max(rows_written);
    Ok(QueryOutput::finish(out, start..end, row_count))
}

/// Writes `row` after the `written` rows already in `out`, comma-separated.
fn append_row(
    encoder: &RowEncoder,
    row: &tokio_postgres::Row,
    out: &mut String,
    written: &mut u64,
) -> Result<(), RowsError> {
    if *written > 0 {
        out.push(',');
    }
    encoder.write_row(row, out).map_err(RowsError::Decode)?;
    *written += 1;
    Ok(())
}

/// `collect` for the one-flight path: the column types arrive with the first row.
async fn collect_one_flight(
    client: &Client,
    sql: &str,
    params: &[Param],
    style: ValueStyle,
) -> Result<QueryOutput, RowsError> {
    let typed = params.iter().map(|p| (TextParam::new(p), Type::UNKNOWN));
    let stream = client
        .query_typed_raw(sql, typed)
        .await
        .map_err(|e| pooled_type_lookup(client, e))?;
    futures::pin_mut!(stream);
    let mut encoder: Option<RowEncoder> = None;
    let mut rows = String::with_capacity(128);
    let mut rows_written = 0u64;
    while let Some(row) = stream.try_next().await? {
        let encoder = match &mut encoder {
            Some(encoder) => encoder,
            None => {
                check_pooled_columns(row.columns()).map_err(RowsError::Decode)?;
                encoder.insert(RowEncoder::new(row.columns(), style))
            }
        };
        append_row(encoder, &row, &mut rows, &mut rows_written)?;
    }
    let row_count = stream.rows_affected().unwrap_or(0).max(rows_written);
    let columns = encoder.as_ref().map_or("[]", RowEncoder::columns_json);
    Ok(QueryOutput::assemble(columns, &rows, row_count))
}

/// tokio-postgres looks up a result column's user-defined type with a named statement, in two
/// flights; behind a transaction pooler the second may reach a server that lacks the statement.
/// That failure becomes the clear error it stands for, and the half-made lookup is forgotten.
fn pooled_type_lookup(client: &Client, err: tokio_postgres::Error) -> RowsError {
    use tokio_postgres::error::SqlState;
    let lookup_failed = err.code().is_some_and(|code| {
        *code == SqlState::INVALID_SQL_STATEMENT_NAME || *code == SqlState::DUPLICATE_PSTATEMENT
    }) && err
        .as_db_error()
        .is_some_and(|db| db.message().starts_with("prepared statement \"s"));
    if lookup_failed {
        client.clear_type_cache();
        RowsError::Decode(PoolError::UnsupportedType(
            "a result column has a user-defined type (an enum, a composite or an extension type); \
             behind a transaction pooler (pooler: 'transaction') such types cannot be looked up \
             reliably: cast the column to text in the SQL (for example mood::text)"
                .into(),
        ))
    } else {
        RowsError::Postgres(err)
    }
}

fn rows_failure(err: RowsError) -> Failure {
    match err {
        // A cancel meant for a statement ahead of this one that finished first lands here; the
        // cancelled statement did nothing, so it may run again.
        RowsError::Postgres(e) if is_query_canceled(&e) => {
            Failure::Retry(classify(&e, Stage::Sent).into_error())
        }
        RowsError::Postgres(e) => classify(&e, Stage::Sent),
        RowsError::Decode(e @ PoolError::UnsupportedType(_)) => Failure::Final(e),
        RowsError::Decode(e) => Failure::Final(PoolError::Internal(e.to_string())),
    }
}

fn is_query_canceled(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
}

/// Runs one statement on `conn`, as the login role or in a user client's transaction, within
/// the statement timeout.
pub async fn run(
    conn: &Conn,
    policy: &StatementPolicy,
    sql: &str,
    params: &[Param],
    style: ValueStyle,
    role: Option<&RoleContext>,
) -> Result<QueryOutput, Failure> {
    let running = conn.track_statement();
    let result = run_bounded(conn, policy, sql, params, style, role).await;
    // A fast shutdown (or pg_terminate_backend) ends the session with 57P01 on the statement
    // the server was running; the ones pipelined behind it see only a closed connection, but
    // they never ran either, so they may run again elsewhere.
    let result = match result {
        Err(Failure::Retry(err)) if is_session_end(&err) => {
            conn.mark_ended_by_server();
            Err(Failure::Retry(err))
        }
        Err(Failure::Lost(err)) if conn.ended_by_server(policy.grace).await => {
            Err(Failure::Retry(err))
        }
        other => other,
    };
    drop(running);
    result
}

async fn run_bounded(
    conn: &Conn,
    policy: &StatementPolicy,
    sql: &str,
    params: &[Param],
    style: ValueStyle,
    role: Option<&RoleContext>,
) -> Result<QueryOutput, Failure> {
    if policy.one_flight {
        let begin = role
            .map(RoleContext::begin_sql)
            .transpose()
            .map_err(Failure::Final)?;
        if conn.is_closed() {
            return Err(closed_before_send());
        }
        let rows = collect_one_flight(conn.client(), sql, params, style);
        return policy
            .bounded(conn, Box::pin(in_simple_role(conn, begin.as_deref(), rows)))
            .await;
    }
    let prepared_and_run = async {
        let role = match role {
            Some(role) => Some(RoleStatements::prepare(conn, role).await?),
            None => None,
        };
        match prepare(conn, sql, params, style).await? {
            Prepared::Binary(statement, encoded) => {
                let rows = collect(conn.client(), &statement, &encoded, style);
                match role {
                    Some(role) => role.around(conn, rows).await,
                    None => alone(conn, rows).await,
                }
            }
            Prepared::ServerParsed => {
                let rows = collect_one_flight(conn.client(), sql, params, style);
                match role {
                    Some(role) => role.around(conn, rows).await,
                    None => alone(conn, rows).await,
                }
            }
        }
    };
    policy.bounded(conn, Box::pin(prepared_and_run)).await
}

fn closed_before_send() -> Failure {
    Failure::Retry(PoolError::ConnectionFailed(
        "the connection to the database was closed".into(),
    ))
}

async fn alone(
    conn: &Conn,
    rows: impl std::future::Future<Output = Result<QueryOutput, RowsError>>,
) -> Result<QueryOutput, Failure> {
    conn.queued(rows).await.map_err(rows_failure)
}

/// A user client's `BEGIN`, role and claims, and `COMMIT`, prepared on this connection.
struct RoleStatements<'a> {
    begin: Statement,
    set_role: Statement,
    commit: Statement,
    values: [&'a str; 2],
}

impl<'a> RoleStatements<'a> {
    async fn prepare(conn: &Conn, role: &'a RoleContext) -> Result<Self, Failure> {
        let values = role.bound_values().map_err(Failure::Final)?;
        if conn.is_closed() {
            return Err(closed_before_send());
        }
        let prepare = |sql| async move {
            conn.prepare_cached(sql)
                .await
                .map_err(|e| classify(&e, Stage::BeforeSend))
        };
        Ok(RoleStatements {
            begin: prepare("BEGIN").await?,
            set_role: prepare(SET_ROLE_SQL).await?,
            commit: prepare("COMMIT").await?,
            values,
        })
    }

    /// Queues `rows` between them, in one flight.
    async fn around(
        self,
        conn: &Conn,
        rows: impl std::future::Future<Output = Result<QueryOutput, RowsError>>,
    ) -> Result<QueryOutput, Failure> {
        let client = conn.client();
        let no_values: [&str; 0] = [];
        let (began, set, rows, committed) = conn
            .queued(futures::future::join4(
                run_to_end(client, &self.begin, no_values),
                run_to_end(client, &self.set_role, self.values),
                rows,
                run_to_end(client, &self.commit, no_values),
            ))
            .await;
        // The first failure is the cause: a role that could not be taken makes the statement
        // fail with 25P02, and a failed statement makes COMMIT a rollback.
        began.map_err(|e| classify(&e, Stage::Sent))?;
        set.map_err(|e| classify(&e, Stage::Sent))?;
        let output = rows.map_err(rows_failure)?;
        committed.map_err(|e| classify(&e, Stage::Sent))?;
        Ok(output)
    }
}

/// Runs a statement whose rows nobody reads; the request is queued on the first poll.
async fn run_to_end<const N: usize>(
    client: &Client,
    statement: &Statement,
    values: [&str; N],
) -> Result<(), tokio_postgres::Error> {
    let stream = client.query_raw(statement, values).await?;
    futures::pin_mut!(stream);
    while stream.try_next().await?.is_some() {}
    Ok(())
}

/// Behind a transaction pooler: queues `rows` alone, or between a user client's
/// `BEGIN; set_config…` (one simple query, nothing prepared) and `COMMIT`.
async fn in_simple_role(
    conn: &Conn,
    begin: Option<&str>,
    rows: impl std::future::Future<Output = Result<QueryOutput, RowsError>>,
) -> Result<QueryOutput, Failure> {
    let client = conn.client();
    let Some(begin) = begin else {
        return alone(conn, rows).await;
    };
    let (began, rows, committed) = conn
        .queued(futures::future::join3(
            client.batch_execute(begin),
            rows,
            client.batch_execute("COMMIT"),
        ))
        .await;
    began.map_err(|e| classify(&e, Stage::Sent))?;
    let output = rows.map_err(rows_failure)?;
    committed.map_err(|e| classify(&e, Stage::Sent))?;
    Ok(output)
}

#[cfg(test)]
mod output_tests {
    use super::QueryOutput;

    #[test]
    fn the_reply_text_and_its_parts_agree() {
        let output = QueryOutput::assemble(r#"[{"name":"n"}]"#, "[1,\"a\"],[2,null]", 2);
        assert_eq!(
            output.rows_json(),
            r#"[[1,"a"],[2,null]]"#,
            "the rows, an array of rows"
        );
        assert_eq!(output.row_count(), 2);
        let first: Option<(i64, Option<String>)> = output.first_row().unwrap();
        assert_eq!(first, Some((1, Some("a".into()))));
        assert!(
            output.first_row::<(String,)>().is_err(),
            "a row of another shape"
        );
        assert_eq!(
            output.into_text(),
            r#"{"columns":[{"name":"n"}],"rows":[[1,"a"],[2,null]],"rowCount":2}"#
        );
        let none = QueryOutput::assemble("[]", "", 7);
        assert_eq!(none.rows_json(), "[]");
        assert_eq!(none.first_row::<(i64,)>().unwrap(), None);
        assert_eq!(
            none.row_count(),
            7,
            "rows changed by a statement that returns none"
        );
    }
}
