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
    /// Views over one table, whose foreign keys they take on (`with_view_keys`).
    #[serde(default)]
    pub views: Vec<ViewOf>,
}

/// A view (or materialized view) that reads one table, and its columns of the same name as
/// the table's.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ViewOf {
    pub schema: String,
    pub name: String,
    pub base_schema: String,
    pub base: String,
    pub columns: Vec<String>,
}

/// A computed field: a function `schema.name(table)` of one row of a table, selected as if a
/// column of it (PostgREST's computed fields).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ComputedField {
    pub schema: String,
    pub name: String,
    pub table_schema: String,
    pub table: String,
}

impl Catalog {
    /// Adds the relationships views take on from their table, as PostgREST embeds views: a key
    /// to (or from) the table is also one to (or from) each view over it that keeps the key's
    /// columns.
    pub fn with_view_keys(mut self) -> Self {
        let mut derived = Vec::new();
        for view in &self.views {
            let keeps = |columns: &[String]| columns.iter().all(|c| view.columns.contains(c));
            for key in &self.keys {
                if key.ref_schema == view.base_schema
                    && key.ref_table == view.base
                    && keeps(&key.ref_columns)
                {
                    derived.push(ForeignKey {
                        ref_schema: view.schema.clone(),
                        ref_table: view.name.clone(),
                        via_view: true,
                        ..key.clone()
                    });
                }
                if key.schema == view.base_schema && key.table == view.base && keeps(&key.columns) {
                    derived.push(ForeignKey {
                        schema: view.schema.clone(),
                        table: view.name.clone(),
                        via_view: true,
                        ..key.clone()
                    });
                }
            }
        }
        self.keys.extend(derived);
        self
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
     'views', (SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\
       'schema', vn.nspname, 'name', v.relname, 'base_schema', bn.nspname, 'base', b.relname, \
       'columns', (SELECT coalesce(pg_catalog.json_agg(va.attname), '[]') FROM pg_catalog.pg_attribute va \
                   JOIN pg_catalog.pg_attribute ba ON ba.attrelid = b.oid AND ba.attname = va.attname \
                     AND ba.attnum > 0 AND NOT ba.attisdropped \
                   WHERE va.attrelid = v.oid AND va.attnum > 0 AND NOT va.attisdropped))), '[]') \
     FROM (SELECT r.ev_class AS view_oid, pg_catalog.max(d.refobjid) AS base_oid \
           FROM pg_catalog.pg_rewrite r \
           JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
             AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND d.refobjid <> r.ev_class \
           JOIN pg_catalog.pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p') \
           GROUP BY r.ev_class HAVING pg_catalog.count(DISTINCT d.refobjid) = 1) vb \
     JOIN pg_catalog.pg_class v ON v.oid = vb.view_oid AND v.relkind IN ('v', 'm') \
     JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace \
     JOIN pg_catalog.pg_class b ON b.oid = vb.base_oid \
     JOIN pg_catalog.pg_namespace bn ON bn.oid = b.relnamespace \
     WHERE vn.nspname NOT IN ('pg_catalog', 'information_schema')))::text";

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

    #[test]
    fn a_view_over_one_table_takes_on_its_keys() {
        let catalog = parse_catalog(
            r#"{"keys": [{"name":"p_fk","schema":"public","table":"profiles","columns":["username"],
                "ref_schema":"public","ref_table":"users","ref_columns":["username"]}],
                "views": [{"schema":"public","name":"users_view","base_schema":"public","base":"users",
                           "columns":["username"]},
                          {"schema":"public","name":"no_key_view","base_schema":"public","base":"users",
                           "columns":["age"]}]}"#,
        )
        .unwrap();
        assert_eq!(catalog.keys.len(), 2);
        assert_eq!(catalog.keys[1].ref_table, "users_view");
        assert_eq!(catalog.keys[1].name, "p_fk");
    }
}
