//! One exchange with the server: a request (frontend messages closed by one Sync, or one simple
//! Query) and the reading of its reply, message by message, up to its ReadyForQuery.
//!
//! The reply is read into *sinks*, one per result the request asks for, in order: a result is
//! what one Execute (or one statement of a simple query) answers, and it ends with
//! CommandComplete. A user client's statement is two results under one Sync (`set_config`, then
//! the statement); a prepare is one description. The server answers requests in the order they
//! were sent, so the connection keeps its exchanges in a queue and gives each message to the
//! one at its head.

use std::sync::Arc;
use std::time::Instant;

use postgres_protocol::message::backend::Message;

use super::db_error;
use crate::db::codec::output::{rows_affected, QueryOutput, RowsWriter};
use crate::db::codec::rows::{check_pooled_columns, RowEncoder, ValueStyle};
use crate::db::codec::types::{Column, Kind, Type};
use crate::error::{DatabaseErrorFields, PoolError};

/// The session's transaction status, from ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    /// In a transaction in which a statement failed: only a rollback is accepted.
    Failed,
}

impl TxStatus {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InTransaction),
            b'E' => Some(TxStatus::Failed),
            _ => None,
        }
    }
}

/// What the connection must be in after the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Outside any transaction: a shared connection's statement is its own implicit
    /// transaction, and nothing of it may outlive its Sync.
    Idle,
    /// Anything: a statement of `transaction()`, which owns the connection.
    Any,
}

/// Where one result of the reply goes.
#[derive(Debug)]
pub enum Sink {
    /// Read and dropped (`BEGIN`, `set_config`, `COMMIT`).
    Discard,
    /// Every result until ReadyForQuery, read and dropped (a simple query of several statements).
    DiscardAll,
    /// Parse and Describe: the parameter types and result columns, as OIDs.
    Describe(Description),
    /// Rows written as the reply JS reads.
    Rows(RowsSink),
    /// Rows as text values (catalog lookups, whose results come in text format).
    Text(Vec<Vec<Option<String>>>),
}

/// A statement as the server described it.
#[derive(Debug, Default)]
pub struct Description {
    pub params: Vec<u32>,
    /// Name and type OID of each result column (none for a statement without rows).
    pub columns: Vec<(String, u32)>,
}

/// Rows for the reply; the shape known beforehand (a prepared statement) or read from the
/// RowDescription that precedes them (one flight behind a pooler, built-in types only).
#[derive(Debug)]
pub struct RowsSink {
    writer: RowsWriter,
    style: ValueStyle,
    affected: u64,
}

impl RowsSink {
    pub fn prepared(encoder: Arc<RowEncoder>, style: ValueStyle) -> Self {
        RowsSink {
            writer: RowsWriter::new(encoder),
            style,
            affected: 0,
        }
    }

    pub fn described(style: ValueStyle) -> Self {
        RowsSink {
            writer: RowsWriter::pending(),
            style,
            affected: 0,
        }
    }

    /// The reply, or why the rows could not be read.
    pub fn finish(self) -> Result<QueryOutput, PoolError> {
        self.writer.finish(self.affected)
    }

    fn describe(&mut self, columns: Vec<Column>) {
        if self.writer.has_shape() {
            return;
        }
        match check_pooled_columns(&columns) {
            Ok(()) => self
                .writer
                .start(Arc::new(RowEncoder::new(&columns, self.style))),
            Err(err) => self.writer.fail(err),
        }
    }
}

/// The server's answer to a request.
#[derive(Debug)]
pub struct Answer {
    pub sinks: Vec<Sink>,
    /// The first error of the exchange (the server skips the rest of the request after it).
    pub error: Option<Box<DatabaseErrorFields>>,
    pub status: TxStatus,
}

/// Why an exchange has no answer, as the retry policy needs to know it.
#[derive(Debug, Clone)]
pub enum Failed {
    /// Not a byte of it reached the server: it did not run.
    NotSent(String),
    /// The server read nothing of it (it ended the session first, or discarded it): it did not run.
    NotRun(String),
    /// It was sent and the connection ended before its answer: it may or may not have run.
    Lost(String),
    /// The server ended the session while running it (57P01-57P03): it was aborted.
    EndedByServer(Box<DatabaseErrorFields>),
    /// Past `statementTimeout`: cancelled on the server, or its connection discarded.
    TimedOut,
    /// A CancelRequest meant for a statement ahead of it stopped it: it did nothing.
    Cancelled,
    /// An earlier statement left the connection inside a transaction; this one ran in it, and it
    /// was rolled back: it did nothing.
    RolledBack,
    /// It left the connection inside a transaction, which only `transaction()` may: rolled back.
    LeftTransactionOpen,
    /// It started a COPY, which the pool does not carry.
    Copy,
}

/// Called once with the exchange's outcome, on the connection's task (or whoever fails it).
pub type Done = Box<dyn FnOnce(Result<Answer, Failed>) + Send>;

/// What reading one message did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    More,
    /// ReadyForQuery: the exchange is answered.
    Answered(TxStatus),
    /// CopyInResponse: the server waits for data that will never come.
    CopyIn,
}

pub struct Exchange {
    sinks: Vec<Sink>,
    at: usize,
    error: Option<Box<DatabaseErrorFields>>,
    /// COPY TO STDOUT: its data is read and dropped, and the exchange fails.
    copy: bool,
    pub expect: Expect,
    /// When `statementTimeout` runs out for it (counted from when it was queued).
    pub deadline: Option<Instant>,
    /// Where its bytes are in the connection's stream: [start, end).
    pub(super) start: u64,
    pub(super) end: u64,
    /// The connection's own ROLLBACK after a statement left a transaction open.
    pub(super) internal_rollback: bool,
    done: Option<Done>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("sinks", &self.sinks.len())
            .field("expect", &self.expect)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    pub fn new(sinks: Vec<Sink>, expect: Expect, deadline: Option<Instant>, done: Done) -> Self {
        Exchange {
            sinks,
            at: 0,
            error: None,
            copy: false,
            expect,
            deadline,
            start: 0,
            end: 0,
            internal_rollback: false,
            done: Some(done),
        }
    }

    /// Reads one message of the reply.
    pub fn read(&mut self, message: Message) -> Result<Step, String> {
        match message {
            Message::ReadyForQuery(body) => {
                return TxStatus::from_byte(body.status())
                    .map(Step::Answered)
                    .ok_or_else(|| format!("unknown transaction status {:#x}", body.status()))
            }
            Message::ErrorResponse(body) => self.record_error(db_error::read_fields(body.fields())),
            Message::ParseComplete | Message::BindComplete | Message::CloseComplete => {}
            Message::ParameterDescription(body) => {
                if let Some(Sink::Describe(description)) = self.sinks.get_mut(self.at) {
                    let mut params = body.parameters();
                    use fallible_iterator::FallibleIterator;
                    while let Some(oid) = params.next().map_err(|e| e.to_string())? {
                        description.params.push(oid);
                    }
                }
            }
            Message::RowDescription(body) => self.described(read_columns(&body)?),
            Message::NoData => self.described(Vec::new()),
            Message::DataRow(row) => match self.sinks.get_mut(self.at) {
                Some(Sink::Rows(sink)) => sink.writer.row(row),
                Some(Sink::Text(rows)) => rows.push(text_row(&row)?),
                Some(Sink::Describe(_)) => return Err("a row where a description was due".into()),
                _ => {}
            },
            Message::CommandComplete(body) => {
                if let Some(Sink::Rows(sink)) = self.sinks.get_mut(self.at) {
                    sink.affected = rows_affected(body.tag().map_err(|e| e.to_string())?);
                }
                self.next_result();
            }
            Message::EmptyQueryResponse | Message::PortalSuspended => self.next_result(),
            Message::CopyInResponse(_) => {
                self.copy = true;
                return Ok(Step::CopyIn);
            }
            Message::CopyOutResponse(_) | Message::CopyData(_) | Message::CopyDone => {
                self.copy = true;
            }
            // Asynchronous messages: the connection's task reads them before they get here.
            Message::NoticeResponse(_)
            | Message::ParameterStatus(_)
            | Message::NotificationResponse(_) => {}
            _ => return Err("a message that belongs to no request".into()),
        }
        Ok(Step::More)
    }

    /// A RowDescription or NoData: the columns of a description, or the shape of rows to come.
    fn described(&mut self, columns: Vec<(String, u32)>) {
        match self.sinks.get_mut(self.at) {
            Some(Sink::Describe(description)) => {
                description.columns = columns;
                self.at += 1;
            }
            Some(Sink::Rows(sink)) => sink.describe(
                columns
                    .into_iter()
                    .map(|(name, oid)| Column::new(name, builtin_or_unknown(oid)))
                    .collect(),
            ),
            _ => {}
        }
    }

    fn next_result(&mut self) {
        if !matches!(self.sinks.get(self.at), Some(Sink::DiscardAll)) {
            self.at += 1;
        }
    }

    /// Whether it started a COPY (its answer is then a refusal, whatever the server said).
    pub fn started_copy(&self) -> bool {
        self.copy
    }

    /// An ErrorResponse: the first one is the exchange's error (the server skips the rest of the
    /// request after it, up to its Sync).
    pub fn record_error(&mut self, fields: DatabaseErrorFields) {
        if self.error.is_none() {
            self.error = Some(Box::new(fields));
        }
    }

    /// The first error the server reported so far.
    pub fn error(&self) -> Option<&DatabaseErrorFields> {
        self.error.as_deref()
    }

    /// Reports the answer (ReadyForQuery came with `status`).
    pub fn answer(mut self, status: TxStatus) {
        let result = if self.copy {
            Err(Failed::Copy)
        } else {
            Ok(Answer {
                sinks: std::mem::take(&mut self.sinks),
                error: self.error.take(),
                status,
            })
        };
        self.finish(result);
    }

    /// Reports that there will be no answer.
    pub fn fail(self, why: Failed) {
        self.finish(Err(why));
    }

    fn finish(mut self, result: Result<Answer, Failed>) {
        if let Some(done) = self.done.take() {
            done(result);
        }
    }
}

impl Drop for Exchange {
    /// An exchange dropped unanswered (its connection's task ended abruptly) still reports.
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(Err(Failed::Lost("the connection ended".into())));
        }
    }
}

/// A type by OID: the built-in one, or a stand-in named by its OID (never looked up here).
fn builtin_or_unknown(oid: u32) -> Type {
    Type::from_oid(oid)
        .unwrap_or_else(|| Type::new(format!("oid {oid}"), oid, Kind::Simple, String::new()))
}

fn read_columns(
    body: &postgres_protocol::message::backend::RowDescriptionBody,
) -> Result<Vec<(String, u32)>, String> {
    use fallible_iterator::FallibleIterator;
    let mut columns = Vec::new();
    let mut fields = body.fields();
    while let Some(field) = fields.next().map_err(|e| e.to_string())? {
        columns.push((field.name().to_string(), field.type_oid()));
    }
    Ok(columns)
}

fn text_row(
    row: &postgres_protocol::message::backend::DataRowBody,
) -> Result<Vec<Option<String>>, String> {
    use fallible_iterator::FallibleIterator;
    let buffer = row.buffer();
    let mut values = Vec::new();
    let mut ranges = row.ranges();
    while let Some(range) = ranges.next().map_err(|e| e.to_string())? {
        values.push(range.map(|r| String::from_utf8_lossy(&buffer[r]).into_owned()));
    }
    Ok(values)
}
