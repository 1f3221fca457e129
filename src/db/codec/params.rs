//! Bound parameters: JS values encoded as the type Postgres inferred for each `$n`.
//!
//! node-postgres sends every parameter as untyped text and lets the server parse it. Here the
//! statement is prepared first (cached per connection), the server's parameter types are read
//! back, and each JS value is encoded in binary as exactly that type. A value
//! that does not fit gets the SQLSTATE Postgres itself would have raised for the same text
//! (`22P02` invalid syntax, `22003` out of range, `42804` wrong kind of value), so code written
//! against node-postgres sees the same codes. Values are never spliced into SQL text.

use postgres_types::Type;

use crate::db::codec::datetime;
use crate::db::codec::numeric;
use crate::db::codec::types::{classify, PgKind};
use crate::error::{DatabaseErrorFields, PoolError};

/// A parameter as it arrived from JS.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Bool(bool),
    Number(f64),
    /// Strings, and `Date`s and `bigint`s rendered as text on the JS side.
    Text(String),
    Bytes(Vec<u8>),
    /// A plain object, already `JSON.stringify`-ed.
    Json(String),
    Array(Vec<Param>),
}

/// A one-dimensional Postgres array literal (`{a,"b c",NULL}`) as text elements, or `None` when
/// it is not one (nested arrays included: those are left for a JS array).
pub fn parse_array_literal(text: &str) -> Option<Vec<Param>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let item = if chars.peek() == Some(&'"') {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => item.push(chars.next()?),
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            Param::Text(item)
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return None;
                }
                item.push(c);
                chars.next();
            }
            let item = item.trim();
            if item.is_empty() {
                return None;
            }
            if item.eq_ignore_ascii_case("null") {
                Param::Null
            } else {
                Param::Text(item.to_string())
            }
        };
        items.push(item);
        match chars.next() {
            None => return Some(items),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

/// A parameter encoded for one statement: its wire bytes in the statement's type (binary, or
/// the text the server parses itself), or NULL.
#[derive(Debug)]
pub struct EncodedParam {
    bytes: Option<Vec<u8>>,
    text: bool,
}

impl EncodedParam {
    /// The value's bytes as Bind carries them; None for NULL.
    pub fn value(&self) -> Option<&[u8]> {
        self.bytes.as_deref()
    }

    /// Whether the value goes as text for the server to parse (format 0) rather than binary.
    pub fn is_text(&self) -> bool {
        self.text
    }
}

/// Encodes every parameter for the types the server inferred; the count must match.
pub fn encode_all(params: &[Param], types: &[Type]) -> Result<Vec<EncodedParam>, PoolError> {
    if params.len() != types.len() {
        return Err(sql_error(
            "08P01",
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                params.len(),
                types.len()
            ),
            None,
        ));
    }
    params
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (param, ty))| {
            let kind = classify(ty);
            match (encode(param, &kind), param) {
                (Ok(bytes), _) => Ok(EncodedParam { bytes, text: false }),
                // A string this encoder does not read as the type (`20190101` as a date,
                // `epoch`), or a value of a type it has no binary form for (`interval`,
                // `point`, an enum): the server reads its text as it reads a literal, as
                // node-postgres sends every value, and says so itself if it cannot.
                (Err(e), Param::Text(text)) if e.sqlstate == "22P02" => Ok(EncodedParam {
                    bytes: Some(text.as_bytes().to_vec()),
                    text: true,
                }),
                // Bytes have no text but `\x…` hex, which only bytea reads.
                (Err(e), Param::Bytes(_)) => Err(e.for_parameter(i + 1, ty)),
                (Err(e), _) if e.sqlstate == FEATURE_NOT_SUPPORTED => Ok(EncodedParam {
                    bytes: Some(literal_text(param).into_bytes()),
                    text: true,
                }),
                (Err(e), _) => Err(e.for_parameter(i + 1, ty)),
            }
        })
        .collect()
}

/// Why a value could not be encoded, before the parameter number is known.
#[derive(Debug)]
pub struct EncodeError {
    sqlstate: &'static str,
    message: String,
}

/// SQLSTATE feature_not_supported: a parameter type this library cannot encode. It is reported
/// as `UNSUPPORTED_TYPE` with a hint to cast, since Postgres itself would have accepted the text.
const FEATURE_NOT_SUPPORTED: &str = "0A000";

impl EncodeError {
    fn unsupported() -> Self {
        Self {
            sqlstate: FEATURE_NOT_SUPPORTED,
            message: String::new(),
        }
    }
    fn syntax(type_name: &str, shown: impl std::fmt::Display) -> Self {
        Self {
            sqlstate: "22P02",
            message: format!("invalid input syntax for type {type_name}: \"{shown}\""),
        }
    }
    fn range(type_name: &str, shown: impl std::fmt::Display) -> Self {
        Self {
            sqlstate: "22003",
            message: format!("value \"{shown}\" is out of range for type {type_name}"),
        }
    }
    fn mismatch(what: &str, type_name: &str) -> Self {
        Self {
            sqlstate: "42804",
            message: format!("cannot send {what} as type {type_name}"),
        }
    }
    fn for_parameter(self, position: usize, ty: &Type) -> PoolError {
        if self.sqlstate == FEATURE_NOT_SUPPORTED {
            return PoolError::UnsupportedType(format!(
                "parameter ${position} has type {}, which connection-pools cannot send yet; \
                 write ${position}::text in the SQL and pass a string",
                ty.name().to_lowercase()
            ));
        }
        sql_error(
            self.sqlstate,
            self.message,
            Some(format!(
                "parameter ${position} ({})",
                ty.name().to_lowercase()
            )),
        )
    }
}

fn sql_error(code: &str, message: String, detail: Option<String>) -> PoolError {
    PoolError::Database(Box::new(DatabaseErrorFields {
        code: code.to_string(),
        message,
        detail,
        severity: "ERROR".to_string(),
        ..Default::default()
    }))
}

fn describe(param: &Param) -> &'static str {
    match param {
        Param::Null => "null",
        Param::Bool(_) => "a boolean",
        Param::Number(_) => "a number",
        Param::Text(_) => "a string",
        Param::Bytes(_) => "a Buffer",
        Param::Json(_) => "an object",
        Param::Array(_) => "an array",
    }
}

/// JS `String(n)` for the numbers that matter: integers print without `.0`.
fn number_text(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{n}")
    }
}

/// The text form a scalar takes when it goes into a text-like column, as node-postgres would send it.
fn as_text(param: &Param) -> Option<String> {
    match param {
        Param::Text(s) | Param::Json(s) => Some(s.clone()),
        Param::Number(n) => Some(number_text(*n)),
        Param::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn encode(param: &Param, kind: &PgKind) -> Result<Option<Vec<u8>>, EncodeError> {
    if let Param::Null = param {
        return Ok(None);
    }
    let bytes = match kind {
        PgKind::Bool => vec![encode_bool(param)? as u8],
        PgKind::Int2 => (encode_int(param, "smallint", i16::MIN as i64, i16::MAX as i64)? as i16)
            .to_be_bytes()
            .to_vec(),
        PgKind::Int4 => (encode_int(param, "integer", i32::MIN as i64, i32::MAX as i64)? as i32)
            .to_be_bytes()
            .to_vec(),
        PgKind::Int8 => encode_int(param, "bigint", i64::MIN, i64::MAX)?
            .to_be_bytes()
            .to_vec(),
        PgKind::Oid => (encode_int(param, "oid", 0, u32::MAX as i64)? as u32)
            .to_be_bytes()
            .to_vec(),
        PgKind::Float4 => (encode_float(param, "real")? as f32).to_be_bytes().to_vec(),
        PgKind::Float8 => encode_float(param, "double precision")?
            .to_be_bytes()
            .to_vec(),
        PgKind::Numeric => {
            let text = match param {
                Param::Number(n) => number_text(*n),
                Param::Text(s) => s.clone(),
                other => return Err(EncodeError::mismatch(describe(other), "numeric")),
            };
            numeric::encode_from_text(&text).map_err(|_| EncodeError::syntax("numeric", &text))?
        }
        PgKind::Text => as_text(param)
            .ok_or_else(|| EncodeError::mismatch(describe(param), "text"))?
            .into_bytes(),
        PgKind::Char => {
            let text =
                as_text(param).ok_or_else(|| EncodeError::mismatch(describe(param), "\"char\""))?;
            text.bytes().take(1).collect()
        }
        PgKind::Bytea => match param {
            Param::Bytes(b) => b.clone(),
            Param::Text(s) => match s.strip_prefix("\\x") {
                Some(hex) => decode_hex(hex).ok_or_else(|| EncodeError::syntax("bytea", s))?,
                None => s.as_bytes().to_vec(),
            },
            other => return Err(EncodeError::mismatch(describe(other), "bytea")),
        },
        PgKind::Uuid => match param {
            Param::Text(s) => parse_uuid(s).ok_or_else(|| EncodeError::syntax("uuid", s))?,
            other => return Err(EncodeError::mismatch(describe(other), "uuid")),
        },
        PgKind::Json => json_text(param)?.into_bytes(),
        PgKind::Jsonb | PgKind::JsonPath => {
            let mut out = vec![1u8];
            out.extend_from_slice(json_text(param)?.as_bytes());
            out
        }
        PgKind::Date => {
            let text = date_text(param, "date")?;
            datetime::parse_date(&text)
                .map_err(|_| EncodeError::syntax("date", &text))?
                .to_be_bytes()
                .to_vec()
        }
        PgKind::Timestamp | PgKind::Timestamptz => {
            let with_tz = *kind == PgKind::Timestamptz;
            let name = if with_tz {
                "timestamp with time zone"
            } else {
                "timestamp without time zone"
            };
            let text = date_text(param, name)?;
            datetime::parse_timestamp(&text, with_tz)
                .map_err(|_| EncodeError::syntax(name, &text))?
                .to_be_bytes()
                .to_vec()
        }
        PgKind::Time => {
            let text = date_text(param, "time without time zone")?;
            datetime::parse_time(&text)
                .map_err(|_| EncodeError::syntax("time without time zone", &text))?
                .to_be_bytes()
                .to_vec()
        }
        PgKind::Array {
            element,
            element_oid,
        } => match param {
            Param::Array(items) => encode_array(items, element, *element_oid)?,
            // An array literal (`{a,b}`), as PostgREST's filters write arrays.
            Param::Text(text) if text.trim_start().starts_with('{') => {
                let items = parse_array_literal(text)
                    .ok_or_else(|| EncodeError::syntax("an array", text))?;
                encode_array(&items, element, *element_oid)?
            }
            other => {
                return Err(EncodeError::mismatch(
                    describe(other),
                    "an array (pass a JS array)",
                ))
            }
        },
        PgKind::Void => Vec::new(),
        PgKind::TimeTz
        | PgKind::Interval
        | PgKind::Composite(_)
        | PgKind::Record
        | PgKind::Unsupported(_) => return Err(EncodeError::unsupported()),
    };
    Ok(Some(bytes))
}

fn encode_bool(param: &Param) -> Result<bool, EncodeError> {
    match param {
        Param::Bool(b) => Ok(*b),
        Param::Number(n) if *n == 0.0 || *n == 1.0 => Ok(*n == 1.0),
        Param::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
            "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
            _ => Err(EncodeError::syntax("boolean", s)),
        },
        other => Err(EncodeError::mismatch(describe(other), "boolean")),
    }
}

fn encode_int(param: &Param, name: &str, min: i64, max: i64) -> Result<i64, EncodeError> {
    let value = match param {
        Param::Number(n) => {
            if !n.is_finite() || n.fract() != 0.0 {
                return Err(EncodeError::syntax(name, number_text(*n)));
            }
            if *n < min as f64 || *n > max as f64 {
                return Err(EncodeError::range(name, number_text(*n)));
            }
            *n as i64
        }
        Param::Text(s) => {
            let t = s.trim();
            match t.parse::<i128>() {
                Ok(v) if v < min as i128 || v > max as i128 => {
                    return Err(EncodeError::range(name, t))
                }
                Ok(v) => v as i64,
                Err(_) => return Err(EncodeError::syntax(name, s)),
            }
        }
        Param::Bool(_) => return Err(EncodeError::mismatch("a boolean", name)),
        other => return Err(EncodeError::mismatch(describe(other), name)),
    };
    Ok(value)
}

fn encode_float(param: &Param, name: &str) -> Result<f64, EncodeError> {
    match param {
        Param::Number(n) => Ok(*n),
        Param::Text(s) => match s.trim() {
            t if t.eq_ignore_ascii_case("nan") => Ok(f64::NAN),
            t if t.eq_ignore_ascii_case("infinity") || t == "inf" => Ok(f64::INFINITY),
            t if t.eq_ignore_ascii_case("-infinity") || t == "-inf" => Ok(f64::NEG_INFINITY),
            t => t.parse().map_err(|_| EncodeError::syntax(name, s)),
        },
        other => Err(EncodeError::mismatch(describe(other), name)),
    }
}

/// JSON text for a json/jsonb parameter: strings pass through as JSON text (node-postgres
/// semantics), objects arrive stringified, arrays are serialized element by element.
fn json_text(param: &Param) -> Result<String, EncodeError> {
    match param {
        Param::Text(s) | Param::Json(s) => Ok(s.clone()),
        Param::Array(_) | Param::Number(_) | Param::Bool(_) => {
            let value = to_json_value(param)?;
            Ok(value.to_string())
        }
        other => Err(EncodeError::mismatch(describe(other), "json")),
    }
}

fn to_json_value(param: &Param) -> Result<serde_json::Value, EncodeError> {
    use serde_json::Value;
    Ok(match param {
        Param::Null => Value::Null,
        Param::Bool(b) => Value::Bool(*b),
        // As JSON.stringify: whole numbers print without `.0`, NaN and Infinity become null.
        Param::Number(n) if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 => {
            Value::from(*n as i64)
        }
        Param::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Param::Text(s) => Value::String(s.clone()),
        Param::Json(s) => serde_json::from_str(s).map_err(|_| EncodeError::syntax("json", s))?,
        Param::Array(items) => {
            Value::Array(items.iter().map(to_json_value).collect::<Result<_, _>>()?)
        }
        Param::Bytes(_) => return Err(EncodeError::mismatch("a Buffer", "json")),
    })
}

fn date_text(param: &Param, name: &str) -> Result<String, EncodeError> {
    match param {
        Param::Text(s) => Ok(s.clone()),
        other => Err(EncodeError::mismatch(
            &format!("{} (pass a Date or an ISO 8601 string)", describe(other)),
            name,
        )),
    }
}

/// The binary array format: dimensions, a has-nulls flag, the element OID, each dimension's
/// length and lower bound (1), then the elements, each length-prefixed (-1 for NULL).
fn encode_array(
    items: &[Param],
    element: &PgKind,
    element_oid: u32,
) -> Result<Vec<u8>, EncodeError> {
    let mut dims: Vec<i32> = Vec::new();
    let mut level: &[Param] = items;
    loop {
        dims.push(level.len() as i32);
        match level.first() {
            Some(Param::Array(inner)) => level = inner,
            _ => break,
        }
    }
    if items.is_empty() {
        dims.clear();
    }
    let mut body = Vec::new();
    let mut has_null = false;
    write_elements(items, &dims, 0, element, &mut body, &mut has_null)?;

    let mut out = Vec::with_capacity(12 + dims.len() * 8 + body.len());
    out.extend_from_slice(&(dims.len() as i32).to_be_bytes());
    out.extend_from_slice(&(has_null as i32).to_be_bytes());
    out.extend_from_slice(&element_oid.to_be_bytes());
    for d in &dims {
        out.extend_from_slice(&d.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
    }
    out.extend_from_slice(&body);
    Ok(out)
}

fn write_elements(
    items: &[Param],
    dims: &[i32],
    depth: usize,
    element: &PgKind,
    out: &mut Vec<u8>,
    has_null: &mut bool,
) -> Result<(), EncodeError> {
    let ragged = || EncodeError {
        sqlstate: "2202E",
        message: "multidimensional arrays must have sub-arrays with matching dimensions".into(),
    };
    if dims.get(depth).copied() != Some(items.len() as i32)
        && !(dims.is_empty() && items.is_empty())
    {
        return Err(ragged());
    }
    let innermost = depth + 1 == dims.len();
    for item in items {
        match (item, innermost) {
            (Param::Array(inner), false) => {
                write_elements(inner, dims, depth + 1, element, out, has_null)?
            }
            (Param::Array(_), true) | (_, false) => return Err(ragged()),
            (value, true) => match encode(value, element)? {
                Some(bytes) => {
                    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    out.extend_from_slice(&bytes);
                }
                None => {
                    *has_null = true;
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                }
            },
        }
    }
    Ok(())
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Accepts the forms Postgres's `uuid_in` accepts: hyphens anywhere between groups, optional braces.
fn parse_uuid(s: &str) -> Option<Vec<u8>> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    decode_hex(&hex)
}

/// A parameter for the one-flight path (behind a transaction pooler): text of type `unknown`,
/// which the server types as it types a literal, as node-postgres sends every parameter.
#[derive(Debug)]
pub struct TextParam(Option<String>);

impl TextParam {
    pub fn new(param: &Param) -> Self {
        TextParam(match param {
            Param::Null => None,
            other => Some(literal_text(other)),
        })
    }
}

impl TextParam {
    /// The text as Bind carries it; None for NULL.
    pub fn value(&self) -> Option<&[u8]> {
        self.0.as_ref().map(|text| text.as_bytes())
    }
}

/// A value's text as node-postgres renders it (`prepareValue`): numbers as JS prints them,
/// `bytea` as `\x…` hex, arrays as array literals with every element quoted.
fn literal_text(param: &Param) -> String {
    match param {
        Param::Null => "NULL".into(),
        Param::Bool(b) => if *b { "true" } else { "false" }.into(),
        Param::Number(n) => js_number_text(*n),
        Param::Text(text) | Param::Json(text) => text.clone(),
        Param::Bytes(bytes) => {
            let mut out = String::with_capacity(2 + bytes.len() * 2);
            out.push_str("\\x");
            for byte in bytes {
                out.push_str(&format!("{byte:02x}"));
            }
            out
        }
        // An array holding an object cannot be a Postgres array: it is JSON for a json/jsonb
        // parameter (node-postgres would send an array literal the server then refuses).
        // (A Buffer inside cannot be JSON; the array literal then lets the server say so.)
        Param::Array(_) if holds_object(param) => match to_json_value(param) {
            Ok(json) => json.to_string(),
            Err(_) => array_literal(param),
        },
        Param::Array(_) => array_literal(param),
    }
}

fn array_literal(param: &Param) -> String {
    match param {
        Param::Array(items) => {
            let mut out = String::from("{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Param::Null => out.push_str("NULL"),
                    Param::Array(_) => out.push_str(&literal_text(item)),
                    other => {
                        out.push('"');
                        for c in literal_text(other).chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    }
                }
            }
            out.push('}');
            out
        }
        other => literal_text(other),
    }
}

fn holds_object(param: &Param) -> bool {
    match param {
        Param::Json(_) => true,
        Param::Array(items) => items.iter().any(holds_object),
        _ => false,
    }
}

/// `String(n)` for the values Postgres reads back the same: integers without a fraction.
fn js_number_text(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{n:.0}")
    } else {
        ryu::Buffer::new().format_finite(n).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_parse_as_postgres_writes_them() {
        let text = |s: &str| Param::Text(s.into());
        assert_eq!(
            parse_array_literal("{a,b}"),
            Some(vec![text("a"), text("b")])
        );
        assert_eq!(
            parse_array_literal(r#"{ "x, y" , "q\"uote", NULL, 3 }"#),
            Some(vec![text("x, y"), text("q\"uote"), Param::Null, text("3")])
        );
        assert_eq!(parse_array_literal("{}"), Some(vec![]));
        assert_eq!(parse_array_literal("{{1,2},{3,4}}"), None);
        assert_eq!(parse_array_literal("{a,,b}"), None);
        assert_eq!(parse_array_literal("{\"open}"), None);
    }

    fn enc(param: Param, kind: PgKind) -> Result<Option<Vec<u8>>, EncodeError> {
        encode(&param, &kind)
    }

    #[test]
    fn integers_check_range_and_wholeness() {
        assert_eq!(
            enc(Param::Number(7.0), PgKind::Int4).unwrap().unwrap(),
            7i32.to_be_bytes()
        );
        assert_eq!(
            enc(Param::Text(" -3 ".into()), PgKind::Int2)
                .unwrap()
                .unwrap(),
            (-3i16).to_be_bytes()
        );
        assert_eq!(
            enc(Param::Number(1.5), PgKind::Int4).unwrap_err().sqlstate,
            "22P02"
        );
        assert_eq!(
            enc(Param::Number(40000.0), PgKind::Int2)
                .unwrap_err()
                .sqlstate,
            "22003"
        );
        assert_eq!(
            enc(Param::Text("abc".into()), PgKind::Int8)
                .unwrap_err()
                .sqlstate,
            "22P02"
        );
        assert_eq!(
            enc(Param::Text("9223372036854775808".into()), PgKind::Int8)
                .unwrap_err()
                .sqlstate,
            "22003"
        );
        assert_eq!(
            enc(Param::Bool(true), PgKind::Int4).unwrap_err().sqlstate,
            "42804"
        );
        let big = enc(Param::Text("9007199254740993".into()), PgKind::Int8)
            .unwrap()
            .unwrap();
        assert_eq!(big, 9007199254740993i64.to_be_bytes());
    }

    #[test]
    fn null_is_null_for_any_type() {
        assert!(enc(Param::Null, PgKind::Uuid).unwrap().is_none());
        assert!(enc(Param::Null, PgKind::Unsupported("point".into()))
            .unwrap()
            .is_none());
    }

    #[test]
    fn text_takes_scalars_like_node_postgres() {
        assert_eq!(
            enc(Param::Number(42.0), PgKind::Text).unwrap().unwrap(),
            b"42"
        );
        assert_eq!(
            enc(Param::Number(0.5), PgKind::Text).unwrap().unwrap(),
            b"0.5"
        );
        assert_eq!(
            enc(Param::Bool(false), PgKind::Text).unwrap().unwrap(),
            b"false"
        );
        assert_eq!(
            enc(Param::Json("{\"a\":1}".into()), PgKind::Text)
                .unwrap()
                .unwrap(),
            b"{\"a\":1}"
        );
        assert!(enc(Param::Bytes(vec![1]), PgKind::Text).is_err());
    }

    #[test]
    fn json_and_jsonb() {
        assert_eq!(
            enc(Param::Json("{\"a\":1}".into()), PgKind::Jsonb)
                .unwrap()
                .unwrap(),
            b"\x01{\"a\":1}"
        );
        let arr = Param::Array(vec![
            Param::Number(1.0),
            Param::Text("x".into()),
            Param::Null,
        ]);
        assert_eq!(enc(arr, PgKind::Json).unwrap().unwrap(), b"[1,\"x\",null]");
    }

    #[test]
    fn uuid_and_bytea() {
        let bytes = enc(
            Param::Text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11".into()),
            PgKind::Uuid,
        )
        .unwrap()
        .unwrap();
        assert_eq!(bytes.len(), 16);
        assert_eq!(bytes[0], 0xA0);
        assert_eq!(
            enc(Param::Text("nope".into()), PgKind::Uuid)
                .unwrap_err()
                .sqlstate,
            "22P02"
        );
        assert_eq!(
            enc(Param::Text("\\xdead".into()), PgKind::Bytea)
                .unwrap()
                .unwrap(),
            [0xde, 0xad]
        );
        assert_eq!(
            enc(Param::Bytes(vec![0, 255]), PgKind::Bytea)
                .unwrap()
                .unwrap(),
            [0, 255]
        );
    }

    #[test]
    fn arrays_encode_dimensions_and_nulls() {
        let kind = PgKind::Array {
            element: Box::new(PgKind::Int4),
            element_oid: 23,
        };
        let bytes = enc(
            Param::Array(vec![Param::Number(1.0), Param::Null]),
            kind.clone(),
        )
        .unwrap()
        .unwrap();
        let header: Vec<i32> = bytes[..20]
            .chunks(4)
            .map(|c| i32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(header, vec![1, 1, 23, 2, 1]);
        let empty = enc(Param::Array(vec![]), kind.clone()).unwrap().unwrap();
        assert_eq!(&empty[..4], &0i32.to_be_bytes());
        let ragged = Param::Array(vec![
            Param::Array(vec![Param::Number(1.0)]),
            Param::Array(vec![Param::Number(1.0), Param::Number(2.0)]),
        ]);
        assert_eq!(enc(ragged, kind.clone()).unwrap_err().sqlstate, "2202E");
        assert_eq!(enc(Param::Number(1.0), kind).unwrap_err().sqlstate, "42804");
    }

    #[test]
    fn dates_need_text() {
        assert!(enc(
            Param::Text("2024-01-02T03:04:05.000Z".into()),
            PgKind::Timestamptz
        )
        .is_ok());
        assert_eq!(
            enc(Param::Number(0.0), PgKind::Date).unwrap_err().sqlstate,
            "42804"
        );
        assert_eq!(
            enc(Param::Text("soon".into()), PgKind::Date)
                .unwrap_err()
                .sqlstate,
            "22P02"
        );
    }

    #[test]
    fn numeric_from_numbers_and_text() {
        assert!(enc(Param::Number(0.1), PgKind::Numeric).is_ok());
        assert!(enc(
            Param::Text("123456789012345678901234567890.5".into()),
            PgKind::Numeric
        )
        .is_ok());
        assert_eq!(
            enc(Param::Text("1,5".into()), PgKind::Numeric)
                .unwrap_err()
                .sqlstate,
            "22P02"
        );
    }

    #[test]
    fn count_mismatch_is_a_protocol_error() {
        let err = encode_all(&[Param::Null], &[]).err().unwrap();
        assert_eq!(err.code(), "08P01");
    }

    #[test]
    fn text_parameters_read_as_node_postgres_writes_them() {
        let text = |p: Param| TextParam::new(&p).0;
        assert_eq!(text(Param::Null), None);
        assert_eq!(text(Param::Bool(true)).as_deref(), Some("true"));
        assert_eq!(text(Param::Number(42.0)).as_deref(), Some("42"));
        assert_eq!(text(Param::Number(-0.5)).as_deref(), Some("-0.5"));
        assert_eq!(text(Param::Number(f64::NAN)).as_deref(), Some("NaN"));
        assert_eq!(
            text(Param::Bytes(vec![0, 0xab])).as_deref(),
            Some("\\x00ab")
        );
        assert_eq!(
            text(Param::Array(vec![
                Param::Text("a\"b\\c".into()),
                Param::Null,
                Param::Array(vec![Param::Number(1.0)]),
            ]))
            .as_deref(),
            Some(r#"{"a\"b\\c",NULL,{"1"}}"#)
        );
        assert_eq!(
            text(Param::Array(vec![
                Param::Number(1.0),
                Param::Text("two".into()),
                Param::Json(r#"{"three":3}"#.into()),
            ]))
            .as_deref(),
            Some(r#"[1,"two",{"three":3}]"#)
        );
    }
}
