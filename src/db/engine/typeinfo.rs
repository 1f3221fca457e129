//! Types that are not built in (enums, domains, composites, ranges, extension types, arrays of
//! them), looked up in the catalog the first time a statement on a connection uses one, as
//! tokio-postgres does, and kept per connection.

use std::future::Future;
use std::pin::Pin;

use bytes::BytesMut;

use crate::db::codec::types::{oid, Field, Kind, Type};
use crate::db::engine::connection::Conn;
use crate::db::engine::policy::StatementPolicy;
use crate::db::engine::request;
use crate::db::engine::retry::Failure;
use crate::db::engine::wire::exchange::{Expect, Sink};
use crate::error::PoolError;

const TYPE_SQL: &str = "SELECT t.typname, t.typtype, t.typelem, r.rngsubtype, t.typbasetype, \
     n.nspname, t.typrelid FROM pg_catalog.pg_type t \
     LEFT OUTER JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid \
     INNER JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = $1";

const FIELDS_SQL: &str = "SELECT attname, atttypid FROM pg_catalog.pg_attribute \
     WHERE attrelid = $1 AND NOT attisdropped AND attnum > 0 ORDER BY attnum";

/// Types nest (an array of a domain over a composite with an enum field); past this depth the
/// catalog is assumed to be lying.
const MAX_DEPTH: usize = 16;

/// The type of each OID, looking up those this connection does not know yet.
pub async fn resolve_all(
    conn: &Conn,
    policy: &StatementPolicy,
    oids: &[u32],
) -> Result<Vec<Type>, Failure> {
    let mut types = Vec::with_capacity(oids.len());
    for &oid in oids {
        types.push(resolve(conn, policy, oid, 0).await?);
    }
    Ok(types)
}

fn resolve<'a>(
    conn: &'a Conn,
    policy: &'a StatementPolicy,
    type_oid: u32,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Result<Type, Failure>> + Send + 'a>> {
    Box::pin(async move {
        if let Some(known) = conn.known_type(type_oid) {
            return Ok(known);
        }
        if depth > MAX_DEPTH {
            return Err(Failure::Final(PoolError::UnsupportedType(format!(
                "type {type_oid} nests deeper than {MAX_DEPTH} levels"
            ))));
        }
        let oid_text = type_oid.to_string();
        let rows = text_rows(conn, policy, TYPE_SQL, &oid_text).await?;
        let row = rows.first().ok_or_else(|| {
            Failure::Final(PoolError::UnsupportedType(format!(
                "type {type_oid} does not exist"
            )))
        })?;
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let number = |i: usize| field(i).parse::<u32>().unwrap_or(0);
        let (name, typtype, schema) = (field(0), field(1), field(5));
        let (element, range_of, base, relation) = (number(2), number(3), number(4), number(6));
        let kind = match typtype.as_str() {
            "e" => Kind::Enum(Vec::new()),
            "p" => Kind::Pseudo,
            _ if base != 0 => Kind::Domain(resolve(conn, policy, base, depth + 1).await?),
            _ if element != 0 => Kind::Array(resolve(conn, policy, element, depth + 1).await?),
            _ if relation != 0 => Kind::Composite(fields(conn, policy, relation, depth).await?),
            _ if range_of != 0 => Kind::Range(resolve(conn, policy, range_of, depth + 1).await?),
            _ => Kind::Simple,
        };
        let ty = Type::new(name, type_oid, kind, schema);
        conn.remember_type(ty.clone());
        Ok(ty)
    })
}

async fn fields(
    conn: &Conn,
    policy: &StatementPolicy,
    relation: u32,
    depth: usize,
) -> Result<Vec<Field>, Failure> {
    let rows = text_rows(conn, policy, FIELDS_SQL, &relation.to_string()).await?;
    let mut fields = Vec::with_capacity(rows.len());
    for row in rows {
        let name = row.first().cloned().flatten().unwrap_or_default();
        let field_oid = row
            .get(1)
            .cloned()
            .flatten()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        fields.push(Field::new(
            name,
            resolve(conn, policy, field_oid, depth + 1).await?,
        ));
    }
    Ok(fields)
}

/// Runs a catalog query with one `oid` parameter; its rows as text.
async fn text_rows(
    conn: &Conn,
    policy: &StatementPolicy,
    sql: &str,
    value: &str,
) -> Result<Vec<Vec<Option<String>>>, Failure> {
    let mut buf = BytesMut::new();
    request::unnamed_text(&mut buf, sql, &[oid::OID], &[value])
        .map_err(|e| Failure::Final(PoolError::Internal(e)))?;
    request::sync(&mut buf);
    let sinks = vec![Sink::Text(Vec::new())];
    let sinks = request::answered(conn, policy, &buf, sinks, Expect::Any).await?;
    match sinks.into_iter().next() {
        Some(Sink::Text(rows)) => Ok(rows),
        _ => Ok(Vec::new()),
    }
}
