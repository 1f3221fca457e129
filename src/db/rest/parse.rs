//! A PostgREST request as postgrest-js sends it (method, path and query, a few headers, a JSON
//! body) read into the builder's `RequestSpec`, with the `Prefer` and `Accept` preferences and
//! the schema it targets. Nothing here touches the database.
//!
//! The grammar is PostgREST's: `/table` or `/rpc/fn`; `select`, `order`, `limit`, `offset`,
//! `on_conflict`, `columns`; `or`/`and` (optionally `not.`-prefixed) groups; and every other
//! parameter `column=operator.value`, parsed by `filters`.

use serde_json::Value;

use super::error::pgrst;
use super::prefer::{Accept, Prefer};
use crate::db::rest::builder::{
    EmbeddedPart, EmbeddedQuery, FilterSpec, Method, OrderSpec, RequestSpec,
};
use crate::db::rest::error::request_error;
use crate::error::PoolError;

/// The request as the JS fetch adapter hands it over.
#[derive(Debug)]
pub struct ApiRequest {
    pub method: String,
    /// Path and query string, e.g. `/users?select=id&id=eq.1`.
    pub url: String,
    pub prefer: Option<String>,
    pub accept: Option<String>,
    /// `Accept-Profile` (reads) or `Content-Profile` (writes).
    pub profile: Option<String>,
    /// The JSON body text, if any.
    pub body: Option<String>,
}

impl ApiRequest {
    /// Reads the adapter's wire form (`lib/postgrest.js`): method, path and query, `Prefer`,
    /// `Accept` and profile, each ended by a newline, then the body; an empty field is absent.
    /// No field but the body can hold a newline: the URL is percent-encoded and `Headers`
    /// refuses one in a value. Plain text rather than JSON, so a body is not escaped into an
    /// envelope and unescaped out of it again.
    pub fn from_wire(wire: &str) -> Result<ApiRequest, PoolError> {
        let mut fields = wire.splitn(6, '\n');
        let mut next = || fields.next().map(str::to_string).filter(|f| !f.is_empty());
        let (method, url) = (next(), next());
        let (prefer, accept, profile, body) = (next(), next(), next(), next());
        match (method, url) {
            (Some(method), Some(url)) => Ok(ApiRequest {
                method,
                url,
                prefer,
                accept,
                profile,
                body,
            }),
            _ => Err(PoolError::Internal(
                "malformed request from the fetch adapter".into(),
            )),
        }
    }
}

/// A request read and checked, ready to be built into SQL.
#[derive(Debug)]
pub struct RestRequest {
    pub spec: RequestSpec,
    pub prefer: Prefer,
    pub accept: Accept,
    pub head: bool,
    /// GET or HEAD: PostgREST runs it in a read-only transaction, so a function that writes
    /// is refused (25006, 405) rather than run by a read.
    pub read_only: bool,
    /// `nulls=stripped`: null-valued keys are left out of the answer's objects.
    pub strip_nulls: bool,
}

/// Reads `request`; `schemas` are the exposed schemas, the first being the default.
pub fn parse(request: &ApiRequest, schemas: &[String]) -> Result<RestRequest, PoolError> {
    let (path, query) = request
        .url
        .split_once('?')
        .unwrap_or((request.url.as_str(), ""));
    let schema = profile_schema(request.profile.as_deref(), schemas)?;
    let path = percent_decode(path.trim_start_matches('/'));
    let (is_rpc, name) = match path.strip_prefix("rpc/") {
        Some(function) => (true, function.to_string()),
        None => (false, path),
    };
    if name.is_empty() || name.contains('/') {
        return Err(not_found());
    }
    let prefer = Prefer::parse(request.prefer.as_deref().unwrap_or(""))?;
    let accept = Accept::parse(request.accept.as_deref())?;
    let method = request.method.to_ascii_uppercase();
    let head = method == "HEAD";
    let mut spec = RequestSpec {
        table: name,
        method: spec_method(&method, is_rpc, &prefer)?,
        columns: None,
        returning: false,
        filters: Vec::new(),
        order: Vec::new(),
        limit: None,
        offset: None,
        count: prefer.count,
        head,
        values: None,
        on_conflict: None,
        ignore_duplicates: prefer.resolution == Some(Resolution::IgnoreDuplicates),
        primary_key: Vec::new(),
        schema: Some(schema),
        embedded: None,
        embedded_queries: Vec::new(),
        column_defaults: None,
        tsvector_columns: None,
        composite_columns: None,
    };
    // An rpc called by GET or HEAD takes its arguments from the query string.
    let args_in_query = spec.method == Method::Rpc && method != "POST";
    let rpc_args = read_query(&mut spec, query, args_in_query)?;
    if args_in_query {
        spec.values = Some(Value::Object(rpc_args));
    } else if let Some(body) = request.body.as_deref().filter(|b| !b.is_empty()) {
        let values: Value = serde_json::from_str(body).map_err(|e| {
            pgrst(
                "PGRST102",
                format!("Empty or invalid json: {e}"),
                None,
                None,
            )
        })?;
        spec.values = Some(values);
    }
    // A mutation's rows come back only when asked for (Prefer: return=representation).
    spec.returning = prefer.returns_body() && spec.method != Method::Select;
    if spec.method == Method::Rpc {
        spec.returning = true;
    }
    Ok(RestRequest {
        spec,
        prefer,
        accept,
        head,
        read_only: matches!(method.as_str(), "GET" | "HEAD"),
        strip_nulls: Accept::strips_nulls(request.accept.as_deref()),
    })
}

/// The schema of the request's profile (`Accept-Profile` / `Content-Profile`): one of the
/// exposed `schemas` (PGRST106 otherwise), the first of them by default.
fn profile_schema(profile: Option<&str>, schemas: &[String]) -> Result<String, PoolError> {
    match profile {
        Some(profile) if !schemas.iter().any(|s| s == profile) => {
            Err(schema_refused(profile, schemas))
        }
        Some(profile) => Ok(profile.to_string()),
        None => Ok(schemas.first().cloned().unwrap_or_else(|| "public".into())),
    }
}

/// What the HTTP method asks of a table or function (`PGRST117` for one PostgREST refuses).
fn spec_method(method: &str, is_rpc: bool, prefer: &Prefer) -> Result<Method, PoolError> {
    Ok(match (method, is_rpc) {
        ("GET" | "HEAD" | "POST", true) => Method::Rpc,
        ("GET" | "HEAD", false) => Method::Select,
        ("POST", false) if prefer.resolution.is_some() => Method::Upsert,
        ("POST", false) => Method::Insert,
        ("PATCH", false) => Method::Update,
        ("DELETE", false) => Method::Delete,
        _ => {
            return Err(pgrst(
                "PGRST117",
                format!("Unsupported HTTP method: {method}"),
                None,
                None,
            ))
        }
    })
}

/// Reads the query string into `spec`: select, order, paging, conflict target, filters, logic
/// groups and embedded resources' parts. With `args_in_query`, what is no filter is an
/// argument of the function, returned.
fn read_query(
    spec: &mut RequestSpec,
    query: &str,
    args_in_query: bool,
) -> Result<serde_json::Map<String, Value>, PoolError> {
    let mut rpc_args = serde_json::Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "select" => spec.columns = Some(value.into_owned()),
            "order" => spec.order = parse_order(&value)?,
            "limit" => spec.limit = Some(parse_limit(&value)?),
            "offset" => spec.offset = Some(parse_offset(&value)?),
            "on_conflict" => spec.on_conflict = Some(value.into_owned()),
            // postgrest-js names the union of a bulk insert's keys; the body says the same.
            "columns" => {}
            "or" | "and" | "not.or" | "not.and" => spec.filters.push(FilterSpec::Logic {
                any: key.ends_with("or"),
                negate: key.starts_with("not."),
                expression: strip_group(&value)?.to_string(),
            }),
            key if key.contains('.') && !key.starts_with('"') && !key.starts_with("not.") => {
                spec.embedded_queries.push(embedded_query(key, &value)?);
            }
            column => {
                let value = value.into_owned();
                if args_in_query && !looks_like_filter(&value) {
                    rpc_args.insert(column.to_string(), Value::String(value));
                } else {
                    let (op, value) = value.split_once('.').unwrap_or((&value, ""));
                    spec.filters.push(FilterSpec::Filter {
                        column: column.to_string(),
                        op: op.to_string(),
                        value: value.to_string(),
                    });
                }
            }
        }
    }
    Ok(rpc_args)
}

pub use super::prefer::Resolution;

/// `messages.id=eq.1`, `messages.users.order=name`, `messages.limit=1`, `messages.or=(...)`:
/// a part of the query for the embedded resource at that path.
fn embedded_query(key: &str, value: &str) -> Result<EmbeddedQuery, PoolError> {
    let mut path: Vec<String> = key.split('.').map(str::to_string).collect();
    let last = path.pop().unwrap_or_default();
    // `messages.not.or=(...)`: the group's `not.` came off with the split.
    let negated_group = path.last().is_some_and(|p| p == "not") && (last == "or" || last == "and");
    if negated_group {
        path.pop();
    }
    let part = match last.as_str() {
        "order" => EmbeddedPart::Order(parse_order(value)?),
        "limit" => EmbeddedPart::Limit(parse_limit(value)?),
        "offset" => EmbeddedPart::Offset(parse_offset(value)?),
        "or" | "and" => EmbeddedPart::Filter(FilterSpec::Logic {
            any: last == "or",
            negate: negated_group,
            expression: strip_group(value)?.to_string(),
        }),
        column => {
            let (op, rest) = value.split_once('.').unwrap_or((value, ""));
            EmbeddedPart::Filter(FilterSpec::Filter {
                column: column.to_string(),
                op: op.to_string(),
                value: rest.to_string(),
            })
        }
    };
    if path.len() > crate::db::rest::ident::MAX_NESTING {
        return Err(crate::db::rest::ident::too_deep(
            "the embedded resources a parameter names",
        ));
    }
    if path.is_empty() || path.iter().any(|p| p.is_empty()) {
        return Err(request_error(
            format!("'{key}' names no embedded resource"),
            None,
        ));
    }
    Ok(EmbeddedQuery { path, part })
}

/// `(a.eq.1,b.eq.2)` → `a.eq.1,b.eq.2`.
fn strip_group(value: &str) -> Result<&str, PoolError> {
    value
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| {
            request_error(
                format!("'{value}': a logic group is written (filter,filter,...)"),
                None,
            )
        })
}

/// Whether a query value of an rpc GET is a filter (`eq.1`, `not.in.(1,2)`) rather than an
/// argument: its head is an operator name.
fn looks_like_filter(value: &str) -> bool {
    let head = value.split('.').next().unwrap_or("");
    let head = if head == "not" {
        value.split('.').nth(1).unwrap_or("")
    } else {
        head
    };
    let head = head.split('(').next().unwrap_or("");
    crate::db::rest::filters::Operator::parse(head).is_ok() || head == "is"
}

/// `a.desc.nullsfirst,b,c.asc` → order items.
fn parse_order(value: &str) -> Result<Vec<OrderSpec>, PoolError> {
    let mut order = Vec::new();
    for item in crate::db::rest::filters::split_top_level(value)? {
        // `rel(col).desc`: the column of a to-one resource, resolved with the catalog.
        let item = item.trim();
        let (column, modifiers) = match item.find(')') {
            Some(close) if item.contains('(') => {
                let rest = &item[close + 1..];
                (&item[..=close], rest.strip_prefix('.').unwrap_or(rest))
            }
            _ => item.split_once('.').unwrap_or((item, "")),
        };
        let parts = modifiers.split('.').filter(|m| !m.is_empty());
        let mut spec = OrderSpec {
            column: column.to_string(),
            ascending: true,
            nulls_first: None,
            expression: None,
        };
        for modifier in parts {
            match modifier {
                "asc" => spec.ascending = true,
                "desc" => spec.ascending = false,
                "nullsfirst" => spec.nulls_first = Some(true),
                "nullslast" => spec.nulls_first = Some(false),
                other => {
                    return Err(request_error(
                        format!(
                            "'{other}' is not an order modifier (asc, desc, nullsfirst, nullslast)"
                        ),
                        None,
                    ))
                }
            }
        }
        order.push(spec);
    }
    Ok(order)
}

/// `limit`: a negative one is PostgREST's `PGRST103` (416).
fn parse_limit(value: &str) -> Result<u64, PoolError> {
    match value.trim().parse::<i64>() {
        Ok(limit) if limit < 0 => {
            let mut err = pgrst(
                "PGRST103",
                "Requested range not satisfiable".into(),
                None,
                None,
            );
            if let PoolError::Database(fields) = &mut err {
                fields.detail = Some("Limit should be greater than or equal to zero.".into());
            }
            Err(err)
        }
        _ => parse_number("limit", value),
    }
}

/// `offset`: a negative one counts from the start, as PostgREST takes it.
fn parse_offset(value: &str) -> Result<u64, PoolError> {
    match value.trim().parse::<i64>() {
        Ok(offset) if offset < 0 => Ok(0),
        _ => parse_number("offset", value),
    }
}

fn parse_number(name: &str, value: &str) -> Result<u64, PoolError> {
    value.parse().map_err(|_| {
        request_error(
            format!("'{name}={value}': {name} must be a non-negative integer"),
            None,
        )
    })
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(text.replace('+', "%2B").as_bytes())
        .next()
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .unwrap_or_default()
}

/// PostgREST's `PGRST106`: a schema outside `schemas`.
fn schema_refused(schema: &str, schemas: &[String]) -> PoolError {
    let mut err = pgrst("PGRST106", format!("Invalid schema: {schema}"), None, None);
    if let PoolError::Database(fields) = &mut err {
        fields.hint = Some(format!(
            "Only the following schemas are exposed: {}",
            schemas.join(", ")
        ));
    }
    err
}

fn not_found() -> PoolError {
    pgrst(
        "PGRST125",
        "Invalid path specified in request URL".into(),
        None,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str) -> ApiRequest {
        ApiRequest {
            method: method.into(),
            url: url.into(),
            prefer: None,
            accept: None,
            profile: None,
            body: None,
        }
    }

    #[test]
    fn reads_the_wire_form() {
        let body = "[{\"note\":\"two\\nlines\"},\n{\"note\":\"x\"}]";
        let wire = format!("POST\n/t?columns=note\nreturn=representation\n\napi\n{body}");
        let request = ApiRequest::from_wire(&wire).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "/t?columns=note");
        assert_eq!(request.prefer.as_deref(), Some("return=representation"));
        assert_eq!(request.accept, None);
        assert_eq!(request.profile.as_deref(), Some("api"));
        assert_eq!(request.body.as_deref(), Some(body));
        let get = ApiRequest::from_wire("GET\n/t\n\n\n\n").unwrap();
        assert_eq!((get.prefer, get.body), (None, None));
        for malformed in ["", "GET", "GET\n", "\n/t\n\n\n\n"] {
            assert_eq!(
                ApiRequest::from_wire(malformed).unwrap_err().code(),
                "INTERNAL"
            );
        }
    }

    fn public() -> Vec<String> {
        vec!["public".into(), "api".into()]
    }

    #[test]
    fn a_select_with_filters_order_and_range() {
        let parsed = parse(
            &request(
                "GET",
                "/users?select=id%2Cname&age=gte.25&or=%28a.eq.1%2Cb.eq.2%29&order=age.desc.nullsfirst%2Cid&limit=2&offset=1",
            ),
            &public(),
        )
        .unwrap();
        let spec = parsed.spec;
        assert_eq!(spec.method, Method::Select);
        assert_eq!(spec.schema.as_deref(), Some("public"));
        assert_eq!(spec.columns.as_deref(), Some("id,name"));
        assert_eq!(spec.filters.len(), 2);
        assert!(
            matches!(&spec.filters[0], FilterSpec::Filter { column, op, value }
            if column == "age" && op == "gte" && value == "25")
        );
        assert!(
            matches!(&spec.filters[1], FilterSpec::Logic { any: true, negate: false, expression }
            if expression == "a.eq.1,b.eq.2")
        );
        assert_eq!(spec.order.len(), 2);
        assert!(!spec.order[0].ascending);
        assert_eq!(spec.order[0].nulls_first, Some(true));
        assert_eq!((spec.limit, spec.offset), (Some(2), Some(1)));
    }

    #[test]
    fn methods_and_prefer_pick_the_operation() {
        let mut post = request("POST", "/items");
        post.prefer = Some("return=representation,resolution=merge-duplicates".into());
        post.body = Some(r#"{"id":1}"#.into());
        let parsed = parse(&post, &public()).unwrap();
        assert_eq!(parsed.spec.method, Method::Upsert);
        assert!(parsed.spec.returning);
        assert_eq!(
            parse(&request("PATCH", "/items"), &public())
                .unwrap()
                .spec
                .method,
            Method::Update
        );
        assert_eq!(
            parse(&request("DELETE", "/items"), &public())
                .unwrap()
                .spec
                .method,
            Method::Delete
        );
        assert_eq!(
            parse(&request("POST", "/rpc/add"), &public())
                .unwrap()
                .spec
                .method,
            Method::Rpc
        );
        assert!(parse(&request("HEAD", "/items"), &public()).unwrap().head);
    }

    #[test]
    fn rpc_get_arguments_and_filters_are_told_apart() {
        let parsed = parse(&request("GET", "/rpc/f?a=1&name=eq.x"), &public()).unwrap();
        assert_eq!(parsed.spec.values, Some(serde_json::json!({"a": "1"})));
        assert_eq!(parsed.spec.filters.len(), 1);
    }

    #[test]
    fn schemas_outside_the_exposed_list_are_refused() {
        let mut req = request("GET", "/pg_roles");
        req.profile = Some("pg_catalog".into());
        let err = parse(&req, &public()).unwrap_err();
        assert_eq!(err.code(), "PGRST106");
        req.profile = Some("api".into());
        assert_eq!(
            parse(&req, &public()).unwrap().spec.schema.as_deref(),
            Some("api")
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert_eq!(
            parse(&request("GET", "/t?limit=x"), &public())
                .unwrap_err()
                .code(),
            "PGRST100"
        );
        assert_eq!(
            parse(&request("GET", "/t?order=a.sideways"), &public())
                .unwrap_err()
                .code(),
            "PGRST100"
        );
        assert_eq!(
            parse(&request("PUT", "/t"), &public()).unwrap_err().code(),
            "PGRST117"
        );
        let mut bad_body = request("POST", "/t");
        bad_body.body = Some("{".into());
        assert_eq!(parse(&bad_body, &public()).unwrap_err().code(), "PGRST102");
        assert_eq!(
            parse(&request("GET", "/"), &public()).unwrap_err().code(),
            "PGRST125"
        );
    }

    #[test]
    fn order_takes_related_columns_and_json_paths() {
        let order = parse_order("channels(slug).desc.nullslast,data->a.asc,id").unwrap();
        assert_eq!(order[0].column, "channels(slug)");
        assert!(!order[0].ascending);
        assert_eq!(order[0].nulls_first, Some(false));
        assert_eq!(order[1].column, "data->a");
        assert_eq!(order[2].column, "id");
        assert!(order[2].ascending);
    }
}
