//! What embedding needs to know of the database: its foreign keys, read from the catalog once
//! per pool and kept until `reloadSchema()`, as PostgREST keeps its schema cache.

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

/// Every foreign key of the database's user schemas, as one JSON array.
pub const FOREIGN_KEYS_SQL: &str = "SELECT coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\
       'name', c.conname, 'schema', ns.nspname, 'table', cl.relname, \
       'columns', (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) \
                   FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum), \
       'ref_schema', rns.nspname, 'ref_table', rcl.relname, \
       'ref_columns', (SELECT pg_catalog.array_agg(a.attname ORDER BY k.ord) \
                   FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord) \
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum), \
       'unique', EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.conrelid \
                   AND i.indisunique AND i.indkey::int2[] @> c.conkey AND c.conkey @> i.indkey::int2[]))), '[]')::text \
     FROM pg_catalog.pg_constraint c \
     JOIN pg_catalog.pg_class cl ON cl.oid = c.conrelid \
     JOIN pg_catalog.pg_namespace ns ON ns.oid = cl.relnamespace \
     JOIN pg_catalog.pg_class rcl ON rcl.oid = c.confrelid \
     JOIN pg_catalog.pg_namespace rns ON rns.oid = rcl.relnamespace \
     WHERE c.contype = 'f' AND ns.nspname NOT IN ('pg_catalog', 'information_schema')";

/// Reads `FOREIGN_KEYS_SQL`'s one value.
pub fn parse_foreign_keys(json: &str) -> Result<Vec<ForeignKey>, serde_json::Error> {
    serde_json::from_str(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_catalog_answer() {
        let keys = parse_foreign_keys(
            r#"[{"name":"m_fk","schema":"public","table":"messages","columns":["channel_id"],
                "ref_schema":"public","ref_table":"channels","ref_columns":["id"]}]"#,
        )
        .unwrap();
        assert_eq!(keys[0].ref_columns, vec!["id".to_string()]);
    }
}
