//! Row filters of the query builder: `eq`, `in`, `not`, `or('a.eq.1,b.gt.2')`, ... as SQL.
//!
//! Filters arrive either structured (`eq('id', 5)`: a column, an operator, a JSON value) or in
//! PostgREST's text syntax (`or()`, `not()`, `filter()`), which is parsed here into the same tree,
//! never pasted. Columns go through `ident::quote`, operators are a closed set, and every value
//! becomes a bound parameter whose type Postgres infers from the column it is compared with.

use serde_json::Value;

use crate::db::codec::params::Param;
use crate::db::rest::error::request_error;
use crate::db::rest::ident::{quote, too_deep, MAX_NESTING};
use crate::error::PoolError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    Ilike,
    Match,
    Imatch,
    Is,
    IsDistinct,
    In,
    Contains,
    ContainedBy,
    Overlaps,
    /// Range operators: `<<`, `>>`, `&<`, `&>`, `-|-`.
    StrictlyLeft,
    StrictlyRight,
    NotExtendRight,
    NotExtendLeft,
    Adjacent,
    /// Full-text search: `to_tsquery`, `plainto_tsquery`, `phraseto_tsquery`,
    /// `websearch_to_tsquery`.
    Fts,
    PlainFts,
    PhraseFts,
    WebFts,
}

/// `like(any)`, `eq(all)`: the operator applied to every element of an array value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    Any,
    All,
}

/// An operator as written in a filter: its name, and the argument in parentheses after it
/// (`fts(english)`, `like(all)`).
fn split_operator(text: &str) -> Result<(&str, Option<&str>), PoolError> {
    match text.split_once('(') {
        None => Ok((text, None)),
        Some((name, rest)) => {
            let argument = rest
                .strip_suffix(')')
                .ok_or_else(|| request_error(format!("'{text}': unbalanced parentheses"), None))?;
            Ok((name, Some(argument)))
        }
    }
}

impl Operator {
    /// PostgREST's operator names (postgrest-js maps its method names, e.g. `contains`, to these).
    pub fn parse(name: &str) -> Result<Self, PoolError> {
        Ok(match name {
            "eq" => Operator::Eq,
            "neq" => Operator::Neq,
            "gt" => Operator::Gt,
            "gte" => Operator::Gte,
            "lt" => Operator::Lt,
            "lte" => Operator::Lte,
            "like" => Operator::Like,
            "ilike" => Operator::Ilike,
            "match" => Operator::Match,
            "imatch" => Operator::Imatch,
            "is" => Operator::Is,
            "isdistinct" => Operator::IsDistinct,
            "in" => Operator::In,
            "cs" => Operator::Contains,
            "cd" => Operator::ContainedBy,
            "ov" => Operator::Overlaps,
            "sl" => Operator::StrictlyLeft,
            "sr" => Operator::StrictlyRight,
            "nxr" => Operator::NotExtendRight,
            "nxl" => Operator::NotExtendLeft,
            "adj" => Operator::Adjacent,
            "fts" => Operator::Fts,
            "plfts" => Operator::PlainFts,
            "phfts" => Operator::PhraseFts,
            "wfts" => Operator::WebFts,
            other => {
                return Err(request_error(
                    format!("unknown filter operator '{other}'"),
                    Some("operators: eq neq gt gte lt lte like ilike match imatch is isdistinct in cs cd ov sl sr nxr nxl adj fts plfts phfts wfts".into()),
                ))
            }
        })
    }

    fn is_text_search(self) -> bool {
        matches!(
            self,
            Operator::Fts | Operator::PlainFts | Operator::PhraseFts | Operator::WebFts
        )
    }

    /// The operators PostgREST lets `(any)`/`(all)` quantify.
    fn takes_quantifier(self) -> bool {
        matches!(
            self,
            Operator::Eq
                | Operator::Neq
                | Operator::Gt
                | Operator::Gte
                | Operator::Lt
                | Operator::Lte
                | Operator::Like
                | Operator::Ilike
                | Operator::Match
                | Operator::Imatch
        )
    }

    fn sql(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Neq => "<>",
            Operator::Gt => ">",
            Operator::Gte => ">=",
            Operator::Lt => "<",
            Operator::Lte => "<=",
            Operator::Like => "LIKE",
            Operator::Ilike => "ILIKE",
            Operator::Match => "~",
            Operator::Imatch => "~*",
            Operator::IsDistinct => "IS DISTINCT FROM",
            Operator::Contains => "@>",
            Operator::ContainedBy => "<@",
            Operator::Overlaps => "&&",
            Operator::StrictlyLeft => "<<",
            Operator::StrictlyRight => ">>",
            Operator::NotExtendRight => "&<",
            Operator::NotExtendLeft => "&>",
            Operator::Adjacent => "-|-",
            Operator::Fts => "to_tsquery",
            Operator::PlainFts => "plainto_tsquery",
            Operator::PhraseFts => "phraseto_tsquery",
            Operator::WebFts => "websearch_to_tsquery",
            Operator::Is | Operator::In => unreachable!("rendered specially"),
        }
    }
}

/// The operand of `is`: the only values `IS` takes, so it is written as a keyword, not bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    Null,
    /// `is.not_null` (PostgREST 12+): `IS NOT NULL`.
    NotNull,
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare {
        column: String,
        op: Operator,
        value: Param,
        negate: bool,
        /// `like(all)`: `value` is an array.
        quantifier: Option<Quantifier>,
        /// Full-text search: the text search configuration (`fts(english)`).
        config: Option<String>,
        /// Full-text search on a column that is no `tsvector` (text, json): searched as
        /// `to_tsvector(config, column)`, as PostgREST searches it (`mark_vectorized`).
        vectorize: bool,
        /// A JSON path into a composite or array column: read through `to_jsonb(column)`
        /// (`mark_composite_paths`).
        to_jsonb: bool,
    },
    Is {
        column: String,
        value: IsValue,
        negate: bool,
        to_jsonb: bool,
    },
    Group {
        any: bool,
        items: Vec<Condition>,
        negate: bool,
    },
}

/// A JSON value from the JS side as a bound parameter.
pub fn json_param(value: &Value) -> Param {
    match value {
        Value::Null => Param::Null,
        Value::Bool(b) => Param::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            // Whole numbers stay exact as text (an int8 column reads them without rounding).
            Some(i) if i.unsigned_abs() > (1u64 << 53) => Param::Text(i.to_string()),
            _ => Param::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Param::Text(s.clone()),
        Value::Array(items) => Param::Array(items.iter().map(json_param).collect()),
        Value::Object(_) => Param::Json(value.to_string()),
    }
}

fn is_value(text: &str) -> Result<IsValue, PoolError> {
    match text.to_ascii_lowercase().as_str() {
        "null" => Ok(IsValue::Null),
        "not_null" => Ok(IsValue::NotNull),
        "true" => Ok(IsValue::True),
        "false" => Ok(IsValue::False),
        "unknown" => Ok(IsValue::Unknown),
        _ => Err(request_error(
            format!("'{text}' is not a value for is (null, not_null, true, false or unknown)"),
            None,
        )),
    }
}

/// A structured filter: `op(column, value)` with a JSON value.
pub fn structured(
    column: &str,
    op: &str,
    value: &Value,
    negate: bool,
) -> Result<Condition, PoolError> {
    let op = Operator::parse(op)?;
    match op {
        Operator::Is => {
            let text = match value {
                Value::Null => "null".to_string(),
                Value::Bool(b) => b.to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok(Condition::Is {
                column: column.to_string(),
                value: is_value(&text)?,
                negate,
                to_jsonb: false,
            })
        }
        Operator::In => {
            let items = match value {
                Value::Array(items) => items.iter().map(json_param).collect(),
                // `in('id', '(1,2)')`: PostgREST's list syntax.
                Value::String(s) => parse_list(s)?.into_iter().map(Param::Text).collect(),
                other => {
                    return Err(request_error(
                        format!("in() takes an array of values, not {other}"),
                        None,
                    ))
                }
            };
            Ok(Condition::Compare {
                column: column.to_string(),
                op,
                value: Param::Array(items),
                negate,
                quantifier: None,
                config: None,
                vectorize: false,
                to_jsonb: false,
            })
        }
        _ => Ok(Condition::Compare {
            column: column.to_string(),
            op,
            value: json_param(value),
            negate,
            quantifier: None,
            config: None,
            vectorize: false,
            to_jsonb: false,
        }),
    }
}

/// A filter in PostgREST's text syntax for one column: `eq.5`, `not.in.(1,2)`, `is.null`.
pub fn from_text(column: &str, op_and_value: &str) -> Result<Condition, PoolError> {
    let (negate, rest) = match op_and_value.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, op_and_value),
    };
    let (op, value) = rest.split_once('.').ok_or_else(|| {
        request_error(
            format!("'{op_and_value}' is not an operator and a value (like eq.5)"),
            None,
        )
    })?;
    let (name, argument) = split_operator(op)?;
    let op = Operator::parse(name)?;
    let compare = |value: Param, quantifier, config| Condition::Compare {
        column: column.to_string(),
        op,
        value,
        negate,
        quantifier,
        config,
        vectorize: false,
        to_jsonb: false,
    };
    match (op, argument) {
        (Operator::Is, None) => Ok(Condition::Is {
            column: column.to_string(),
            value: is_value(value)?,
            negate,
            to_jsonb: false,
        }),
        (Operator::In, None) => Ok(compare(
            Param::Array(parse_list(value)?.into_iter().map(Param::Text).collect()),
            None,
            None,
        )),
        (op, Some(config)) if op.is_text_search() => Ok(compare(
            Param::Text(value.to_string()),
            None,
            Some(config.to_string()),
        )),
        (op, Some(quantifier)) if op.takes_quantifier() => {
            let quantifier = match quantifier {
                "any" => Quantifier::Any,
                "all" => Quantifier::All,
                other => {
                    return Err(request_error(
                        format!("'{other}' is not a quantifier (any or all)"),
                        None,
                    ))
                }
            };
            let items = crate::db::codec::params::parse_array_literal(value).ok_or_else(|| {
                request_error(
                    format!(
                        "'{value}': {name}({}) takes a list like {{a,b}}",
                        match quantifier {
                            Quantifier::Any => "any",
                            Quantifier::All => "all",
                        }
                    ),
                    None,
                )
            })?;
            Ok(compare(Param::Array(items), Some(quantifier), None))
        }
        (_, Some(argument)) => Err(request_error(
            format!("'{name}({argument})': this operator takes no argument"),
            None,
        )),
        (op, None) if op.is_text_search() => {
            Ok(compare(Param::Text(value.to_string()), None, None))
        }
        (_, None) => Ok(compare(Param::Text(unquote(value)?), None, None)),
    }
}

/// Marks each full-text search on a column of `columns` (the relation's) that is not among
/// `tsvector` (those that are `tsvector`s), or on a JSON path into one, to search
/// `to_tsvector(config, column)`, as PostgREST searches a text or JSON column. A name that is
/// no column (a computed field) is searched as it is. Inside `or()`/`and()` trees too.
pub fn mark_vectorized(conditions: &mut [Condition], columns: &[String], tsvector: &[String]) {
    for condition in conditions {
        match condition {
            Condition::Compare {
                column,
                op,
                vectorize,
                ..
            } if op.is_text_search() => {
                let (name, path) = match column.find("->") {
                    Some(at) => (column[..at].trim(), true),
                    None => (column.trim(), false),
                };
                let known = columns.iter().any(|c| c == name);
                *vectorize = known && (path || !tsvector.iter().any(|c| c == name));
            }
            Condition::Group { items, .. } => mark_vectorized(items, columns, tsvector),
            _ => {}
        }
    }
}

/// Marks the conditions whose JSON path goes into one of `composite` (columns of a composite or
/// array type): they read `to_jsonb(column)`, as PostgREST reads such a column's path.
pub fn mark_composite_paths(conditions: &mut [Condition], composite: &[String]) {
    let into_composite = |column: &str| {
        column
            .find("->")
            .is_some_and(|at| composite.iter().any(|c| c == column[..at].trim()))
    };
    for condition in conditions {
        match condition {
            Condition::Compare {
                column, to_jsonb, ..
            }
            | Condition::Is {
                column, to_jsonb, ..
            } => *to_jsonb = into_composite(column),
            Condition::Group { items, .. } => mark_composite_paths(items, composite),
        }
    }
}

/// The argument of `or()` (and of nested `and(...)`): conditions separated by commas.
pub fn parse_logic(expression: &str, any: bool, negate: bool) -> Result<Condition, PoolError> {
    parse_logic_at(expression, any, negate, 1)
}

/// One group of a logic tree; `depth` counts the groups around it (bounded, as in `select`).
fn parse_logic_at(
    expression: &str,
    any: bool,
    negate: bool,
    depth: usize,
) -> Result<Condition, PoolError> {
    if depth > MAX_NESTING {
        return Err(too_deep("and()/or() groups"));
    }
    let items = split_top_level(expression)?
        .into_iter()
        .map(|item| parse_item(item, depth))
        .collect::<Result<Vec<_>, _>>()?;
    if items.is_empty() {
        return Err(request_error("an empty logic tree", None));
    }
    Ok(Condition::Group { any, items, negate })
}

fn parse_item(item: &str, depth: usize) -> Result<Condition, PoolError> {
    let item = item.trim();
    // `and(...)`, `or(...)`, `not.and(...)`; spaces may stand before the parenthesis.
    let (negate, body) = match item.strip_prefix("not.") {
        Some(rest) if logic_group(rest).is_some() => (true, rest),
        _ => (false, item),
    };
    if let Some((any, inner)) = logic_group(body) {
        let inner = inner
            .trim_end()
            .strip_suffix(')')
            .ok_or_else(|| request_error(format!("unbalanced parentheses in '{item}'"), None))?;
        return parse_logic_at(inner, any, negate, depth + 1);
    }
    let (column, rest) = item.split_once('.').ok_or_else(|| {
        request_error(
            format!("'{item}' is not a condition (like column.eq.value)"),
            None,
        )
    })?;
    from_text(unquote(column)?.as_str(), rest)
}

/// `and(…` or `or (…`: whether it is `or`, and the text after the parenthesis.
fn logic_group(text: &str) -> Option<(bool, &str)> {
    [("and", false), ("or", true)]
        .into_iter()
        .find_map(|(word, any)| {
            let inner = text.strip_prefix(word)?.trim_start().strip_prefix('(')?;
            Some((any, inner))
        })
}

/// Splits on commas outside parentheses, double quotes and array literals (`cs.{1,2}`: a
/// brace opens one where a value begins, after a dot, as in PostgREST's grammar).
pub(crate) fn split_top_level(text: &str) -> Result<Vec<&str>, PoolError> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0);
    let mut braces = 0u32;
    let mut previous = '\0';
    for (i, ch) in text.char_indices() {
        let before = std::mem::replace(&mut previous, ch);
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '{' if !quoted && (before == '.' || braces > 0) => braces += 1,
            '}' if !quoted && braces > 0 => braces -= 1,
            _ if braces > 0 => {}
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth < 0 {
                    return Err(request_error(
                        format!("unbalanced parentheses in '{text}'"),
                        None,
                    ));
                }
            }
            ',' if !quoted && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 || quoted {
        return Err(request_error(
            format!("unbalanced parentheses or quotes in '{text}'"),
            None,
        ));
    }
    parts.push(&text[start..]);
    Ok(parts.into_iter().filter(|p| !p.trim().is_empty()).collect())
}

/// `"a \"b\""` → `a "b"`; an unquoted value is taken as it is.
pub(crate) fn unquote(value: &str) -> Result<String, PoolError> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| request_error(format!("unterminated quotes in '{value}'"), None))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(ch);
        }
    }
    Ok(out)
}

/// `(1,2,"three, four")` → the items.
fn parse_list(text: &str) -> Result<Vec<String>, PoolError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| request_error(format!("'{text}' is not a list like (1,2,3)"), None))?;
    Ok(list_items(inner))
}

/// The items of an `in.(…)` list as PostgREST reads them: an item is a quoted value (`"a,b"`,
/// with `\\` escapes) when its closing quote ends it, otherwise the text up to the next comma,
/// quotes and all (`in.(")`, `in.(Double"Quote"McGraw")`). An empty item is an empty string
/// (`in.(,a)`); an empty list has none.
fn list_items(inner: &str) -> Vec<String> {
    if inner.trim().is_empty() {
        return Vec::new();
    }
    let mut items = Vec::new();
    let mut rest = inner;
    loop {
        let trimmed = rest.trim_start();
        if let Some((value, after)) = quoted_item(trimmed) {
            let after = after.trim_start();
            if after.is_empty() || after.starts_with(',') {
                items.push(value);
                match after.strip_prefix(',') {
                    Some(next) => {
                        rest = next;
                        continue;
                    }
                    None => return items,
                }
            }
        }
        match rest.split_once(',') {
            Some((item, next)) => {
                items.push(item.trim().to_string());
                rest = next;
            }
            None => {
                items.push(rest.trim().to_string());
                return items;
            }
        }
    }
}

/// A quoted value at the start of `text`: its content and what follows the closing quote.
fn quoted_item(text: &str) -> Option<(String, &str)> {
    let inner = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = inner.char_indices();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &inner[i + 1..])),
            _ => value.push(ch),
        }
    }
    None
}

/// Renders a condition, appending its values to `params` (placeholders continue from their count).
pub fn render(condition: &Condition, params: &mut Vec<Param>) -> Result<String, PoolError> {
    render_in(condition, params, None)
}

/// `render` with each column qualified by `relation` (a quoted alias), as PostgREST qualifies
/// them.
pub fn render_in(
    condition: &Condition,
    params: &mut Vec<Param>,
    relation: Option<&str>,
) -> Result<String, PoolError> {
    render_with(condition, params, relation, &[])
}

/// `render_in` where a name of `existence` (an embedded resource, with its `EXISTS (…)`)
/// tested for null tests whether the resource has related rows, as PostgREST has
/// `clients=is.null` (none: an anti-join) and `clients=not.is.null` (some).
pub fn render_with(
    condition: &Condition,
    params: &mut Vec<Param>,
    relation: Option<&str>,
    existence: &[(String, String)],
) -> Result<String, PoolError> {
    if let Some(test) = existence_test(condition, existence) {
        return Ok(test);
    }
    match condition {
        Condition::Is {
            column,
            value,
            negate,
            to_jsonb,
        } => {
            let keyword = match value {
                IsValue::Null => "NULL",
                IsValue::NotNull => "NOT NULL",
                IsValue::True => "TRUE",
                IsValue::False => "FALSE",
                IsValue::Unknown => "UNKNOWN",
            };
            let column = column_sql(column, *to_jsonb, relation)?;
            Ok(negated(format!("{column} IS {keyword}"), *negate))
        }
        Condition::Compare { .. } => compare_sql(condition, params, relation),
        Condition::Group { any, items, negate } => {
            let joiner = if *any { " OR " } else { " AND " };
            let parts = items
                .iter()
                .map(|c| render_with(c, params, relation, existence))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(negated(format!("({})", parts.join(joiner)), *negate))
        }
    }
}

/// `name=is.null` on an embedded resource (by its name in `existence`): it has no related rows;
/// `is.not_null` (or `not.is.null`): it has some.
fn existence_test(condition: &Condition, existence: &[(String, String)]) -> Option<String> {
    let Condition::Is {
        column,
        value: value @ (IsValue::Null | IsValue::NotNull),
        negate,
        ..
    } = condition
    else {
        return None;
    };
    let (_, exists) = existence.iter().find(|(name, _)| name == column)?;
    Some(if *negate == (*value == IsValue::Null) {
        exists.clone()
    } else {
        format!("NOT {exists}")
    })
}

/// A filtered column, qualified by `relation`; `data->a->>b` is a JSON path into it, as
/// PostgREST filters on one (through `to_jsonb` for a composite or array column).
fn column_sql(column: &str, to_jsonb: bool, relation: Option<&str>) -> Result<String, PoolError> {
    let (name, path) = match column.find("->") {
        Some(at) => (&column[..at], Some(&column[at..])),
        None => (column, None),
    };
    let mut name = match relation {
        Some(relation) => format!("{relation}.{}", quote(name.trim())?),
        None => quote(name.trim())?,
    };
    if to_jsonb {
        name = format!("pg_catalog.to_jsonb({name})");
    }
    Ok(match path {
        Some(path) => format!("({name}{})", crate::db::rest::ident::json_path(path)?.0),
        None => name,
    })
}

fn negated(sql: String, negate: bool) -> String {
    if negate {
        format!("NOT ({sql})")
    } else {
        sql
    }
}

/// A comparison, its value bound: `=`, `ANY`/`ALL`, `IN`, LIKE with `*` as the wildcard, full
/// text search (with its configuration bound too).
fn compare_sql(
    condition: &Condition,
    params: &mut Vec<Param>,
    relation: Option<&str>,
) -> Result<String, PoolError> {
    let Condition::Compare {
        column,
        op,
        value,
        negate,
        quantifier,
        config,
        vectorize,
        to_jsonb,
    } = condition
    else {
        return Err(PoolError::Internal("not a comparison".into()));
    };
    let column = column_sql(column, *to_jsonb, relation)?;
    // PostgREST accepts * as the LIKE wildcard (it is safe in URLs); so do we.
    let wildcard = |p: &Param| match p {
        Param::Text(pattern) => Param::Text(pattern.replace('*', "%")),
        other => other.clone(),
    };
    let value = match (op, value) {
        (Operator::Like | Operator::Ilike, Param::Array(items)) => {
            Param::Array(items.iter().map(wildcard).collect())
        }
        (Operator::Like | Operator::Ilike, value) => wildcard(value),
        (_, value) => value.clone(),
    };
    let config = match config {
        Some(config) => {
            params.push(Param::Text(config.clone()));
            Some(format!("${}::text::regconfig, ", params.len()))
        }
        None => None,
    };
    params.push(value);
    let placeholder = format!("${}", params.len());
    let sql = match (op, quantifier) {
        (Operator::In, _) => format!("{column} = ANY({placeholder})"),
        (op, _) if op.is_text_search() => {
            let config = config.unwrap_or_default();
            let searched = if *vectorize {
                format!("pg_catalog.to_tsvector({config}{column})")
            } else {
                column
            };
            format!("{searched} @@ {}({config}{placeholder})", op.sql())
        }
        (op, Some(Quantifier::Any)) => format!("{column} {} ANY({placeholder})", op.sql()),
        (op, Some(Quantifier::All)) => format!("{column} {} ALL({placeholder})", op.sql()),
        (op, None) => format!("{column} {} {placeholder}", op.sql()),
    };
    Ok(negated(sql, *negate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sql(condition: &Condition) -> (String, Vec<Param>) {
        let mut params = Vec::new();
        let text = render(condition, &mut params).unwrap();
        (text, params)
    }

    #[test]
    fn a_json_path_filters_on_the_value_inside_the_column() {
        let mut params = Vec::new();
        let condition = from_text("data->a->>b", "eq.x").unwrap();
        let text = render_in(&condition, &mut params, Some("\"users\"")).unwrap();
        assert_eq!(text, "(\"users\".\"data\"->E'a'->>E'b') = $1");
        // A key is a literal, never SQL.
        let condition = from_text("data->>x') OR true --", "is.null").unwrap();
        let text = render(&condition, &mut params).unwrap();
        assert_eq!(text, "(\"data\"->>E'x\\') OR true --') IS NULL");
    }

    #[test]
    fn structured_filters_bind_their_values() {
        let (text, params) = sql(&structured("id", "eq", &json!(5), false).unwrap());
        assert_eq!(text, "\"id\" = $1");
        assert_eq!(params, vec![Param::Number(5.0)]);
        let (text, params) = sql(&structured("id", "in", &json!([1, 2]), true).unwrap());
        assert_eq!(text, "NOT (\"id\" = ANY($1))");
        assert_eq!(
            params,
            vec![Param::Array(vec![Param::Number(1.0), Param::Number(2.0)])]
        );
        let (text, params) = sql(&structured("deleted_at", "is", &json!(null), false).unwrap());
        assert_eq!(text, "\"deleted_at\" IS NULL");
        assert!(params.is_empty());
        let (_, params) = sql(&structured("name", "like", &json!("a*"), false).unwrap());
        assert_eq!(params, vec![Param::Text("a%".into())]);
    }

    #[test]
    fn or_syntax_is_parsed_into_a_tree() {
        let tree = parse_logic(
            "id.eq.1,and(name.like.*x*,age.not.gt.30),status.in.(a,\"b,c\")",
            true,
            false,
        )
        .unwrap();
        let (text, params) = sql(&tree);
        assert_eq!(
            text,
            "(\"id\" = $1 OR (\"name\" LIKE $2 AND NOT (\"age\" > $3)) OR \"status\" = ANY($4))"
        );
        assert_eq!(params[1], Param::Text("%x%".into()));
        assert_eq!(
            params[3],
            Param::Array(vec![Param::Text("a".into()), Param::Text("b,c".into())])
        );
        let negated = parse_logic("not.or(a.is.null,b.is.true)", false, false).unwrap();
        assert_eq!(sql(&negated).0, "(NOT ((\"a\" IS NULL OR \"b\" IS TRUE)))");
    }

    #[test]
    fn logic_trees_as_postgrest_reads_them() {
        // An array literal keeps its commas; a group may have spaces before its parenthesis.
        let tree = parse_logic(
            "arr.cs.{1,2,3},arr.not.cd.{1},tags.ov.{\"a,b\",c}",
            true,
            false,
        )
        .unwrap();
        let (text, params) = sql(&tree);
        assert_eq!(
            text,
            "(\"arr\" @> $1 OR NOT (\"arr\" <@ $2) OR \"tags\" && $3)"
        );
        assert_eq!(params.len(), 3);
        let spaced = parse_logic(
            " and ( id.in.(1,2,3) , id.eq.3 ) , or ( id.eq.2 , id.eq.3 ) ",
            false,
            false,
        )
        .unwrap();
        assert_eq!(
            sql(&spaced).0,
            "((\"id\" = ANY($1) AND \"id\" = $2) AND (\"id\" = $3 OR \"id\" = $4))"
        );
        // A brace elsewhere than at a value's start is text (a LIKE pattern).
        let pattern = parse_logic("name.like.*{*,id.eq.1", true, false).unwrap();
        assert_eq!(sql(&pattern).0, "(\"name\" LIKE $1 OR \"id\" = $2)");
    }

    #[test]
    fn full_text_search_on_a_text_or_json_column_searches_its_tsvector() {
        let columns = ["body".to_string(), "doc".to_string(), "data".to_string()];
        let tsvector = ["doc".to_string()];
        let mut conditions = vec![
            from_text("body", "fts(french).amusant").unwrap(),
            parse_logic("doc.wfts.x,data->a.plfts.y,blurb.fts.z", true, false).unwrap(),
        ];
        mark_vectorized(&mut conditions, &columns, &tsvector);
        assert_eq!(
            sql(&conditions[0]).0,
            "pg_catalog.to_tsvector($1::text::regconfig, \"body\") @@ to_tsquery($1::text::regconfig, $2)"
        );
        // A tsvector column as it is; a JSON path into a column vectorized; a computed field
        // (no column) as it is.
        assert_eq!(
            sql(&conditions[1]).0,
            "(\"doc\" @@ websearch_to_tsquery($1) OR pg_catalog.to_tsvector((\"data\"->E'a')) @@ plainto_tsquery($2) OR \"blurb\" @@ to_tsquery($3))"
        );
    }

    #[test]
    fn is_not_null_and_lists_as_postgrest_reads_them() {
        assert_eq!(
            sql(&from_text("a", "is.not_null").unwrap()).0,
            "\"a\" IS NOT NULL"
        );
        assert_eq!(
            sql(&from_text("a", "not.is.NoT_NuLl").unwrap()).0,
            "NOT (\"a\" IS NOT NULL)"
        );
        let items = |list: &str| list_items(list);
        let text = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(items("1,\"a,b\",\"x\\\"y\""), text(&["1", "a,b", "x\"y"]));
        assert_eq!(items("\""), text(&["\""]));
        assert_eq!(
            items("Double\"Quote\"McGraw\""),
            text(&["Double\"Quote\"McGraw\""])
        );
        assert_eq!(items(" ,3,4"), text(&["", "3", "4"]));
        assert_eq!(items(""), Vec::<String>::new());
    }

    #[test]
    fn range_text_search_and_quantified_operators() {
        let (text, _) = sql(&from_text("r", "sl.[2,25)").unwrap());
        assert_eq!(text, "\"r\" << $1");
        let (text, params) = sql(&from_text("doc", "fts(english).'fat' & 'cat'").unwrap());
        assert_eq!(text, "\"doc\" @@ to_tsquery($1::text::regconfig, $2)");
        assert_eq!(
            params,
            vec![
                Param::Text("english".into()),
                Param::Text("'fat' & 'cat'".into())
            ]
        );
        let (text, _) = sql(&from_text("doc", "wfts.cat").unwrap());
        assert_eq!(text, "\"doc\" @@ websearch_to_tsquery($1)");
        let (text, params) = sql(&from_text("name", "like(all).{%supa%,*bot*}").unwrap());
        assert_eq!(text, "\"name\" LIKE ALL($1)");
        assert_eq!(
            params,
            vec![Param::Array(vec![
                Param::Text("%supa%".into()),
                Param::Text("%bot%".into())
            ])]
        );
        assert!(from_text("name", "like(some).{a}").is_err());
        assert!(from_text("name", "in(any).{a}").is_err());
    }

    #[test]
    fn hostile_text_stays_data() {
        let tree = parse_logic("name.eq.x'; drop table users; --", true, false).unwrap();
        let (text, params) = sql(&tree);
        assert_eq!(text, "(\"name\" = $1)");
        assert_eq!(params, vec![Param::Text("x'; drop table users; --".into())]);
        // Parentheses in a value need quotes, as in PostgREST.
        let tree = parse_logic("name.eq.\"x'); drop table users; --\"", true, false).unwrap();
        assert_eq!(
            sql(&tree).1,
            vec![Param::Text("x'); drop table users; --".into())]
        );
        assert!(parse_logic("name.eq.x'); drop table users; --", true, false).is_err());
        let tree = parse_logic("\"we\"\"ird\".eq.1", true, false);
        assert!(tree.is_ok());
    }

    #[test]
    fn logic_trees_nested_past_the_limit_are_refused_in_linear_time() {
        let deep = |n: usize| format!("{}id.eq.1{}", "or(".repeat(n), ")".repeat(n));
        let within = deep(super::MAX_NESTING - 1);
        assert!(parse_logic(&within, true, false).is_ok());
        for n in [super::MAX_NESTING, 5_000, 100_000] {
            let started = std::time::Instant::now();
            let err = parse_logic(&deep(n), true, false).unwrap_err();
            assert_eq!(err.code(), "PGRST100", "{n}");
            assert!(err.to_string().contains("deeper than"), "{err}");
            // Linear: a bounded number of passes over the text, however deep it goes.
            assert!(started.elapsed() < std::time::Duration::from_secs(2), "{n}");
        }
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for bad in [
            "",
            "id",
            "id.eq",
            "id.nope.1",
            "and(id.eq.1",
            "id.in.1,2",
            "a.is.maybe",
            "x.eq.\"open",
        ] {
            assert!(parse_logic(bad, true, false).is_err(), "{bad}");
        }
        assert!(structured("id", "drop", &json!(1), false).is_err());
    }

    #[test]
    fn big_integers_stay_exact() {
        assert_eq!(
            json_param(&json!(9007199254740993i64)),
            Param::Text("9007199254740993".into())
        );
        assert_eq!(
            json_param(&json!({"a": 1})),
            Param::Json("{\"a\":1}".into())
        );
    }
}
