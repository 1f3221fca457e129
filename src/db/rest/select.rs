//! PostgREST's `select` with embedded resources: `id, author:users!fk_name(name), messages(*)`,
//! `...channels(slug)` (spread), `!inner` and `!left`, `messages(count)`.
//!
//! The tree is parsed here and rendered against the foreign keys of `schema::ForeignKey`
//! the way PostgREST renders it: a many-to-one resource is a correlated subquery giving one JSON
//! object (or null), a one-to-many resource one giving a JSON array; `!inner` also keeps only
//! the rows that have one.

use super::schema::{Catalog, ComputedRelationship, ForeignKey};
use crate::db::codec::params::Param;
use crate::db::rest::builder::{
    column_item_in, conditions, embedded_alias, group_by, is_aggregate_item, order_clause_from,
    ColumnItem, EmbeddedPart, EmbeddedQuery, FilterSpec, OrderSpec, Output, Source,
};
use crate::db::rest::error::{pgrst, request_error};
use crate::db::rest::filters;
use crate::db::rest::filters::split_top_level;
use crate::db::rest::ident::{quote, too_deep, MAX_NESTING};
use crate::error::PoolError;

/// One item of a select list.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A column item as `builder::select_list` takes it (`*`, `a:b::text`).
    Column(String),
    Embed(Embed),
}

#[derive(Debug, Clone, PartialEq)]
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

/// Whether a list without embedding names a computed field of `schema.table`.
pub fn names_computed_field(catalog: &Catalog, schema: &str, table: &str, columns: &str) -> bool {
    !catalog.computed.is_empty()
        && split_top_level(columns).is_ok_and(|items| {
            items
                .iter()
                .any(|item| computed_field(catalog, schema, table, item).is_some())
        })
}

pub fn parse(columns: &str) -> Result<Vec<Item>, PoolError> {
    parse_at(columns, 1)
}

/// The items of one level of a select list; `depth` counts the levels above (bounded: an
/// embedding nested thousands deep is refused before it is read further).
fn parse_at(columns: &str, depth: usize) -> Result<Vec<Item>, PoolError> {
    if depth > MAX_NESTING {
        return Err(too_deep("the select list embeds resources"));
    }
    split_top_level(columns)?
        .into_iter()
        .map(|item| parse_item(item.trim(), depth))
        .collect()
}

fn parse_item(item: &str, depth: usize) -> Result<Item, PoolError> {
    let Some(open) = item.find('(') else {
        return Ok(Item::Column(item.to_string()));
    };
    if is_aggregate_item(item) {
        return Ok(Item::Column(item.to_string()));
    }
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
    let (mut hint, mut inner) = (None, false);
    for modifier in parts {
        match modifier.trim() {
            "inner" => inner = true,
            "left" => inner = false,
            other => hint = Some(other.to_string()),
        }
    }
    // `users()`: embedded for its filters (with `!inner`) but no columns of it in the answer.
    let items = if inside.trim().is_empty() {
        Vec::new()
    } else {
        parse_at(inside, depth + 1)?
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

/// PostgREST's error with `details` (for PGRST201, a JSON array as text: reply.rs sends it as
/// the array).
/// PostgREST's `PGRST108`: a filter, order or limit (`tasks.name=eq.x`) on a resource that
/// the select does not embed, checked before anything runs: ignoring it would answer rows the
/// caller asked to narrow. An embedded resource with an alias is named by its alias only.
pub fn check_embedded_targets(items: &[Item], queries: &[EmbeddedQuery]) -> Result<(), PoolError> {
    for query in queries {
        let mut level = items;
        for name in &query.path {
            let embeds = || {
                level.iter().filter_map(|item| match item {
                    Item::Embed(embed) => Some(embed),
                    Item::Column(_) => None,
                })
            };
            match embeds().find(|e| e.alias.as_deref().unwrap_or(&e.relation) == name) {
                Some(embed) => level = &embed.items,
                None => {
                    let aliased = embeds().find(|e| e.alias.is_some() && e.relation == *name);
                    return Err(not_embedded(name, aliased.and_then(|e| e.alias.as_deref())));
                }
            }
        }
    }
    Ok(())
}

/// `EXISTS` over a resource's rows (`source`, as `Relationship::source` gives it) under
/// `conditions`: whether it has related rows, as `name=is.null` and `name=not.is.null` test it.
fn related_rows_exist(source: &str, conditions: &[String]) -> String {
    format!(
        "EXISTS (SELECT 1 FROM {source} WHERE {})",
        conditions.join(" AND ")
    )
}

/// PostgREST's `PGRST127`: a request it parses but does not answer.
fn not_implemented(details: &str) -> PoolError {
    pgrst(
        "PGRST127",
        "Feature not implemented".into(),
        Some(details.into()),
        None,
    )
}

/// `PGRST108` for `name`; `alias` when the select embeds it under that alias.
pub fn not_embedded(name: &str, alias: Option<&str>) -> PoolError {
    let message = format!("'{name}' is not an embedded resource in this request");
    match alias {
        Some(alias) => pgrst(
            "PGRST108",
            message,
            Some("Target names are not allowed in filters if they have an alias".into()),
            Some(format!(
                "Change '{name}' to '{alias}' in filters, orders or limits."
            )),
        ),
        None => pgrst(
            "PGRST108",
            message,
            None,
            Some(format!(
                "Verify that '{name}' is included in the 'select' query parameter."
            )),
        ),
    }
}

/// How an embedded resource relates to its parent.
struct Relationship<'a> {
    link: Link<'a>,
    /// The table the resource reads (the embed's name may be a column or a constraint's).
    target: &'a str,
    /// The parent holds the foreign key (many-to-one: one object), or a computed relationship
    /// returns one row.
    to_one: bool,
    /// The target holds a unique foreign key to the parent (one-to-one: one object too).
    one_to_one: bool,
}

/// What ties the resource's rows to its parent's.
enum Link<'a> {
    Key {
        key: &'a ForeignKey,
        /// Many-to-many through a junction table: `key` goes from the junction to the target,
        /// this one from the junction to the parent.
        junction: Option<&'a ForeignKey>,
    },
    /// A function of the parent's row returning the target's rows (PostgREST's computed
    /// relationship).
    Function(&'a ComputedRelationship),
}

impl Relationship<'_> {
    fn junction(&self) -> Option<&ForeignKey> {
        match self.link {
            Link::Key { junction, .. } => junction,
            Link::Function(_) => None,
        }
    }

    /// The foreign key's columns are unique: one-to-one both ways.
    fn unique_key(&self) -> bool {
        matches!(self.link, Link::Key { key, junction: None } if key.unique)
    }

    fn cardinality(&self) -> &'static str {
        match (self.junction(), self.to_one, self.one_to_one) {
            (Some(_), _, _) => "many-to-many",
            (None, true, _) if self.unique_key() => "one-to-one",
            (None, true, _) => "many-to-one",
            (None, false, true) => "one-to-one",
            (None, false, false) => "one-to-many",
        }
    }

    fn describe(&self, parent: &str, target: &str) -> serde_json::Value {
        let relationship = match self.link {
            Link::Function(function) => format!("{}({parent})", function.name),
            Link::Key {
                key,
                junction: Some(junction),
            } => format!(
                "{} using {}({}) and {}({})",
                key.table,
                junction.name,
                junction.columns.join(", "),
                key.name,
                key.columns.join(", ")
            ),
            Link::Key { key, .. } if self.to_one => format!(
                "{} using {}({}) and {}({})",
                key.name,
                key.table,
                key.columns.join(", "),
                key.ref_table,
                key.ref_columns.join(", ")
            ),
            Link::Key { key, .. } => format!(
                "{} using {}({}) and {}({})",
                key.name,
                key.ref_table,
                key.ref_columns.join(", "),
                key.table,
                key.columns.join(", ")
            ),
        };
        serde_json::json!({
            "cardinality": self.cardinality(),
            "embedding": format!("{parent} with {target}"),
            "relationship": relationship,
        })
    }

    fn hint_name(&self) -> &str {
        match self.link {
            Link::Key {
                key,
                junction: Some(_),
            } => &key.table,
            Link::Key { key, .. } => &key.name,
            Link::Function(function) => &function.name,
        }
    }

    /// What the resource's rows are read from, aliased `alias`: the target table, or the
    /// function called with the parent's row (`parent_alias`).
    fn source(&self, schema: &str, alias: &str, parent_alias: &str) -> Result<String, PoolError> {
        Ok(match self.link {
            Link::Function(function) => format!(
                "{}.{}({}) AS {}",
                quote(&function.schema)?,
                quote(&function.name)?,
                quote(parent_alias)?,
                quote(alias)?
            ),
            Link::Key { .. } => format!(
                "{}.{} AS {}",
                quote(schema)?,
                quote(self.target)?,
                quote(alias)?
            ),
        })
    }
}

/// Finds the one relationship between `parent` and the resource `embed` names (both in
/// `schema`), as PostgREST does: the name is a table, a foreign key column of the parent
/// (many-to-one) or a foreign key constraint; a hint (`!name`) is a constraint, a column of
/// either side, or a junction table; without a direct relationship, a table holding foreign
/// keys to both sides makes it many-to-many.
fn relationship<'a>(
    catalog: &'a Catalog,
    schema: &str,
    parent: &str,
    embed: &Embed,
) -> Result<Relationship<'a>, PoolError> {
    let name = embed.relation.as_str();
    // A computed relationship of that name comes first: PostgREST lets one override the
    // relationships its foreign keys give.
    if let Some(function) = catalog.computed_relationship(schema, parent, name) {
        return Ok(Relationship {
            link: Link::Function(function),
            target: &function.target,
            to_one: function.to_one,
            one_to_one: false,
        });
    }
    let wanted = Wanted {
        catalog,
        schema,
        parent,
        name,
        hint: embed.hint.as_deref(),
    };
    let mut found = wanted.direct();
    found.extend(wanted.through_junctions());
    wanted.the_one(found)
}

/// What an embed asks for, by PostgREST's findRel rules.
struct Wanted<'a, 'w> {
    catalog: &'a Catalog,
    schema: &'w str,
    parent: &'w str,
    name: &'w str,
    hint: Option<&'w str>,
}

/// A key of one column, that column.
fn single(columns: &[String], name: &str) -> bool {
    columns.len() == 1 && columns[0] == name
}

impl<'a> Wanted<'a, '_> {
    fn in_schema(&self, key: &ForeignKey) -> bool {
        key.schema == self.schema && key.ref_schema == self.schema
    }

    /// The name is the related table's; without a hint it may also be a foreign key's
    /// constraint or its single column on the parent's side, unless the related relation is a
    /// view; a hint is a constraint, or a single column of either side.
    fn names(&self, target: &str, constraint: &str, own: &[String], other: &[String]) -> bool {
        let name = self.name;
        match self.hint {
            None => {
                target == name
                    || (!self.catalog.is_view(self.schema, target)
                        && (constraint == name || single(own, name)))
            }
            Some(hint) => {
                target == name && (constraint == hint || single(own, hint) || single(other, hint))
            }
        }
    }

    /// Many-to-one and one-to-many (one-to-one with unique columns) through one foreign key. A
    /// self-reference gives its children by the table's name and its parent by the column's.
    fn direct(&self) -> Vec<Relationship<'a>> {
        let (parent, name, hint) = (self.parent, self.name, self.hint);
        let direct = |key: &'a ForeignKey, target: &'a str, to_one: bool| Relationship {
            link: Link::Key {
                key,
                junction: None,
            },
            target,
            to_one,
            one_to_one: !to_one && key.unique,
        };
        let mut found = Vec::new();
        for key in self.catalog.keys.iter().filter(|k| self.in_schema(k)) {
            let self_reference = key.table == key.ref_table;
            // The parent references the target.
            let many_to_one = key.table == parent
                && if self_reference {
                    hint.is_none() && single(&key.columns, name)
                } else {
                    self.names(&key.ref_table, &key.name, &key.columns, &key.ref_columns)
                };
            if many_to_one {
                found.push(direct(key, &key.ref_table, true));
            }
            // The target references the parent.
            let one_to_many = key.ref_table == parent
                && if self_reference {
                    key.table == name && hint.is_none_or(|hint| single(&key.columns, hint))
                } else {
                    self.names(&key.table, &key.name, &key.ref_columns, &key.columns)
                };
            if one_to_many {
                found.push(direct(key, &key.table, false));
            }
        }
        found
    }

    /// Many-to-many: a junction table with a key to the parent and one to the target, both
    /// within its primary key (PostgREST's rule), named by the target's name (and the
    /// junction's, as a hint). A self-referencing one is not embedded, as in PostgREST.
    fn through_junctions(&self) -> Vec<Relationship<'a>> {
        let (catalog, parent, name) = (self.catalog, self.parent, self.name);
        let mut found = Vec::new();
        if parent == name {
            return found;
        }
        let keys = &catalog.keys;
        for to_parent in keys
            .iter()
            .filter(|k| self.in_schema(k) && k.ref_table == parent)
        {
            if self.hint.is_some_and(|hint| hint != to_parent.table) {
                continue;
            }
            let primary_key = catalog.primary_key(self.schema, &to_parent.table);
            let within =
                |columns: &[String]| columns.iter().all(|c| primary_key.contains(&c.as_str()));
            for to_target in keys.iter().filter(|k| {
                self.in_schema(k)
                    && k.table == to_parent.table
                    && k.ref_table == name
                    && k.name != to_parent.name
            }) {
                if within(&to_parent.columns) && within(&to_target.columns) {
                    found.push(Relationship {
                        link: Link::Key {
                            key: to_target,
                            junction: Some(to_parent),
                        },
                        target: &to_target.ref_table,
                        to_one: false,
                        one_to_one: false,
                    });
                }
            }
        }
        found
    }

    /// The one relationship found: none is `PGRST200`, several `PGRST201` (with the hints
    /// that would choose each).
    fn the_one(&self, mut found: Vec<Relationship<'a>>) -> Result<Relationship<'a>, PoolError> {
        let (schema, parent, name) = (self.schema, self.parent, self.name);
        match found.len() {
            1 => Ok(found.pop().expect("one")),
            0 => Err(pgrst(
                "PGRST200",
                format!(
                    "Could not find a relationship between '{parent}' and '{name}' in the schema cache"
                ),
                Some(format!(
                    "Searched for a foreign key relationship between '{parent}' and '{name}'{} in the schema '{schema}', but no matches were found.",
                    self.hint.map(|hint| format!(" using the hint '{hint}'")).unwrap_or_default()
                )),
                None,
            )),
            _ => {
                let details: Vec<serde_json::Value> =
                    found.iter().map(|r| r.describe(parent, name)).collect();
                let hints: Vec<String> =
                    found.iter().map(|r| format!("'{name}!{}'", r.hint_name())).collect();
                Err(pgrst(
                    "PGRST201",
                    format!(
                        "Could not embed because more than one relationship was found for '{parent}' and '{name}'"
                    ),
                    Some(serde_json::Value::Array(details).to_string()),
                    Some(format!(
                        "Try changing '{name}' to one of the following: {}. Find the desired relationship in the 'details' key.",
                        hints.join(", ")
                    )),
                ))
            }
        }
    }
}

/// What rendering a select tree gives: the select list, the lateral joins its spreads read
/// from, the conditions `!inner` adds to the parent's WHERE, and the GROUP BY its aggregates
/// need.
pub struct Rendered {
    pub list: String,
    /// ` LEFT JOIN LATERAL (…) AS "pgrst_s…" ON true` for each spread (empty without).
    pub joins: String,
    pub inner_conditions: Vec<String>,
    /// Each embedded resource (not a spread) by its name in the answer, as `EXISTS (…)` of its
    /// related rows under its own filters: what `name=is.null` (none) and `name=not.is.null`
    /// (some) test, as PostgREST has them.
    pub existence: Vec<(String, String)>,
    /// ` GROUP BY …` when the list has aggregates, else empty.
    pub group_by: String,
    /// Whether the list has an aggregate.
    pub aggregates: bool,
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

/// Where a select tree is rendered: the catalog, the URL's embedded filters, the values bound.
pub struct Scope<'a> {
    pub catalog: &'a Catalog,
    pub queries: &'a [EmbeddedQuery],
    pub params: &'a mut Vec<Param>,
    pub schema: &'a str,
}

/// Renders `items` selected from `parent` (a table of the scope's schema) whose rows are
/// aliased `parent_alias` in the statement; embedded filters' values go to the scope's params.
pub fn render(
    scope: &mut Scope<'_>,
    items: &[Item],
    path: &[String],
    parent: &str,
    parent_alias: &str,
    depth: usize,
) -> Result<Rendered, PoolError> {
    let mut parts = Parts::default();
    let parent_q = quote(parent_alias)?;
    // Looked up once for the list, not per column.
    let parent_composite = scope
        .catalog
        .relation_columns(scope.schema, parent)
        .map(|r| r.composite.as_slice());
    let mut embedded_names: Vec<&str> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match item {
            Item::Column(column) => {
                let source = Source::typed(&parent_q, parent_composite);
                parts.push_column(parent_column(scope, column, parent, parent_alias, source)?);
            }
            Item::Embed(embed) => {
                let relationship = relationship(scope.catalog, scope.schema, parent, embed)?;
                let name = embed.alias.as_deref().unwrap_or(&embed.relation);
                if embedded_names.contains(&name) {
                    // PostgREST names each resource's join after its parent and its name, and
                    // Postgres refuses the second: the answer would hold one key twice.
                    return Err(pgrst(
                        "42712",
                        format!("table name \"{parent}_{name}_{depth}\" specified more than once"),
                        None,
                        None,
                    ));
                }
                embedded_names.push(name);
                let at = Place {
                    path,
                    parent_alias,
                    index,
                    depth,
                };
                let embedding = Embedding::resolve(scope, embed, relationship, &at)?;
                let to_one = embedding.relationship.to_one || embedding.relationship.one_to_one;
                match (embed.spread, to_one) {
                    (true, false) => to_many_spread(scope, &mut parts, &embedding)?,
                    (true, true) => to_one_spread(scope, &mut parts, &embedding)?,
                    (false, _) => embedded(scope, &mut parts, &embedding)?,
                }
            }
        }
    }
    parts.finish()
}

/// What the items of one select list add up to, as `render` goes through them.
#[derive(Default)]
struct Parts {
    list: Vec<String>,
    joins: String,
    outputs: Vec<Output>,
    inner_conditions: Vec<String>,
    existence: Vec<(String, String)>,
}

impl Parts {
    fn push_column(&mut self, column: ColumnItem) {
        self.outputs.push(Output::of(&column));
        self.list.push(column.sql);
    }

    /// `expr AS name` in the list, an output of its own.
    fn push_expression(&mut self, expr: String, name: &str) -> Result<(), PoolError> {
        self.list.push(format!("{expr} AS {}", quote(name)?));
        self.outputs.push(Output::Plain(vec![expr]));
        Ok(())
    }

    /// What `name=is.null` tests, and with `!inner`, a condition of the parent's rows.
    fn push_existence(&mut self, name: &str, exists: String, inner: bool) {
        if inner {
            self.inner_conditions.push(exists.clone());
        }
        self.existence.push((name.to_string(), exists));
    }

    fn finish(self) -> Result<Rendered, PoolError> {
        Ok(Rendered {
            list: self.list.join(", "),
            joins: self.joins,
            inner_conditions: self.inner_conditions,
            existence: self.existence,
            group_by: group_by(&self.outputs)?,
            aggregates: self.outputs.iter().any(|o| matches!(o, Output::Aggregate)),
        })
    }
}

/// A column of the parent, or a computed field of its rows (a function of the row's type).
fn parent_column(
    scope: &Scope<'_>,
    column: &str,
    parent: &str,
    parent_alias: &str,
    source: Source<'_>,
) -> Result<ColumnItem, PoolError> {
    let schema = scope.schema;
    let Some((alias, name)) = computed_field(scope.catalog, schema, parent, column) else {
        return column_item_in(column, source);
    };
    let expr = format!(
        "{}.{}({})",
        quote(schema)?,
        quote(name)?,
        quote(parent_alias)?
    );
    Ok(ColumnItem {
        sql: format!("{expr} AS {}", quote(alias.unwrap_or(name))?),
        expr,
        name: alias.unwrap_or(name).to_string(),
        aggregate: false,
        star: false,
    })
}

/// Where in the tree an embedded resource is: its parent's path and alias, its index in the
/// parent's list and the depth of its own list.
struct Place<'p> {
    path: &'p [String],
    parent_alias: &'p str,
    index: usize,
    depth: usize,
}

/// One embedded resource, resolved: how it relates to its parent, its alias in the statement,
/// its name in the answer, its path, what the URL asks of it, and the conditions that join it.
struct Embedding<'r> {
    embed: &'r Embed,
    relationship: Relationship<'r>,
    alias: String,
    alias_q: String,
    name: &'r str,
    here: Vec<String>,
    query: EmbedQuery<'r>,
    join: Vec<String>,
    source: String,
    index: usize,
    depth: usize,
}

impl<'r> Embedding<'r> {
    fn resolve(
        scope: &Scope<'r>,
        embed: &'r Embed,
        relationship: Relationship<'r>,
        at: &Place<'_>,
    ) -> Result<Self, PoolError> {
        let (schema, depth) = (scope.schema, at.depth);
        let alias = embedded_alias(relationship.target, depth);
        let name = embed.alias.as_deref().unwrap_or(&embed.relation);
        let mut here = at.path.to_vec();
        here.push(name.to_string());
        let query = query_for(scope.queries, &here);
        let join = join_condition(&relationship, schema, &alias, at.parent_alias, depth)?;
        let source = relationship.source(schema, &alias, at.parent_alias)?;
        Ok(Embedding {
            alias_q: quote(&alias)?,
            embed,
            relationship,
            alias,
            name,
            here,
            query,
            join,
            source,
            index: at.index,
            depth,
        })
    }

    fn target(&self) -> &'r str {
        self.relationship.target
    }

    /// Its own list, one level down.
    fn render_items(&self, scope: &mut Scope<'_>, items: &[Item]) -> Result<Rendered, PoolError> {
        render(
            scope,
            items,
            &self.here,
            self.target(),
            &self.alias,
            self.depth + 1,
        )
    }

    /// The join conditions, the `!inner` ones of its list, and the URL's filters on it (which
    /// may test its own embedded resources for null, `projects.tasks=not.is.null`).
    fn conditions(&self, scope: &mut Scope<'_>, sub: &Rendered) -> Result<Vec<String>, PoolError> {
        let mut conditions = self.join.clone();
        conditions.extend(sub.inner_conditions.iter().cloned());
        for condition in conditions_in(scope, self.target(), &self.query.filters)? {
            conditions.push(filters::render_with(
                &condition,
                scope.params,
                Some(&self.alias_q),
                &sub.existence,
            )?);
        }
        Ok(conditions)
    }
}

/// A to-many spread, as PostgREST 13: each of its outputs (columns, `*`, resources embedded or
/// spread in it) becomes the array of its values over the related rows, in the resource's own
/// order.
fn to_many_spread(
    scope: &mut Scope<'_>,
    parts: &mut Parts,
    e: &Embedding<'_>,
) -> Result<(), PoolError> {
    let sub = e.render_items(scope, &e.embed.items)?;
    if sub.aggregates {
        return Err(not_implemented(
            "Aggregates are not implemented for one-to-many or many-to-many spreads.",
        ));
    }
    let names = output_names(scope.catalog, scope.schema, &e.embed.items, e.target())?;
    let conditions = e.conditions(scope, &sub)?;
    if !names.is_empty() {
        let lateral = quote(&format!("pgrst_s{}_{}", e.depth, e.index))?;
        let page = embedded_page(scope, &e.query, &e.embed.items, e.target(), &e.alias)?;
        let mut arrays = Vec::new();
        for (i, output) in names.iter().enumerate() {
            // Named apart from the parent's columns, which its filters and order name
            // unqualified.
            arrays.push(format!(
                "coalesce(pg_catalog.json_agg(_pgrst_s.{}), '[]') AS \"pgrst_a{i}\"",
                quote(output)?
            ));
            parts.push_expression(format!("{lateral}.\"pgrst_a{i}\""), output)?;
        }
        parts.joins.push_str(&format!(
            " LEFT JOIN LATERAL (SELECT {} FROM (SELECT {} FROM {}{} WHERE {}{page}) _pgrst_s) AS {lateral} ON true",
            arrays.join(", "),
            sub.list,
            e.source,
            sub.joins,
            conditions.join(" AND "),
        ));
    }
    // `processes=is.null` on a spread tests its related rows, as on an embed.
    let exists = related_rows_exist(&e.source, &conditions);
    parts.push_existence(e.name, exists, e.embed.inner);
    Ok(())
}

/// A to-one spread: the related row, as one composite column of a lateral join, whose fields
/// join the parent's list (and its grouping) as the parent's own columns.
fn to_one_spread(
    scope: &mut Scope<'_>,
    parts: &mut Parts,
    e: &Embedding<'_>,
) -> Result<(), PoolError> {
    let lateral = format!("pgrst_s{}_{}", e.depth, e.index);
    let row = format!("{}.\"pgrst_row\"", quote(&lateral)?);
    let mut conditions = e.join.clone();
    for condition in conditions_in(scope, e.target(), &e.query.filters)? {
        conditions.push(filters::render_in(
            &condition,
            scope.params,
            Some(&e.alias_q),
        )?);
    }
    parts.joins.push_str(&format!(
        " LEFT JOIN LATERAL (SELECT {} AS \"pgrst_row\" FROM {} WHERE {} LIMIT 1) AS {} ON true",
        e.alias_q,
        e.source,
        conditions.join(" AND "),
        quote(&lateral)?,
    ));
    let nested_lateral = format!("pgrst_x{}_{}", e.depth, e.index);
    for spread_item in &e.embed.items {
        match spread_item {
            Item::Column(column) => parts.push_column(column_item_in(column, Source::Row(&row))?),
            Item::Embed(_) if std::ptr::eq(spread_item, first_embed(&e.embed.items)) => {
                parts.list.push(format!("{}.*", quote(&nested_lateral)?));
                // Its columns are not named here: an aggregate beside them has nothing to
                // group by.
                parts.outputs.push(Output::SpreadEmbeds);
            }
            Item::Embed(_) => {}
        }
    }
    spread_embeds(scope, parts, e, &conditions, &nested_lateral)?;
    if e.embed.inner {
        parts.inner_conditions.push(format!("{row} IS NOT NULL"));
    }
    let exists = related_rows_exist(&e.source, &conditions);
    parts.push_existence(e.name, exists, false);
    Ok(())
}

/// Resources embedded in a to-one spread (or spread in it in turn), rendered over the same
/// related row in a lateral of their own, whose columns all join the parent's list.
fn spread_embeds(
    scope: &mut Scope<'_>,
    parts: &mut Parts,
    e: &Embedding<'_>,
    conditions: &[String],
    nested_lateral: &str,
) -> Result<(), PoolError> {
    let nested: Vec<Item> = e
        .embed
        .items
        .iter()
        .filter(|i| matches!(i, Item::Embed(_)))
        .cloned()
        .collect();
    if nested.is_empty() {
        return Ok(());
    }
    let sub = e.render_items(scope, &nested)?;
    if sub.aggregates {
        // PostgREST groups them with the top level's columns; computed in this lateral they
        // would count per related row instead.
        return Err(not_implemented(
            "Aggregates inside a spread within a spread are not implemented here.",
        ));
    }
    let mut nested_conditions = conditions.to_vec();
    nested_conditions.extend(sub.inner_conditions);
    parts.joins.push_str(&format!(
        " LEFT JOIN LATERAL (SELECT {} FROM {}{} WHERE {}{} LIMIT 1) AS {} ON true",
        sub.list,
        e.source,
        sub.joins,
        nested_conditions.join(" AND "),
        sub.group_by,
        quote(nested_lateral)?,
    ));
    Ok(())
}

/// An embedded resource: an object for a to-one one, an array for a to-many one, a count.
fn embedded(scope: &mut Scope<'_>, parts: &mut Parts, e: &Embedding<'_>) -> Result<(), PoolError> {
    let sub = e.render_items(scope, &e.embed.items)?;
    let conditions = e.conditions(scope, &sub)?;
    let from = format!(
        "{}{} WHERE {}",
        e.source,
        sub.joins,
        conditions.join(" AND ")
    );
    let to_one = e.relationship.to_one || e.relationship.one_to_one;
    let expr = if e.embed.items.is_empty() || sub.list.is_empty() {
        // Nothing of it is selected, here or below (`tasks(projects())`): it only filters
        // (with `!inner`), and PostgREST leaves it out of the answer.
        None
    } else if is_count(&e.embed.items) {
        // An object for a to-one resource, a one-element list for a to-many one.
        let wrap = if to_one {
            "pg_catalog.row_to_json"
        } else {
            "pg_catalog.json_agg"
        };
        Some(format!(
            "(SELECT {wrap}(_pgrst_c) FROM (SELECT pg_catalog.count(*) AS count FROM {from}) _pgrst_c)"
        ))
    } else if to_one {
        Some(format!(
            "(SELECT pg_catalog.row_to_json(_pgrst_e) FROM (SELECT {} FROM {from}{} LIMIT 1) _pgrst_e)",
            sub.list, sub.group_by
        ))
    } else {
        let page = embedded_page(scope, &e.query, &e.embed.items, e.target(), &e.alias)?;
        Some(format!(
            "coalesce((SELECT pg_catalog.json_agg(_pgrst_e) FROM (SELECT {} FROM {from}{}{page}) _pgrst_e), '[]')",
            sub.list, sub.group_by
        ))
    };
    if let Some(expr) = expr {
        parts.push_expression(expr, e.name)?;
    }
    parts.push_existence(
        e.name,
        format!("EXISTS (SELECT 1 FROM {from})"),
        e.embed.inner,
    );
    Ok(())
}

/// `rel(col)` in `order`: the column of a to-one resource embedded among `items` (by its alias
/// or name) of `parent` (aliased `parent_alias`), as a subquery to order by, as PostgREST
/// orders by a related column. A resource the select does not embed is `PGRST108`, a to-many
/// one `PGRST118`.
pub fn order_by_related(
    scope: &Scope<'_>,
    items: &[Item],
    parent: &str,
    parent_alias: &str,
    column: &str,
) -> Result<String, PoolError> {
    let malformed = || {
        request_error(
            format!("'{column}': order by a related column as rel(column)"),
            None,
        )
    };
    let open = column.find('(').ok_or_else(malformed)?;
    let inside = column[open + 1..].strip_suffix(')').ok_or_else(malformed)?;
    let name = column[..open].trim();
    let embeds = || {
        items.iter().filter_map(|item| match item {
            Item::Embed(embed) => Some(embed),
            Item::Column(_) => None,
        })
    };
    let embed = embeds()
        .find(|e| e.alias.as_deref().unwrap_or(&e.relation) == name)
        .ok_or_else(|| {
            let aliased = embeds().find(|e| e.alias.is_some() && e.relation == name);
            not_embedded(name, aliased.and_then(|e| e.alias.as_deref()))
        })?;
    let relationship = relationship(scope.catalog, scope.schema, parent, embed)?;
    if !relationship.to_one && !relationship.one_to_one {
        let named = Embed {
            relation: name.to_string(),
            ..embed.clone()
        };
        return Err(not_to_one("PGRST118", "A related order", parent, &named));
    }
    let alias = "pgrst_o";
    let join = join_condition(&relationship, scope.schema, alias, parent_alias, 0)?;
    let field = column_item_in(inside, Source::Relation(&quote(alias)?))?;
    Ok(format!(
        "(SELECT {} FROM {} WHERE {} LIMIT 1)",
        field.expr,
        relationship.source(scope.schema, alias, parent_alias)?,
        join.join(" AND ")
    ))
}

/// An embedded resource's ` ORDER BY … LIMIT … OFFSET …` over its rows (`alias`); its order
/// may name a to-one resource embedded in it (`tasks.order=projects(id)`).
fn embedded_page(
    scope: &Scope<'_>,
    query: &EmbedQuery<'_>,
    items: &[Item],
    target: &str,
    alias: &str,
) -> Result<String, PoolError> {
    let mut orders = query.order.unwrap_or(&[]).to_vec();
    for order in orders.iter_mut().filter(|o| o.column.contains('(')) {
        order.expression = Some(order_by_related(
            scope,
            items,
            target,
            alias,
            &order.column,
        )?);
    }
    let alias_q = quote(alias)?;
    let mut page = order_clause_from(
        &orders,
        Source::typed(&alias_q, composite_columns(scope, target)),
    )?;
    if let Some(limit) = query.limit {
        page.push_str(&format!(" LIMIT {limit}"));
    }
    if let Some(offset) = query.offset.filter(|o| *o > 0) {
        page.push_str(&format!(" OFFSET {offset}"));
    }
    Ok(page)
}

/// The names `items` selected from `target` answer under, in order: what a to-many spread
/// turns into arrays. `*` is the relation's columns, as the catalog has them.
fn output_names(
    catalog: &Catalog,
    schema: &str,
    items: &[Item],
    target: &str,
) -> Result<Vec<String>, PoolError> {
    let mut names = Vec::new();
    for item in items {
        match item {
            Item::Column(column) => {
                if let Some((alias, name)) = computed_field(catalog, schema, target, column) {
                    names.push(alias.unwrap_or(name).to_string());
                    continue;
                }
                let rendered = column_item_in(column, Source::Relation("\"pgrst_n\""))?;
                if !rendered.star {
                    names.push(rendered.name);
                    continue;
                }
                let columns = catalog.columns_of(schema, target).ok_or_else(|| {
                    request_error(
                        format!("'{target}': a to-many spread of * needs the relation's columns, and the schema cache has none"),
                        None,
                    )
                })?;
                names.extend(columns.iter().cloned());
            }
            Item::Embed(embed) if embed.spread => {
                let relationship = relationship(catalog, schema, target, embed)?;
                names.extend(output_names(
                    catalog,
                    schema,
                    &embed.items,
                    relationship.target,
                )?);
            }
            Item::Embed(embed) if !embed.items.is_empty() => {
                names.push(
                    embed
                        .alias
                        .as_deref()
                        .unwrap_or(&embed.relation)
                        .to_string(),
                );
            }
            Item::Embed(_) => {}
        }
    }
    Ok(names)
}

/// The first embedded resource among a spread's items (the place its lateral's columns take).
fn first_embed(items: &[Item]) -> &Item {
    items
        .iter()
        .find(|i| matches!(i, Item::Embed(_)))
        .expect("called for a spread with an embedded resource")
}

/// What needs a to-one resource (a spread, a related order) asked of a to-many one.
fn not_to_one(code: &str, what: &str, parent: &str, embed: &Embed) -> PoolError {
    pgrst(
        code,
        format!("{what} on '{}' is not possible", embed.relation),
        Some(format!(
            "'{parent}' and '{}' do not form a many-to-one or one-to-one relationship",
            embed.relation
        )),
        None,
    )
}

/// The conditions tying the resource's rows (`alias`) to the parent's (`parent_alias`).
fn join_condition(
    relationship: &Relationship,
    schema: &str,
    alias: &str,
    parent_alias: &str,
    depth: usize,
) -> Result<Vec<String>, PoolError> {
    let (key, junction) = match relationship.link {
        Link::Key { key, junction } => (key, junction),
        // The function picks the rows: nothing more to tie.
        Link::Function(_) => return Ok(vec!["true".into()]),
    };
    let pairs = |left: &str, l: &[String], right: &str, r: &[String]| {
        l.iter()
            .zip(r.iter())
            .map(|(a, b)| {
                Ok(format!(
                    "{}.{} = {}.{}",
                    quote(left)?,
                    quote(a)?,
                    quote(right)?,
                    quote(b)?
                ))
            })
            .collect::<Result<Vec<_>, PoolError>>()
    };
    match junction {
        Some(to_parent) => {
            let junction = format!("pgrst_j{depth}");
            let mut on = pairs(&junction, &key.columns, alias, &key.ref_columns)?;
            on.extend(pairs(
                &junction,
                &to_parent.columns,
                parent_alias,
                &to_parent.ref_columns,
            )?);
            Ok(vec![format!(
                "EXISTS (SELECT 1 FROM {}.{} AS {} WHERE {})",
                quote(schema)?,
                quote(&key.table)?,
                quote(&junction)?,
                on.join(" AND ")
            )])
        }
        None if relationship.to_one => pairs(alias, &key.ref_columns, parent_alias, &key.columns),
        None => pairs(alias, &key.columns, parent_alias, &key.ref_columns),
    }
}

/// `name` or `alias:name` when `name` is a computed field of `schema.table`: (alias, name).
fn computed_field<'a>(
    catalog: &Catalog,
    schema: &str,
    table: &str,
    item: &'a str,
) -> Option<(Option<&'a str>, &'a str)> {
    if catalog.computed.is_empty() {
        return None;
    }
    let (alias, name) = match item.split_once(':') {
        Some((alias, name)) if !name.starts_with(':') => (Some(alias.trim()), name.trim()),
        _ => (None, item.trim()),
    };
    catalog
        .computed_field(schema, table, name)
        .map(|_| (alias, name))
}

/// The embedded resource's filters as conditions (the same grammar as the request's own).
/// An embedded resource's filters on `target`, full-text searches marked by its column types.
fn conditions_in(
    scope: &Scope<'_>,
    target: &str,
    filters: &[&FilterSpec],
) -> Result<Vec<filters::Condition>, PoolError> {
    let mut conditions = conditions_of(filters)?;
    if let Some(relation) = scope.catalog.relation_columns(scope.schema, target) {
        filters::mark_vectorized(&mut conditions, &relation.columns, &relation.tsvector);
        filters::mark_composite_paths(&mut conditions, &relation.composite);
    }
    Ok(conditions)
}

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

/// The columns of `relation` of a composite or array type, as the catalog has them.
fn composite_columns<'s>(scope: &'s Scope<'_>, relation: &str) -> Option<&'s [String]> {
    scope
        .catalog
        .relation_columns(scope.schema, relation)
        .map(|r| r.composite.as_slice())
}

/// `messages(count)`: PostgREST's count of an embedded resource.
fn is_count(items: &[Item]) -> bool {
    matches!(items, [Item::Column(c)] if c.trim() == "count")
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
            via_view: false,
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

    fn render_in(select: &str, parent: &str) -> Result<Rendered, PoolError> {
        let catalog = Catalog {
            keys: keys(),
            ..Catalog::default()
        };
        render_with_catalog(&catalog, select, parent)
    }

    fn render_with_catalog(
        catalog: &Catalog,
        select: &str,
        parent: &str,
    ) -> Result<Rendered, PoolError> {
        let mut params = Vec::new();
        let mut scope = Scope {
            catalog,
            queries: &[],
            params: &mut params,
            schema: "public",
        };
        let alias = crate::db::rest::builder::own_alias(parent);
        render(&mut scope, &parse(select)?, &[], parent, &alias, 1)
    }

    #[test]
    fn embedding_and_spreads_nested_past_the_limit_are_refused() {
        for (open, n) in [
            ("a(", 5_000),
            ("...a(", 5_000),
            ("a(", 100_000),
            ("x:a!inner(", 40),
        ] {
            let select = format!("{}b{}", open.repeat(n), ")".repeat(n));
            let err = parse(&select).unwrap_err();
            assert_eq!(err.code(), "PGRST100", "{open} x {n}");
        }
        let within = format!(
            "{}b{}",
            "a(".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        );
        assert!(parse(&within).is_ok());
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
        // `count()` is an aggregate column, `users()` an embedding that only filters.
        assert_eq!(parse("count()").unwrap()[0], Item::Column("count()".into()));
        assert!(matches!(&parse("users()").unwrap()[0], Item::Embed(e) if e.items.is_empty()));
    }

    #[test]
    fn renders_to_one_and_to_many_as_correlated_subqueries() {
        let rendered = render_in("id, channels(slug)", "messages").unwrap();
        assert_eq!(
            rendered.list,
            "\"messages\".\"id\", (SELECT pg_catalog.row_to_json(_pgrst_e) FROM (SELECT \"channels_1\".\"slug\" \
             FROM \"public\".\"channels\" AS \"channels_1\" \
             WHERE \"channels_1\".\"id\" = \"messages\".\"channel_id\" LIMIT 1) _pgrst_e) AS \"channels\""
        );
        let rendered = render_in("messages!inner(id)", "channels").unwrap();
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
    fn one_name_embedded_twice_is_refused_as_postgrest_refuses_it() {
        let twice = render_in("users!first_user(*), users!second_user(*)", "best_friends");
        let err = twice.err().unwrap();
        assert_eq!(err.code(), "42712");
        assert!(err
            .to_string()
            .contains("table name \"best_friends_users_1\" specified more than once"));
        // Named apart, both are answered.
        assert!(render_in(
            "first:users!first_user(*), second:users!second_user(*)",
            "best_friends"
        )
        .is_ok());
    }

    #[test]
    fn ambiguity_and_absence_are_postgrest_errors() {
        let ambiguous = render_in("users(*)", "best_friends");
        assert_eq!(ambiguous.err().unwrap().code(), "PGRST201");
        let hinted = render_in("users!best_friends_first_user_fkey(*)", "best_friends");
        assert!(hinted.is_ok());
        let missing = render_in("products(*)", "users");
        assert_eq!(missing.err().unwrap().code(), "PGRST200");
    }

    #[test]
    fn a_computed_relationship_reads_its_function_of_the_parent_row_and_overrides_a_key() {
        let function = |name: &str, table: &str, target: &str, to_one: bool| ComputedRelationship {
            schema: "public".into(),
            name: name.into(),
            table_schema: "public".into(),
            table: table.into(),
            target_schema: "public".into(),
            target: target.into(),
            to_one,
        };
        let catalog = Catalog {
            keys: keys(),
            computed_relationships: vec![
                function("author", "messages", "users", true),
                function("channels", "messages", "channels", true),
            ],
            ..Catalog::default()
        };
        let rendered =
            render_with_catalog(&catalog, "author(username), channels(slug)", "messages").unwrap();
        assert_eq!(
            rendered.list,
            "(SELECT pg_catalog.row_to_json(_pgrst_e) FROM (SELECT \"users_1\".\"username\" \
             FROM \"public\".\"author\"(\"messages\") AS \"users_1\" WHERE true LIMIT 1) _pgrst_e) AS \"author\", \
             (SELECT pg_catalog.row_to_json(_pgrst_e) FROM (SELECT \"channels_1\".\"slug\" \
             FROM \"public\".\"channels\"(\"messages\") AS \"channels_1\" WHERE true LIMIT 1) _pgrst_e) AS \"channels\""
        );
    }

    #[test]
    fn a_to_many_spread_is_a_lateral_row_of_arrays() {
        let rendered = render_in("id, ...messages(id, text:message)", "channels").unwrap();
        assert_eq!(
            rendered.list,
            "\"channels\".\"id\", \"pgrst_s1_1\".\"pgrst_a0\" AS \"id\", \"pgrst_s1_1\".\"pgrst_a1\" AS \"text\""
        );
        assert_eq!(
            rendered.joins,
            (" LEFT JOIN LATERAL (SELECT coalesce(pg_catalog.json_agg(_pgrst_s.\"id\"), '[]') AS \"pgrst_a0\", \
                 coalesce(pg_catalog.json_agg(_pgrst_s.\"text\"), '[]') AS \"pgrst_a1\" \
                 FROM (SELECT \"messages_1\".\"id\", \"messages_1\".\"message\" AS \"text\" FROM \"public\".\"messages\" AS \"messages_1\" \
                 WHERE \"messages_1\".\"channel_id\" = \"channels\".\"id\") _pgrst_s) AS \"pgrst_s1_1\" ON true")
        );
    }
}
