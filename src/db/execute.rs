//! Running one statement on a leased connection: prepare (cached per connection), encode the
//! parameters as the types the server described, queue the request, and write the rows as JSON
//! text while they stream in.
//!
//! A user client's statement goes out as one group, queued together so that nothing lands
//! between its parts: `BEGIN; set_config(role…), set_config(claims…)`, the statement, `COMMIT`.
//! One flight, one transaction: if the role cannot be taken the statement fails with 25P02
//! instead of running as anyone else, and if the statement fails `COMMIT` rolls back.

use futures::TryStreamExt;
use tokio_postgres::{Client, Statement};

use super::connection::Conn;
use super::context::RoleContext;
use super::params::{encode_all, EncodedParam, Param};
use super::retry::{classify, Failure, Stage};
use super::rows::{check_columns, RowEncoder, ValueStyle};
use crate::error::PoolError;

/// One statement's reply as JSON text: `{"columns":[…],"rows":[[…],…],"rowCount":n}`.
pub struct QueryOutput {
    pub json: String,
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

/// Prepares (or finds) the statement and encodes its parameters; nothing has run yet.
async fn prepare(
    conn: &Conn,
    sql: &str,
    params: &[Param],
) -> Result<(Statement, Vec<EncodedParam>), Failure> {
    if conn.is_closed() {
        return Err(Failure::Retry(PoolError::ConnectionFailed(
            "the connection to the database was closed".into(),
        )));
    }
    let statement = conn
        .prepare_cached(sql)
        .await
        .map_err(|e| classify(&e, Stage::BeforeSend))?;
    check_columns(statement.columns()).map_err(Failure::Final)?;
    let encoded = encode_all(params, statement.params()).map_err(Failure::Final)?;
    Ok((statement, encoded))
}

/// Runs the statement and writes its rows; the request is queued on the first poll.
async fn collect(
    client: &Client,
    statement: &Statement,
    params: &[EncodedParam],
    style: ValueStyle,
) -> Result<String, RowsError> {
    let stream = client.query_raw(statement, params.iter()).await?;
    futures::pin_mut!(stream);
    let encoder = RowEncoder::new(statement.columns(), style);
    let mut out = String::with_capacity(256);
    out.push_str("{\"columns\":");
    out.push_str(encoder.columns_json());
    out.push_str(",\"rows\":[");
    let mut rows_written = 0u64;
    while let Some(row) = stream.try_next().await? {
        if rows_written > 0 {
            out.push(',');
        }
        encoder
            .write_row(&row, &mut out)
            .map_err(RowsError::Decode)?;
        rows_written += 1;
    }
    let row_count = stream.rows_affected().unwrap_or(0).max(rows_written);
    out.push_str("],\"rowCount\":");
    out.push_str(itoa::Buffer::new().format(row_count));
    out.push('}');
    Ok(out)
}

fn rows_failure(err: RowsError) -> Failure {
    match err {
        RowsError::Postgres(e) => classify(&e, Stage::Sent),
        RowsError::Decode(e) => Failure::Final(PoolError::Internal(e.to_string())),
    }
}

/// Runs one statement on `conn`, as the login role or in a user client's transaction.
pub async fn run(
    conn: &Conn,
    sql: &str,
    params: &[Param],
    style: ValueStyle,
    role: Option<&RoleContext>,
) -> Result<QueryOutput, Failure> {
    let begin = role
        .map(RoleContext::begin_sql)
        .transpose()
        .map_err(Failure::Final)?;
    let (statement, encoded) = prepare(conn, sql, params).await?;
    let client = conn.client();
    let Some(begin) = begin else {
        let json = conn
            .queued(collect(client, &statement, &encoded, style))
            .await
            .map_err(rows_failure)?;
        return Ok(QueryOutput { json });
    };
    let (began, rows, committed) = conn
        .queued(futures::future::join3(
            client.batch_execute(&begin),
            collect(client, &statement, &encoded, style),
            client.batch_execute("COMMIT"),
        ))
        .await;
    // The first failure is the cause: a role that could not be taken makes the statement fail
    // with 25P02, and a failed statement makes COMMIT a rollback.
    began.map_err(|e| classify(&e, Stage::Sent))?;
    let json = rows.map_err(rows_failure)?;
    committed.map_err(|e| classify(&e, Stage::Sent))?;
    Ok(QueryOutput { json })
}
