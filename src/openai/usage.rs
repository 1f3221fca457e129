//! The tokens a response reports: `usage` of a JSON body, and of the server-sent events of a
//! stream as they pass (a chat stream's last chunk with `stream_options.include_usage`, the
//! Responses API's `response.completed`), without holding the stream back.
//!
//! The stream's bytes go on to the SDK untouched; `UsageScanner` only reads a copy of the lines
//! that can carry usage, so a stream costs one scan for `"usage"` per chunk.

use serde_json::Value;

/// The longest event line kept while it is incomplete: past it the line is skipped (a usage
/// event is a few hundred bytes; an event this long is content, not accounting).
const MAX_LINE: usize = 1 << 20;

/// `usage.total_tokens` (chat, completions, embeddings, responses), or its input and output
/// tokens summed, of a body or an event; a Responses API event carries it in `response.usage`.
pub fn total_tokens(body: &Value) -> Option<u64> {
    let usage = body
        .get("usage")
        .filter(|u| u.is_object())
        .or_else(|| body.get("response")?.get("usage"))?;
    if let Some(total) = usage.get("total_tokens").and_then(Value::as_u64) {
        return Some(total);
    }
    let part = |key: &str| usage.get(key).and_then(Value::as_u64);
    match (part("input_tokens"), part("output_tokens")) {
        (None, None) => None,
        (input, output) => Some(input.unwrap_or(0) + output.unwrap_or(0)),
    }
}

#[derive(serde::Deserialize)]
struct Usage {
    total_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Nested {
    usage: Option<Usage>,
}

/// A body's usage, read without building the whole document (only these fields are kept).
#[derive(serde::Deserialize)]
struct WithUsage {
    usage: Option<Usage>,
    response: Option<Nested>,
}

/// A body that is not JSON at all.
#[derive(Debug, PartialEq, Eq)]
pub struct NotJson;

/// The tokens a JSON response body reports, or `NotJson`: one pass of serde over the body,
/// keeping nothing but the usage (the hot path of every response).
pub fn body_tokens(body: &[u8]) -> Result<Option<u64>, NotJson> {
    match serde_json::from_slice::<WithUsage>(body) {
        Ok(parsed) => {
            let usage = parsed.usage.or(parsed.response.and_then(|r| r.usage));
            Ok(usage.and_then(
                |u| match (u.total_tokens, u.input_tokens, u.output_tokens) {
                    (Some(total), _, _) => Some(total),
                    (None, None, None) => None,
                    (None, input, output) => Some(input.unwrap_or(0) + output.unwrap_or(0)),
                },
            ))
        }
        // Valid JSON of another shape (an array, a string): no usage.
        Err(_) => serde_json::from_slice::<serde::de::IgnoredAny>(body)
            .map(|_| None)
            .map_err(|_| NotJson),
    }
}

/// The `model` of a JSON request body, read without building the document.
pub fn request_model(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithModel {
        model: Option<String>,
    }
    serde_json::from_str::<WithModel>(body).ok()?.model
}

/// Reads the `data:` lines of an event stream for usage, chunk by chunk.
#[derive(Default)]
pub struct UsageScanner {
    line: Vec<u8>,
    skipping: bool,
    tokens: Option<u64>,
}

impl UsageScanner {
    /// Feeds the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.push(&rest[..end]);
            self.finish_line();
            rest = &rest[end + 1..];
        }
        self.push(rest);
    }

    /// The last usage seen (a stream reports it once, at its end).
    pub fn tokens(&self) -> Option<u64> {
        self.tokens
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.skipping {
            return;
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            self.line.clear();
            self.skipping = true;
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn finish_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.skipping = false;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if !contains(data, b"\"usage\"") {
            return;
        }
        if let Some(tokens) = serde_json::from_slice::<Value>(data)
            .ok()
            .and_then(|v| total_tokens(&v))
        {
            self.tokens = Some(tokens);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_of_every_endpoint() {
        let of = |text: &str| total_tokens(&serde_json::from_str(text).unwrap());
        assert_eq!(
            of(r#"{"usage":{"prompt_tokens":5,"total_tokens":12}}"#),
            Some(12)
        );
        assert_eq!(
            of(r#"{"usage":{"input_tokens":3,"output_tokens":4}}"#),
            Some(7)
        );
        assert_eq!(
            of(
                r#"{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}}"#
            ),
            Some(3)
        );
        assert_eq!(of(r#"{"usage":null}"#), None);
        assert_eq!(of(r#"{"choices":[]}"#), None);
    }

    #[test]
    fn bodies_are_read_for_their_usage_alone() {
        assert_eq!(
            body_tokens(br#"{"id":"x","usage":{"total_tokens":12}}"#),
            Ok(Some(12))
        );
        assert_eq!(
            body_tokens(br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#),
            Ok(Some(7))
        );
        assert_eq!(
            body_tokens(br#"{"response":{"usage":{"total_tokens":3}}}"#),
            Ok(Some(3))
        );
        assert_eq!(body_tokens(br#"{"usage":null,"data":[1]}"#), Ok(None));
        assert_eq!(body_tokens(br#"[1,2]"#), Ok(None));
        assert_eq!(body_tokens(b"<html>"), Err(NotJson));
        assert_eq!(
            request_model(r#"{"model":"gpt-4o","messages":[]}"#).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(request_model("[]"), None);
    }

    #[test]
    fn a_stream_s_usage_is_read_across_chunk_boundaries() {
        let stream = b"\xEF\xBB\xBFdata: {\"choices\":[]}\r\n\r\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":12}}\n\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut scanner = UsageScanner::default();
            scanner.feed(&stream[..cut]);
            scanner.feed(&stream[cut..]);
            assert_eq!(scanner.tokens(), Some(12), "cut at {cut}");
        }
        let mut long = UsageScanner::default();
        long.feed(b"data: ");
        long.feed(&vec![b'x'; MAX_LINE + 10]);
        long.feed(b"\ndata: {\"usage\":{\"total_tokens\":2}}\n");
        assert_eq!(long.tokens(), Some(2));
    }
}
