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
/// the bodies they refer to by index.
#[derive(Default)]
struct Pending {
    ids: Vec<u32>,
    json: String,
    bodies: Vec<String>,
}

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

    fn wake(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            self.notify.notify();
        }
    }

    /// Every reply since the last drain: their ids, the replies as one JSON array text, and
    /// the bodies that replies refer to.
    pub fn drain(&self) -> (Vec<u32>, String, Vec<String>) {
        // Cleared first: a reply that lands during the take notifies again (at worst, one empty
        // drain), and none is left waiting without a notification.
        self.notified.store(false, Ordering::Release);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut json = std::mem::take(&mut pending.json);
        if json.is_empty() {
            json.push('[');
        }
        json.push(']');
        (
            std::mem::take(&mut pending.ids),
            json,
            std::mem::take(&mut pending.bodies),
        )
    }
}

/// Replies drained in one batch: `json` is a JSON array with one reply per id, in order;
/// a builder reply's `body` is an index into `bodies`.
#[napi(object)]
pub struct NativeReplies {
    pub ids: Vec<u32>,
    pub json: String,
    pub bodies: Vec<String>,
}

impl NativeReplies {
    pub fn from_parts((ids, json, bodies): (Vec<u32>, String, Vec<String>)) -> Self {
        NativeReplies { ids, json, bodies }
    }

    pub fn empty() -> Self {
        NativeReplies {
            ids: Vec::new(),
            json: "[]".into(),
            bodies: Vec::new(),
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
        assert_eq!(
            replies.drain(),
            (vec![7, 3], r#"[{"a":1},{"b":2}]"#.into(), vec![])
        );
        assert_eq!(replies.drain(), (vec![], "[]".into(), vec![]));
        replies.reply(1, "null");
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn bodies_travel_beside_the_array_by_index() {
        let replies = Replies::new(Box::new(Count(Arc::new(AtomicUsize::new(0)))));
        replies.reply_with_body(1, r#"{"status":200"#, r#"[{"a":"\""}]"#.into());
        replies.reply(2, r#"{"status":204,"body":null}"#);
        replies.reply_with_body(3, r#"{"status":201"#, "[]".into());
        let (ids, json, bodies) = replies.drain();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(
            json,
            r#"[{"status":200,"body":0},{"status":204,"body":null},{"status":201,"body":1}]"#
        );
        assert_eq!(bodies, vec![r#"[{"a":"\""}]"#.to_string(), "[]".into()]);
    }
}
