//! Runs one query-builder request: its data statement and, when asked, its count.
//!
//! The reply is JSON text for the facade: `{"columns":…,"rows":…,"rowCount":n,"count":c,
//! "status":200}` or `{"error":{…},"status":409}`. Values are rendered as Postgres's `to_json`
//! renders them (what PostgREST returns), and failures carry PostgREST's HTTP status.

use serde_json::Value;

use super::builder::{build, status_for_error, BuiltStatement, CountMode, Method, RequestSpec};
use super::context::RoleContext;
use super::engine::DbPool;
use super::params::Param;
use super::rows::ValueStyle;
use crate::error::PoolError;

/// Beyond this many planned rows an `estimated` count stays an estimate (PostgREST's idea).
const ESTIMATE_EXACT_BELOW: i64 = 1000;

pub async fn run(
    pool: &DbPool,
    spec_json: &str,
    role: Option<&RoleContext>,
    anonymous: bool,
) -> String {
    match run_inner(pool, spec_json, role).await {
        Ok(reply) => reply,
        Err(err) => error_reply(&err, anonymous),
    }
}

fn error_reply(err: &PoolError, anonymous: bool) -> String {
    let status = match err.code() {
        "POOL_TIMEOUT" => 504,
        "CONNECTION_FAILED" | "POOL_CLOSED" => 503,
        "INTERNAL" => 500,
        "UNSUPPORTED_TYPE" | "INVALID_ARGUMENT" => 400,
        "INVALID_TOKEN" => 401,
        code => status_for_error(code, anonymous),
    };
    let mut envelope: Value = serde_json::from_str(&err.to_envelope()).unwrap_or(Value::Null);
    envelope["status"] = Value::from(status);
    envelope.to_string()
}

async fn run_inner(
    pool: &DbPool,
    spec_json: &str,
    role: Option<&RoleContext>,
) -> Result<String, PoolError> {
    let mut spec: RequestSpec = serde_json::from_str(spec_json).map_err(|e| {
        super::ident::request_error(format!("malformed builder request: {e}"), None)
    })?;
    if spec.method == Method::Upsert && spec.on_conflict.is_none() {
        spec.primary_key = primary_key(pool, &spec.table).await?;
    }
    let built = build(&spec)?;

    let count = match (spec.count, &built.count) {
        (Some(mode), Some(statement)) => Some(count_rows(pool, mode, statement, role).await?),
        _ => None,
    };
    let (reply, row_count) = match &built.data {
        Some(statement) => {
            let json = pool
                .query(&statement.sql, &statement.params, ValueStyle::ToJson, role)
                .await?
                .json;
            let row_count = row_count_of(&json);
            (Some(json), row_count)
        }
        None => (None, 0),
    };
    let count = match (spec.count, spec.method) {
        (Some(_), Method::Select) => count,
        (Some(_), _) => Some(row_count as i64),
        (None, _) => None,
    };
    let status = match spec.method {
        Method::Select | Method::Rpc => 200,
        Method::Insert | Method::Upsert => 201,
        Method::Update | Method::Delete if spec.returning => 200,
        Method::Update | Method::Delete => 204,
    };
    // Splice the statement's reply (already JSON) into ours without re-serializing the rows.
    let mut out = match reply {
        Some(mut json) => {
            json.pop(); // the closing brace; the reply goes on with our fields
            json.push(',');
            json
        }
        None => String::from("{"),
    };
    out.push_str(&format!(
        "\"count\":{},\"status\":{status}}}",
        count.map_or("null".to_string(), |c| c.to_string())
    ));
    Ok(out)
}

/// The primary key columns of a table, in key order (empty when it has none).
async fn primary_key(pool: &DbPool, table: &str) -> Result<Vec<String>, PoolError> {
    const SQL: &str = "SELECT coalesce(json_agg(a.attname ORDER BY k.ord), '[]') \
         FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary";
    let relation = super::ident::quote_relation(table)?;
    let json = pool
        .query(SQL, &[Param::Text(relation)], ValueStyle::ToJson, None)
        .await?
        .json;
    Ok(first_value(&json)
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

fn row_count_of(reply: &str) -> u64 {
    reply
        .rsplit_once("\"rowCount\":")
        .and_then(|(_, tail)| tail.trim_end_matches('}').parse().ok())
        .unwrap_or(0)
}

async fn count_rows(
    pool: &DbPool,
    mode: CountMode,
    statement: &BuiltStatement,
    role: Option<&RoleContext>,
) -> Result<i64, PoolError> {
    let exact = || async {
        let json = pool
            .query(&statement.sql, &statement.params, ValueStyle::ToJson, role)
            .await?
            .json;
        first_value(&json)
            .and_then(|v| v.as_i64())
            .ok_or_else(|| PoolError::Internal("count(*) returned no number".into()))
    };
    let planned = || async {
        let sql = format!("EXPLAIN (FORMAT JSON) {}", statement.sql);
        let json = pool
            .query(&sql, &statement.params, ValueStyle::ToJson, role)
            .await?
            .json;
        first_value(&json)
            .and_then(|plan| plan[0]["Plan"]["Plan Rows"].as_f64())
            .map(|rows| rows as i64)
            .ok_or_else(|| PoolError::Internal("EXPLAIN returned no row estimate".into()))
    };
    match mode {
        CountMode::Exact => exact().await,
        CountMode::Planned => planned().await,
        CountMode::Estimated => {
            let estimate = planned().await?;
            if estimate < ESTIMATE_EXACT_BELOW {
                exact().await
            } else {
                Ok(estimate)
            }
        }
    }
}

/// The first column of the first row of a statement reply.
fn first_value(reply: &str) -> Option<Value> {
    let parsed: Value = serde_json::from_str(reply).ok()?;
    parsed["rows"][0][0].clone().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_row_count_and_first_value() {
        let reply = r#"{"columns":["count"],"rows":[[42]],"rowCount":1}"#;
        assert_eq!(row_count_of(reply), 1);
        assert_eq!(first_value(reply), Some(Value::from(42)));
    }

    #[test]
    fn errors_carry_postgrest_statuses() {
        let reply: Value =
            serde_json::from_str(&error_reply(&PoolError::PoolClosed, false)).unwrap();
        assert_eq!(reply["status"], 503);
        assert_eq!(reply["error"]["code"], "POOL_CLOSED");
    }
}
