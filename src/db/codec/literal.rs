//! SQL literals written into statement text, for the few places that cannot bind a parameter
//! (the simple-query protocol of a transaction's opening, a JSON path's keys).

/// A string as an escape-string literal (`E'...'`), or `None` when it holds a NUL character
/// (which no Postgres text can hold, and which would cut a simple-query message short).
///
/// `E''` strings read backslash escapes whatever `standard_conforming_strings` says, so escaping
/// both `\\` and `'` with a backslash gives the same literal on every server configuration; a
/// plain `'...'` literal with doubled quotes would change meaning if that setting were off.
pub fn quote_literal(text: &str) -> Option<String> {
    if text.contains('\0') {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str("E'");
    for c in text.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_and_backslashes_and_refuses_nul() {
        assert_eq!(quote_literal("it's").as_deref(), Some(r"E'it\'s'"));
        assert_eq!(quote_literal(r"a\b").as_deref(), Some(r"E'a\\b'"));
        assert_eq!(quote_literal("a\0b"), None);
    }
}
