//! Which Postgres types this library can send and receive, and how it sees each one.
//!
//! Both directions work on Postgres's binary wire format (every statement is prepared, and
//! parameters and rows travel in binary), so each supported type is one `PgKind` with a known
//! byte layout. The types come from the server's description of the statement (the engine looks
//! up types that are not built in, such as enums, domains and composites, once per connection:
//! `engine::typeinfo`).
//! Domains are seen through to their base type and enums travel as their label text. A type that
//! maps to no kind is refused before the statement runs, with a hint to cast it to text.

pub use postgres_types::{Field, Kind, Type};

/// A result column as the server described it: its name and its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    name: String,
    ty: Type,
}

impl Column {
    pub fn new(name: String, ty: Type) -> Self {
        Column { name, ty }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn type_(&self) -> &Type {
        &self.ty
    }
}

/// Built-in type OIDs (from `pg_type.dat`); these never change between servers.
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const REGPROC: u32 = 24;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const RECORD: u32 = 2249;
    pub const VOID: u32 = 2278;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const JSONPATH: u32 = 4072;
}

/// How a value of some Postgres type is laid out on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name, xml, unknown, citext and enum labels: UTF-8 bytes.
    Text,
    /// The one-byte `"char"` type.
    Char,
    Bytea,
    Uuid,
    Json,
    Jsonb,
    JsonPath,
    Date,
    Time,
    TimeTz,
    Timestamp,
    Timestamptz,
    Interval,
    Void,
    /// An array of some element kind, with the element's OID (needed to encode).
    Array {
        element: Box<PgKind>,
        element_oid: u32,
    },
    /// A named composite type with its fields, or an anonymous `record` (fields read off the wire).
    Composite(Vec<(String, PgKind)>),
    Record,
    Unsupported(String),
}

impl PgKind {
    pub fn is_supported(&self) -> bool {
        match self {
            PgKind::Unsupported(_) => false,
            PgKind::Array { element, .. } => element.is_supported(),
            PgKind::Composite(fields) => fields.iter().all(|(_, k)| k.is_supported()),
            _ => true,
        }
    }

    /// The first unsupported type name inside this kind, for error messages.
    pub fn unsupported_name(&self) -> Option<&str> {
        match self {
            PgKind::Unsupported(name) => Some(name),
            PgKind::Array { element, .. } => element.unsupported_name(),
            PgKind::Composite(fields) => fields.iter().find_map(|(_, k)| k.unsupported_name()),
            _ => None,
        }
    }
}

/// Classifies a type as the server described it (parameter or result column).
pub fn classify(ty: &Type) -> PgKind {
    match ty.kind() {
        Kind::Domain(base) => return classify(base),
        Kind::Enum(_) => return PgKind::Text,
        Kind::Array(element) => {
            return PgKind::Array {
                element: Box::new(classify(element)),
                element_oid: element.oid(),
            }
        }
        Kind::Composite(fields) => {
            return PgKind::Composite(
                fields
                    .iter()
                    .map(|field| (field.name().to_string(), classify(field.type_())))
                    .collect(),
            )
        }
        Kind::Simple | Kind::Pseudo => {}
        _ => return PgKind::Unsupported(ty.name().to_lowercase()),
    }
    match classify_oid(ty.oid()) {
        PgKind::Unsupported(_) if ty.name().eq_ignore_ascii_case("citext") => PgKind::Text,
        PgKind::Unsupported(_) => PgKind::Unsupported(ty.name().to_lowercase()),
        kind => kind,
    }
}

/// Classifies a built-in type by OID alone (fields of an anonymous record carry only OIDs).
pub fn classify_oid(type_oid: u32) -> PgKind {
    use oid::*;
    match type_oid {
        BOOL => PgKind::Bool,
        INT2 => PgKind::Int2,
        INT4 => PgKind::Int4,
        INT8 => PgKind::Int8,
        OID | REGPROC => PgKind::Oid,
        FLOAT4 => PgKind::Float4,
        FLOAT8 => PgKind::Float8,
        NUMERIC => PgKind::Numeric,
        TEXT | VARCHAR | BPCHAR | NAME | XML | UNKNOWN => PgKind::Text,
        CHAR => PgKind::Char,
        BYTEA => PgKind::Bytea,
        UUID => PgKind::Uuid,
        JSON => PgKind::Json,
        JSONB => PgKind::Jsonb,
        JSONPATH => PgKind::JsonPath,
        DATE => PgKind::Date,
        TIME => PgKind::Time,
        TIMETZ => PgKind::TimeTz,
        TIMESTAMP => PgKind::Timestamp,
        TIMESTAMPTZ => PgKind::Timestamptz,
        INTERVAL => PgKind::Interval,
        VOID => PgKind::Void,
        RECORD => PgKind::Record,
        other => PgKind::Unsupported(format!("oid {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_classify() {
        assert_eq!(classify(&Type::INT4), PgKind::Int4);
        assert_eq!(classify(&Type::TEXT), PgKind::Text);
        assert_eq!(classify(&Type::FLOAT8), PgKind::Float8);
        assert_eq!(
            classify(&Type::INT8_ARRAY),
            PgKind::Array {
                element: Box::new(PgKind::Int8),
                element_oid: oid::INT8
            }
        );
        assert_eq!(
            classify(&Type::INT4_RANGE),
            PgKind::Unsupported("int4range".into())
        );
    }

    #[test]
    fn unknown_oids_are_unsupported_with_a_name() {
        let kind = classify_oid(600); // point
        assert!(!kind.is_supported());
        assert_eq!(kind.unsupported_name(), Some("oid 600"));
    }
}
