//! A statement's reply as JS (or the REST layer) reads it, written once while the rows arrive:
//! each DataRow's values go from the socket's buffer straight into this text, with no row
//! objects in between. Two layouts:
//! - by row, `{"columns":[…],"rows":[[…],…],"rowCount":n}` (or rows as objects, with no column
//!   list), which the REST layer reads back and PostgREST bodies are made of;
//! - packed (`codec::packed`), for a raw `query()` reply of more than `PACK_FROM` rows, which
//!   only JS reads (`lib/rows.js` builds the row objects); a smaller raw reply is by row.

use std::ops::Range;
use std::sync::Arc;

use postgres_protocol::message::backend::DataRowBody;

use crate::db::codec::packed::{Packed, PackedWriter};
use crate::db::codec::rows::RowEncoder;
use crate::error::PoolError;

/// A raw reply of more rows than this is packed (`codec::packed`): up to it, JSON by row costs
/// JS less than the packed form's typed arrays.
const PACK_FROM: usize = 8;

/// One statement's reply: the JSON text JS parses, where its rows are in it, and how many rows
/// the statement returned or changed. The REST layer reads the rows and the count from here, as
/// Rust values, instead of reading them back out of the text. A large raw reply is packed
/// (`packed`): its text is then the head of the reply, without its closing braces.
#[derive(Debug)]
pub struct QueryOutput {
    text: String,
    rows: Range<usize>,
    row_count: u64,
    packed: Option<Packed>,
    /// How long the statement waited for its place on a connection, when the pool says.
    waited: Option<std::time::Duration>,
}

/// A reply as it crosses to JS.
pub enum Reply {
    /// JSON text.
    Whole(String),
    /// The head of a packed reply (`{…,"packed":{…` without its two closing braces), and the
    /// buffer and text that go beside the batch.
    Packed {
        head: String,
        buffer: Vec<u8>,
        text: String,
    },
}

impl QueryOutput {
    /// The reply text (of a reply that is not packed), as it crosses to JS.
    pub fn into_text(self) -> String {
        self.text
    }

    /// Notes how long the statement waited for its place on a connection.
    pub fn set_waited(&mut self, waited: std::time::Duration) {
        self.waited = Some(waited);
    }

    /// The reply as it crosses to JS, with `"waitMs"` first when `with_wait` and the wait is
    /// known (telemetry's spans ask for it; the text is copied once to make room).
    pub fn into_reply_with_wait(mut self, with_wait: bool) -> Reply {
        if let (true, Some(waited)) = (with_wait, self.waited) {
            let field = format!(r#""waitMs":{:.3},"#, waited.as_secs_f64() * 1000.0);
            // Every reply is an object with fields (`{"columns":…`): the new one goes first.
            self.text.insert_str(1, &field);
        }
        self.into_reply()
    }

    /// The reply as it crosses to JS.
    pub fn into_reply(self) -> Reply {
        match self.packed {
            None => Reply::Whole(self.text),
            Some(packed) => Reply::Packed {
                head: self.text,
                buffer: packed.buffer,
                text: packed.text,
            },
        }
    }

    /// The rows, a JSON array: arrays of values, or objects (`ValueStyle::ToJsonObjects`); for
    /// a reply by column (`ValueStyle::Driver`), its lists of values.
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

/// Writes a reply while its rows arrive.
#[derive(Debug)]
pub struct RowsWriter {
    encoder: Option<Arc<RowEncoder>>,
    text: String,
    /// A raw reply's first rows, held until it is known whether the reply is packed.
    held: Vec<DataRowBody>,
    /// A raw reply past `PACK_FROM` rows: the packed reply.
    packed: Option<PackedWriter>,
    rows_start: usize,
    written: u64,
    /// A value that could not be decoded: the rows that follow are skipped.
    failed: Option<PoolError>,
}

impl RowsWriter {
    /// For rows whose shape is known before they come (a prepared statement).
    pub fn new(encoder: Arc<RowEncoder>) -> Self {
        let mut writer = RowsWriter::pending();
        writer.start(encoder);
        writer
    }

    /// For rows whose shape comes with them (a RowDescription first): `start` once it is known.
    pub fn pending() -> Self {
        RowsWriter {
            encoder: None,
            text: String::new(),
            held: Vec::new(),
            packed: None,
            rows_start: 0,
            written: 0,
            failed: None,
        }
    }

    pub fn has_shape(&self) -> bool {
        self.encoder.is_some()
    }

    /// Writes the head of the reply: the columns, and the rows' opening bracket.
    pub fn start(&mut self, encoder: Arc<RowEncoder>) {
        self.text.reserve(64 + encoder.columns_json().len());
        self.text.push_str("{\"columns\":");
        self.text.push_str(encoder.columns_json());
        // A raw reply's rows are written at the end, packed or not (`finish`).
        if !encoder.packs() {
            self.text.push_str(",\"rows\":");
            self.rows_start = self.text.len();
            self.text.push('[');
        }
        self.encoder = Some(encoder);
    }

    /// Appends one row; a row that cannot be decoded fails the reply (the rest are read, unused).
    pub fn row(&mut self, row: DataRowBody) {
        if self.failed.is_some() {
            return;
        }
        let Some(encoder) = self.encoder.clone() else {
            self.failed = Some(PoolError::Internal(
                "rows arrived before their description".into(),
            ));
            return;
        };
        if !encoder.packs() {
            if self.written > 0 {
                self.text.push(',');
            }
            match encoder.write_row(&row, &mut self.text) {
                Ok(()) => self.written += 1,
                Err(err) => self.failed = Some(err),
            }
            return;
        }
        self.written += 1;
        if self.packed.is_none() && self.held.len() < PACK_FROM {
            self.held.push(row);
            return;
        }
        let packed = self
            .packed
            .get_or_insert_with(|| PackedWriter::new(encoder.kinds()));
        let held = std::mem::take(&mut self.held);
        for row in held.iter().chain(std::iter::once(&row)) {
            if let Err(what) = packed.row(values_of(row)) {
                self.failed = Some(PoolError::Internal(format!(
                    "could not decode a row: {what}"
                )));
                return;
            }
        }
    }

    /// The result cannot be read (a column type we cannot decode): reported instead of rows.
    pub fn fail(&mut self, err: PoolError) {
        self.failed.get_or_insert(err);
    }

    /// The reply, with `affected` rows changed (from the command tag).
    pub fn finish(mut self, affected: u64) -> Result<QueryOutput, PoolError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        if self.encoder.is_none() {
            self.text.push_str("{\"columns\":[],\"rows\":");
            self.rows_start = self.text.len();
            self.text.push('[');
        }
        let row_count = affected.max(self.written);
        if let Some(packed) = self.packed.take() {
            return Ok(self.finish_packed(packed.finish(), row_count));
        }
        if let Some(encoder) = self.encoder.clone().filter(|e| e.packs()) {
            // A few rows: by row, the layout JS reads fastest when there are few.
            self.text.push_str(",\"rows\":");
            self.rows_start = self.text.len();
            self.text.push('[');
            for (i, row) in self.held.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                encoder.write_row(row, &mut self.text)?;
            }
        }
        self.text.push(']');
        let rows = self.rows_start..self.text.len();
        self.text.push_str(",\"rowCount\":");
        self.text.push_str(itoa::Buffer::new().format(row_count));
        self.text.push('}');
        Ok(QueryOutput {
            text: self.text,
            rows,
            row_count,
            packed: None,
            waited: None,
        })
    }

    /// `{"columns":[…],"rowCount":n,"packed":{…` (the crossing closes it).
    fn finish_packed(mut self, mut packed: Packed, row_count: u64) -> QueryOutput {
        self.text.push_str(",\"rowCount\":");
        self.text.push_str(itoa::Buffer::new().format(row_count));
        self.text.push_str(",\"packed\":");
        self.text.push_str(&packed.head);
        packed.head.clear();
        QueryOutput {
            rows: 0..0,
            text: self.text,
            row_count,
            packed: Some(packed),
            waited: None,
        }
    }
}

/// A DataRow's values, None for NULL (a malformed row ends early, which the writer refuses).
fn values_of(row: &DataRowBody) -> impl Iterator<Item = Option<&[u8]>> {
    use fallible_iterator::FallibleIterator;
    let buffer = row.buffer();
    let mut ranges = row.ranges();
    std::iter::from_fn(move || match ranges.next() {
        Ok(Some(range)) => Some(range.map(|r| &buffer[r])),
        _ => None,
    })
}

/// Rows changed, from a CommandComplete tag (`INSERT 0 3`, `UPDATE 2`, `SELECT 5`): its last
/// word when that is a number.
pub fn rows_affected(tag: &str) -> u64 {
    tag.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::codec::rows::ValueStyle;
    use crate::db::codec::types::{Column, Type};

    fn data_row(values: &[Option<&[u8]>]) -> DataRowBody {
        let mut body = Vec::new();
        body.extend_from_slice(&(values.len() as u16).to_be_bytes());
        for value in values {
            match value {
                Some(bytes) => {
                    body.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    body.extend_from_slice(bytes);
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(b"D");
        buf.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        buf.extend_from_slice(&body);
        match postgres_protocol::message::backend::Message::parse(&mut buf).unwrap() {
            Some(postgres_protocol::message::backend::Message::DataRow(row)) => row,
            _ => panic!("not a data row"),
        }
    }

    fn encoder(style: ValueStyle) -> Arc<RowEncoder> {
        Arc::new(RowEncoder::new(
            &[
                Column::new("n".into(), Type::INT8),
                Column::new("s".into(), Type::TEXT),
            ],
            style,
        ))
    }

    #[test]
    fn the_reply_text_and_its_parts_agree() {
        let mut writer = RowsWriter::new(encoder(ValueStyle::ToJson));
        writer.row(data_row(&[Some(&1i64.to_be_bytes()), Some(b"a")]));
        writer.row(data_row(&[Some(&2i64.to_be_bytes()), None]));
        let output = writer.finish(rows_affected("SELECT 2")).unwrap();
        assert_eq!(output.rows_json(), r#"[[1,"a"],[2,null]]"#);
        assert_eq!(output.row_count(), 2);
        let first: Option<(i64, Option<String>)> = output.first_row().unwrap();
        assert_eq!(first, Some((1, Some("a".into()))));
        assert!(
            output.first_row::<(String,)>().is_err(),
            "a row of another shape"
        );
        assert_eq!(
            output.into_text(),
            r#"{"columns":["n","s"],"rows":[[1,"a"],[2,null]],"rowCount":2}"#
        );
    }

    #[test]
    fn the_wait_goes_first_only_when_asked_for_and_known() {
        let reply = |with_wait: bool, waited: Option<u64>| {
            let mut writer = RowsWriter::new(encoder(ValueStyle::ToJson));
            writer.row(data_row(&[Some(&1i64.to_be_bytes()), Some(b"a")]));
            let mut output = writer.finish(rows_affected("SELECT 1")).unwrap();
            if let Some(us) = waited {
                output.set_waited(std::time::Duration::from_micros(us));
            }
            match output.into_reply_with_wait(with_wait) {
                Reply::Whole(text) => text,
                Reply::Packed { .. } => panic!("one row is not packed"),
            }
        };
        let plain = r#"{"columns":["n","s"],"rows":[[1,"a"]],"rowCount":1}"#;
        assert_eq!(reply(false, Some(1500)), plain);
        assert_eq!(reply(true, None), plain);
        let with = reply(true, Some(1500));
        assert_eq!(with, format!(r#"{{"waitMs":1.500,{}"#, &plain[1..]));
        let parsed: serde_json::Value = serde_json::from_str(&with).unwrap();
        assert_eq!(parsed["waitMs"], 1.5);
    }

    #[test]
    fn a_small_raw_reply_is_written_by_row() {
        let mut writer = RowsWriter::new(encoder(ValueStyle::Driver));
        writer.row(data_row(&[Some(&1i64.to_be_bytes()), Some(b"a")]));
        writer.row(data_row(&[None, Some(b"b\"")]));
        assert_eq!(
            writer.finish(2).unwrap().into_text(),
            r#"{"columns":["n","s"],"rows":[["1","a"],[null,"b\""]],"rowCount":2}"#
        );
        let empty = RowsWriter::new(encoder(ValueStyle::Driver))
            .finish(0)
            .unwrap();
        assert_eq!(
            empty.into_text(),
            r#"{"columns":["n","s"],"rows":[],"rowCount":0}"#
        );
    }

    #[test]
    fn a_large_raw_reply_is_packed() {
        let mut writer = RowsWriter::new(encoder(ValueStyle::Driver));
        for n in 0..(PACK_FROM as i64 + 1) {
            writer.row(data_row(&[Some(&n.to_be_bytes()), Some(b"x")]));
        }
        let output = writer.finish(0).unwrap();
        assert_eq!(output.row_count(), 9);
        let Reply::Packed { head, buffer, text } = output.into_reply() else {
            panic!("not packed")
        };
        assert_eq!(
            head,
            r#"{"columns":["n","s"],"rowCount":9,"packed":{"rows":9,"kinds":"ss","at":[0,40],"nulls":[-1,-1]"#
        );
        assert_eq!(
            text, "012345678xxxxxxxxx",
            "bigint as text, as the JSON layout has it"
        );
        assert_eq!(buffer.len(), 80);
    }

    #[test]
    fn a_statement_without_rows_counts_what_it_changed() {
        let none = RowsWriter::pending()
            .finish(rows_affected("UPDATE 7"))
            .unwrap();
        assert_eq!(none.rows_json(), "[]");
        assert_eq!(none.row_count(), 7);
        assert_eq!(none.first_row::<(i64,)>().unwrap(), None);
        assert_eq!(rows_affected("INSERT 0 3"), 3);
        assert_eq!(rows_affected("BEGIN"), 0);
    }

    #[test]
    fn objects_and_a_row_that_cannot_be_read() {
        let mut writer = RowsWriter::new(encoder(ValueStyle::ToJsonObjects));
        writer.row(data_row(&[Some(&5i64.to_be_bytes()), Some(b"x")]));
        assert_eq!(
            writer.finish(1).unwrap().rows_json(),
            r#"[{"n":5,"s":"x"}]"#
        );
        let mut broken = RowsWriter::new(encoder(ValueStyle::Driver));
        broken.row(data_row(&[Some(b"short"), Some(b"x")]));
        assert_eq!(broken.finish(1).unwrap_err().code(), "INTERNAL");
        let mut short = RowsWriter::new(encoder(ValueStyle::Driver));
        short.row(data_row(&[Some(&5i64.to_be_bytes())]));
        assert_eq!(short.finish(1).unwrap_err().code(), "INTERNAL");
    }
}
