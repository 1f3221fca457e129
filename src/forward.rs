//! A JS `fetch` carried by a Rust transport: the request as it crosses in, the response head as
//! it crosses out, and a body that is either read whole (text or bytes, beside the reply batch)
//! or streamed chunk by chunk (server-sent events), for both the OpenAI pool and the Supabase
//! HTTP services.
//!
//! The JS side builds a real `Response` from these parts (`lib/fetch.js`), so the SDK above it
//! (openai-node, supabase-js) reads headers, statuses and bodies exactly as from the network.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyDataStream, Full};
use hyper::body::Incoming;

use crate::http::header::{HeaderMap, HeaderName, HeaderValue};
use crate::http::{Method, Request};

/// Headers of one connection, not of the message: never handed to JS (a `Response` built with
/// them would describe a connection it does not have).
const CONNECTION_HEADERS: [&str; 4] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
];

/// Headers a client may not choose: the transport sets them for the connection it uses.
const HOP_BY_HOP: [&str; 6] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
];

/// A request as JS handed it over.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub url: String,
    /// Names and values, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Outgoing {
    /// From the napi call's parts: `headers` as one text, `name\nvalue\nname\nvalue…` (one
    /// string crosses napi where two dozen would; `Headers` refuses a newline in either).
    pub fn new(method: &str, url: String, headers: &str, body: Bytes) -> Result<Self, String> {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("'{method}' is not an HTTP method"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err("only http:// and https:// URLs can be fetched".into());
        }
        let mut pairs = Vec::with_capacity(16);
        let mut flat = headers.split('\n');
        while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
            if !name.is_empty() {
                pairs.push((name.to_string(), value.to_string()));
            }
        }
        Ok(Outgoing {
            method,
            url,
            headers: pairs,
            body,
        })
    }

    /// Whether a header of this name was given (any case).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The value of a header, if given.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path below `/v1/` (or the whole path): what the OpenAI pool's token estimate reads.
    pub fn api_path(&self) -> &str {
        let after_scheme = self.url.split_once("://").map_or("", |(_, rest)| rest);
        let path = after_scheme.find('/').map_or("", |at| &after_scheme[at..]);
        let path = path.split(['?', '#']).next().unwrap_or("");
        path.split_once("/v1/").map_or(path, |(_, rest)| rest)
    }

    /// The hyper request, with `extra` headers added where the caller gave none of that name.
    /// A header value hyper refuses is named in the error, never shown (it may be a key).
    pub fn to_request(
        &self,
        extra: &[(&'static str, String)],
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.url.as_str());
        let headers = request
            .headers_mut()
            .ok_or_else(|| "the URL could not be read".to_string())?;
        for (name, value) in &self.headers {
            if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("'{name}' is not a valid header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header '{name}' is not valid"))?;
            headers.append(header, value);
        }
        for (name, value) in extra {
            if !self.has_header(name) {
                let value = HeaderValue::from_str(value)
                    .map_err(|_| format!("the value of header '{name}' is not valid"))?;
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        request
            .body(Full::new(self.body.clone()))
            .map_err(|e| format!("the request could not be built: {e}"))
    }
}

/// `{"status":200,"headers":[["name","value"],…]` (no closing brace: the body's index follows).
pub fn head_json(status: u16, headers: &HeaderMap) -> String {
    let mut out = String::with_capacity(64 + headers.len() * 40);
    out.push_str("{\"status\":");
    out.push_str(itoa::Buffer::new().format(status));
    out.push_str(",\"headers\":[");
    let mut first = true;
    for (name, value) in headers {
        if CONNECTION_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        if !first {
            out.push(',');
        }
        first = false;
        out.push('[');
        crate::db::codec::rows::push_json_str(&mut out, name.as_str());
        out.push(',');
        crate::db::codec::rows::push_json_str(&mut out, value);
        out.push(']');
    }
    out.push(']');
    out
}

/// How a response body crosses to JS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Read whole, sent as a string (JSON, text).
    Text,
    /// Read whole, sent as bytes (audio, images, files).
    Bytes,
    /// Sent as it arrives (server-sent events), chunk by chunk.
    Stream,
}

/// What the response's `Content-Type` says about its body.
pub fn body_kind(headers: &HeaderMap) -> BodyKind {
    let content_type = headers
        .get(crate::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == "text/event-stream" {
        BodyKind::Stream
    } else if media.is_empty()
        || media.starts_with("text/")
        || media == "application/json"
        || media.ends_with("+json")
        || media == "application/x-ndjson"
        || media == "application/x-www-form-urlencoded"
        || media == "application/xml"
    {
        BodyKind::Text
    } else {
        BodyKind::Bytes
    }
}

/// Sees every chunk of a stream as it passes.
pub type Observer = Box<dyn FnMut(&[u8]) + Send>;
/// Told once how a stream ended: true when it was read to its end (or left by its reader).
pub type OnEnd = Box<dyn FnOnce(bool) + Send>;

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, hyper::Error>> + Send>>;

/// What a forwarded fetch answers JS with.
pub enum Reply {
    /// The head (`head_json`) and the whole body.
    Whole {
        head: String,
        body: Bytes,
        kind: BodyKind,
    },
    /// The head, and the body to be read chunk by chunk.
    Stream { head: String, stream: ByteStream },
}

/// A response body handed to JS as it arrives, each wait bounded. An event stream's leading
/// UTF-8 byte order mark (which the SSE grammar allows) is taken off, so no reader above trips
/// on it.
pub struct ByteStream {
    body: Body,
    idle: Duration,
    /// Sees every chunk (the OpenAI pool counts a stream's `usage` here).
    observe: Option<Observer>,
    /// Told once how the stream ended: true when it was read to its end.
    on_end: Option<OnEnd>,
    /// What the stream holds while it is open (a queue slot, a shared lease); dropped with it.
    _held: Box<dyn std::any::Any + Send>,
}

/// Why a stream stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// Nothing arrived for `idle`.
    Idle(Duration),
    /// The connection broke (its description, which holds no header).
    Transport(String),
}

impl ByteStream {
    pub fn new(
        body: Incoming,
        idle: Duration,
        held: Box<dyn std::any::Any + Send>,
        observe: Option<Observer>,
        on_end: Option<OnEnd>,
    ) -> Self {
        ByteStream {
            body: Box::pin(without_bom(BodyDataStream::new(body))),
            idle,
            observe,
            on_end,
            _held: held,
        }
    }

    /// The next chunk, or None at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, StreamError> {
        let next = match tokio::time::timeout(self.idle, self.body.next()).await {
            Err(_) => Err(StreamError::Idle(self.idle)),
            Ok(None) => Ok(None),
            Ok(Some(Err(err))) => Err(StreamError::Transport(crate::http::describe(&err))),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        };
        match &next {
            Ok(Some(chunk)) => {
                if let Some(observe) = self.observe.as_mut() {
                    observe(chunk);
                }
            }
            Ok(None) => self.end(true),
            Err(_) => self.end(false),
        }
        next
    }

    fn end(&mut self, completed: bool) {
        if let Some(on_end) = self.on_end.take() {
            on_end(completed);
        }
    }
}

impl Drop for ByteStream {
    /// Left early (the reader stopped, or it was collected): counted as the reader's choice.
    fn drop(&mut self) {
        self.end(true);
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The body with a leading UTF-8 byte order mark taken off, even when it arrives split across
/// chunks.
pub fn without_bom<S, E>(body: S) -> impl futures::Stream<Item = Result<Bytes, E>> + Send
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: Send,
{
    futures::stream::unfold(
        (body, Some(Vec::new())),
        |(mut body, mut head)| async move {
            loop {
                let Some(pending) = head.as_mut() else {
                    let next = body.next().await?;
                    return Some((next, (body, None)));
                };
                let chunk = match body.next().await {
                    Some(Ok(chunk)) => Some(chunk),
                    Some(Err(err)) => return Some((Err(err), (body, None))),
                    None => None,
                };
                let ended = chunk.is_none();
                if let Some(chunk) = chunk {
                    pending.extend_from_slice(&chunk);
                }
                let undecided = pending.len() < BOM.len() && BOM.starts_with(pending) && !ended;
                if undecided {
                    continue;
                }
                let bytes = std::mem::take(pending);
                let rest = bytes.strip_prefix(BOM).unwrap_or(&bytes).to_vec();
                if rest.is_empty() && ended {
                    return None;
                }
                return Some((Ok(Bytes::from(rest)), (body, None)));
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_their_headers_but_not_the_connection_s() {
        let out = Outgoing::new(
            "post",
            "https://api.example/v1/chat/completions?x=1".into(),
            "Content-Type\napplication/json\nHost\nevil\nX-Two\na\nx-two\nb",
            Bytes::from_static(b"{}"),
        )
        .unwrap();
        assert_eq!(out.api_path(), "chat/completions");
        let request = out
            .to_request(&[
                ("authorization", "Bearer k".into()),
                ("content-type", "x".into()),
            ])
            .unwrap();
        let h = request.headers();
        assert!(h.get("host").is_none());
        assert_eq!(h.get_all("x-two").iter().count(), 2);
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        assert_eq!(h.get("authorization").unwrap(), "Bearer k");
        assert!(Outgoing::new("GET", "file:///etc/passwd".into(), "", Bytes::new()).is_err());
        assert!(Outgoing::new("G T", "http://x/".into(), "", Bytes::new()).is_err());
        let bad = Outgoing::new(
            "GET",
            "http://x/".into(),
            "authorization\nBearer sk-secret\r",
            Bytes::new(),
        )
        .unwrap();
        let err = bad.to_request(&[]).unwrap_err();
        assert!(!err.contains("sk-secret"), "{err}");
    }

    fn read(chunks: &[&'static [u8]]) -> Vec<u8> {
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, ()>(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        );
        futures::executor::block_on(
            without_bom(body)
                .map(|chunk| chunk.unwrap().to_vec())
                .concat(),
        )
    }

    #[test]
    fn a_byte_order_mark_is_taken_off_however_it_is_split() {
        assert_eq!(read(&[b"\xEF\xBB\xBFdata: 1\n\n"]), b"data: 1\n\n");
        assert_eq!(read(&[b"\xEF", b"\xBB", b"\xBFdata: 1"]), b"data: 1");
        assert_eq!(read(&[b"", b"\xEF\xBB", b"\xBF", b"x"]), b"x");
        assert_eq!(read(&[b"data: \xEF\xBB\xBF"]), b"data: \xEF\xBB\xBF");
        assert_eq!(read(&[b"\xEF"]), b"\xEF");
        assert_eq!(read(&[]), b"");
    }

    #[test]
    fn heads_and_body_kinds() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert("x-request-id", HeaderValue::from_static("req\"1"));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        assert_eq!(
            head_json(200, &headers),
            r#"{"status":200,"headers":[["content-type","application/json; charset=utf-8"],["x-request-id","req\"1"]]"#
        );
        assert_eq!(body_kind(&headers), BodyKind::Text);
        headers.insert(
            "content-type",
            HeaderValue::from_static("text/event-stream"),
        );
        assert_eq!(body_kind(&headers), BodyKind::Stream);
        headers.insert("content-type", HeaderValue::from_static("audio/mpeg"));
        assert_eq!(body_kind(&headers), BodyKind::Bytes);
        assert_eq!(body_kind(&HeaderMap::new()), BodyKind::Text);
    }
}
