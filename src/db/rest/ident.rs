//! Identifiers (table, column, function names) as the query builder receives them from callers.
//!
//! Whatever a caller passes as a name reaches SQL only through `quote`: validated (not empty, no
//! NUL, at most 63 bytes, which Postgres would silently truncate) and double-quoted with inner
//! quotes doubled. A hostile name therefore becomes a strange but harmless identifier that the
//! server reports as undefined. Type names in casts (`col::text`) are the one place a name is
//! written unquoted, so they are restricted to lower-case letters, digits and underscores.

use super::error::request_error;
use crate::db::codec::literal::quote_literal;
use crate::error::PoolError;

/// Postgres's NAMEDATALEN - 1.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// How deep a request may nest embedded resources, spreads, `and()`/`or()` groups or JSON
/// paths. Real requests nest a few levels; a parser that recursed on whatever came would let
/// anyone overflow a worker's stack (which ends the process) with a few kilobytes of `((((`.
pub const MAX_NESTING: usize = 32;

/// `PGRST100` for input nested past `MAX_NESTING`.
pub fn too_deep(what: &str) -> PoolError {
    request_error(
        format!("{what} nested deeper than {MAX_NESTING} levels"),
        Some("a request this deep is refused; flatten it".into()),
    )
}

/// Validates and double-quotes one identifier.
pub fn quote(name: &str) -> Result<String, PoolError> {
    if name.is_empty() {
        return Err(request_error(
            "an empty name is not a valid identifier",
            None,
        ));
    }
    if name.contains('\0') {
        return Err(request_error("a name cannot contain a NUL character", None));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(request_error(
            format!("a name longer than {MAX_IDENTIFIER_BYTES} bytes is not a valid identifier"),
            None,
        ));
    }
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for ch in name.chars() {
        if ch == '"' {
            quoted.push('"');
        }
        quoted.push(ch);
    }
    quoted.push('"');
    Ok(quoted)
}

/// `schema.table` or `table`, each part quoted; a dot inside quotes is part of the name.
pub fn quote_relation(name: &str) -> Result<String, PoolError> {
    match name.split_once('.') {
        Some((schema, table))
            if !schema.is_empty() && !table.is_empty() && !table.contains('.') =>
        {
            Ok(format!("{}.{}", quote(schema)?, quote(table)?))
        }
        _ => quote(name),
    }
}

/// A cast target: `text`, `int4`, `timestamptz`, `text[]`. Written unquoted, so strictly checked.
pub fn cast_type(name: &str) -> Result<&str, PoolError> {
    let base = name.strip_suffix("[]").unwrap_or(name);
    let valid = !base.is_empty()
        && base.len() <= MAX_IDENTIFIER_BYTES
        && base.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && base
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(request_error(
            format!("'{name}' is not a type name this builder accepts in a cast"),
            Some("casts take a plain type name such as text, int4, numeric or text[]".into()),
        ))
    }
}

/// `->a->>b`, `->0`: the JSON operators with each key a literal (an integer is an array
/// index, as in PostgREST), and the last key that is no index.
pub fn json_path(path: &str) -> Result<(String, Option<String>), PoolError> {
    let mut sql = String::new();
    let mut last = None;
    let mut rest = path;
    let mut keys = 0;
    while !rest.is_empty() {
        keys += 1;
        if keys > MAX_NESTING {
            return Err(too_deep("a JSON path's keys"));
        }
        let (operator, after) = if let Some(after) = rest.strip_prefix("->>") {
            ("->>", after)
        } else if let Some(after) = rest.strip_prefix("->") {
            ("->", after)
        } else {
            return Err(request_error(
                format!("'{path}': a malformed JSON path"),
                None,
            ));
        };
        let end = after.find("->").unwrap_or(after.len());
        let key = after[..end].trim();
        if key.is_empty() {
            return Err(request_error(format!("'{path}': an empty JSON key"), None));
        }
        if key.parse::<i64>().is_ok() {
            sql.push_str(&format!("{operator}{key}"));
        } else {
            let literal = quote_literal(key)
                .ok_or_else(|| request_error("a JSON key cannot hold a NUL character", None))?;
            sql.push_str(&format!("{operator}{literal}"));
            last = Some(key.to_string());
        }
        rest = &after[end..];
    }
    Ok((sql, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_doubles_inner_quotes() {
        assert_eq!(quote("users").unwrap(), "\"users\"");
        assert_eq!(quote("we\"ird").unwrap(), "\"we\"\"ird\"");
        assert_eq!(
            quote("a; drop table x; --").unwrap(),
            "\"a; drop table x; --\""
        );
        assert_eq!(quote("ünï").unwrap(), "\"ünï\"");
    }

    #[test]
    fn refuses_what_postgres_would_mangle() {
        assert!(quote("").is_err());
        assert!(quote("a\0b").is_err());
        assert!(quote(&"x".repeat(64)).is_err());
        assert!(quote(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn relations_may_name_a_schema() {
        assert_eq!(
            quote_relation("public.users").unwrap(),
            "\"public\".\"users\""
        );
        assert_eq!(quote_relation("users").unwrap(), "\"users\"");
        assert_eq!(quote_relation("a.b.c").unwrap(), "\"a.b.c\"");
    }

    #[test]
    fn casts_are_plain_type_names() {
        assert!(cast_type("text").is_ok());
        assert!(cast_type("int4[]").is_ok());
        for bad in ["Text", "text; drop", "int(4)", "", "a b", "text)--"] {
            assert!(cast_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("anon").as_deref(), Some("E'anon'"));
        assert_eq!(
            quote_literal(r#"{"sub":"a'b\\c"}"#).as_deref(),
            Some(r#"E'{"sub":"a\'b\\\\c"}'"#)
        );
        assert_eq!(quote_literal("x\0y"), None);
        // A hostile value stays inside its literal: every quote in the output is escaped.
        let hostile = quote_literal("'); DROP TABLE users; --\\").unwrap();
        let inner = &hostile[2..hostile.len() - 1];
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                assert!(matches!(chars.next(), Some('\\') | Some('\'')));
            } else {
                assert_ne!(c, '\'');
            }
        }
    }
}
