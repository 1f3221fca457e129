//! The Supabase-style query builder's requests (`from('users').select('*').eq('id', 1)`) as SQL.
//!
//! The JS builder only records what was called and hands the record over as JSON
//! (`RequestSpec`); this module turns it into one statement with bound parameters, the way
//! PostgREST would run it. Names pass through `ident`, filters through `filters`; the only text
//! written into SQL besides quoted names are keywords and integers this module produced itself.

use serde_json::Value;

use crate::db::codec::params::Param;
use crate::db::rest::error::request_error;
use crate::db::rest::filters::{self, Condition};
use crate::db::rest::ident::{cast_type, quote, quote_relation};
use crate::error::PoolError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Select,
    Insert,
    Update,
    Upsert,
    Delete,
    /// `rpc('fn', args)`: `table` names the function, `values` holds the named arguments.
    Rpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountMode {
    Exact,
    Planned,
    Estimated,
}

/// One filter of a request, in PostgREST's text syntax.
#[derive(Debug)]
pub enum FilterSpec {
    /// `column=op.value` (`id=eq.1`, `id=not.in.(1,2)`, `body=fts(english).cat`).
    Filter {
        column: String,
        op: String,
        value: String,
    },
    /// `or=(a.eq.1,b.eq.2)`, `and=(...)`, `not.or=(...)`: the group's inside.
    Logic {
        any: bool,
        negate: bool,
        expression: String,
    },
}

#[derive(Debug, Clone)]
pub struct OrderSpec {
    /// A column, a JSON path, or `rel(col)`: a column of a to-one embedded resource.
    pub column: String,
    pub ascending: bool,
    pub nulls_first: Option<bool>,
    /// What `rel(col)` resolved to (rest::select::order_by_related).
    pub expression: Option<String>,
}

/// Everything a request asks for (`rest::parse` reads it from PostgREST's URL grammar).
#[derive(Debug)]
pub struct RequestSpec {
    pub table: String,
    pub method: Method,
    /// The select list (`select('id, name')`, or `.select()` after a mutation).
    pub columns: Option<String>,
    /// Whether a mutation should return rows (`.select()` was chained).
    pub returning: bool,
    pub filters: Vec<FilterSpec>,
    pub order: Vec<OrderSpec>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub count: Option<CountMode>,
    pub head: bool,
    /// Rows for insert/upsert (object or array of objects), the new values for update.
    pub values: Option<Value>,
    pub on_conflict: Option<String>,
    pub ignore_duplicates: bool,
    /// The table's primary key, looked up when an upsert names no conflict columns.
    pub primary_key: Vec<String>,
    /// The schema `table` lives in; the name is then one identifier, dots and all.
    pub schema: Option<String>,
    /// A select list with embedded resources, rendered by `rest::select` (over the relation
    /// aliased as its `alias` says), and the conditions its `!inner` resources add.
    pub embedded: Option<EmbeddedSelect>,
    /// Filters, orders and pages of embedded resources, as the URL gave them.
    pub embedded_queries: Vec<EmbeddedQuery>,
    /// With `Prefer: missing=default`: each column's default expression as the catalog has it
    /// (null: none), for the columns a row to insert leaves out.
    pub column_defaults: Option<serde_json::Map<String, Value>>,
    /// When a filter searches full text: the relation's columns and those that are `tsvector`s,
    /// as the catalog has them; a searched column that is no tsvector is searched as
    /// `to_tsvector(column)` (`filters::mark_vectorized`).
    pub tsvector_columns: Option<(Vec<String>, Vec<String>)>,
    /// When the request has a JSON path: the relation's columns of a composite or array type,
    /// as the catalog has them; a path into one reads `to_jsonb(column)`.
    pub composite_columns: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct EmbeddedSelect {
    /// The alias (unquoted) the list reads the request's relation by.
    pub alias: String,
    pub list: String,
    /// The lateral joins the list's spreads read from (after the relation's alias).
    pub joins: String,
    pub conditions: Vec<String>,
    /// ` GROUP BY …` when the list has aggregates, else empty.
    pub group_by: String,
    /// The top level's embedded resources by name, as `EXISTS (…)` of their rows: for
    /// `name=is.null` and `name=not.is.null` filters.
    pub existence: Vec<(String, String)>,
    /// The values the list's embedded filters bind: `$1…$n`, before the request's own.
    pub params: Vec<Param>,
}

/// A filter, order or page of an embedded resource (`messages.id=eq.1`, `messages.order=id`,
/// `messages.limit=1`), by the resource's path of names or aliases.
#[derive(Debug)]
pub struct EmbeddedQuery {
    pub path: Vec<String>,
    pub part: EmbeddedPart,
}

#[derive(Debug)]
pub enum EmbeddedPart {
    Filter(FilterSpec),
    Order(Vec<OrderSpec>),
    Limit(u64),
    Offset(u64),
}

impl RequestSpec {
    /// The quoted, schema-qualified relation (or function) the request targets.
    pub fn relation(&self) -> Result<String, PoolError> {
        match &self.schema {
            Some(schema) => Ok(format!("{}.{}", quote(schema)?, quote(&self.table)?)),
            None => quote_relation(&self.table),
        }
    }
}

/// A statement ready to run.
#[derive(Debug, PartialEq)]
pub struct BuiltStatement {
    pub sql: String,
    pub params: Vec<Param>,
}

/// The statement a request's method makes: its rows (a select's, a function's, or those a
/// write returns), without the count or the body around them (`body_statement`).
pub fn data_statement(spec: &RequestSpec) -> Result<BuiltStatement, PoolError> {
    let relation = spec.relation()?;
    let conditions = spec_conditions(spec)?;
    data_statement_of(spec, &relation, &conditions)
}

fn data_statement_of(
    spec: &RequestSpec,
    relation: &str,
    conditions: &[Condition],
) -> Result<BuiltStatement, PoolError> {
    match spec.method {
        Method::Select => select_statement(spec, relation, conditions),
        Method::Insert | Method::Upsert => insert_statement(spec, relation),
        Method::Update => update_statement(spec, relation, conditions),
        Method::Delete => delete_statement(spec, relation, conditions),
        Method::Rpc => rpc_statement(spec, relation, conditions),
    }
}

/// A select's `count(*)` under its filters (what a planned or estimated count estimates).
pub fn count_statement(spec: &RequestSpec) -> Result<BuiltStatement, PoolError> {
    if spec.method != Method::Select {
        return Err(request_error("a count needs a select", None));
    }
    let relation = spec.relation()?;
    let conditions = spec_conditions(spec)?;
    count_statement_of(spec, &relation, &conditions)
}

/// The request's own filters, full-text searches marked by the relation's column types.
fn spec_conditions(spec: &RequestSpec) -> Result<Vec<Condition>, PoolError> {
    let mut conditions = conditions(&spec.filters)?;
    if let Some((columns, tsvector)) = &spec.tsvector_columns {
        filters::mark_vectorized(&mut conditions, columns, tsvector);
    }
    if let Some(composite) = &spec.composite_columns {
        filters::mark_composite_paths(&mut conditions, composite);
    }
    Ok(conditions)
}

pub(crate) fn conditions(specs: &[FilterSpec]) -> Result<Vec<Condition>, PoolError> {
    specs
        .iter()
        .map(|spec| match spec {
            FilterSpec::Filter { column, op, value } => {
                filters::from_text(column, &format!("{op}.{value}"))
            }
            FilterSpec::Logic {
                any,
                negate,
                expression,
            } => filters::parse_logic(expression, *any, *negate),
        })
        .collect()
}

/// WHERE over the filters, their columns qualified by `relation` (a quoted alias) if given.
fn where_clause(
    conditions: &[Condition],
    params: &mut Vec<Param>,
    relation: Option<&str>,
) -> Result<String, PoolError> {
    where_clause_with(conditions, params, relation, &[])
}

/// `where_clause` where a name of `existence` (an embedded resource) tested for null tests
/// whether it has related rows.
fn where_clause_with(
    conditions: &[Condition],
    params: &mut Vec<Param>,
    relation: Option<&str>,
    existence: &[(String, String)],
) -> Result<String, PoolError> {
    if conditions.is_empty() {
        return Ok(String::new());
    }
    let parts = conditions
        .iter()
        .map(|c| filters::render_with(c, params, relation, existence))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!(" WHERE {}", parts.join(" AND ")))
}

/// `*`, `id, name`, `alias:column`, `column::text`, `alias:column::int4`, `"quoted name"`.
pub fn select_list(columns: &str, source: Source<'_>) -> Result<String, PoolError> {
    let (list, group_by) = grouped_select_list(columns, source)?;
    if !group_by.is_empty() {
        return Err(request_error(
            "aggregates are answered in a select or an rpc's select",
            None,
        ));
    }
    Ok(list)
}

/// A select list without embedded resources, and the ` GROUP BY` its aggregates need (empty
/// without aggregates).
pub fn grouped_select_list(
    columns: &str,
    source: Source<'_>,
) -> Result<(String, String), PoolError> {
    let items = filters::split_top_level(columns)?;
    if items.is_empty() {
        return Ok((column_item_in("*", source)?.sql, String::new()));
    }
    let mut rendered = Vec::with_capacity(items.len());
    for item in items {
        let item = item.trim();
        if item.contains('(') && !is_aggregate_item(item) {
            return Err(request_error(
                format!("'{item}': embedding related tables is not supported yet"),
                Some(
                    "select the columns of this table, or query the related table separately"
                        .into(),
                ),
            ));
        }
        rendered.push(column_item_in(item, source)?);
    }
    let group_by = group_by(&rendered.iter().map(Output::of).collect::<Vec<_>>())?;
    let list = rendered
        .into_iter()
        .map(|c| c.sql)
        .collect::<Vec<_>>()
        .join(", ");
    Ok((list, group_by))
}

/// The aggregates PostgREST answers (`db-aggregates-enabled`): `count()`, `col.count()`,
/// `col.sum()`, `col.avg()`, `col.max()`, `col.min()`.
const AGGREGATES: [&str; 5] = ["count", "sum", "avg", "max", "min"];

/// `count()`, `alias:col.sum()`, `col::int.avg()::text`: an aggregate, not an embedded resource.
pub fn is_aggregate_item(item: &str) -> bool {
    let (_, rest) = split_alias(item.trim());
    let Some(open) = rest.find("()") else {
        return false;
    };
    let after = &rest[open + 2..];
    let head = rest[..open].trim();
    (after.is_empty() || after.starts_with("::"))
        && (head == "count"
            || head
                .rsplit_once('.')
                .is_some_and(|(field, f)| !field.is_empty() && AGGREGATES.contains(&f)))
}

/// One rendered column item of a select list.
#[derive(Debug)]
pub struct ColumnItem {
    /// The item as the select list has it (`expr AS "name"`).
    pub sql: String,
    /// The expression alone, for GROUP BY.
    pub expr: String,
    /// The output column's name (`*` for a star).
    pub name: String,
    pub aggregate: bool,
    /// `*`: an unknown number of columns.
    pub star: bool,
}

/// What one item puts in a select list, for GROUP BY.
#[derive(Debug, Clone)]
pub enum Output {
    /// Output columns grouped by, as the expressions to group by.
    Plain(Vec<String>),
    Aggregate,
    /// `*` of the level's own relation.
    Star,
    /// The columns of resources embedded in a spread, not named at this level.
    SpreadEmbeds,
}

impl Output {
    pub fn of(item: &ColumnItem) -> Output {
        match (item.star, item.aggregate) {
            (true, _) => Output::Star,
            (false, true) => Output::Aggregate,
            (false, false) => Output::Plain(vec![item.expr.clone()]),
        }
    }
}

/// ` GROUP BY a, b` over the non-aggregate outputs when there is an aggregate (as PostgREST
/// groups by every other selected column); empty otherwise.
pub fn group_by(outputs: &[Output]) -> Result<String, PoolError> {
    if !outputs.iter().any(|o| matches!(o, Output::Aggregate)) {
        return Ok(String::new());
    }
    let mut grouped = Vec::new();
    for output in outputs {
        match output {
            Output::Aggregate => {}
            Output::Plain(expressions) => grouped.extend(expressions.iter().cloned()),
            Output::Star => {
                return Err(request_error(
                    "an aggregate beside '*': name the columns to group by",
                    None,
                ))
            }
            Output::SpreadEmbeds => {
                return Err(request_error(
                    "an aggregate beside resources embedded in a spread is not answered",
                    Some("select the aggregate in a request of its own".into()),
                ))
            }
        }
    }
    Ok(if grouped.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", grouped.join(", "))
    })
}

/// What a select item's columns are read from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// Columns in scope, unqualified (an rpc's rows, a mutation's RETURNING).
    InScope,
    /// Columns of the relation with this (quoted) alias, qualified with it as PostgREST
    /// qualifies them: Postgres then reports a name that is no column as `column users.x does
    /// not exist`, as PostgREST reports it, and no output alias or lateral column stands in.
    Relation(&'a str),
    /// Fields of a composite value (an SQL expression, as a spread's lateral row).
    Row(&'a str),
    /// As `Relation`, knowing which of its columns are of a composite or array type: a JSON
    /// path into one of them reads `to_jsonb(column)`, as PostgREST reads it.
    Typed(&'a str, &'a [String]),
}

impl<'a> Source<'a> {
    /// The relation's columns as the catalog types them, when it knows any composite ones.
    pub fn typed(relation: &'a str, composite: Option<&'a [String]>) -> Self {
        match composite {
            Some(composite) if !composite.is_empty() => Source::Typed(relation, composite),
            _ => Source::Relation(relation),
        }
    }
}

/// One item: `*`, `col`, `alias:col::type`, `data->a->>b`, `count()`, `alias:col.sum()::int`.
pub fn column_item(item: &str) -> Result<ColumnItem, PoolError> {
    column_item_in(item, Source::InScope)
}

/// One item whose columns are read from `source`.
pub fn column_item_in(item: &str, source: Source<'_>) -> Result<ColumnItem, PoolError> {
    let item = item.trim();
    if item == "*" {
        let (sql, expr, star) = match source {
            Source::InScope => ("*".to_string(), "*".to_string(), true),
            Source::Relation(relation) | Source::Typed(relation, _) => {
                let sql = format!("{relation}.*");
                (sql.clone(), sql, true)
            }
            Source::Row(row) => (format!("({row}).*"), row.to_string(), false),
        };
        return Ok(ColumnItem {
            expr,
            sql,
            name: "*".into(),
            aggregate: false,
            star,
        });
    }
    let (alias, rest) = split_alias(item);
    let alias = alias.map(|a| filters::unquote(a.trim())).transpose()?;
    if is_aggregate_item(item) {
        let open = rest.find("()").expect("an aggregate has ()");
        let head = rest[..open].trim();
        let cast_after = rest[open + 2..].strip_prefix("::").map(str::trim);
        let (function, argument) = if head == "count" {
            ("count", "*".to_string())
        } else {
            let (field, function) = head.rsplit_once('.').expect("an aggregate has a dot");
            (function, field_sql_in(field, source)?.0)
        };
        let mut expr = format!("pg_catalog.{function}({argument})");
        if let Some(cast) = cast_after {
            expr = format!("{expr}::{}", cast_type(cast)?);
        }
        let name = alias.unwrap_or_else(|| function.to_string());
        return Ok(ColumnItem {
            sql: format!("{expr} AS {}", quote(&name)?),
            expr,
            name,
            aggregate: true,
            star: false,
        });
    }
    let (expr, name, renamed) = field_sql_in(rest, source)?;
    let (sql, name) = match (alias, renamed || matches!(source, Source::Row(_))) {
        (Some(alias), _) => (format!("{expr} AS {}", quote(&alias)?), alias),
        // A cast column or a JSON path keeps a name, as PostgREST names it.
        (None, true) => (format!("{expr} AS {}", quote(&name)?), name),
        (None, false) => (expr.clone(), name),
    };
    Ok(ColumnItem {
        sql,
        expr,
        name,
        aggregate: false,
        star: false,
    })
}

/// `col`, `col::type`, `data->a->>b::int`: its SQL, its output name (the column, or the last
/// key of a JSON path, as PostgREST names it), and whether the SQL needs `AS name`.
fn field_sql_in(field: &str, source: Source<'_>) -> Result<(String, String, bool), PoolError> {
    let (field, cast) = match field.split_once("::") {
        Some((field, cast)) => (field, Some(cast_type(cast.trim())?)),
        None => (field, None),
    };
    let (column, path) = match field.find("->") {
        Some(at) => (&field[..at], Some(&field[at..])),
        None => (field, None),
    };
    let column = filters::unquote(column.trim())?;
    let mut sql = match source {
        Source::InScope => quote(&column)?,
        Source::Relation(relation) => format!("{relation}.{}", quote(&column)?),
        Source::Typed(relation, composite) => {
            let sql = format!("{relation}.{}", quote(&column)?);
            if path.is_some() && composite.contains(&column) {
                format!("pg_catalog.to_jsonb({sql})")
            } else {
                sql
            }
        }
        Source::Row(row) => format!("({row}).{}", quote(&column)?),
    };
    let mut name = column;
    if let Some(path) = path {
        let (sql_path, last) = crate::db::rest::ident::json_path(path)?;
        sql = format!("{sql}{sql_path}");
        // Named after its last key that is no array index, else the column (`data->>0` is
        // `data`, `data->0->a->>2` is `a`), as PostgREST names it.
        if let Some(last) = last {
            name = last;
        }
    }
    let renamed = cast.is_some() || path.is_some();
    if let Some(cast) = cast {
        // `::` binds tighter than `->`: a path is cast as a whole.
        sql = if path.is_some() {
            format!("({sql})::{cast}")
        } else {
            format!("{sql}::{cast}")
        };
    }
    Ok((sql, name, renamed))
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

pub(crate) fn order_clause(order: &[OrderSpec]) -> Result<String, PoolError> {
    order_clause_in(order, None)
}

/// ORDER BY with the columns qualified by `relation` (an alias), as PostgREST qualifies them:
/// a select list's alias of the same name (`id:name`, a spread's column) does not take over.
pub(crate) fn order_clause_in(
    order: &[OrderSpec],
    relation: Option<&str>,
) -> Result<String, PoolError> {
    order_clause_from(order, relation.map_or(Source::InScope, Source::Relation))
}

/// `order_clause_in` over the columns of `source`.
pub(crate) fn order_clause_from(
    order: &[OrderSpec],
    source: Source<'_>,
) -> Result<String, PoolError> {
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
            let key = match &o.expression {
                Some(expression) => expression.clone(),
                None if o.column.contains('(') => {
                    return Err(request_error(
                        format!(
                            "'{}': ordering by a related resource's column needs it embedded",
                            o.column
                        ),
                        None,
                    ))
                }
                None => field_sql_in(&o.column, source)?.0,
            };
            Ok(format!("{key} {direction}{nulls}"))
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
    select_rows(spec, relation, conditions, true)
}

/// The select, with its `limit`/`offset` or (`paged` false) without.
fn select_rows(
    spec: &RequestSpec,
    relation: &str,
    conditions: &[Condition],
    paged: bool,
) -> Result<BuiltStatement, PoolError> {
    let mut params = embedded_params(spec);
    let alias = select_alias(spec)?;
    let mut sql = match &spec.embedded {
        Some(embedded) => format!(
            "SELECT {} FROM {relation} AS {alias}{}",
            embedded.list, embedded.joins
        ),
        None => format!(
            "SELECT {} FROM {relation} AS {alias}",
            select_list(
                spec.columns.as_deref().unwrap_or("*"),
                Source::typed(&alias, spec.composite_columns.as_deref())
            )?
        ),
    };
    sql.push_str(&rows_tail(spec, conditions, &mut params, &alias, paged)?);
    Ok(BuiltStatement { sql, params })
}

/// What follows a select's FROM over `alias`: its filters' WHERE (with `!inner` resources'
/// conditions), its GROUP BY, ORDER BY and (`paged`) LIMIT/OFFSET.
fn rows_tail(
    spec: &RequestSpec,
    conditions: &[Condition],
    params: &mut Vec<Param>,
    alias: &str,
    paged: bool,
) -> Result<String, PoolError> {
    let mut sql = where_clause_with(conditions, params, Some(alias), existence_of(spec))?;
    sql.push_str(&embedded_conditions(spec, conditions.is_empty()));
    if let Some(embedded) = &spec.embedded {
        sql.push_str(&embedded.group_by);
    }
    sql.push_str(&order_clause_from(
        &spec.order,
        Source::typed(alias, spec.composite_columns.as_deref()),
    )?);
    if paged {
        sql.push_str(&paging_clause(spec));
    }
    Ok(sql)
}

/// `!inner` resources' conditions, after the filters' WHERE (or as the WHERE).
fn embedded_conditions(spec: &RequestSpec, no_filters: bool) -> String {
    match &spec.embedded {
        Some(embedded) if !embedded.conditions.is_empty() => format!(
            "{}{}",
            if no_filters { " WHERE " } else { " AND " },
            embedded.conditions.join(" AND ")
        ),
        _ => String::new(),
    }
}

/// The quoted alias of a select's own relation: the embedded select's (`rest::select` rendered
/// it over that name), else the table's own name as `own_alias` gives it.
fn select_alias(spec: &RequestSpec) -> Result<String, PoolError> {
    match &spec.embedded {
        Some(embedded) => quote(&embedded.alias),
        None => quote(&own_alias(&spec.table)),
    }
}

/// Whether `name` could be an alias this module gives: `pgrst_…`, `_pgrst_…`, or `name_<n>` (an
/// embedded resource's, `embedded_alias`).
fn like_generated_alias(name: &str) -> bool {
    name.starts_with("pgrst_")
        || name.starts_with("_pgrst_")
        || name
            .rsplit_once('_')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The alias of a select's own relation: the table's name, as PostgREST names it (so Postgres's
/// errors read `column users.x does not exist`, as PostgREST's do), unless that name could be
/// taken for an alias given to another relation of the statement; then `pgrst_0`.
pub fn own_alias(table: &str) -> String {
    if like_generated_alias(table) {
        "pgrst_0".into()
    } else {
        table.to_string()
    }
}

/// The alias of an embedded resource's table at `depth` (1 for the top level's resources):
/// `messages_1`, as PostgREST names it. Aliases at different depths differ in their suffix, so
/// a resource never hides the relation its join condition names; a name that could be mistaken
/// for one of this module's aliases, or that the 63-byte limit would cut, takes `pgrst_<depth>`.
pub fn embedded_alias(table: &str, depth: usize) -> String {
    let alias = format!("{table}_{depth}");
    if table.starts_with("pgrst_") || table.starts_with("_pgrst_") || alias.len() > 63 {
        format!("pgrst_{depth}")
    } else {
        alias
    }
}

/// The values the embedded select binds: a statement binds them first (`rest::select` rendered
/// them from `$1`), and a count rendered afresh binds the same.
fn embedded_params(spec: &RequestSpec) -> Vec<Param> {
    spec.embedded
        .as_ref()
        .map(|e| e.params.clone())
        .unwrap_or_default()
}

/// The embedded resources a select's filters may test for null.
fn existence_of(spec: &RequestSpec) -> &[(String, String)] {
    spec.embedded
        .as_ref()
        .map_or(&[], |embedded| embedded.existence.as_slice())
}

fn count_statement_of(
    spec: &RequestSpec,
    relation: &str,
    conditions: &[Condition],
) -> Result<BuiltStatement, PoolError> {
    if spec.embedded.is_some() {
        // Its rows as the select finds them (`!inner`, a resource tested for null), counted:
        // the select binds its embedded filters' values, which its list reads.
        let rows = select_rows(spec, relation, conditions, false)?;
        return Ok(BuiltStatement {
            sql: format!("SELECT count(*) AS count FROM ({}) _pgrst_n", rows.sql),
            params: rows.params,
        });
    }
    let mut params = Vec::new();
    let alias = quote(&own_alias(&spec.table))?;
    let sql = format!(
        "SELECT count(*) AS count FROM {relation} AS {alias}{}",
        where_clause(conditions, &mut params, Some(&alias))?
    );
    Ok(BuiltStatement { sql, params })
}

fn returning(spec: &RequestSpec) -> Result<String, PoolError> {
    if spec.returning && spec.embedded.is_some() {
        // The embedded select list reads the returned rows (body_statement).
        Ok(" RETURNING *".into())
    } else if spec.returning {
        Ok(format!(
            " RETURNING {}",
            select_list(spec.columns.as_deref().unwrap_or("*"), Source::InScope)?
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
    let mut params = vec![Param::Json(json.to_string())];
    let mut sql = match &spec.column_defaults {
        // A key a row leaves out takes the column's default (PostgREST's `missing=default`):
        // each row is read on its own, and whether it has the key decides (the column's name
        // is bound, as any value).
        Some(defaults) => {
            let mut values = Vec::with_capacity(columns.len());
            for (column, quoted) in columns.iter().zip(&quoted) {
                params.push(Param::Text(column.to_string()));
                let default = defaults
                    .get(*column)
                    .and_then(Value::as_str)
                    .unwrap_or("NULL");
                values.push(format!(
                    "CASE WHEN _pgrst_e.j ? ${} THEN _pgrst_r.{quoted} ELSE {default} END",
                    params.len()
                ));
            }
            format!(
                "INSERT INTO {relation} ({list}) SELECT {} FROM pg_catalog.jsonb_array_elements($1::jsonb) AS _pgrst_e(j) \
                 CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{relation}, _pgrst_e.j) AS _pgrst_r",
                values.join(", ")
            )
        }
        None => format!(
            "INSERT INTO {relation} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{relation}, $1)"
        ),
    };
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
    Ok(BuiltStatement { sql, params })
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
    // The new values go in as one JSON parameter through `json_populate_record`, as PostgREST
    // does: each field converts to its column's type there, so a JS string stored into a json
    // column is the JSON string, and an array into an array column is that array.
    let columns = values
        .keys()
        .map(|c| quote(c))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let mut params = vec![Param::Json(Value::Object(values.clone()).to_string())];
    let mut sql = format!(
        "UPDATE {relation} SET ({columns}) = (SELECT {columns} FROM json_populate_record(NULL::{relation}, $1))"
    );
    sql.push_str(&where_clause(
        conditions,
        &mut params,
        target_name(spec)?.as_deref(),
    )?);
    sql.push_str(&returning(spec)?);
    Ok(BuiltStatement { sql, params })
}

/// The name an UPDATE's or DELETE's filters qualify their columns with, as PostgREST does: the
/// target table's own (it has no alias there). None when the schema is part of the name.
fn target_name(spec: &RequestSpec) -> Result<Option<String>, PoolError> {
    match spec.schema {
        Some(_) => quote(&spec.table).map(Some),
        None => Ok(None),
    }
}

fn delete_statement(
    spec: &RequestSpec,
    relation: &str,
    conditions: &[Condition],
) -> Result<BuiltStatement, PoolError> {
    let mut params = Vec::new();
    let mut sql = format!("DELETE FROM {relation}");
    sql.push_str(&where_clause(
        conditions,
        &mut params,
        target_name(spec)?.as_deref(),
    )?);
    sql.push_str(&returning(spec)?);
    Ok(BuiltStatement { sql, params })
}

/// `SELECT * FROM fn("a" => $1, ...)`, then filters, order and range over its rows.
fn rpc_statement(
    spec: &RequestSpec,
    function: &str,
    conditions: &[Condition],
) -> Result<BuiltStatement, PoolError> {
    // Embedded resources' values are bound first: `rest::select` rendered them from $1.
    let mut params = embedded_params(spec);
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
    if let Some(embedded) = &spec.embedded {
        // The function returns a relation's rows: embedded resources and computed fields
        // are rendered over them (aliased) as over that relation's.
        let alias = quote(&embedded.alias)?;
        let mut sql = format!(
            "SELECT {} FROM {function}({}) AS {alias}{}",
            embedded.list,
            args.join(", "),
            embedded.joins
        );
        sql.push_str(&rows_tail(spec, conditions, &mut params, &alias, true)?);
        return Ok(BuiltStatement { sql, params });
    }
    let (list, group_by) =
        grouped_select_list(spec.columns.as_deref().unwrap_or("*"), Source::InScope)?;
    let mut sql = format!("SELECT {list} FROM {function}({})", args.join(", "));
    sql.push_str(&where_clause(conditions, &mut params, None)?);
    sql.push_str(&group_by);
    sql.push_str(&order_clause(&spec.order)?);
    sql.push_str(&paging_clause(spec));
    Ok(BuiltStatement { sql, params })
}

/// How Postgres renders a request's body, as PostgREST has it render it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body (HEAD): the rows are still counted.
    Empty,
    /// The rows as a JSON array of objects.
    Rows,
    /// A scalar function's one value (the column named after the function).
    Scalar,
    /// A set-returning scalar function's values, as an array.
    ScalarSet,
    /// `text/csv`: a header of the column names, then one line per row (PostgREST's rendering:
    /// each row's record text without its parentheses).
    Csv,
}

/// The request as one statement answering one row: the total count (exact, when asked for, as a
/// subquery over the same filters, so it sees the same snapshot as the rows; otherwise NULL),
/// the number of rows on this page, and the body as JSON text rendered by Postgres itself
/// (`json_agg`), which is how PostgREST renders every type, ranges and tsvector included.
/// Params are shared: the count's filters reuse the data statement's `$n`.
pub fn body_statement(
    spec: &RequestSpec,
    exact_count: bool,
    body: Body,
) -> Result<BuiltStatement, PoolError> {
    let relation = spec.relation()?;
    let conditions = spec_conditions(spec)?;
    let data = data_statement_of(spec, &relation, &conditions)?;
    // An upsert also says how many rows it inserted (`xmax = 0` marks a row this statement
    // created), so that one that only updated can answer 200; the marker leaves the body.
    let upsert_body = spec.method == Method::Upsert && body == Body::Rows;
    let data = if upsert_body {
        BuiltStatement {
            sql: format!("{}, (xmax = 0) AS pgrst_inserted", data.sql),
            params: data.params,
        }
    } else {
        data
    };
    let total = if upsert_body {
        "(SELECT pg_catalog.count(*) FROM pgrst_source WHERE pgrst_inserted)".to_string()
    } else if exact_count && spec.method == Method::Select {
        exact_total(spec, &relation, &conditions)?
    } else {
        "NULL::int8".into()
    };
    // A mutation's select with embedded resources (or computed fields) renders them over the
    // rows it returned; the values its embedded filters bind follow the mutation's own.
    let mut params = data.params;
    let mutation_embeds = spec
        .embedded
        .as_ref()
        .filter(|_| !matches!(spec.method, Method::Select | Method::Rpc));
    if let Some(embedded) = mutation_embeds {
        params.extend(embedded.params.iter().cloned());
    }
    let rows = match mutation_embeds {
        Some(embedded) => returned_rows_embedded(embedded, upsert_body)?,
        None => "pgrst_source".to_string(),
    };
    let body = body_expression(spec, body, upsert_body, &rows)?;
    Ok(BuiltStatement {
        sql: format!(
            "WITH pgrst_source AS ({}) SELECT {total} AS total, pg_catalog.count(_pgrst_t) AS page, \
             {body} AS body, pg_catalog.current_setting('response.status', true) AS status \
             FROM {rows} _pgrst_t",
            data.sql
        ),
        params,
    })
}

/// An exact count of a select's rows in the same statement: its conditions rendered afresh, the
/// same values in the same order, so that `$1…$n` name the data statement's own parameters.
fn exact_total(
    spec: &RequestSpec,
    relation: &str,
    conditions: &[Condition],
) -> Result<String, PoolError> {
    let mut same = embedded_params(spec);
    let alias = select_alias(spec)?;
    let (joins, group_by) = match &spec.embedded {
        Some(embedded) => (embedded.joins.as_str(), embedded.group_by.as_str()),
        None => ("", ""),
    };
    let counted = format!(
        "{relation} AS {alias}{joins}{}{}",
        where_clause_with(conditions, &mut same, Some(&alias), existence_of(spec))?,
        embedded_conditions(spec, conditions.is_empty())
    );
    Ok(if group_by.is_empty() {
        format!("(SELECT pg_catalog.count(*) FROM {counted})")
    } else {
        // Aggregates answer a row per group: the count is of groups.
        format!("(SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {counted}{group_by}) _pgrst_g)")
    })
}

/// The rows a write returned, with its select's embedded resources rendered over them;
/// `!inner` resources narrow what is returned, not what was changed.
fn returned_rows_embedded(
    embedded: &EmbeddedSelect,
    upsert_body: bool,
) -> Result<String, PoolError> {
    let alias = quote(&embedded.alias)?;
    let inner = if embedded.conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", embedded.conditions.join(" AND "))
    };
    let inserted = if upsert_body {
        format!(", {alias}.pgrst_inserted")
    } else {
        String::new()
    };
    Ok(format!(
        "(SELECT {}{inserted} FROM pgrst_source AS {alias}{}{inner})",
        embedded.list, embedded.joins
    ))
}

/// The body as Postgres renders it from `rows` (aliased `_pgrst_t`): JSON rows, a function's
/// scalar or scalars, CSV with its header line, or nothing.
fn body_expression(
    spec: &RequestSpec,
    body: Body,
    upsert_body: bool,
    rows: &str,
) -> Result<String, PoolError> {
    Ok(match body {
        Body::Empty => "''".to_string(),
        Body::Rows if upsert_body => {
            "coalesce(pg_catalog.json_agg(pg_catalog.to_jsonb(_pgrst_t) - 'pgrst_inserted'), '[]')::text"
                .to_string()
        }
        Body::Rows => "coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text".to_string(),
        Body::Scalar => format!(
            "coalesce((pg_catalog.json_agg(_pgrst_t.{})->0)::text, 'null')",
            quote(&spec.table)?
        ),
        Body::ScalarSet => format!(
            "coalesce(pg_catalog.json_agg(_pgrst_t.{}), '[]')::text",
            quote(&spec.table)?
        ),
        Body::Csv => format!(
            "(SELECT coalesce(pg_catalog.string_agg(_pgrst_k.k, ','), '') FROM \
             (SELECT pg_catalog.json_object_keys(pg_catalog.row_to_json(_pgrst_h)) AS k \
             FROM (SELECT * FROM {rows} _pgrst_r LIMIT 1) _pgrst_h) _pgrst_k) || E'\\n' || \
             coalesce(pg_catalog.string_agg(substring(_pgrst_t::text, 2, length(_pgrst_t::text) - 2), E'\\n'), '')"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::rest::parse::{parse, ApiRequest};

    /// A request as postgrest-js would send it, read by `rest::parse` (schema-less for brevity).
    fn spec(method: &str, url: &str, prefer: &str, body: Option<&str>) -> RequestSpec {
        let request = ApiRequest {
            method: method.into(),
            url: url.into(),
            prefer: Some(prefer.into()),
            accept: None,
            profile: None,
            body: body.map(str::to_string),
        };
        let mut spec = parse(&request, &["public".into()]).unwrap().spec;
        spec.schema = None;
        spec
    }

    fn data(spec: RequestSpec) -> BuiltStatement {
        data_statement(&spec).unwrap()
    }

    #[test]
    fn select_with_filters_order_and_range() {
        let built = data(spec(
            "GET",
            "/users?select=id,email,name:full_name,age::text&id=gt.3&or=(name.eq.a,name.is.null)&order=id.desc.nullslast&limit=10&offset=20",
            "",
            None,
        ));
        assert_eq!(
            built.sql,
            "SELECT \"users\".\"id\", \"users\".\"email\", \"users\".\"full_name\" AS \"name\", \"users\".\"age\"::text AS \"age\" \
             FROM \"users\" AS \"users\" WHERE \"users\".\"id\" > $1 AND (\"users\".\"name\" = $2 OR \"users\".\"name\" IS NULL) \
             ORDER BY \"users\".\"id\" DESC NULLS LAST LIMIT 10 OFFSET 20"
        );
        assert_eq!(
            built.params,
            vec![Param::Text("3".into()), Param::Text("a".into())]
        );
    }

    #[test]
    fn a_json_path_is_named_after_its_last_key_that_is_no_index() {
        let name = |item: &str| column_item(item).unwrap().name;
        assert_eq!(name("data->a->>b"), "b");
        assert_eq!(name("data->>0::int"), "data");
        assert_eq!(name("data->0->a->>2"), "a");
        assert_eq!(name("data->c->0->d->>4::int"), "d");
        assert_eq!(name("alias:data->>0"), "alias");
    }

    #[test]
    fn the_body_statement_counts_over_the_same_parameters() {
        let request = spec(
            "GET",
            "/users?select=id&active=is.true&age=gt.3&limit=2",
            "count=exact",
            None,
        );
        let built = body_statement(&request, true, Body::Rows).unwrap();
        assert_eq!(
            built.sql,
            "WITH pgrst_source AS (SELECT \"users\".\"id\" FROM \"users\" AS \"users\" \
             WHERE \"users\".\"active\" IS TRUE AND \"users\".\"age\" > $1 LIMIT 2) \
             SELECT (SELECT pg_catalog.count(*) FROM \"users\" AS \"users\" \
             WHERE \"users\".\"active\" IS TRUE AND \"users\".\"age\" > $1) AS total, \
             pg_catalog.count(_pgrst_t) AS page, coalesce(pg_catalog.json_agg(_pgrst_t), '[]')::text AS body, \
             pg_catalog.current_setting('response.status', true) AS status FROM pgrst_source _pgrst_t"
        );
        assert_eq!(built.params.len(), 1);
    }

    #[test]
    fn a_qualified_relation_is_one_identifier_in_its_schema() {
        let mut request = spec("GET", "/pg_catalog.pg_roles", "", None);
        request.schema = Some("public".into());
        assert_eq!(
            request.relation().unwrap(),
            "\"public\".\"pg_catalog.pg_roles\""
        );
    }

    #[test]
    fn insert_and_upsert_use_one_json_parameter() {
        let built = data(spec(
            "POST",
            "/users?on_conflict=id&select=id",
            "return=representation,resolution=merge-duplicates",
            Some(r#"[{"id": 1, "name": "a"}, {"id": 2, "email": "b@x"}]"#),
        ));
        assert_eq!(
            built.sql,
            "INSERT INTO \"users\" (\"id\", \"name\", \"email\") SELECT \"id\", \"name\", \"email\" \
             FROM json_populate_recordset(NULL::\"users\", $1) ON CONFLICT (\"id\") DO UPDATE SET \
             \"id\" = EXCLUDED.\"id\", \"name\" = EXCLUDED.\"name\", \"email\" = EXCLUDED.\"email\" RETURNING \"id\""
        );
        assert_eq!(built.params.len(), 1);
        let ignore = data(spec(
            "POST",
            "/t?on_conflict=id",
            "resolution=ignore-duplicates",
            Some(r#"{"id": 1}"#),
        ));
        assert!(ignore.sql.ends_with("ON CONFLICT (\"id\") DO NOTHING"));
    }

    #[test]
    fn update_and_delete() {
        let built = data(spec(
            "PATCH",
            "/users?id=eq.7",
            "",
            Some(r#"{"name": "x"}"#),
        ));
        assert_eq!(
            built.sql,
            "UPDATE \"users\" SET (\"name\") = (SELECT \"name\" FROM json_populate_record(NULL::\"users\", $1)) WHERE \"id\" = $2"
        );
        let built = data(spec(
            "DELETE",
            "/users?id=not.in.(1,2)",
            "return=representation",
            None,
        ));
        assert_eq!(
            built.sql,
            "DELETE FROM \"users\" WHERE NOT (\"id\" = ANY($1)) RETURNING *"
        );
    }

    #[test]
    fn hostile_names_are_quoted_not_pasted() {
        let built = data(spec(
            "GET",
            "/users%22;%20drop%20table%20x;%20--?select=%22a%5C%22b%22,c:d&order=id;%20delete%20from%20y",
            "",
            None,
        ));
        assert_eq!(
            built.sql,
            "SELECT \"users\"\"; drop table x; --\".\"a\"\"b\", \"users\"\"; drop table x; --\".\"d\" AS \"c\" \
             FROM \"users\"\"; drop table x; --\" AS \"users\"\"; drop table x; --\" \
             ORDER BY \"users\"\"; drop table x; --\".\"id; delete from y\" ASC"
        );
    }

    #[test]
    fn a_select_reads_its_relation_by_the_table_name_unless_it_could_be_an_alias() {
        assert_eq!(own_alias("users"), "users");
        // `name_<n>` is how embedded resources are aliased; `pgrst_…` how this module's are.
        assert_eq!(own_alias("users_1"), "pgrst_0");
        assert_eq!(own_alias("pgrst_source"), "pgrst_0");
        assert_eq!(own_alias("v2_users"), "v2_users");
        assert_eq!(embedded_alias("messages", 1), "messages_1");
        assert_eq!(embedded_alias("pgrst_s1", 1), "pgrst_1");
        assert_eq!(embedded_alias(&"x".repeat(62), 2), "pgrst_2");
    }

    #[test]
    fn unsupported_requests_are_clear_errors() {
        for (method, url, prefer, body) in [
            ("GET", "/t?select=id,posts(*)", "", None),
            ("GET", "/t?select=id::text;%20drop", "", None),
            ("POST", "/t", "", Some("[1, 2]")),
            (
                "POST",
                "/t",
                "resolution=merge-duplicates",
                Some(r#"{"a": 1}"#),
            ),
            ("PATCH", "/t", "", Some("{}")),
        ] {
            let err = data_statement(&spec(method, url, prefer, body)).expect_err(url);
            assert_eq!(err.code(), "PGRST100", "{url}");
        }
    }

    #[test]
    fn rpc_binds_named_arguments() {
        let built = data(spec("POST", "/rpc/add", "", Some(r#"{"a": 1, "b": 2}"#)));
        assert_eq!(built.sql, "SELECT * FROM \"add\"(\"a\" => $1, \"b\" => $2)");
        assert_eq!(built.params, vec![Param::Number(1.0), Param::Number(2.0)]);
    }

    #[test]
    fn upsert_defaults_to_the_primary_key() {
        let mut request = spec(
            "POST",
            "/t",
            "resolution=merge-duplicates",
            Some(r#"{"id": 1, "n": 2}"#),
        );
        request.primary_key = vec!["id".into()];
        let built = data_statement(&request).unwrap();
        assert!(
            built.sql.contains("ON CONFLICT (\"id\") DO UPDATE"),
            "{}",
            built.sql
        );
    }
}
