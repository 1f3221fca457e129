//! A statement's reply as JS (or the REST layer) reads it, written once while the rows arrive:
//! each DataRow's values go from the socket's buffer straight into this text, with no row
//! objects in between. Two layouts:
//! - by row, `{"columns":[…],"rows":[[…],…],"rowCount":n}` (or rows as objects, with no column
//!   list), which the REST layer reads back and PostgREST bodies are made of;
//! - by column, `{"columns":[…],"data":[[…],…],"rowCount":n}`, one list of values per column,
//!   for raw `query()` replies, which only JS reads (`lib/rows.js` builds the row objects).

use std::ops::Range;
use std::sync::Arc;

use postgres_protocol::message::backend::DataRowBody;

use crate::db::codec::rows::RowEncoder;
use crate::error::PoolError;

/// One statement's reply: the JSON text JS parses, where its rows are in it, and how many rows
/// the statement returned or changed. The REST layer reads the rows and the count from here, as
/// Rust values, instead of reading them back out of the text.
#[derive(Debug)]
pub struct QueryOutput {
    text: String,
    rows: Range<usize>,
    row_count: u64,
}

impl QueryOutput {
    /// The reply text, as it crosses to JS.
    pub fn into_text(self) -> String {
        self.text
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
    /// By column: each column's values so far (the reply's `data` is made of them at the end).
    columns: Vec<String>,
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
            columns: Vec::new(),
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
        if encoder.by_column() {
            self.text.push_str(",\"data\":");
            self.columns = vec![String::new(); encoder.width()];
        } else {
            self.text.push_str(",\"rows\":");
        }
        self.rows_start = self.text.len();
        self.text.push('[');
        self.encoder = Some(encoder);
    }

    /// Appends one row; a row that cannot be decoded fails the reply (the rest are read, unused).
    pub fn row(&mut self, row: &DataRowBody) {
        if self.failed.is_some() {
            return;
        }
        let Some(encoder) = &self.encoder else {
            self.failed = Some(PoolError::Internal(
                "rows arrived before their description".into(),
            ));
            return;
        };
        let written = if encoder.by_column() {
            encoder.write_row_by_column(row, &mut self.columns, self.written == 0)
        } else {
            if self.written > 0 {
                self.text.push(',');
            }
            encoder.write_row(row, &mut self.text)
        };
        match written {
            Ok(()) => self.written += 1,
            Err(err) => self.failed = Some(err),
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
        let values: usize = self.columns.iter().map(|c| c.len() + 3).sum();
        self.text.reserve(values + 32);
        for (i, column) in self.columns.iter().enumerate() {
            self.text.push_str(if i == 0 { "[" } else { ",[" });
            self.text.push_str(column);
            self.text.push(']');
        }
        self.text.push(']');
        let rows = self.rows_start..self.text.len();
        let row_count = affected.max(self.written);
        self.text.push_str(",\"rowCount\":");
        self.text.push_str(itoa::Buffer::new().format(row_count));
        self.text.push('}');
        Ok(QueryOutput {
            text: self.text,
            rows,
            row_count,
        })
    }
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
        writer.row(&data_row(&[Some(&1i64.to_be_bytes()), Some(b"a")]));
        writer.row(&data_row(&[Some(&2i64.to_be_bytes()), None]));
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
    fn raw_replies_are_written_by_column() {
        let mut writer = RowsWriter::new(encoder(ValueStyle::Driver));
        writer.row(&data_row(&[Some(&1i64.to_be_bytes()), Some(b"a")]));
        writer.row(&data_row(&[None, Some(b"b\"")]));
        assert_eq!(
            writer.finish(2).unwrap().into_text(),
            r#"{"columns":["n","s"],"data":[["1",null],["a","b\""]],"rowCount":2}"#
        );
        let empty = RowsWriter::new(encoder(ValueStyle::Driver))
            .finish(0)
            .unwrap();
        assert_eq!(
            empty.into_text(),
            r#"{"columns":["n","s"],"data":[[],[]],"rowCount":0}"#
        );
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
        writer.row(&data_row(&[Some(&5i64.to_be_bytes()), Some(b"x")]));
        assert_eq!(
            writer.finish(1).unwrap().rows_json(),
            r#"[{"n":5,"s":"x"}]"#
        );
        let mut broken = RowsWriter::new(encoder(ValueStyle::Driver));
        broken.row(&data_row(&[Some(b"short"), Some(b"x")]));
        assert_eq!(broken.finish(1).unwrap_err().code(), "INTERNAL");
        let mut short = RowsWriter::new(encoder(ValueStyle::Driver));
        short.row(&data_row(&[Some(&5i64.to_be_bytes())]));
        assert_eq!(short.finish(1).unwrap_err().code(), "INTERNAL");
    }
}
