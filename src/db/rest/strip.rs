//! `nulls=stripped` (postgrest-js's `stripNulls()`): a JSON answer without its null-valued
//! object keys, at every depth, as PostgREST's `json_strip_nulls` gives it. Written as text
//! while it is read, so keys keep their order (a `serde_json::Map` would sort them) and no tree
//! is built.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// `json` without null-valued object keys; array elements stay, nulls included.
pub fn strip_nulls(json: &str) -> Result<String, serde_json::Error> {
    serde_json::from_str::<Stripped>(json).map(|s| s.0)
}

/// A JSON value re-written as text without its null-valued object keys.
struct Stripped(String);

impl<'de> Deserialize<'de> for Stripped {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrippedVisitor)
    }
}

struct StrippedVisitor;

/// A scalar's JSON text.
fn text<T: serde::Serialize, E: serde::de::Error>(value: T) -> Result<Stripped, E> {
    serde_json::to_string(&value)
        .map(Stripped)
        .map_err(E::custom)
}

impl<'de> Visitor<'de> for StrippedVisitor {
    type Value = Stripped;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Stripped, E> {
        Ok(Stripped("null".into()))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Stripped, E> {
        text(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Stripped, E> {
        text(v)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Stripped, E> {
        text(v)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Stripped, E> {
        text(v)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Stripped, E> {
        text(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Stripped, A::Error> {
        let mut out = String::from("[");
        while let Some(Stripped(item)) = seq.next_element()? {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&item);
        }
        out.push(']');
        Ok(Stripped(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Stripped, A::Error> {
        let mut out = String::from("{");
        while let Some((key, Stripped(value))) = map.next_entry::<String, Stripped>()? {
            if value == "null" {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(&key).map_err(serde::de::Error::custom)?);
            out.push(':');
            out.push_str(&value);
        }
        out.push('}');
        Ok(Stripped(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_keys_go_at_every_depth_in_their_order_and_array_nulls_stay() {
        assert_eq!(
            strip_nulls(r#"[{"z":1,"a":null,"m":{"y":null,"b":"x\"y"},"l":[null,{"c":null}]}]"#)
                .unwrap(),
            r#"[{"z":1,"m":{"b":"x\"y"},"l":[null,{}]}]"#
        );
        assert_eq!(strip_nulls("null").unwrap(), "null");
        assert_eq!(
            strip_nulls(r#"{"n":1.5,"t":true}"#).unwrap(),
            r#"{"n":1.5,"t":true}"#
        );
        assert!(strip_nulls("{").is_err());
    }
}
