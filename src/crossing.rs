//! The reply half of the batched crossing between Rust and JS, shared by both pools.
//!
//! A napi-rs `async fn` costs a promise, a deferred and a wake-up of the Node thread per call.
//! Instead a call is a synchronous submit that returns at once; its reply is appended here, and
//! one wake-up of the Node thread (a weak ThreadsafeFunction call) lets JS `drain` every reply
//! that arrived since, as one JSON array it parses once. JS owns the promises
//! (`lib/submissions.js`).
//!
//! A builder reply's body (JSON text that postgrest-js parses itself) travels beside the array
//! as a string of its own: inside the array it would be escaped here, validated, unescaped by
//! `JSON.parse` and then parsed again by postgrest-js.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use napi::bindgen_prelude::Status;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

/// Tells JS that replies are ready (a weak ThreadsafeFunction in production).
pub trait Notify: Send + Sync {
    fn notify(&self);
}

/// Replies not yet drained by JS: their ids, a JSON array text of the replies, in order, and
/// the bodies they refer to by index (text in `bodies`, bytes in `buffers`).
#[derive(Default, Debug, PartialEq)]
pub struct Drained {
    pub ids: Vec<u32>,
    pub json: String,
    pub bodies: Vec<String>,
    pub buffers: Vec<Vec<u8>>,
}

type Pending = Drained;

pub struct Replies {
    pending: Mutex<Pending>,
    notified: AtomicBool,
    notify: Box<dyn Notify>,
}

impl Replies {
    pub fn new(notify: Box<dyn Notify>) -> Self {
        Replies {
            pending: Mutex::new(Pending::default()),
            notified: AtomicBool::new(false),
            notify,
        }
    }

    /// Adds the reply (JSON text) of submission `id`; wakes JS unless a wake-up is pending.
    pub fn reply(&self, id: u32, json: &str) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let separator = if pending.ids.is_empty() { '[' } else { ',' };
            pending.json.push(separator);
            pending.json.push_str(json);
            pending.ids.push(id);
        }
        self.wake();
    }

    /// Adds a reply whose body goes beside the array: `head` is a JSON object's text without
    /// its closing brace, and the reply becomes `head,"body":N}` where N is the body's index
    /// in the drained batch's `bodies`.
    pub fn reply_with_body(&self, id: u32, head: &str, body: String) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let separator = if pending.ids.is_empty() { '[' } else { ',' };
            let index = pending.bodies.len();
            pending.json.push(separator);
            pending.json.push_str(head);
            pending.json.push_str(",\"body\":");
            pending.json.push_str(itoa::Buffer::new().format(index));
            pending.json.push('}');
            pending.bodies.push(body);
            pending.ids.push(id);
        }
        self.wake();
    }

    /// `reply_with_body` for a body of bytes: the reply becomes `head,"buffer":N}`, N indexing
    /// the drained batch's `buffers`.
    pub fn reply_with_bytes(&self, id: u32, head: &str, bytes: Vec<u8>) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let separator = if pending.ids.is_empty() { '[' } else { ',' };
            let index = pending.buffers.len();
            pending.json.push(separator);
            pending.json.push_str(head);
            pending.json.push_str(",\"buffer\":");
            pending.json.push_str(itoa::Buffer::new().format(index));
            pending.json.push('}');
            pending.buffers.push(bytes);
            pending.ids.push(id);
        }
        self.wake();
    }

    /// Adds a packed reply (a large raw statement reply, `db::codec::packed`): `head` is a JSON
    /// object's text without its last two closing braces (it ends inside its `packed` object),
    /// which becomes `head,"buffer":N,"text":M}}`: N indexes the batch's `buffers`, M its
    /// `bodies`.
    pub fn reply_packed(&self, id: u32, head: &str, buffer: Vec<u8>, text: String) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let separator = if pending.ids.is_empty() { '[' } else { ',' };
            let (buffer_at, text_at) = (pending.buffers.len(), pending.bodies.len());
            pending.json.push(separator);
            pending.json.push_str(head);
            pending.json.push_str(",\"buffer\":");
            pending.json.push_str(itoa::Buffer::new().format(buffer_at));
            pending.json.push_str(",\"text\":");
            pending.json.push_str(itoa::Buffer::new().format(text_at));
            pending.json.push_str("}}");
            pending.buffers.push(buffer);
            pending.bodies.push(text);
            pending.ids.push(id);
        }
        self.wake();
    }

    fn wake(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.notify.notify();
        }
    }

    /// Every reply since the last drain: their ids, the replies as one JSON array text, and
    /// the bodies that replies refer to.
    pub fn drain(&self) -> Drained {
        // Cleared first: a reply that lands during the take notifies again (at worst, one empty
        // drain), and none is left waiting without a notification.
        self.notified.store(false, Ordering::Release);
        let mut drained =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if drained.json.is_empty() {
            drained.json.push('[');
        }
        drained.json.push(']');
        drained
    }
}

/// Replies drained in one batch: `json` is a JSON array with one reply per id, in order;
/// a reply's `body` is an index into `bodies` (text), its `buffer` one into `buffers` (bytes).
#[napi(object)]
pub struct NativeReplies {
    pub ids: Vec<u32>,
    pub json: String,
    pub bodies: Vec<String>,
    pub buffers: Vec<napi::bindgen_prelude::Buffer>,
}

impl NativeReplies {
    pub fn from_parts(drained: Drained) -> Self {
        NativeReplies {
            ids: drained.ids,
            json: drained.json,
            bodies: drained.bodies,
            buffers: drained.buffers.into_iter().map(Into::into).collect(),
        }
    }

    pub fn empty() -> Self {
        NativeReplies {
            ids: Vec::new(),
            json: "[]".into(),
            bodies: Vec::new(),
            buffers: Vec::new(),
        }
    }
}

/// One read of a response stream: its bytes, or `done`, or the error that closed it.
#[napi(object)]
pub struct NativeChunk {
    pub bytes: Option<napi::bindgen_prelude::Buffer>,
    pub done: bool,
    pub error: Option<NativeChunkError>,
}

#[napi(object)]
pub struct NativeChunkError {
    pub code: String,
    pub message: String,
}

impl Replies {
    /// Sends the reply of HTTP fetch `id`: a text body beside the batch as a string, bytes as a
    /// buffer, a stream registered (unread for `idle`, it is closed) and named by its id.
    pub fn send_fetched(
        &self,
        reply: crate::forward::Reply,
        streams: &std::sync::Arc<crate::streams::StreamRegistry>,
        idle: std::time::Duration,
        id: u32,
    ) {
        use crate::forward::{BodyKind, Reply};
        match reply {
            Reply::Whole { head, body, kind } => {
                let text = (kind == BodyKind::Text)
                    .then(|| String::from_utf8(body.to_vec()).ok())
                    .flatten();
                match text {
                    Some(text) => self.reply_with_body(id, &head, text),
                    None => self.reply_with_bytes(id, &head, body.to_vec()),
                }
            }
            Reply::Stream { head, stream } => {
                let stream_id = streams.insert(stream, idle);
                let mut reply = head;
                reply.push_str(",\"stream\":");
                reply.push_str(itoa::Buffer::new().format(stream_id));
                reply.push('}');
                self.reply(id, &reply);
            }
        }
    }
}

impl From<crate::streams::Chunk> for NativeChunk {
    fn from(chunk: crate::streams::Chunk) -> Self {
        use crate::streams::Chunk;
        match chunk {
            Chunk::Bytes(bytes) => NativeChunk {
                bytes: Some(bytes.to_vec().into()),
                done: false,
                error: None,
            },
            Chunk::End => NativeChunk {
                bytes: None,
                done: true,
                error: None,
            },
            Chunk::Failed(code, message) => NativeChunk {
                bytes: None,
                done: true,
                error: Some(NativeChunkError {
                    code: code.to_string(),
                    message,
                }),
            },
        }
    }
}

/// The JS callback that drains replies, called without arguments; weak, so that it never keeps
/// Node alive by itself (the facade keeps it alive while statements are pending).
pub type DrainCallback = ThreadsafeFunction<(), (), (), Status, false, true>;

pub struct CallDrain(pub DrainCallback);

impl Notify for CallDrain {
    fn notify(&self) {
        self.0.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    struct Count(Arc<AtomicUsize>);
    impl Notify for Count {
        fn notify(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn replies_batch_into_one_array_and_one_wake_up() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let replies = Replies::new(Box::new(Count(wakes.clone())));
        replies.reply(7, r#"{"a":1}"#);
        replies.reply(3, r#"{"b":2}"#);
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        let drained = replies.drain();
        assert_eq!(
            (drained.ids, drained.json.as_str()),
            (vec![7, 3], r#"[{"a":1},{"b":2}]"#)
        );
        assert_eq!(replies.drain().json, "[]");
        replies.reply(1, "null");
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn bodies_travel_beside_the_array_by_index() {
        let replies = Replies::new(Box::new(Count(Arc::new(AtomicUsize::new(0)))));
        replies.reply_with_body(1, r#"{"status":200"#, r#"[{"a":"\""}]"#.into());
        replies.reply(2, r#"{"status":204,"body":null}"#);
        replies.reply_with_body(3, r#"{"status":201"#, "[]".into());
        replies.reply_with_bytes(4, r#"{"status":200"#, vec![0, 255]);
        let Drained {
            ids,
            json,
            bodies,
            buffers,
        } = replies.drain();
        assert_eq!(ids, vec![1, 2, 3, 4]);
        assert_eq!(
            json,
            r#"[{"status":200,"body":0},{"status":204,"body":null},{"status":201,"body":1},{"status":200,"buffer":0}]"#
        );
        assert_eq!(bodies, vec![r#"[{"a":"\""}]"#.to_string(), "[]".into()]);
        assert_eq!(buffers, vec![vec![0, 255]]);
    }

    #[test]
    fn a_packed_reply_names_its_buffer_and_text() {
        let replies = Replies::new(Box::new(Count(Arc::new(AtomicUsize::new(0)))));
        replies.reply_with_bytes(1, r#"{"status":200"#, vec![9]);
        replies.reply_packed(
            2,
            r#"{"rowCount":9,"packed":{"rows":9"#,
            vec![1, 2],
            "ab".into(),
        );
        let drained = replies.drain();
        assert_eq!(
            drained.json,
            r#"[{"status":200,"buffer":0},{"rowCount":9,"packed":{"rows":9,"buffer":1,"text":0}}]"#
        );
        assert_eq!(drained.buffers, vec![vec![9], vec![1, 2]]);
        assert_eq!(drained.bodies, vec!["ab".to_string()]);
    }
}
