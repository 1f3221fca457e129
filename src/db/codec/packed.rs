//! A large raw `query()` reply, packed for JS to read without parsing JSON: the numbers of each
//! numeric column as a `Float64Array`, booleans and NULL flags as bytes, and the text of every
//! string value in one string that JS slices by offsets (`lib/rows.js`). Building a thousand row
//! objects from these costs a fraction of `JSON.parse` of the same values (bench/RESULTS.md).
//!
//! The values are exactly those of the JSON layout of `ValueStyle::Driver`: integers and floats
//! as numbers (a float's value is the one its shortest text reads back as; NaN and the
//! infinities become the strings Postgres prints, in JS), bigint, numeric, text, dates, times,
//! uuids and bytea as strings, json, jsonb, arrays and composites as JSON text that JS parses.
//!
//! The byte buffer holds each column's array at an offset the reply's head names: 8-byte
//! numbers first (aligned), then 4-byte string offsets (in UTF-16 units, as JS strings index),
//! then single bytes.

use crate::db::codec::rows::{json_text, write_plain, write_value, Number, ValueStyle};
use crate::db::codec::types::PgKind;

/// How a column's values travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Integers (exact in a double): `i`.
    Integer,
    /// Floats, which may be NaN or infinite: `f`.
    Float,
    Bool,
    /// A string, sliced from the text: `s`.
    Text,
    /// JSON text, sliced and parsed: `j`.
    Json,
    /// Always null (void): `z`.
    Null,
}

impl Lane {
    fn of(kind: &PgKind) -> Lane {
        match kind {
            PgKind::Int2 | PgKind::Int4 | PgKind::Oid => Lane::Integer,
            PgKind::Float4 | PgKind::Float8 => Lane::Float,
            PgKind::Bool => Lane::Bool,
            PgKind::Void => Lane::Null,
            PgKind::Json
            | PgKind::Jsonb
            | PgKind::Array { .. }
            | PgKind::Composite(_)
            | PgKind::Record => Lane::Json,
            _ => Lane::Text,
        }
    }

    fn letter(self) -> char {
        match self {
            Lane::Integer => 'i',
            Lane::Float => 'f',
            Lane::Bool => 'b',
            Lane::Text => 's',
            Lane::Json => 'j',
            Lane::Null => 'z',
        }
    }
}

/// One column's values so far.
#[derive(Debug)]
struct ColumnValues {
    lane: Lane,
    numbers: Vec<f64>,
    bytes: Vec<u8>,
    /// Text of this column's values, and where each starts in it (UTF-16 units, relative).
    text: String,
    starts: Vec<u32>,
    utf16_len: u32,
    /// Where in `text` the value being written begins (bytes).
    value_start: usize,
    nulls: Option<Vec<u8>>,
}

/// Writes a packed reply while its rows arrive.
#[derive(Debug)]
pub struct PackedWriter {
    kinds: Vec<PgKind>,
    columns: Vec<ColumnValues>,
    rows: usize,
}

/// A finished packed reply: the head's `packed` object (without the indexes of the buffer and
/// the text, which the crossing adds), the buffer and the text.
#[derive(Debug)]
pub struct Packed {
    pub head: String,
    pub buffer: Vec<u8>,
    pub text: String,
}

impl PackedWriter {
    pub fn new(kinds: &[PgKind]) -> Self {
        let columns = kinds
            .iter()
            .map(|kind| ColumnValues {
                lane: Lane::of(kind),
                numbers: Vec::new(),
                bytes: Vec::new(),
                text: String::new(),
                starts: Vec::new(),
                utf16_len: 0,
                value_start: 0,
                nulls: None,
            })
            .collect();
        PackedWriter {
            kinds: kinds.to_vec(),
            columns,
            rows: 0,
        }
    }

    /// Appends one row's values (None for NULL), in column order.
    pub fn row<'a>(
        &mut self,
        values: impl Iterator<Item = Option<&'a [u8]>>,
    ) -> Result<(), String> {
        let mut count = 0;
        for ((kind, column), value) in self.kinds.iter().zip(self.columns.iter_mut()).zip(values) {
            column.push(kind, value, self.rows)?;
            count += 1;
        }
        if count != self.kinds.len() {
            return Err(format!(
                "a row has {count} values for {} columns",
                self.kinds.len()
            ));
        }
        self.rows += 1;
        Ok(())
    }

    /// The buffer, the text and the head that says where each column is.
    pub fn finish(self) -> Packed {
        let rows = self.rows;
        let mut buffer = Vec::new();
        let mut text = String::new();
        let mut kinds = String::new();
        let mut at = vec![-1i64; self.columns.len()];
        let mut nulls = vec![-1i64; self.columns.len()];
        // 8-byte numbers first, so that each stays aligned.
        for (k, column) in self.columns.iter().enumerate() {
            kinds.push(column.lane.letter());
            if matches!(column.lane, Lane::Integer | Lane::Float) {
                at[k] = buffer.len() as i64;
                for v in &column.numbers {
                    buffer.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let mut text_units = 0u32;
        for (k, column) in self.columns.iter().enumerate() {
            if matches!(column.lane, Lane::Text | Lane::Json) {
                at[k] = buffer.len() as i64;
                for start in &column.starts {
                    buffer.extend_from_slice(&(text_units + start).to_le_bytes());
                }
                buffer.extend_from_slice(&(text_units + column.utf16_len).to_le_bytes());
                text.push_str(&column.text);
                text_units += column.utf16_len;
            }
        }
        for (k, column) in self.columns.iter().enumerate() {
            if column.lane == Lane::Bool {
                at[k] = buffer.len() as i64;
                buffer.extend_from_slice(&column.bytes);
            }
            if let Some(flags) = &column.nulls {
                nulls[k] = buffer.len() as i64;
                buffer.extend_from_slice(flags);
                buffer.resize(buffer.len() + rows - flags.len(), 0);
            }
        }
        let list = |values: &[i64]| {
            values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let head = format!(
            "{{\"rows\":{rows},\"kinds\":\"{kinds}\",\"at\":[{}],\"nulls\":[{}]",
            list(&at),
            list(&nulls)
        );
        Packed { head, buffer, text }
    }
}

impl ColumnValues {
    fn push(&mut self, kind: &PgKind, value: Option<&[u8]>, row: usize) -> Result<(), String> {
        let Some(bytes) = value else {
            let flags = self.nulls.get_or_insert_with(Vec::new);
            flags.resize(row, 0);
            flags.push(1);
            return self.push_empty();
        };
        match self.lane {
            Lane::Integer | Lane::Float => self.numbers.push(Number::read(kind, bytes)?.js_value()),
            Lane::Bool => self
                .bytes
                .push(u8::from(bytes.first().is_some_and(|b| *b != 0))),
            Lane::Null => {}
            Lane::Text => {
                self.start();
                write_plain(kind, bytes, &mut self.text)?;
                self.end();
            }
            Lane::Json => {
                self.start();
                match kind {
                    PgKind::Json | PgKind::Jsonb => self.text.push_str(json_text(kind, bytes)?),
                    _ => write_value(kind, bytes, ValueStyle::Driver, &mut self.text)?,
                }
                self.end();
            }
        }
        Ok(())
    }

    /// A NULL still takes its place in its column's arrays.
    fn push_empty(&mut self) -> Result<(), String> {
        match self.lane {
            Lane::Integer | Lane::Float => self.numbers.push(0.0),
            Lane::Bool => self.bytes.push(0),
            Lane::Text | Lane::Json => {
                self.start();
                self.end();
            }
            Lane::Null => {}
        }
        Ok(())
    }

    fn start(&mut self) {
        self.starts.push(self.utf16_len);
        self.value_start = self.text.len();
    }

    /// Counts the value just written in UTF-16 units (as JS indexes strings).
    fn end(&mut self) {
        let written = &self.text[self.value_start..];
        let units = if written.is_ascii() {
            written.len()
        } else {
            written.encode_utf16().count()
        };
        self.utf16_len += units as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be(v: impl AsRef<[u8]>) -> Vec<u8> {
        v.as_ref().to_vec()
    }

    #[test]
    fn numbers_strings_booleans_json_and_nulls_land_where_the_head_says() {
        let kinds = [
            PgKind::Int4,
            PgKind::Text,
            PgKind::Float4,
            PgKind::Bool,
            PgKind::Jsonb,
        ];
        let mut writer = PackedWriter::new(&kinds);
        let rows: [[Option<Vec<u8>>; 5]; 2] = [
            [
                Some(be(7i32.to_be_bytes())),
                Some(be("é\"x")),
                Some(be(0.1f32.to_be_bytes())),
                Some(vec![1]),
                Some(be(b"\x01{\"a\":1}")),
            ],
            [
                None,
                None,
                Some(be(f32::NAN.to_be_bytes())),
                None,
                Some(be(b"\x01[]")),
            ],
        ];
        for row in &rows {
            writer.row(row.iter().map(|v| v.as_deref())).unwrap();
        }
        let packed = writer.finish();
        assert_eq!(
            packed.head,
            r#"{"rows":2,"kinds":"isfbj","at":[0,32,16,60,44],"nulls":[56,58,-1,62,-1]"#
        );
        let f64_at = |at: usize| f64::from_le_bytes(packed.buffer[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(packed.buffer[at..at + 4].try_into().unwrap());
        assert_eq!((f64_at(0), f64_at(8)), (7.0, 0.0));
        assert_eq!(f64_at(16), 0.1, "the double its shortest text reads as");
        assert!(f64_at(24).is_nan());
        assert_eq!(packed.text, "é\"x{\"a\":1}[]");
        // Offsets in UTF-16 units: "é\"x" is 3 of them (4 bytes), the null an empty slice.
        assert_eq!([u32_at(32), u32_at(36), u32_at(40)], [0, 3, 3]);
        assert_eq!([u32_at(44), u32_at(48), u32_at(52)], [3, 10, 12]);
        assert_eq!(&packed.buffer[56..58], &[0, 1], "column 0's NULL flags");
        assert_eq!(&packed.buffer[58..60], &[0, 1], "column 1's");
        assert_eq!(&packed.buffer[60..62], &[1, 0], "the booleans");
        assert_eq!(&packed.buffer[62..64], &[0, 1], "and their NULL flags");
    }

    #[test]
    fn a_short_row_is_refused() {
        let mut writer = PackedWriter::new(&[PgKind::Int4, PgKind::Int4]);
        let one = 1i32.to_be_bytes();
        assert!(writer.row([Some(&one[..])].into_iter()).is_err());
    }
}
