//! Requests written as frontend messages (the `postgres-protocol` codec), and the await of one
//! exchange for callers that run in a task.
//!
//! Values are bound, never spliced into SQL. Results come in binary (format 1) for the reply
//! encoder, or in text for the catalog lookups that read them as strings.

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use tokio::sync::oneshot;

use crate::db::codec::params::{EncodedParam, TextParam};
use crate::db::codec::types::oid;
use crate::db::engine::connection::Conn;
use crate::db::engine::policy::StatementPolicy;
use crate::db::engine::retry::{self, Failure};
use crate::db::engine::wire::exchange::{Answer, Exchange, Expect, Failed, Sink};

const TEXT: i16 = 0;
const BINARY: i16 = 1;

/// Bind (unnamed portal) and Execute of prepared `statement`, its values encoded for it, every
/// result column in binary.
pub fn bind_execute(
    buf: &mut BytesMut,
    statement: &str,
    params: &[EncodedParam],
) -> Result<(), String> {
    let formats = params
        .iter()
        .map(|p| if p.is_text() { TEXT } else { BINARY });
    bind(
        buf,
        statement,
        formats,
        params.iter().map(EncodedParam::value),
        BINARY,
    )?;
    execute(buf)
}

/// Bind and Execute of `statement` with text values, results in text.
pub fn bind_execute_text(
    buf: &mut BytesMut,
    statement: &str,
    values: &[&str],
) -> Result<(), String> {
    let formats = values.iter().map(|_| TEXT);
    bind(
        buf,
        statement,
        formats,
        values.iter().map(|v| Some(v.as_bytes())),
        TEXT,
    )?;
    execute(buf)
}

/// Parse and Describe of a statement to be kept under `name` ("" for the unnamed one).
pub fn parse_describe(buf: &mut BytesMut, name: &str, sql: &str) -> Result<(), String> {
    frontend::parse(name, sql, std::iter::empty(), buf).map_err(not_sendable)?;
    frontend::describe(b'S', name, buf).map_err(not_sendable)
}

/// One flight of an unnamed statement (behind a transaction pooler, where nothing prepared
/// survives the transaction): Parse with every parameter of type `unknown` (the server types it
/// as it types a literal), Bind with their text, Describe for the columns, Execute.
pub fn one_flight(buf: &mut BytesMut, sql: &str, params: &[TextParam]) -> Result<(), String> {
    frontend::parse("", sql, params.iter().map(|_| oid::UNKNOWN), buf).map_err(not_sendable)?;
    let formats = params.iter().map(|_| TEXT);
    bind(
        buf,
        "",
        formats,
        params.iter().map(TextParam::value),
        BINARY,
    )?;
    frontend::describe(b'P', "", buf).map_err(not_sendable)?;
    execute(buf)
}

/// Parse of an unnamed statement with text parameters, then its Bind and Execute (the catalog
/// lookups and the pooler's role: nothing kept on the server).
pub fn unnamed_text(
    buf: &mut BytesMut,
    sql: &str,
    param_types: &[u32],
    values: &[&str],
) -> Result<(), String> {
    frontend::parse("", sql, param_types.iter().copied(), buf).map_err(not_sendable)?;
    bind_execute_text(buf, "", values)
}

/// A simple query (its text is one or more statements, no parameters).
pub fn simple(buf: &mut BytesMut, sql: &str) -> Result<(), String> {
    frontend::query(sql, buf).map_err(not_sendable)
}

pub fn sync(buf: &mut BytesMut) {
    frontend::sync(buf);
}

fn bind<'a>(
    buf: &mut BytesMut,
    statement: &str,
    formats: impl Iterator<Item = i16>,
    values: impl Iterator<Item = Option<&'a [u8]>>,
    results: i16,
) -> Result<(), String> {
    frontend::bind(
        "",
        statement,
        formats,
        values,
        |value, out| match value {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        },
        [results],
        buf,
    )
    .map_err(|_| "the statement's parameters are too many or too large to send".to_string())
}

fn execute(buf: &mut BytesMut) -> Result<(), String> {
    frontend::execute("", 0, buf).map_err(not_sendable)
}

/// SQL with a NUL cannot be sent (Postgres would reject it too).
fn not_sendable(err: std::io::Error) -> String {
    format!("the statement cannot be sent: {err}")
}

/// Sends a request on `conn` and waits for its answer (for callers that run in a task).
pub async fn exchange(
    conn: &Conn,
    bytes: &[u8],
    sinks: Vec<Sink>,
    expect: Expect,
    deadline: Option<std::time::Instant>,
) -> Result<Answer, Failed> {
    let (reply, answer) = oneshot::channel();
    let exchange = Exchange::new(
        sinks,
        expect,
        deadline,
        Box::new(move |outcome| {
            let _ = reply.send(outcome);
        }),
    );
    if let Err(unsent) = conn.send(bytes, exchange) {
        unsent.fail(Failed::NotSent("the connection was closed".into()));
    }
    answer
        .await
        .unwrap_or_else(|_| Err(Failed::Lost("the connection ended".into())))
}

/// Sends a request on `conn` within the statement timeout and waits for it: its sinks, filled,
/// or the server's error or why there is no answer, as the retry loop sees them.
pub async fn answered(
    conn: &Conn,
    policy: &StatementPolicy,
    bytes: &[u8],
    sinks: Vec<Sink>,
    expect: Expect,
) -> Result<Vec<Sink>, Failure> {
    let answer = exchange(conn, bytes, sinks, expect, policy.deadline())
        .await
        .map_err(|failed| policy.unanswered(failed))?;
    match answer.error {
        Some(error) => Err(retry::answered(error)),
        None => Ok(answer.sinks),
    }
}
