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
}

/// What the select grammar resolves names against.
#[derive(Debug, Default, Deserialize)]
pub struct Catalog {
    pub keys: Vec<ForeignKey>,
    #[serde(default)]
    pub computed: Vec<ComputedField>,
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
       AND pn.nspname NOT IN ('pg_catalog', 'information_schema')))::text";

/// Reads `CATALOG_SQL`'s one value.
pub fn parse_catalog(json: &str) -> Result<Catalog, serde_json::Error> {
    serde_json::from_str(json)
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
}
