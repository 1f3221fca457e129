//! PostgREST's `select` with embedded resources: `id, author:users!fk_name(name), messages(*)`,
//! `...channels(slug)` (spread), `!inner` and `!left`, `messages(count)`.
//!
//! The tree is parsed here and rendered against the foreign keys of `schema::ForeignKey`
//! the way PostgREST renders it: a many-to-one resource is a correlated subquery giving one JSON
//! object (or null), a one-to-many resource one giving a JSON array; `!inner` also keeps only
//! the rows that have one.

use super::super::builder::{
    conditions, order_clause, select_list, EmbeddedPart, EmbeddedQuery, FilterSpec, OrderSpec,
};
use super::super::filters;
use super::super::filters::split_top_level;
use super::super::ident::{quote, request_error};
use super::super::params::Param;
use super::schema::ForeignKey;
use crate::error::{DatabaseErrorFields, PoolError};

/// One item of a select list.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// A column item as `builder::select_list` takes it (`*`, `a:b::text`).
    Column(String),
    Embed(Embed),
}

#[derive(Debug, PartialEq)]
pub struct Embed {
    pub alias: Option<String>,
    pub relation: String,
    /// `!fk_name` or `!column`: which foreign key, when there are several.
    pub hint: Option<String>,
    pub inner: bool,
    pub spread: bool,
    pub items: Vec<Item>,
}

/// Whether a select list embeds anything (the common case does not, and skips all of this).
pub fn has_embedding(columns: &str) -> bool {
    columns.contains('(')
}

pub fn parse(columns: &str) -> Result<Vec<Item>, PoolError> {
    split_top_level(columns)?
        .into_iter()
        .map(|item| parse_item(item.trim()))
        .collect()
}

fn parse_item(item: &str) -> Result<Item, PoolError> {
    let Some(open) = item.find('(') else {
        return Ok(Item::Column(item.to_string()));
    };
    let inside = item[open + 1..]
        .strip_suffix(')')
        .ok_or_else(|| request_error(format!("'{item}': unbalanced parentheses"), None))?;
    let head = &item[..open];
    let (spread, head) = match head.strip_prefix("...") {
        Some(rest) => (true, rest),
        None => (false, head),
    };
    let (alias, head) = match head.split_once(':') {
        Some((alias, rest)) if !rest.starts_with(':') => (Some(alias.trim().to_string()), rest),
        _ => (None, head),
    };
    let mut parts = head.split('!');
    let relation = parts.next().unwrap_or("").trim().to_string();
    if relation.is_empty() {
        return Err(request_error(
            format!("'{item}': an embedded resource needs a name"),
            None,
        ));
    }
    if inside.trim().is_empty() && !spread {
        // `count()` and other aggregates: PostgREST refuses them unless enabled.
        return Err(aggregates_disabled());
    }
    let (mut hint, mut inner) = (None, false);
    for modifier in parts {
        match modifier.trim() {
            "inner" => inner = true,
            "left" => inner = false,
            other => hint = Some(other.to_string()),
        }
    }
    let items = if inside.trim().is_empty() {
        vec![Item::Column("*".into())]
    } else {
        parse(inside)?
    };
    Ok(Item::Embed(Embed {
        alias,
        relation,
        hint,
        inner,
        spread,
        items,
    }))
}

fn aggregates_disabled() -> PoolError {
    coded(
        "PGRST123",
        "Use of aggregate functions is not allowed".into(),
        None,
    )
}

fn coded(code: &str, message: String, hint: Option<String>) -> PoolError {
    PoolError::Database(Box::new(DatabaseErrorFields {
        code: code.into(),
        message,
        hint,
        severity: "ERROR".into(),
        ..Default::default()
    }))
}

/// How an embedded resource relates to its parent.
struct Relationship<'a> {
    key: &'a ForeignKey,
    /// The parent holds the foreign key (many-to-one: one object).
    to_one: bool,
    /// The target holds a unique foreign key to the parent (one-to-one: one object too).
    one_to_one: bool,
}

/// Finds the one relationship between `parent` and `embed.relation` (both in `schema`).
fn relationship<'a>(
    keys: &'a [ForeignKey],
    schema: &str,
    parent: &str,
    embed: &Embed,
) -> Result<Relationship<'a>, PoolError> {
    let target = embed.relation.as_str();
    let mut found: Vec<Relationship> = Vec::new();
    for key in keys {
        let hinted = |key: &ForeignKey| match &embed.hint {
            None => true,
            Some(hint) => {
                key.name == *hint
                    || key.columns.iter().any(|c| c == hint)
                    || key.ref_columns.iter().any(|c| c == hint)
            }
        };
        // The parent references the target: many-to-one.
        if key.schema == schema
            && key.table == parent
            && key.ref_schema == schema
            && key.ref_table == target
            && hinted(key)
        {
            found.push(Relationship {
                key,
                to_one: true,
                one_to_one: false,
            });
        }
        // The target references the parent: one-to-many (a self-reference counts both ways).
        if key.schema == schema
            && key.table == target
            && key.ref_schema == schema
            && key.ref_table == parent
            && hinted(key)
        {
            // Unique referencing columns make it one-to-one: an object, not an array.
            found.push(Relationship {
                key,
                to_one: false,
                one_to_one: key.unique,
            });
        }
    }
    match found.len() {
        1 => Ok(found.pop().expect("one")),
        0 => Err(coded(
            "PGRST200",
            format!(
                "Could not find a relationship between '{parent}' and '{target}' in the schema cache"
            ),
            Some(format!(
                "Perhaps you meant a table with a foreign key to or from '{parent}'"
            )),
        )),
        _ => Err(coded(
            "PGRST201",
            format!(
                "Could not embed because more than one relationship was found for '{parent}' and '{target}'"
            ),
            Some(format!(
                "Try changing '{target}' to one of: {}",
                found
                    .iter()
                    .map(|r| format!("'{target}!{}'", r.key.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )),
    }
}

/// What rendering a select tree gives: the select list, and the conditions `!inner` adds to the
/// parent's WHERE.
pub struct Rendered {
    pub list: String,
    pub inner_conditions: Vec<String>,
}

/// What the URL asks of one embedded resource beside its columns.
struct EmbedQuery<'a> {
    filters: Vec<&'a FilterSpec>,
    order: Option<&'a [OrderSpec]>,
    limit: Option<u64>,
    offset: Option<u64>,
}

fn query_for<'a>(queries: &'a [EmbeddedQuery], path: &[String]) -> EmbedQuery<'a> {
    let mut query = EmbedQuery {
        filters: Vec::new(),
        order: None,
        limit: None,
        offset: None,
    };
    for q in queries.iter().filter(|q| q.path == path) {
        match &q.part {
            EmbeddedPart::Filter(filter) => query.filters.push(filter),
            EmbeddedPart::Order(order) => query.order = Some(order),
            EmbeddedPart::Limit(limit) => query.limit = Some(*limit),
            EmbeddedPart::Offset(offset) => query.offset = Some(*offset),
        }
    }
    query
}

/// Renders `items` selected from `parent` (a table of `schema`) whose rows are aliased
/// `parent_alias` in the statement; embedded filters' values go to `params`.
#[allow(clippy::too_many_arguments)]
pub fn render(
    items: &[Item],
    keys: &[ForeignKey],
    queries: &[EmbeddedQuery],
    path: &[String],
    params: &mut Vec<Param>,
    schema: &str,
    parent: &str,
    parent_alias: &str,
    depth: usize,
) -> Result<Rendered, PoolError> {
    let mut list = Vec::new();
    let mut inner_conditions = Vec::new();
    for item in items {
        match item {
            Item::Column(column) => list.push(select_list(column)?),
            Item::Embed(embed) => {
                let relationship = relationship(keys, schema, parent, embed)?;
                let alias = format!("pgrst_{depth}");
                let mut here = path.to_vec();
                here.push(
                    embed
                        .alias
                        .clone()
                        .unwrap_or_else(|| embed.relation.clone()),
                );
                let query = query_for(queries, &here);
                let sub = render(
                    &embed.items,
                    keys,
                    queries,
                    &here,
                    params,
                    schema,
                    &embed.relation,
                    &alias,
                    depth + 1,
                )?;
                let (local, remote) = if relationship.to_one {
                    (&relationship.key.columns, &relationship.key.ref_columns)
                } else {
                    (&relationship.key.ref_columns, &relationship.key.columns)
                };
                let mut join = Vec::new();
                for (l, r) in local.iter().zip(remote.iter()) {
                    join.push(format!(
                        "{}.{} = {}.{}",
                        quote(&alias)?,
                        quote(r)?,
                        quote(parent_alias)?,
                        quote(l)?
                    ));
                }
                join.extend(sub.inner_conditions);
                for condition in conditions_of(&query.filters)? {
                    join.push(filters::render(&condition, params)?);
                }
                let from = format!(
                    "{}.{} AS {} WHERE {}",
                    quote(schema)?,
                    quote(&embed.relation)?,
                    quote(&alias)?,
                    join.join(" AND ")
                );
                let name = quote(embed.alias.as_deref().unwrap_or(&embed.relation))?;
                if embed.spread {
                    if !relationship.to_one && !relationship.one_to_one {
                        return Err(coded(
                            "PGRST119",
                            format!("A spread operation on '{}' is not possible", embed.relation),
                            Some("'...' only spreads a to-one relationship".into()),
                        ));
                    }
                    for column in spread_columns(&embed.items)? {
                        list.push(format!(
                            "(SELECT {} FROM {from}) AS {}",
                            quote(&column.0)?,
                            quote(&column.1)?
                        ));
                    }
                } else if is_count(&embed.items) {
                    list.push(format!(
                        "(SELECT pg_catalog.json_agg(_pgrst_c) FROM (SELECT pg_catalog.count(*) AS count FROM {from}) _pgrst_c) AS {name}"
                    ));
                } else if relationship.to_one || relationship.one_to_one {
                    list.push(format!(
                        "(SELECT pg_catalog.row_to_json(_pgrst_e) FROM (SELECT {} FROM {from} LIMIT 1) _pgrst_e) AS {name}",
                        sub.list
                    ));
                } else {
                    let mut page = order_clause(query.order.unwrap_or(&[]))?;
                    if let Some(limit) = query.limit {
                        page.push_str(&format!(" LIMIT {limit}"));
                    }
                    if let Some(offset) = query.offset.filter(|o| *o > 0) {
                        page.push_str(&format!(" OFFSET {offset}"));
                    }
                    list.push(format!(
                        "coalesce((SELECT pg_catalog.json_agg(_pgrst_e) FROM (SELECT {} FROM {from}{page}) _pgrst_e), '[]') AS {name}",
                        sub.list
                    ));
                }
                if embed.inner {
                    inner_conditions.push(format!("EXISTS (SELECT 1 FROM {from})"));
                }
            }
        }
    }
    Ok(Rendered {
        list: list.join(", "),
        inner_conditions,
    })
}

/// The embedded resource's filters as conditions (the same grammar as the request's own).
fn conditions_of(filters: &[&FilterSpec]) -> Result<Vec<filters::Condition>, PoolError> {
    let owned: Vec<FilterSpec> = filters
        .iter()
        .map(|f| match f {
            FilterSpec::Filter { column, op, value } => FilterSpec::Filter {
                column: column.clone(),
                op: op.clone(),
                value: value.clone(),
            },
            FilterSpec::Logic {
                any,
                negate,
                expression,
            } => FilterSpec::Logic {
                any: *any,
                negate: *negate,
                expression: expression.clone(),
            },
        })
        .collect();
    conditions(&owned)
}

/// `messages(count)`: PostgREST's count of an embedded resource.
fn is_count(items: &[Item]) -> bool {
    matches!(items, [Item::Column(c)] if c.trim() == "count")
}

/// The (column, output name) pairs of a spread: plain columns only.
fn spread_columns(items: &[Item]) -> Result<Vec<(String, String)>, PoolError> {
    items
        .iter()
        .map(|item| match item {
            Item::Column(c) if !c.contains('*') && !c.contains("::") => {
                let (alias, column) = match c.split_once(':') {
                    Some((alias, column)) => (alias.trim(), column.trim()),
                    None => (c.trim(), c.trim()),
                };
                Ok((column.to_string(), alias.to_string()))
            }
            _ => Err(request_error(
                "a spread embeds named columns only (no *, casts or nested resources yet)",
                None,
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        name: &str,
        table: &str,
        columns: &[&str],
        ref_table: &str,
        ref_columns: &[&str],
    ) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            schema: "public".into(),
            table: table.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            ref_schema: "public".into(),
            ref_table: ref_table.into(),
            ref_columns: ref_columns.iter().map(|c| c.to_string()).collect(),
            unique: false,
        }
    }

    fn keys() -> Vec<ForeignKey> {
        vec![
            key(
                "messages_channel_id_fkey",
                "messages",
                &["channel_id"],
                "channels",
                &["id"],
            ),
            key(
                "messages_username_fkey",
                "messages",
                &["username"],
                "users",
                &["username"],
            ),
            key(
                "best_friends_first_user_fkey",
                "best_friends",
                &["first_user"],
                "users",
                &["username"],
            ),
            key(
                "best_friends_second_user_fkey",
                "best_friends",
                &["second_user"],
                "users",
                &["username"],
            ),
        ]
    }

    #[test]
    fn parses_aliases_hints_spreads_and_inner() {
        let items =
            parse("id, author:users!messages_username_fkey!inner(username), ...channels(slug)")
                .unwrap();
        assert_eq!(items[0], Item::Column("id".into()));
        let Item::Embed(author) = &items[1] else {
            panic!()
        };
        assert_eq!(author.alias.as_deref(), Some("author"));
        assert_eq!(author.hint.as_deref(), Some("messages_username_fkey"));
        assert!(author.inner);
        let Item::Embed(spread) = &items[2] else {
            panic!()
        };
        assert!(spread.spread);
        assert_eq!(parse("count()").unwrap_err().code(), "PGRST123");
    }

    #[test]
    fn renders_to_one_and_to_many_as_correlated_subqueries() {
        let rendered = render(
            &parse("id, channels(slug)").unwrap(),
            &keys(),
            &[],
            &[],
            &mut Vec::new(),
            "public",
            "messages",
            "pgrst_0",
            1,
        )
        .unwrap();
        assert_eq!(
            rendered.list,
            "\"id\", (SELECT pg_catalog.row_to_json(_pgrst_e) FROM (SELECT \"slug\" FROM \"public\".\"channels\" AS \"pgrst_1\" \
             WHERE \"pgrst_1\".\"id\" = \"pgrst_0\".\"channel_id\" LIMIT 1) _pgrst_e) AS \"channels\""
        );
        let rendered = render(
            &parse("messages!inner(id)").unwrap(),
            &keys(),
            &[],
            &[],
            &mut Vec::new(),
            "public",
            "channels",
            "pgrst_0",
            1,
        )
        .unwrap();
        assert!(
            rendered
                .list
                .starts_with("coalesce((SELECT pg_catalog.json_agg(_pgrst_e)"),
            "{}",
            rendered.list
        );
        assert_eq!(rendered.inner_conditions.len(), 1);
    }

    #[test]
    fn ambiguity_and_absence_are_postgrest_errors() {
        let ambiguous = render(
            &parse("users(*)").unwrap(),
            &keys(),
            &[],
            &[],
            &mut Vec::new(),
            "public",
            "best_friends",
            "pgrst_0",
            1,
        );
        assert_eq!(ambiguous.err().unwrap().code(), "PGRST201");
        let hinted = render(
            &parse("users!best_friends_first_user_fkey(*)").unwrap(),
            &keys(),
            &[],
            &[],
            &mut Vec::new(),
            "public",
            "best_friends",
            "pgrst_0",
            1,
        );
        assert!(hinted.is_ok());
        let missing = render(
            &parse("products(*)").unwrap(),
            &keys(),
            &[],
            &[],
            &mut Vec::new(),
            "public",
            "users",
            "pgrst_0",
            1,
        );
        assert_eq!(missing.err().unwrap().code(), "PGRST200");
    }
}
