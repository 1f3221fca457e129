//! Result rows, decoded from the binary wire format straight into JSON text.
//!
//! Building one JS object per row across napi costs more than the query on large results, so
//! rows are written here as JSON text and the facade calls `JSON.parse` once. Rows are arrays
//! (`[1,"a"]`) under one list of column names: V8 parses that about twice as fast as objects
//! (no key lookups per row), and the facade turns each array into an object with a constructor
//! generated once per column list. Each column's decoder is chosen once per statement
//! (`RowEncoder::new`), and a column type that cannot be decoded is refused before it runs.
//!
//! `ValueStyle::Driver` is the raw `query()` mapping, like node-postgres: `int8` and `numeric` as
//! strings so nothing loses precision. `ValueStyle::ToJson` renders every value as Postgres's own
//! `to_json` does (numbers as JSON numbers), which is what PostgREST returns.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::DataRowBody;

use crate::db::codec::datetime;
use crate::db::codec::numeric;
use crate::db::codec::types::{classify, classify_oid, Column, PgKind};
use crate::error::PoolError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueStyle {
    Driver,
    ToJson,
    /// `ToJson` values, each row written as an object (PostgREST's body), the column list left
    /// empty: `{"columns":[],"rows":[{"id":1},…],"rowCount":n}`.
    ToJsonObjects,
}

impl ValueStyle {
    /// How values are rendered (objects or arrays aside).
    fn values(self) -> ValueStyle {
        match self {
            ValueStyle::ToJsonObjects => ValueStyle::ToJson,
            other => other,
        }
    }
}

/// Column names and decoders for one result shape.
#[derive(Debug)]
pub struct RowEncoder {
    /// The column names as a JSON array, written once per result.
    columns_json: String,
    kinds: Vec<PgKind>,
    style: ValueStyle,
    /// For objects: each column's `"name":` (after a comma but for the first).
    keys: Vec<String>,
}

/// Refuses a result whose columns include a type this library cannot decode.
pub fn check_columns(columns: &[Column]) -> Result<(), PoolError> {
    for column in columns {
        let kind = classify(column.type_());
        if let Some(name) = kind.unsupported_name() {
            return Err(PoolError::UnsupportedType(format!(
                "column \"{}\" has type {name}, which connection-pools cannot decode yet; \
                 cast it in the SQL (for example {}::text)",
                column.name(),
                column.name()
            )));
        }
    }
    Ok(())
}

/// The message for a user-defined result type behind a transaction pooler: looking such a type up
/// in the catalog takes a flight of its own, which the pooler may send to another server (where
/// a type of that OID may not be the same); so these columns are refused.
pub fn pooled_custom_type(column: &str, type_name: &str) -> PoolError {
    PoolError::UnsupportedType(format!(
        "column \"{column}\" has the user-defined type {type_name}; behind a transaction pooler \
         (pooler: 'transaction') user-defined result types (enums, composites, extension types) \
         cannot be looked up reliably: cast it in the SQL (for example {column}::text)"
    ))
}

/// `check_columns` for the one-flight path: built-in types only (the columns come from a
/// RowDescription, whose OIDs are not looked up behind a pooler).
pub fn check_pooled_columns(columns: &[Column]) -> Result<(), PoolError> {
    for column in columns {
        let ty = column.type_();
        if postgres_types::Type::from_oid(ty.oid()).is_none() {
            return Err(pooled_custom_type(column.name(), ty.name()));
        }
    }
    check_columns(columns)
}

impl RowEncoder {
    pub fn new(columns: &[Column], style: ValueStyle) -> Self {
        let mut columns_json = String::from("[");
        let mut keys = Vec::new();
        if style == ValueStyle::ToJsonObjects {
            for (i, column) in columns.iter().enumerate() {
                let mut key = String::from(if i > 0 { "," } else { "" });
                push_json_str(&mut key, column.name());
                key.push(':');
                keys.push(key);
            }
        } else {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    columns_json.push(',');
                }
                push_json_str(&mut columns_json, column.name());
            }
        }
        columns_json.push(']');
        let kinds = columns.iter().map(|c| classify(c.type_())).collect();
        RowEncoder {
            columns_json,
            kinds,
            style: style.values(),
            keys,
        }
    }

    pub fn columns_json(&self) -> &str {
        &self.columns_json
    }

    /// How many columns a row has.
    pub fn width(&self) -> usize {
        self.kinds.len()
    }

    /// Each column's kind, in order.
    pub fn kinds(&self) -> &[PgKind] {
        &self.kinds
    }

    /// Whether a large reply is packed (`ValueStyle::Driver`: raw `query()` replies, which only
    /// JS reads; `codec::packed`).
    pub fn packs(&self) -> bool {
        self.style == ValueStyle::Driver
    }

    /// Appends one DataRow, straight from the bytes the server sent: a JSON array of its
    /// values in column order (or an object, for `ToJsonObjects`).
    pub fn write_row(&self, row: &DataRowBody, out: &mut String) -> Result<(), PoolError> {
        let objects = !self.keys.is_empty();
        let buffer = row.buffer();
        let mut ranges = row.ranges();
        out.push(if objects { '{' } else { '[' });
        for (i, kind) in self.kinds.iter().enumerate() {
            if objects {
                out.push_str(&self.keys[i]);
            } else if i > 0 {
                out.push(',');
            }
            let range = match ranges.next() {
                Ok(Some(range)) => range,
                _ => return Err(short_row(self.kinds.len())),
            };
            let Some(range) = range else {
                out.push_str("null");
                continue;
            };
            write_value(kind, &buffer[range], self.style, out).map_err(|what| {
                PoolError::Internal(format!("could not decode column {i} ({kind:?}): {what}"))
            })?;
        }
        out.push(if objects { '}' } else { ']' });
        Ok(())
    }
}

fn short_row(width: usize) -> PoolError {
    PoolError::Internal(format!("a row has fewer values than its {width} columns"))
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

/// Writes one non-null value of `kind` from its binary form, as JSON.
pub fn write_value(
    kind: &PgKind,
    bytes: &[u8],
    style: ValueStyle,
    out: &mut String,
) -> Result<(), String> {
    match kind {
        PgKind::Bool => out.push_str(if fixed::<1>(bytes)?[0] != 0 {
            "true"
        } else {
            "false"
        }),
        PgKind::Int2 | PgKind::Int4 | PgKind::Oid | PgKind::Float4 | PgKind::Float8 => {
            Number::read(kind, bytes)?.write_json(out)
        }
        PgKind::Int8 if style != ValueStyle::Driver => {
            push_int(out, i64::from_be_bytes(fixed(bytes)?))
        }
        PgKind::Numeric if style == ValueStyle::ToJson => {
            let text = numeric::decode_to_text(bytes).ok_or("malformed numeric")?;
            let is_number =
                text.starts_with(|c: char| c.is_ascii_digit() || c == '-') && text != "-Infinity";
            if is_number {
                out.push_str(&text);
            } else {
                push_json_str(out, &text);
            }
        }
        PgKind::Text => push_json_str(out, std::str::from_utf8(bytes).map_err(|e| e.to_string())?),
        // Text that may hold a quote, a backslash or a control character.
        PgKind::Char | PgKind::Bytea | PgKind::JsonPath => {
            let mut text = String::new();
            write_plain(kind, bytes, &mut text)?;
            push_json_str(out, &text);
        }
        // Postgres validated the JSON; it goes into the result text as it is.
        PgKind::Json | PgKind::Jsonb => out.push_str(json_text(kind, bytes)?),
        PgKind::Void => out.push_str("null"),
        PgKind::Array { element, .. } => write_array(element, bytes, style, out)?,
        PgKind::Composite(fields) => write_composite(Some(fields), bytes, style, out)?,
        PgKind::Record => write_composite(None, bytes, style, out)?,
        PgKind::Unsupported(name) => return Err(format!("unsupported type {name}")),
        // Plain ASCII with nothing to escape: numbers as text, dates and times, uuids.
        _ => {
            out.push('"');
            write_plain(kind, bytes, out)?;
            out.push('"');
        }
    }
    Ok(())
}

/// An integer or float value, as read from its binary form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Integer(i64),
    Real(f32),
    Double(f64),
}

impl Number {
    pub fn read(kind: &PgKind, bytes: &[u8]) -> Result<Number, String> {
        Ok(match kind {
            PgKind::Int2 => Number::Integer(i16::from_be_bytes(fixed(bytes)?).into()),
            PgKind::Int4 => Number::Integer(i32::from_be_bytes(fixed(bytes)?).into()),
            PgKind::Oid => Number::Integer(u32::from_be_bytes(fixed(bytes)?).into()),
            PgKind::Float4 => Number::Real(f32::from_be_bytes(fixed(bytes)?)),
            PgKind::Float8 => Number::Double(f64::from_be_bytes(fixed(bytes)?)),
            other => return Err(format!("{other:?} is not a number")),
        })
    }

    /// Its JSON: the shortest text that reads back as the same value (as Postgres prints a real
    /// or a double); NaN and the infinities, which JSON cannot hold, as the strings Postgres
    /// prints.
    pub fn write_json(self, out: &mut String) {
        match self {
            Number::Integer(v) => push_int(out, v),
            Number::Real(v) if v.is_finite() => out.push_str(ryu::Buffer::new().format_finite(v)),
            Number::Double(v) if v.is_finite() => out.push_str(ryu::Buffer::new().format_finite(v)),
            Number::Real(v) => push_non_finite(out, v.into()),
            Number::Double(v) => push_non_finite(out, v),
        }
    }

    /// The double JS reads from its JSON (a real's shortest text, read as a double), or NaN or
    /// an infinity itself.
    pub fn js_value(self) -> f64 {
        match self {
            Number::Integer(v) => v as f64,
            Number::Real(v) if v.is_finite() => {
                let mut shortest = ryu::Buffer::new();
                shortest.format_finite(v).parse().unwrap_or(v.into())
            }
            Number::Real(v) => v.into(),
            Number::Double(v) => v,
        }
    }
}

/// The JSON text of a json or jsonb value.
pub fn json_text<'a>(kind: &PgKind, bytes: &'a [u8]) -> Result<&'a str, String> {
    let text = match kind {
        PgKind::Jsonb => {
            let (version, text) = bytes.split_first().ok_or("empty jsonb")?;
            if *version != 1 {
                return Err(format!("jsonb version {version}"));
            }
            text
        }
        _ => bytes,
    };
    std::str::from_utf8(text).map_err(|e| e.to_string())
}

/// Writes the text of a value that a raw reply shows as a string (`ValueStyle::Driver`),
/// unquoted and unescaped: bigint and numeric (as text, so nothing loses precision), text,
/// "char", bytea (`\x` hex), uuid, jsonpath, dates, times and intervals.
pub fn write_plain(kind: &PgKind, bytes: &[u8], out: &mut String) -> Result<(), String> {
    use std::fmt::Write;
    match kind {
        PgKind::Int8 => push_int(out, i64::from_be_bytes(fixed(bytes)?)),
        PgKind::Numeric => {
            out.push_str(&numeric::decode_to_text(bytes).ok_or("malformed numeric")?)
        }
        PgKind::Text => out.push_str(std::str::from_utf8(bytes).map_err(|e| e.to_string())?),
        // "char" is a single byte; Postgres shows bytes ≥ 0x80 as octal escapes.
        PgKind::Char => match bytes.first() {
            None => {}
            Some(b) if b.is_ascii() => out.push(*b as char),
            Some(b) => write!(out, "\\{b:03o}").unwrap(),
        },
        PgKind::Bytea => {
            out.reserve(2 + bytes.len() * 2);
            out.push_str("\\x");
            for b in bytes {
                write!(out, "{b:02x}").unwrap();
            }
        }
        PgKind::Uuid => {
            for (i, byte) in fixed::<16>(bytes)?.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                write!(out, "{byte:02x}").unwrap();
            }
        }
        PgKind::JsonPath => {
            let text = bytes.get(1..).ok_or("empty jsonpath")?;
            out.push_str(std::str::from_utf8(text).map_err(|e| e.to_string())?);
        }
        PgKind::Date => datetime::write_date(out, i32::from_be_bytes(fixed(bytes)?)),
        PgKind::Time => datetime::write_time(out, i64::from_be_bytes(fixed(bytes)?)),
        PgKind::TimeTz => {
            let b = fixed::<12>(bytes)?;
            let micros = i64::from_be_bytes(b[..8].try_into().unwrap());
            let zone = i32::from_be_bytes(b[8..].try_into().unwrap());
            out.push_str(&datetime::format_timetz(micros, zone));
        }
        PgKind::Timestamp | PgKind::Timestamptz => {
            let micros = i64::from_be_bytes(fixed(bytes)?);
            datetime::write_timestamp(out, micros, *kind == PgKind::Timestamptz);
        }
        PgKind::Interval => {
            let b = fixed::<16>(bytes)?;
            let micros = i64::from_be_bytes(b[..8].try_into().unwrap());
            let days = i32::from_be_bytes(b[8..12].try_into().unwrap());
            let months = i32::from_be_bytes(b[12..].try_into().unwrap());
            out.push_str(&datetime::format_interval(micros, days, months));
        }
        other => return Err(format!("{other:?} is not shown as a string")),
    }
    Ok(())
}

fn push_int(out: &mut String, value: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// NaN and the infinities are not JSON numbers: they become the strings Postgres prints.
fn push_non_finite(out: &mut String, v: f64) {
    out.push_str(if v.is_nan() {
        "\"NaN\""
    } else if v > 0.0 {
        "\"Infinity\""
    } else {
        "\"-Infinity\""
    });
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let slice = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or("truncated value")?;
        self.at += n;
        Ok(slice)
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    /// A length-prefixed value; `None` for NULL.
    fn value(&mut self) -> Result<Option<&'a [u8]>, String> {
        let len = self.i32()?;
        if len < 0 {
            Ok(None)
        } else {
            self.take(len as usize).map(Some)
        }
    }
}

fn write_array(
    element: &PgKind,
    bytes: &[u8],
    style: ValueStyle,
    out: &mut String,
) -> Result<(), String> {
    let mut r = Reader { bytes, at: 0 };
    let ndim = r.i32()?;
    let _has_null = r.i32()?;
    let _element_oid = r.i32()?;
    if ndim == 0 {
        out.push_str("[]");
        return Ok(());
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for _ in 0..ndim {
        dims.push(r.i32()?.max(0) as usize);
        let _lower_bound = r.i32()?;
    }
    write_array_level(element, &dims, &mut r, style, out)
}

fn write_array_level(
    element: &PgKind,
    dims: &[usize],
    r: &mut Reader<'_>,
    style: ValueStyle,
    out: &mut String,
) -> Result<(), String> {
    out.push('[');
    for i in 0..dims[0] {
        if i > 0 {
            out.push(',');
        }
        if dims.len() > 1 {
            write_array_level(element, &dims[1..], r, style, out)?;
        } else {
            match r.value()? {
                Some(bytes) => write_value(element, bytes, style, out)?,
                None => out.push_str("null"),
            }
        }
    }
    out.push(']');
    Ok(())
}

/// A composite value: its field count, then each field's OID and length-prefixed value.
fn write_composite(
    fields: Option<&Vec<(String, PgKind)>>,
    bytes: &[u8],
    style: ValueStyle,
    out: &mut String,
) -> Result<(), String> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.i32()?.max(0) as usize;
    out.push('{');
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        let field_oid = r.i32()? as u32;
        let (name, kind) = match fields.and_then(|f| f.get(i)) {
            Some((name, kind)) => (name.clone(), kind.clone()),
            None => (format!("f{}", i + 1), classify_oid(field_oid)),
        };
        push_json_str(out, &name);
        out.push(':');
        match r.value()? {
            Some(bytes) => write_value(&kind, bytes, style, out)?,
            None => out.push_str("null"),
        }
    }
    out.push('}');
    Ok(())
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(kind: PgKind, bytes: &[u8], style: ValueStyle) -> String {
        let mut out = String::new();
        write_value(&kind, bytes, style, &mut out).unwrap();
        out
    }

    #[test]
    fn json_strings_escape_controls_and_quotes() {
        let mut out = String::new();
        push_json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn int8_is_a_string_for_the_driver_and_a_number_for_to_json() {
        let bytes = 9007199254740993i64.to_be_bytes();
        assert_eq!(
            render(PgKind::Int8, &bytes, ValueStyle::Driver),
            "\"9007199254740993\""
        );
        assert_eq!(
            render(PgKind::Int8, &bytes, ValueStyle::ToJson),
            "9007199254740993"
        );
    }

    #[test]
    fn floats_keep_specials_as_strings() {
        assert_eq!(
            render(PgKind::Float8, &f64::NAN.to_be_bytes(), ValueStyle::Driver),
            "\"NaN\""
        );
        assert_eq!(
            render(PgKind::Float8, &0.1f64.to_be_bytes(), ValueStyle::Driver),
            "0.1"
        );
        assert_eq!(
            render(PgKind::Float4, &0.1f32.to_be_bytes(), ValueStyle::Driver),
            "0.1"
        );
        assert_eq!(
            render(PgKind::Float8, &1.0f64.to_be_bytes(), ValueStyle::Driver),
            "1.0"
        );
    }

    #[test]
    fn uuid_bytea_and_bool() {
        let uuid = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        assert_eq!(
            render(PgKind::Uuid, &uuid, ValueStyle::Driver),
            "\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\""
        );
        assert_eq!(
            render(PgKind::Bytea, &[0xde, 0xad], ValueStyle::Driver),
            "\"\\\\xdead\""
        );
        assert_eq!(render(PgKind::Bool, &[1], ValueStyle::Driver), "true");
    }

    #[test]
    fn arrays_nest_by_dimension() {
        // int4[][] {{1,2},{3,NULL}}
        let mut bytes = Vec::new();
        for v in [2i32, 1, 23, 2, 1, 2, 1] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        for v in [1i32, 2, 3] {
            bytes.extend_from_slice(&4i32.to_be_bytes());
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            render(
                PgKind::Array {
                    element: Box::new(PgKind::Int4),
                    element_oid: 23
                },
                &bytes,
                ValueStyle::Driver
            ),
            "[[1,2],[3,null]]"
        );
    }

    #[test]
    fn truncated_values_are_errors_not_panics() {
        let mut out = String::new();
        assert!(write_value(&PgKind::Int4, &[0, 1], ValueStyle::Driver, &mut out).is_err());
        let kind = PgKind::Array {
            element: Box::new(PgKind::Int4),
            element_oid: 23,
        };
        assert!(write_value(&kind, &[0, 0, 0, 1, 0, 0], ValueStyle::Driver, &mut out).is_err());
    }
}
