//! The Supabase-style query builder's requests (`from('users').select('*').eq('id', 1)`) as SQL.
//!
//! The JS builder only records what was called and hands the record over as JSON
//! (`RequestSpec`); this module turns it into one statement with bound parameters, the way
//! PostgREST would run it. Names pass through `ident`, filters through `filters`; the only text
//! written into SQL besides quoted names are keywords and integers this module produced itself.

use serde::Deserialize;
use serde_json::Value;

use super::filters::{self, Condition};
use super::ident::{cast_type, quote, quote_relation, request_error};
use super::params::Param;
use crate::error::PoolError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Select,
    Insert,
    Update,
    Upsert,
    Delete,
    /// `rpc('fn', args)`: `table` names the function, `values` holds the named arguments.
    Rpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountMode {
    Exact,
    Planned,
    Estimated,
}

/// One filter call as the JS builder recorded it.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum FilterSpec {
    /// `eq('id', 1)`, `in('id', [1, 2])`, `is('x', null)`, `contains('tags', ['a'])`, ...
    Op {
        column: String,
        op: String,
        value: Value,
    },
    /// `not('id', 'in', '(1,2)')`: the value in PostgREST's text syntax (or a JSON value).
    Not {
        column: String,
        op: String,
        value: Value,
    },
    /// `filter('id', 'not.in', '(1,2)')`: operator and value in PostgREST's text syntax.
    Filter {
        column: String,
        op: String,
        value: String,
    },
    /// `or('id.eq.1,name.eq.x')`.
    Or { expression: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSpec {
    pub column: String,
    #[serde(default = "yes")]
    pub ascending: bool,
    pub nulls_first: Option<bool>,
}

fn yes() -> bool {
    true
}

/// Everything a builder chain recorded.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSpec {
    pub table: String,
    pub method: Method,
    /// The select list (`select('id, name')`, or `.select()` after a mutation).
    pub columns: Option<String>,
    /// Whether a mutation should return rows (`.select()` was chained).
    #[serde(default)]
    pub returning: bool,
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
    #[serde(default)]
    pub order: Vec<OrderSpec>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub count: Option<CountMode>,
    #[serde(default)]
    pub head: bool,
    /// Rows for insert/upsert (object or array of objects), the new values for update.
    pub values: Option<Value>,
    pub on_conflict: Option<String>,
    #[serde(default)]
    pub ignore_duplicates: bool,
    /// The table's primary key, looked up when an upsert names no conflict columns.
    #[serde(skip)]
    pub primary_key: Vec<String>,
}

/// A statement ready to run.
#[derive(Debug, PartialEq)]
pub struct BuiltStatement {
    pub sql: String,
    pub params: Vec<Param>,
}

/// The data statement (absent for `head`) and the count statement (when a count was asked for).
#[derive(Debug)]
pub struct BuiltRequest {
    pub data: Option<BuiltStatement>,
    pub count: Option<BuiltStatement>,
}

pub fn build(spec: &RequestSpec) -> Result<BuiltRequest, PoolError> {
    let relation = quote_relation(&spec.table)?;
    let conditions = conditions(&spec.filters)?;
    let count = match (spec.count, spec.method) {
        (None, _) => None,
        (Some(_), Method::Select) => Some(count_statement(&relation, &conditions)?),
        (Some(_), _) => None, // mutations report the affected row count instead
    };
    let data = if spec.head && spec.method == Method::Select {
        None
    } else {
        Some(match spec.method {
            Method::Select => select_statement(spec, &relation, &conditions)?,
            Method::Insert | Method::Upsert => insert_statement(spec, &relation)?,
            Method::Update => update_statement(spec, &relation, &conditions)?,
            Method::Delete => delete_statement(spec, &relation, &conditions)?,
            Method::Rpc => rpc_statement(spec, &relation, &conditions)?,
        })
    };
    Ok(BuiltRequest { data, count })
}

fn conditions(specs: &[FilterSpec]) -> Result<Vec<Condition>, PoolError> {
    specs
        .iter()
        .map(|spec| match spec {
            FilterSpec::Op { column, op, value } => filters::structured(column, op, value, false),
            FilterSpec::Not { column, op, value } => match value {
                Value::String(text) => filters::from_text(column, &format!("not.{op}.{text}")),
                Value::Null => filters::from_text(column, &format!("not.{op}.null")),
                other => filters::structured(column, op, other, true),
            },
            FilterSpec::Filter { column, op, value } => {
                filters::from_text(column, &format!("{op}.{value}"))
            }
            FilterSpec::Or { expression } => filters::parse_logic(expression, true, false),
        })
        .collect()
}

fn where_clause(conditions: &[Condition], params: &mut Vec<Param>) -> Result<String, PoolError> {
    if conditions.is_empty() {
        return Ok(String::new());
    }
    let parts = conditions
        .iter()
        .map(|c| filters::render(c, params))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!(" WHERE {}", parts.join(" AND ")))
}

/// `*`, `id, name`, `alias:column`, `column::text`, `alias:column::int4`, `"quoted name"`.
pub fn select_list(columns: &str) -> Result<String, PoolError> {
    let items = filters::split_top_level(columns)?;
    if items.is_empty() {
        return Ok("*".into());
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim();
        if item == "*" {
            out.push("*".to_string());
            continue;
        }
        if item.contains('(') {
            return Err(request_error(
                format!("'{item}': embedding related tables is not supported yet"),
                Some(
                    "select the columns of this table, or query the related table separately"
                        .into(),
                ),
            ));
        }
        let (alias, rest) = split_alias(item);
        let (column, cast) = match rest.split_once("::") {
            Some((column, cast)) => (column, Some(cast_type(cast.trim())?)),
            None => (rest, None),
        };
        let column = filters::unquote(column.trim())?;
        let mut sql = quote(&column)?;
        if let Some(cast) = cast {
            sql = format!("{sql}::{cast}");
        }
        match (alias, cast) {
            (Some(alias), _) => {
                sql = format!("{sql} AS {}", quote(&filters::unquote(alias.trim())?)?)
            }
            // A cast column keeps the column's name, as PostgREST does.
            (None, Some(_)) => sql = format!("{sql} AS {}", quote(&column)?),
            (None, None) => {}
        }
        out.push(sql);
    }
    Ok(out.join(", "))
}

/// `alias:column` → (alias, column); a `::` cast is not an alias separator.
fn split_alias(item: &str) -> (Option<&str>, &str) {
    let bytes = item.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let before = i > 0 && bytes[i - 1] == b':';
        let after = bytes.get(i + 1) == Some(&b':');
        if b == b':' && !before && !after {
            return (Some(&item[..i]), &item[i + 1..]);
        }
    }
    (None, item)
}

fn order_clause(order: &[OrderSpec]) -> Result<String, PoolError> {
    if order.is_empty() {
        return Ok(String::new());
    }
    let parts = order
        .iter()
        .map(|o| {
            let direction = if o.ascending { "ASC" } else { "DESC" };
            let nulls = match o.nulls_first {
                Some(true) => " NULLS FIRST",
                Some(false) => " NULLS LAST",
                None => "",
            };
            Ok(format!("{} {direction}{nulls}", quote(&o.column)?))
        })
        .collect::<Result<Vec<_>, PoolError>>()?;
    Ok(format!(" ORDER BY {}", parts.join(", ")))
}

/// `limit()` and `range()`: integers this module holds, written as literals.
fn paging_clause(spec: &RequestSpec) -> String {
    let mut sql = String::new();
    if let Some(limit) = spec.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    if let Some(offset) = spec.offset.filter(|o| *o > 0) {
        sql.push_str(&format!(" OFFSET {offset}"));
    }
    sql
}

fn select_statement(
    spec: &RequestSpec,
    relation: &str,
    conditions: &[Condition],
) -> Result<BuiltStatement, PoolError> {
    let mut params = Vec::new();
    let list = select_list(spec.columns.as_deref().unwrap_or("*"))?;
    let mut sql = format!("SELECT {list} FROM {relation}");
    sql.push_str(&where_clause(conditions, &mut params)?);
    sql.push_str(&order_clause(&spec.order)?);
    sql.push_str(&paging_clause(spec));
    Ok(BuiltStatement { sql, params })
}

fn count_statement(relation: &str, conditions: &[Condition]) -> Result<BuiltStatement, PoolError> {
    let mut params = Vec::new();
    let sql = format!(
        "SELECT count(*) AS count FROM {relation}{}",
        where_clause(conditions, &mut params)?
    );
    Ok(BuiltStatement { sql, params })
}

fn returning(spec: &RequestSpec) -> Result<String, PoolError> {
    if spec.returning {
        Ok(format!(
            " RETURNING {}",
            select_list(spec.columns.as_deref().unwrap_or("*"))?
        ))
    } else {
        Ok(String::new())
    }
}

/// Rows go in as one JSON parameter through `json_populate_recordset`, as PostgREST does: the
/// server converts each field to its column's type, and a bulk insert is not limited by the
/// protocol's 65535 parameters. Columns are the union of the rows' keys; a missing key is NULL.
fn insert_statement(spec: &RequestSpec, relation: &str) -> Result<BuiltStatement, PoolError> {
    let rows: Vec<&serde_json::Map<String, Value>> = match &spec.values {
        Some(Value::Object(row)) => vec![row],
        Some(Value::Array(rows)) => rows
            .iter()
            .map(|r| {
                r.as_object()
                    .ok_or_else(|| request_error("every row to insert must be an object", None))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(request_error(
                "insert needs an object or an array of objects",
                None,
            ))
        }
    };
    let mut columns: Vec<&str> = Vec::new();
    for row in &rows {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    if columns.is_empty() {
        return Err(request_error("insert needs at least one column", None));
    }
    let quoted = columns
        .iter()
        .map(|c| quote(c))
        .collect::<Result<Vec<_>, _>>()?;
    let list = quoted.join(", ");
    let json = Value::Array(rows.iter().map(|r| Value::Object((*r).clone())).collect());
    let mut sql = format!(
        "INSERT INTO {relation} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{relation}, $1)"
    );
    if spec.method == Method::Upsert {
        let target: Vec<String> = match spec.on_conflict.as_deref() {
            Some(columns) => filters::split_top_level(columns)?
                .into_iter()
                .map(|c| c.trim().to_string())
                .collect(),
            None => spec.primary_key.clone(),
        };
        if target.is_empty() {
            return Err(request_error(
                "upsert needs conflict columns: the table has no primary key",
                Some("pass { onConflict: 'column' }".into()),
            ));
        }
        let target = target
            .iter()
            .map(|c| quote(c))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ");
        if spec.ignore_duplicates {
            sql.push_str(&format!(" ON CONFLICT ({target}) DO NOTHING"));
        } else {
            let updates = quoted
                .iter()
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            sql.push_str(&format!(" ON CONFLICT ({target}) DO UPDATE SET {updates}"));
        }
    }
    sql.push_str(&returning(spec)?);
    Ok(BuiltStatement {
        sql,
        params: vec![Param::Json(json.to_string())],
    })
}

fn update_statement(
    spec: &RequestSpec,
    relation: &str,
    conditions: &[Condition],
) -> Result<BuiltStatement, PoolError> {
    let values = match &spec.values {
        Some(Value::Object(values)) if !values.is_empty() => values,
        _ => return Err(request_error("update needs an object of new values", None)),
    };
    let mut params = Vec::new();
    let mut sets = Vec::with_capacity(values.len());
    for (column, value) in values {
        params.push(filters::json_param(value));
        sets.push(format!("{} = ${}", quote(column)?, params.len()));
    }
    let mut sql = format!("UPDATE {relation} SET {}", sets.join(", "));
    sql.push_str(&where_clause(conditions, &mut params)?);
    sql.push_str(&returning(spec)?);
    Ok(BuiltStatement { sql, params })
}

fn delete_statement(
    spec: &RequestSpec,
    relation: &str,
    conditions: &[Condition],
) -> Result<BuiltStatement, PoolError> {
    let mut params = Vec::new();
    let mut sql = format!("DELETE FROM {relation}");
    sql.push_str(&where_clause(conditions, &mut params)?);
    sql.push_str(&returning(spec)?);
    Ok(BuiltStatement { sql, params })
}

/// `SELECT * FROM fn("a" => $1, ...)`, then filters, order and range over its rows.
fn rpc_statement(
    spec: &RequestSpec,
    function: &str,
    conditions: &[Condition],
) -> Result<BuiltStatement, PoolError> {
    let mut params = Vec::new();
    let mut args = Vec::new();
    match &spec.values {
        None | Some(Value::Null) => {}
        Some(Value::Object(values)) => {
            for (name, value) in values {
                params.push(filters::json_param(value));
                args.push(format!("{} => ${}", quote(name)?, params.len()));
            }
        }
        Some(_) => return Err(request_error("rpc arguments must be an object", None)),
    }
    let list = select_list(spec.columns.as_deref().unwrap_or("*"))?;
    let mut sql = format!("SELECT {list} FROM {function}({})", args.join(", "));
    sql.push_str(&where_clause(conditions, &mut params)?);
    sql.push_str(&order_clause(&spec.order)?);
    sql.push_str(&paging_clause(spec));
    Ok(BuiltStatement { sql, params })
}

/// PostgREST's HTTP status for a failed request, by SQLSTATE (its documented mapping).
pub fn status_for_error(code: &str, anonymous: bool) -> u16 {
    match code {
        "42501" => {
            if anonymous {
                401
            } else {
                403
            }
        }
        "23503" | "23505" => 409,
        "42P01" | "42883" => 404,
        "25006" => 405,
        "PGRST116" => 406,
        "53400" => 500,
        c if c.starts_with("08") => 503,
        c if c.starts_with("28") || c.starts_with("0L") || c.starts_with("0P") => 403,
        c if [
            "09", "25", "2D", "38", "39", "3B", "40", "53", "54", "55", "57", "58", "XX", "P0",
        ]
        .iter()
        .any(|p| c.starts_with(p))
            && c != "P0001" =>
        {
            500
        }
        _ => 400,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> RequestSpec {
        serde_json::from_value(v).unwrap()
    }

    fn data(v: Value) -> BuiltStatement {
        build(&spec(v)).unwrap().data.unwrap()
    }

    #[test]
    fn select_with_filters_order_and_range() {
        let built = data(json!({
            "table": "users", "method": "select", "columns": "id, email, name:full_name, age::text",
            "filters": [{"kind": "op", "column": "id", "op": "gt", "value": 3},
                        {"kind": "or", "expression": "name.eq.a,name.is.null"}],
            "order": [{"column": "id", "ascending": false, "nullsFirst": false}],
            "limit": 10, "offset": 20
        }));
        assert_eq!(
            built.sql,
            "SELECT \"id\", \"email\", \"full_name\" AS \"name\", \"age\"::text AS \"age\" FROM \"users\" \
             WHERE \"id\" > $1 AND (\"name\" = $2 OR \"name\" IS NULL) ORDER BY \"id\" DESC NULLS LAST LIMIT 10 OFFSET 20"
        );
        assert_eq!(
            built.params,
            vec![Param::Number(3.0), Param::Text("a".into())]
        );
    }

    #[test]
    fn count_and_head() {
        let request = build(&spec(json!({
            "table": "users", "method": "select", "count": "exact", "head": true,
            "filters": [{"kind": "op", "column": "active", "op": "is", "value": true}]
        })))
        .unwrap();
        assert!(request.data.is_none());
        assert_eq!(
            request.count.unwrap().sql,
            "SELECT count(*) AS count FROM \"users\" WHERE \"active\" IS TRUE"
        );
    }

    #[test]
    fn insert_and_upsert_use_one_json_parameter() {
        let built = data(json!({
            "table": "users", "method": "upsert", "onConflict": "id",
            "values": [{"id": 1, "name": "a"}, {"id": 2, "email": "b@x"}], "returning": true, "columns": "id"
        }));
        assert_eq!(
            built.sql,
            "INSERT INTO \"users\" (\"id\", \"name\", \"email\") SELECT \"id\", \"name\", \"email\" \
             FROM json_populate_recordset(NULL::\"users\", $1) ON CONFLICT (\"id\") DO UPDATE SET \
             \"id\" = EXCLUDED.\"id\", \"name\" = EXCLUDED.\"name\", \"email\" = EXCLUDED.\"email\" RETURNING \"id\""
        );
        assert_eq!(built.params.len(), 1);
        let ignore = data(
            json!({"table": "t", "method": "upsert", "onConflict": "id", "ignoreDuplicates": true, "values": {"id": 1}}),
        );
        assert!(ignore.sql.ends_with("ON CONFLICT (\"id\") DO NOTHING"));
    }

    #[test]
    fn update_and_delete() {
        let built = data(json!({
            "table": "users", "method": "update", "values": {"name": "x"},
            "filters": [{"kind": "op", "column": "id", "op": "eq", "value": 7}]
        }));
        assert_eq!(
            built.sql,
            "UPDATE \"users\" SET \"name\" = $1 WHERE \"id\" = $2"
        );
        let built = data(json!({
            "table": "users", "method": "delete", "returning": true,
            "filters": [{"kind": "not", "column": "id", "op": "in", "value": "(1,2)"}]
        }));
        assert_eq!(
            built.sql,
            "DELETE FROM \"users\" WHERE NOT (\"id\" = ANY($1)) RETURNING *"
        );
    }

    #[test]
    fn hostile_names_are_quoted_not_pasted() {
        let built = data(json!({
            "table": "users\"; drop table x; --", "method": "select", "columns": "\"a\\\"b\", c:d",
            "order": [{"column": "id; delete from y"}]
        }));
        assert_eq!(
            built.sql,
            "SELECT \"a\"\"b\", \"d\" AS \"c\" FROM \"users\"\"; drop table x; --\" ORDER BY \"id; delete from y\" ASC"
        );
    }

    #[test]
    fn unsupported_requests_are_clear_errors() {
        for bad in [
            json!({"table": "t", "method": "select", "columns": "id, posts(*)"}),
            json!({"table": "t", "method": "select", "columns": "id::text; drop"}),
            json!({"table": "t", "method": "insert", "values": [1, 2]}),
            json!({"table": "t", "method": "upsert", "values": {"a": 1}}),
            json!({"table": "t", "method": "update", "values": {}}),
            json!({"table": "", "method": "select"}),
        ] {
            let err = build(&spec(bad.clone())).expect_err(&bad.to_string());
            assert_eq!(err.code(), "PGRST100", "{bad}");
        }
    }

    #[test]
    fn rpc_binds_named_arguments() {
        let built = data(json!({"table": "add", "method": "rpc", "values": {"a": 1, "b": 2}}));
        assert_eq!(built.sql, "SELECT * FROM \"add\"(\"a\" => $1, \"b\" => $2)");
        assert_eq!(built.params, vec![Param::Number(1.0), Param::Number(2.0)]);
    }

    #[test]
    fn upsert_defaults_to_the_primary_key() {
        let mut request =
            spec(json!({"table": "t", "method": "upsert", "values": {"id": 1, "n": 2}}));
        request.primary_key = vec!["id".into()];
        let built = build(&request).unwrap().data.unwrap();
        assert!(
            built.sql.contains("ON CONFLICT (\"id\") DO UPDATE"),
            "{}",
            built.sql
        );
    }

    #[test]
    fn statuses_follow_postgrest() {
        assert_eq!(status_for_error("23505", false), 409);
        assert_eq!(status_for_error("23503", false), 409);
        assert_eq!(status_for_error("42501", true), 401);
        assert_eq!(status_for_error("42501", false), 403);
        assert_eq!(status_for_error("42P01", false), 404);
        assert_eq!(status_for_error("PGRST116", false), 406);
        assert_eq!(status_for_error("22P02", false), 400);
        assert_eq!(status_for_error("P0001", false), 400);
        assert_eq!(status_for_error("57014", false), 500);
    }
}
