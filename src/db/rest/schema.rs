//! What embedding needs to know of the database: its foreign keys and computed fields, read from
//! the catalog once per pool and kept until `reloadSchema()`, as PostgREST keeps its schema
//! cache.

use serde::Deserialize;

/// One foreign key: `schema.table(columns)` references `ref_schema.ref_table(ref_columns)`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ForeignKey {
    pub name: String,
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    /// The referencing columns are unique (a one-to-one relationship: an object both ways).
    #[serde(default)]
    pub unique: bool,
    /// A table's key taken on by a view over it: found by the view's name only (a column or
    /// constraint name means the table's own relationship).
    #[serde(default)]
    pub via_view: bool,
}

/// What the select grammar resolves names against.
#[derive(Debug, Default, Deserialize)]
pub struct Catalog {
    pub keys: Vec<ForeignKey>,
    #[serde(default)]
    pub computed: Vec<ComputedField>,
    /// Views and where their columns come from: they take on the foreign keys of the tables
    /// those columns are read from (`with_view_keys`).
    #[serde(default)]
    pub views: Vec<View>,
    /// Each table's and view's columns: a payload key that is none of them is `PGRST204`.
    #[serde(default)]
    pub relations: Vec<RelationColumns>,
    #[serde(default)]
    pub computed_relationships: Vec<ComputedRelationship>,
    /// Functions returning rows of a table or view: an rpc's select embeds and computes over
    /// them as over that relation's.
    #[serde(default)]
    pub function_relations: Vec<FunctionRelation>,
}

/// A function `schema.name` returning rows (or one row) of `table_schema.table`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct FunctionRelation {
    pub schema: String,
    pub name: String,
    pub table_schema: String,
    pub table: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RelationColumns {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
    /// Those columns that are `tsvector`s, or domains over one (two levels deep); full-text
    /// search takes any other as text or JSON.
    #[serde(default)]
    pub tsvector: Vec<String>,
    /// Those columns of a composite or array type: a JSON path reads them through
    /// `to_jsonb`, as PostgREST does.
    #[serde(default)]
    pub composite: Vec<String>,
    /// A table's primary key columns (none for a view: `Catalog::primary_key` derives one).
    #[serde(default)]
    pub primary_key: Vec<String>,
}

/// A view (or materialized view) and, for each of its columns that is a plain column of a
/// relation, that relation's column: what Postgres recorded in the view's query
/// (`resorigtbl`/`resorigcol`, which PostgREST reads too). The relation may be another view.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct View {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ViewColumn>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ViewColumn {
    pub name: String,
    pub origin_schema: String,
    pub origin_table: String,
    pub origin_column: String,
}

/// A view's column and the table column it reads, through any views between.
struct Lineage<'a> {
    column: &'a str,
    schema: &'a str,
    table: &'a str,
    base_column: &'a str,
}

/// Views over views are followed this deep.
const VIEW_DEPTH: usize = 16;

/// A computed field: a function `schema.name(table)` of one row of a table, selected as if a
/// column of it (PostgREST's computed fields).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ComputedField {
    pub schema: String,
    pub name: String,
    pub table_schema: String,
    pub table: String,
}

/// A computed relationship: a function `schema.name(table)` of one row of a table returning
/// rows of `target` (one row when it is not `SETOF`, or is `ROWS 1`), embedded by its name as
/// PostgREST embeds one.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ComputedRelationship {
    pub schema: String,
    pub name: String,
    pub table_schema: String,
    pub table: String,
    pub target_schema: String,
    pub target: String,
    pub to_one: bool,
}

impl Catalog {
    /// Adds the relationships views take on from the tables they read, as PostgREST embeds
    /// views: a key from (or to) a table's columns is also one from (or to) each view that
    /// shows all of those columns, under the view's names for them, whether it reads one table
    /// or joins several, directly or through other views; a key between two tables is also
    /// one between views over them. A view that shows a key column twice has a relationship
    /// for each, which a hint tells apart.
    pub fn with_view_keys(mut self) -> Self {
        let lineages: Vec<(&View, Vec<Lineage>)> = self
            .views
            .iter()
            .map(|view| (view, self.lineage(view)))
            .collect();
        // Each view column set standing for `schema.table(columns)`.
        let shown = |lineage: &[Lineage], schema: &str, table: &str, columns: &[String]| {
            let mut choices: Vec<Vec<String>> = vec![Vec::new()];
            for column in columns {
                let names: Vec<&str> = lineage
                    .iter()
                    .filter(|l| l.schema == schema && l.table == table && l.base_column == column)
                    .map(|l| l.column)
                    .collect();
                if names.is_empty() {
                    return Vec::new();
                }
                // A key of one column may be shown several times; of several, the first.
                let take = if columns.len() == 1 { names.len() } else { 1 };
                choices = choices
                    .into_iter()
                    .flat_map(|chosen| {
                        names[..take].iter().map(move |name| {
                            let mut next = chosen.clone();
                            next.push(name.to_string());
                            next
                        })
                    })
                    .collect();
            }
            choices
        };
        let mut from_views = Vec::new();
        for key in &self.keys {
            for (view, lineage) in &lineages {
                for columns in shown(lineage, &key.schema, &key.table, &key.columns) {
                    from_views.push(ForeignKey {
                        schema: view.schema.clone(),
                        table: view.name.clone(),
                        columns,
                        via_view: true,
                        ..key.clone()
                    });
                }
            }
        }
        let mut to_views = Vec::new();
        for key in self.keys.iter().chain(&from_views) {
            for (view, lineage) in &lineages {
                for ref_columns in shown(lineage, &key.ref_schema, &key.ref_table, &key.ref_columns)
                {
                    to_views.push(ForeignKey {
                        ref_schema: view.schema.clone(),
                        ref_table: view.name.clone(),
                        ref_columns,
                        via_view: true,
                        ..key.clone()
                    });
                }
            }
        }
        self.keys.extend(from_views);
        self.keys.extend(to_views);
        self
    }

    /// Each column of `view` that reads a table's column, through views between.
    fn lineage<'a>(&'a self, view: &'a View) -> Vec<Lineage<'a>> {
        view.columns
            .iter()
            .filter_map(|column| {
                let mut origin = column;
                for _ in 0..VIEW_DEPTH {
                    let Some(inner) = self.views.iter().find(|v| {
                        v.schema == origin.origin_schema && v.name == origin.origin_table
                    }) else {
                        return Some(Lineage {
                            column: &column.name,
                            schema: &origin.origin_schema,
                            table: &origin.origin_table,
                            base_column: &origin.origin_column,
                        });
                    };
                    origin = inner
                        .columns
                        .iter()
                        .find(|c| c.name == origin.origin_column)?;
                }
                None
            })
            .collect()
    }

    /// The columns of `schema.name` and those of them that are `tsvector`s, if the catalog
    /// knows the relation.
    pub fn relation_columns(&self, schema: &str, name: &str) -> Option<&RelationColumns> {
        self.relations
            .iter()
            .find(|r| r.schema == schema && r.name == name)
    }

    /// The primary key columns of `schema.name`: a table's own; for a view, those of its
    /// columns that show a primary key column of a table it reads, as PostgREST gives views
    /// the keys of their tables.
    pub fn primary_key(&self, schema: &str, name: &str) -> Vec<&str> {
        if let Some(view) = self
            .views
            .iter()
            .find(|v| v.schema == schema && v.name == name)
        {
            return self
                .lineage(view)
                .into_iter()
                .filter(|l| {
                    self.relation_columns(l.schema, l.table)
                        .is_some_and(|r| r.primary_key.iter().any(|c| c == l.base_column))
                })
                .map(|l| l.column)
                .collect();
        }
        self.relation_columns(schema, name)
            .map(|r| r.primary_key.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether `schema.name` is a view (or materialized view).
    pub fn is_view(&self, schema: &str, name: &str) -> bool {
        self.views
            .iter()
            .any(|v| v.schema == schema && v.name == name)
    }

    /// The columns of `schema.name`, if the catalog knows the relation.
    pub fn columns_of(&self, schema: &str, name: &str) -> Option<&[String]> {
        self.relations
            .iter()
            .find(|r| r.schema == schema && r.name == name)
            .map(|r| r.columns.as_slice())
    }

    /// The function `schema.name` of a row of `schema.table` that returns rows of a table of
    /// the same schema, if there is one.
    pub fn computed_relationship(
        &self,
        schema: &str,
        table: &str,
        name: &str,
    ) -> Option<&ComputedRelationship> {
        self.computed_relationships.iter().find(|f| {
            f.schema == schema
                && f.table_schema == schema
                && f.target_schema == schema
                && f.table == table
                && f.name == name
        })
    }

    /// The relation of the same schema whose rows the function `schema.name` returns, if it
    /// returns a relation's rows.
    pub fn function_relation(&self, schema: &str, name: &str) -> Option<&str> {
        self.function_relations
            .iter()
            .find(|f| f.schema == schema && f.name == name && f.table_schema == schema)
            .map(|f| f.table.as_str())
    }

    /// The computed field `name` of `schema.table`, if there is one.
    pub fn computed_field(&self, schema: &str, table: &str, name: &str) -> Option<&ComputedField> {
        self.computed
            .iter()
            .find(|c| c.table_schema == schema && c.table == table && c.name == name)
    }
}

/// The catalog as one JSON object: `{"keys": [...], "computed": [...]}`.
pub const CATALOG_SQL: &str = "SELECT pg_catalog.json_build_object('keys', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\
       'name', c.conname, 'schema', ns.nspname, 'table', cl.relname, \
       'columns', (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) \
                   FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum), \
       'ref_schema', rns.nspname, 'ref_table', rcl.relname, \
       'ref_columns', (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) \
                   FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum), \
       'unique', EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.conrelid \
                   AND i.indisunique AND i.indkey::int2[] @> c.conkey AND c.conkey @> i.indkey::int2[]))), '[]') \
     FROM pg_catalog.pg_constraint c \
     JOIN pg_catalog.pg_class cl ON cl.oid = c.conrelid \
     JOIN pg_catalog.pg_namespace ns ON ns.oid = cl.relnamespace \
     JOIN pg_catalog.pg_class rcl ON rcl.oid = c.confrelid \
     JOIN pg_catalog.pg_namespace rns ON rns.oid = rcl.relnamespace \
     WHERE c.contype = 'f' AND ns.nspname NOT IN ('pg_catalog', 'information_schema')), \
     'computed', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\
       'schema', pn.nspname, 'name', p.proname, 'table_schema', cn.nspname, 'table', c.relname)), '[]') \
     FROM pg_catalog.pg_proc p \
     JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
     JOIN pg_catalog.pg_class c ON c.reltype = p.proargtypes[0] \
     JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
     WHERE p.pronargs = 1 AND NOT p.proretset AND p.prokind = 'f' \
       AND pn.nspname NOT IN ('pg_catalog', 'information_schema')), \
     'computed_relationships', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\
       'schema', pn.nspname, 'name', p.proname, 'table_schema', an.nspname, 'table', ac.relname, \
       'target_schema', tn.nspname, 'target', tc.relname, \
       'to_one', NOT p.proretset OR p.prorows = 1)), '[]') \
     FROM pg_catalog.pg_proc p \
     JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
     JOIN pg_catalog.pg_class ac ON ac.reltype = p.proargtypes[0] AND ac.relkind IN ('r', 'p', 'v', 'm', 'f') \
     JOIN pg_catalog.pg_namespace an ON an.oid = ac.relnamespace \
     JOIN pg_catalog.pg_class tc ON tc.reltype = p.prorettype AND tc.relkind IN ('r', 'p', 'v', 'm', 'f') \
     JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace \
     WHERE p.pronargs = 1 AND p.prokind = 'f' \
       AND pn.nspname NOT IN ('pg_catalog', 'information_schema')), \
     'function_relations', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\
       'schema', pn.nspname, 'name', p.proname, 'table_schema', tn.nspname, 'table', tc.relname)), '[]') \
     FROM pg_catalog.pg_proc p \
     JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
     JOIN pg_catalog.pg_class tc ON tc.reltype = p.prorettype AND tc.relkind IN ('r', 'p', 'v', 'm', 'f') \
     JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace \
     WHERE p.prokind = 'f' AND pn.nspname NOT IN ('pg_catalog', 'information_schema')), \
     'views', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\
       'schema', vn.nspname, 'name', v.relname, 'columns', \
       (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object('name', o.attname, \
          'origin_schema', o.origin_schema, 'origin_table', o.origin_table, \
          'origin_column', o.origin_column)), '[]') \
        FROM (SELECT va.attname, pg_catalog.min(tn.nspname) AS origin_schema, \
                pg_catalog.min(t.relname) AS origin_table, pg_catalog.min(ta.attname) AS origin_column \
              FROM pg_catalog.regexp_matches(r.ev_action::text, \
                ':resno (\\d+) :resname ((?:\\\\.|[^\\s\\\\])+) :ressortgroupref \\d+ :resorigtbl (\\d+) :resorigcol (\\d+)', 'g') AS m \
              JOIN pg_catalog.pg_attribute va ON va.attrelid = v.oid AND va.attnum = m[1]::int2 \
                AND va.attname = pg_catalog.regexp_replace(m[2], '\\\\(.)', '\\1', 'g') AND NOT va.attisdropped \
              JOIN pg_catalog.pg_class t ON t.oid = m[3]::oid \
              JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
              JOIN pg_catalog.pg_attribute ta ON ta.attrelid = t.oid AND ta.attnum = m[4]::int2 \
              WHERE m[3] <> '0' \
              GROUP BY va.attname HAVING pg_catalog.count(DISTINCT (m[3], m[4])) = 1) o))), '[]') \
     FROM pg_catalog.pg_class v \
     JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace \
     JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid AND r.rulename = '_RETURN' \
     WHERE v.relkind IN ('v', 'm') AND vn.nspname NOT IN ('pg_catalog', 'information_schema')), \
     'relations', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\
       'schema', rn.nspname, 'name', rc.relname, \
       'columns', (SELECT coalesce(pg_catalog.json_agg(ra.attname ORDER BY ra.attnum), '[]') \
                   FROM pg_catalog.pg_attribute ra \
                   WHERE ra.attrelid = rc.oid AND ra.attnum > 0 AND NOT ra.attisdropped), \
       'tsvector', (SELECT coalesce(pg_catalog.json_agg(ra.attname ORDER BY ra.attnum), '[]') \
                    FROM pg_catalog.pg_attribute ra \
                    WHERE ra.attrelid = rc.oid AND ra.attnum > 0 AND NOT ra.attisdropped \
                      AND 'pg_catalog.tsvector'::pg_catalog.regtype IN (ra.atttypid, \
                        (SELECT t.typbasetype FROM pg_catalog.pg_type t WHERE t.oid = ra.atttypid), \
                        (SELECT b.typbasetype FROM pg_catalog.pg_type t \
                         JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype WHERE t.oid = ra.atttypid))), \
       'composite', (SELECT coalesce(pg_catalog.json_agg(ra.attname ORDER BY ra.attnum), '[]') \
                     FROM pg_catalog.pg_attribute ra JOIN pg_catalog.pg_type rt ON rt.oid = ra.atttypid \
                     WHERE ra.attrelid = rc.oid AND ra.attnum > 0 AND NOT ra.attisdropped \
                       AND (rt.typtype = 'c' OR rt.typcategory = 'A')), \
       'primary_key', (SELECT coalesce(pg_catalog.json_agg(pa.attname ORDER BY pa.attnum), '[]') \
                       FROM pg_catalog.pg_index pi \
                       JOIN pg_catalog.pg_attribute pa ON pa.attrelid = pi.indrelid AND pa.attnum = ANY (pi.indkey) \
                       WHERE pi.indrelid = rc.oid AND pi.indisprimary))), '[]') \
     FROM pg_catalog.pg_class rc \
     JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
     WHERE rc.relkind IN ('r', 'p', 'v', 'm', 'f') \
       AND rn.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')))::text";

/// Reads `CATALOG_SQL`'s one value, views' relationships included.
pub fn parse_catalog(json: &str) -> Result<Catalog, serde_json::Error> {
    serde_json::from_str::<Catalog>(json).map(Catalog::with_view_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_catalog_answer() {
        let catalog = parse_catalog(
            r#"{"keys": [{"name":"m_fk","schema":"public","table":"messages","columns":["channel_id"],
                "ref_schema":"public","ref_table":"channels","ref_columns":["id"]}],
                "computed": [{"schema":"public","name":"blurb","table_schema":"public","table":"messages"}]}"#,
        )
        .unwrap();
        assert_eq!(catalog.keys[0].ref_columns, vec!["id".to_string()]);
        assert!(catalog
            .computed_field("public", "messages", "blurb")
            .is_some());
        assert!(catalog.computed_field("public", "users", "blurb").is_none());
    }

    fn column(name: &str, table: &str, origin: &str) -> String {
        format!(
            r#"{{"name":"{name}","origin_schema":"public","origin_table":"{table}","origin_column":"{origin}"}}"#
        )
    }

    fn view(name: &str, columns: &[String]) -> String {
        format!(
            r#"{{"schema":"public","name":"{name}","columns":[{}]}}"#,
            columns.join(",")
        )
    }

    const KEYS: &str = r#"[{"name":"p_fk","schema":"public","table":"profiles","columns":["username"],
        "ref_schema":"public","ref_table":"users","ref_columns":["username"]},
        {"name":"m_fk","schema":"public","table":"messages","columns":["channel_id"],
        "ref_schema":"public","ref_table":"channels","ref_columns":["id"]}]"#;

    fn catalog_with(views: &[String]) -> Catalog {
        parse_catalog(&format!(
            r#"{{"keys": {KEYS}, "views": [{}]}}"#,
            views.join(",")
        ))
        .unwrap()
    }

    fn derived<'a>(catalog: &'a Catalog, name: &str) -> Vec<&'a ForeignKey> {
        catalog
            .keys
            .iter()
            .filter(|k| k.via_view && k.name == name)
            .collect()
    }

    #[test]
    fn a_view_takes_on_the_primary_key_columns_it_shows() {
        let mut catalog = parse_catalog(&format!(
            r#"{{"keys": [], "views": [{}],
                "relations": [{{"schema":"public","name":"jobs","columns":["site","project","note"],
                               "primary_key":["site","project"]}}]}}"#,
            view(
                "jobs_view",
                &[
                    column("site_id", "jobs", "site"),
                    column("project", "jobs", "project"),
                    column("note", "jobs", "note")
                ]
            )
        ))
        .unwrap();
        assert_eq!(
            catalog.primary_key("public", "jobs"),
            vec!["site", "project"]
        );
        assert_eq!(
            catalog.primary_key("public", "jobs_view"),
            vec!["site_id", "project"]
        );
        assert!(catalog.is_view("public", "jobs_view") && !catalog.is_view("public", "jobs"));
        catalog.relations.clear();
        assert!(catalog.primary_key("public", "jobs_view").is_empty());
    }

    #[test]
    fn a_view_over_one_table_takes_on_its_keys() {
        let catalog = catalog_with(&[
            view("users_view", &[column("username", "users", "username")]),
            view("no_key_view", &[column("age", "users", "age")]),
        ]);
        let keys = derived(&catalog, "p_fk");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].ref_table, "users_view");
        assert_eq!(keys[0].ref_columns, vec!["username".to_string()]);
    }

    #[test]
    fn a_view_joining_tables_takes_on_each_tables_keys_under_its_own_column_names() {
        // messages joined with users: the channel key under its new name, users' as it was.
        let catalog = catalog_with(&[view(
            "feed",
            &[
                column("id", "messages", "id"),
                column("chan", "messages", "channel_id"),
                column("author", "users", "username"),
            ],
        )]);
        let from_feed = derived(&catalog, "m_fk");
        assert_eq!(from_feed.len(), 1);
        assert_eq!(from_feed[0].table, "feed");
        assert_eq!(from_feed[0].columns, vec!["chan".to_string()]);
        assert_eq!(from_feed[0].ref_table, "channels");
        let to_feed = derived(&catalog, "p_fk");
        assert_eq!(to_feed.len(), 1);
        assert_eq!(to_feed[0].ref_table, "feed");
        assert_eq!(to_feed[0].ref_columns, vec!["author".to_string()]);
    }

    #[test]
    fn a_view_over_a_view_and_views_on_both_ends_relate_too() {
        let catalog = catalog_with(&[
            view("feed", &[column("chan", "messages", "channel_id")]),
            view("feed_again", &[column("c", "feed", "chan")]),
            view("channel_list", &[column("id", "channels", "id")]),
        ]);
        let keys = derived(&catalog, "m_fk");
        let pairs: Vec<(&str, &str)> = keys
            .iter()
            .map(|k| (k.table.as_str(), k.ref_table.as_str()))
            .collect();
        for pair in [
            ("feed", "channels"),
            ("feed_again", "channels"),
            ("messages", "channel_list"),
            ("feed", "channel_list"),
            ("feed_again", "channel_list"),
        ] {
            assert!(pairs.contains(&pair), "{pair:?} missing from {pairs:?}");
        }
        assert_eq!(keys.len(), 5);
    }

    #[test]
    fn a_key_column_shown_twice_gives_a_relationship_for_each() {
        let catalog = catalog_with(&[view(
            "pairs",
            &[
                column("first", "users", "username"),
                column("second", "users", "username"),
            ],
        )]);
        assert_eq!(derived(&catalog, "p_fk").len(), 2);
    }
}
