//! What a request answers, as the JS fetch adapter hands it to postgrest-js: a status, a
//! `Content-Range` and the body text, or PostgREST's error object.
//!
//! The reply is JSON for the batched crossing: `{"status":200,"range":"0-4/*","body":N}`, the
//! body text beside the batch (crossing.rs), since postgrest-js reads `res.text()` and parses it
//! itself. An error's body is small and rides inside the reply as a JSON string.

use serde_json::Value;

use crate::db::rest::error::status_of;
use crate::error::PoolError;

/// A successful answer.
pub struct Answer {
    pub status: u16,
    pub range: String,
    /// The body text, or `None` for no body.
    pub body: Option<String>,
}

/// What a request replies, for the crossing.
#[derive(Debug, PartialEq)]
pub enum RestReply {
    /// The whole reply as JSON.
    Whole(String),
    /// `{"status":…,"range":"…"` without its closing brace, and the body to send beside it.
    WithBody { head: String, body: String },
}

impl Answer {
    pub fn into_reply(self) -> RestReply {
        let mut head = String::with_capacity(self.range.len() + 40);
        head.push_str("{\"status\":");
        head.push_str(itoa::Buffer::new().format(self.status));
        head.push_str(",\"range\":");
        head.push_str(&Value::from(self.range.as_str()).to_string());
        match self.body {
            Some(body) => RestReply::WithBody { head, body },
            None => {
                head.push_str(",\"body\":null}");
                RestReply::Whole(head)
            }
        }
    }
}

/// `Content-Range` as PostgREST writes it: `0-9/100`, `*/0`, `0-9/*`.
pub fn content_range(lower: u64, page: u64, total: Option<i64>) -> String {
    let range = if page == 0 {
        "*".to_string()
    } else {
        format!("{lower}-{}", lower + page - 1)
    };
    match total {
        Some(total) => format!("{range}/{total}"),
        None => format!("{range}/*"),
    }
}

/// PostgREST's status for a page of rows: 206 when the count says there are more, 416 when
/// the page starts past the end.
pub fn range_status(lower: u64, page: u64, total: Option<i64>) -> u16 {
    match total {
        Some(total) if total >= 0 && lower > total as u64 => 416,
        Some(total) if page < total.max(0) as u64 => 206,
        _ => 200,
    }
}

/// `RAISE SQLSTATE 'PGRST'`: the function writes the error itself, `{code, message, details,
/// hint}` as JSON in the message and `{status, status_text, headers}` in the detail, as
/// PostgREST documents it (headers cannot reach postgrest-js's result, so they are dropped).
/// JSON that does not parse is PostgREST's `PGRST121`, a 500.
fn raised(message: &str, detail: Option<&str>) -> (u16, Option<String>, Value) {
    const MESSAGE_HINT: &str = "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.";
    const DETAIL_HINT: &str = "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.";
    let unparsed = |details: String, hint: &str| {
        (
            500,
            None,
            serde_json::json!({
                "code": "PGRST121",
                "details": details,
                "hint": hint,
                "message": "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
            }),
        )
    };
    let body = match serde_json::from_str::<serde_json::Map<String, Value>>(message) {
        Ok(body) if body.contains_key("code") && body.contains_key("message") => body,
        _ => {
            return unparsed(
                format!("Invalid JSON value for MESSAGE: '{message}'"),
                MESSAGE_HINT,
            )
        }
    };
    let Some(detail) = detail else {
        return unparsed(
            "DETAIL is missing in the RAISE statement".into(),
            DETAIL_HINT,
        );
    };
    let options = match serde_json::from_str::<serde_json::Map<String, Value>>(detail) {
        Ok(options) if options.contains_key("status") && options.contains_key("headers") => options,
        _ => {
            return unparsed(
                format!("Invalid JSON value for DETAIL: '{detail}'"),
                DETAIL_HINT,
            )
        }
    };
    let status = options
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s))
        .unwrap_or(400);
    let text = options
        .get("status_text")
        .and_then(Value::as_str)
        .map(str::to_string);
    let field = |name: &str| body.get(name).cloned().unwrap_or(Value::Null);
    let body = serde_json::json!({
        "code": field("code"),
        "details": field("details"),
        "hint": field("hint"),
        "message": field("message"),
    });
    (status, text, body)
}

/// The error reply: PostgREST's status and its `{code, details, hint, message}` as body text.
pub fn error_reply(err: &PoolError, anonymous: bool) -> String {
    if let PoolError::Database(fields) = err {
        if fields.code == "PGRST" {
            let (status, text, body) = raised(&fields.message, fields.detail.as_deref());
            let mut reply =
                serde_json::json!({ "status": status, "range": "", "body": body.to_string() });
            if let Some(text) = text {
                reply["statusText"] = Value::String(text);
            }
            return reply.to_string();
        }
    }
    let status = status_of(err.code(), anonymous);
    let body = match err {
        PoolError::Database(fields) => serde_json::json!({
            "code": fields.code,
            // PGRST201 lists the candidate relationships as an array, as PostgREST does.
            "details": match (fields.code.as_str(), &fields.detail) {
                ("PGRST201", Some(detail)) => serde_json::from_str(detail)
                    .unwrap_or_else(|_| Value::String(detail.clone())),
                _ => fields.detail.clone().map(Value::String).unwrap_or(Value::Null),
            },
            "hint": fields.hint,
            "message": fields.message,
        }),
        other => serde_json::json!({
            "code": other.code(),
            "details": null,
            "hint": null,
            "message": other.to_string(),
        }),
    };
    serde_json::json!({ "status": status, "range": "", "body": body.to_string() }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_statuses_follow_postgrest() {
        assert_eq!(content_range(0, 5, None), "0-4/*");
        assert_eq!(content_range(10, 2, Some(12)), "10-11/12");
        assert_eq!(content_range(0, 0, Some(0)), "*/0");
        assert_eq!(range_status(0, 5, Some(5)), 200);
        assert_eq!(range_status(0, 2, Some(5)), 206);
        assert_eq!(range_status(9, 0, Some(5)), 416);
        assert_eq!(range_status(0, 3, None), 200);
    }

    #[test]
    fn answers_and_errors_are_json_for_the_crossing() {
        let answer = Answer {
            status: 200,
            range: "0-0/*".into(),
            body: Some(r#"[{"a":1}]"#.into()),
        };
        assert_eq!(
            answer.into_reply(),
            RestReply::WithBody {
                head: r#"{"status":200,"range":"0-0/*""#.into(),
                body: r#"[{"a":1}]"#.into()
            }
        );
        let empty = Answer {
            status: 204,
            range: String::new(),
            body: None,
        };
        assert_eq!(
            empty.into_reply(),
            RestReply::Whole(r#"{"status":204,"range":"","body":null}"#.into())
        );
        let error: Value =
            serde_json::from_str(&error_reply(&PoolError::PoolClosed, false)).unwrap();
        assert_eq!(error["status"], 503);
        let body: Value = serde_json::from_str(error["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["code"], "POOL_CLOSED");
    }

    #[test]
    fn a_raised_pgrst_error_sets_its_own_status_and_body() {
        let (status, text, body) = raised(
            r#"{"code":"123","message":"Payment Required","details":"Quota exceeded"}"#,
            Some(r#"{"status":419,"status_text":"Page Expired","headers":{"X-A":"b"}}"#),
        );
        assert_eq!((status, text.as_deref()), (419, Some("Page Expired")));
        assert_eq!(
            body,
            serde_json::json!({"code":"123","details":"Quota exceeded","hint":null,"message":"Payment Required"})
        );
        assert_eq!(raised("not json", None).0, 500);
        assert_eq!(raised("not json", None).2["code"], "PGRST121");
        assert_eq!(
            raised(r#"{"code":"1","message":"m"}"#, Some("{bad")).2["code"],
            "PGRST121"
        );
        // No DETAIL: PostgREST says so rather than guessing a status.
        let (status, _, body) = raised(r#"{"code":"1","message":"m"}"#, None);
        assert_eq!(
            (status, body["details"].as_str()),
            (500, Some("DETAIL is missing in the RAISE statement"))
        );
        assert_eq!(
            raised("INVALID", Some("{}")).2["details"],
            "Invalid JSON value for MESSAGE: 'INVALID'"
        );
        // DETAIL needs both status and headers.
        assert_eq!(
            raised(r#"{"code":"1","message":"m"}"#, Some(r#"{"status":402}"#)).2["code"],
            "PGRST121"
        );
    }
}
