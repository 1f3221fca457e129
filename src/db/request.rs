//! Runs one query-builder request: its data statement and, when asked, its count.
//!
//! A request of one statement runs on the pool like any statement (pipelined, as the caller's
//! identity). A request of several (a count beside the rows, an upsert that looks up the primary
//! key) runs in one transaction, as PostgREST runs every request; a count runs in a repeatable-
//! read one, so that it and the rows see the same snapshot. Inside `transaction()`, a request
//! runs in that transaction.
//!
//! The reply is JSON text for the facade: `{"columns":…,"rows":…,"rowCount":n,"count":c,
//! "status":200}` or `{"error":{…},"status":409}`. Values are rendered as Postgres's `to_json`
//! renders them (what PostgREST returns), and failures carry PostgREST's HTTP status.

use serde_json::Value;

use super::builder::{build, status_for_error, BuiltStatement, CountMode, Method, RequestSpec};
use super::context::RoleContext;
use super::engine::DbPool;
use super::execute::QueryOutput;
use super::params::Param;
use super::rows::ValueStyle;
use super::transaction::{Isolation, Transaction, TxOptions};
use crate::error::PoolError;

/// Beyond this many planned rows an `estimated` count stays an estimate (PostgREST's idea).
const ESTIMATE_EXACT_BELOW: i64 = 1000;

/// Where a request's statements run.
pub enum Target<'a> {
    /// On the pool, each statement by itself, as `role` (or the login role).
    Pool {
        pool: &'a DbPool,
        role: Option<&'a RoleContext>,
    },
    /// Inside a transaction (its role, if any, was set when it began).
    Transaction {
        pool: &'a DbPool,
        tx: &'a Transaction,
    },
}

impl Target<'_> {
    async fn query(
        &self,
        sql: &str,
        params: &[Param],
        style: ValueStyle,
    ) -> Result<QueryOutput, PoolError> {
        match self {
            Target::Pool { pool, role } => pool.query(sql, params, style, *role).await,
            Target::Transaction { pool, tx } => tx.query(pool, sql, params, style).await,
        }
    }
}

/// Runs a request on the pool; the reply (or error reply) as JSON text.
pub async fn run(
    pool: &DbPool,
    spec_json: &str,
    role: Option<&RoleContext>,
    anonymous: bool,
) -> String {
    match run_pooled(pool, spec_json, role).await {
        Ok(reply) => reply,
        Err(err) => error_reply(&err, anonymous),
    }
}

/// Runs a request inside an open transaction.
pub async fn run_in(pool: &DbPool, tx: &Transaction, spec_json: &str, anonymous: bool) -> String {
    let target = Target::Transaction { pool, tx };
    match parse(spec_json) {
        Ok(spec) => run_spec(&target, spec).await,
        Err(err) => Err(err),
    }
    .unwrap_or_else(|err| error_reply(&err, anonymous))
}

async fn run_pooled(
    pool: &DbPool,
    spec_json: &str,
    role: Option<&RoleContext>,
) -> Result<String, PoolError> {
    let spec = parse(spec_json)?;
    let looks_up_key = spec.method == Method::Upsert && spec.on_conflict.is_none();
    let counted_select = spec.method == Method::Select && spec.count.is_some();
    if !looks_up_key && !counted_select {
        return run_spec(&Target::Pool { pool, role }, spec).await;
    }
    let options = TxOptions {
        isolation: counted_select.then_some(Isolation::RepeatableRead),
        read_only: false,
    };
    let tx = Transaction::begin(pool, role, options).await?;
    match run_spec(&Target::Transaction { pool, tx: &tx }, spec).await {
        Ok(reply) => {
            tx.finish(pool, true).await?;
            Ok(reply)
        }
        Err(err) => {
            let _ = tx.finish(pool, false).await;
            Err(err)
        }
    }
}

fn parse(spec_json: &str) -> Result<RequestSpec, PoolError> {
    serde_json::from_str(spec_json)
        .map_err(|e| super::ident::request_error(format!("malformed builder request: {e}"), None))
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

async fn run_spec(target: &Target<'_>, mut spec: RequestSpec) -> Result<String, PoolError> {
    if spec.method == Method::Upsert && spec.on_conflict.is_none() {
        spec.primary_key = primary_key(target, &spec.table).await?;
    }
    let built = build(&spec)?;

    let count = match (spec.count, &built.count) {
        (Some(mode), Some(statement)) => Some(count_rows(target, mode, statement).await?),
        _ => None,
    };
    let (reply, row_count) = match &built.data {
        Some(statement) => {
            let json = target
                .query(&statement.sql, &statement.params, ValueStyle::ToJson)
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
async fn primary_key(target: &Target<'_>, table: &str) -> Result<Vec<String>, PoolError> {
    const SQL: &str = "SELECT coalesce(json_agg(a.attname ORDER BY k.ord), '[]') \
         FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary";
    let relation = super::ident::quote_relation(table)?;
    let json = target
        .query(SQL, &[Param::Text(relation)], ValueStyle::ToJson)
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
    target: &Target<'_>,
    mode: CountMode,
    statement: &BuiltStatement,
) -> Result<i64, PoolError> {
    let exact = || async {
        let json = target
            .query(&statement.sql, &statement.params, ValueStyle::ToJson)
            .await?
            .json;
        first_value(&json)
            .and_then(|v| v.as_i64())
            .ok_or_else(|| PoolError::Internal("count(*) returned no number".into()))
    };
    let planned = || async {
        let sql = format!("EXPLAIN (FORMAT JSON) {}", statement.sql);
        let json = target
            .query(&sql, &statement.params, ValueStyle::ToJson)
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
