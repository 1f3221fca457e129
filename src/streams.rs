//! The open response streams of one pool, by id, each tied to whoever reads it.
//!
//! Removing a stream drops it, which aborts its HTTP request and frees its slot. A stream is
//! removed when it ends, when the JS side leaves its loop or its object is garbage-collected
//! (`cancel`), and, for a caller that walked away without either (an exception before the
//! `for await`, a reference kept but never read), once it has gone `requestTimeout` without a
//! read: ten forgotten streams must not stop the pool for good.

use crate::error::Code;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::forward::ByteStream;

struct Entry {
    stream: Arc<tokio::sync::Mutex<ByteStream>>,
    /// When a read last started or finished.
    touched: Arc<Mutex<Instant>>,
}

#[derive(Default)]
pub struct StreamRegistry {
    next_id: AtomicU32,
    open: Mutex<HashMap<u32, Entry>>,
    /// Streams dropped for want of a read, so that a late read hears why.
    expired: Mutex<HashSet<u32>>,
}

/// A stream handed out for one read; the read marks the stream as used when it starts and ends.
pub struct Reading {
    pub stream: Arc<tokio::sync::Mutex<ByteStream>>,
    touched: Arc<Mutex<Instant>>,
}

impl Reading {
    pub fn touch(&self) {
        *self.touched.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

impl StreamRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Entry>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `stream` and starts its watch: unread for `idle`, it is dropped.
    pub fn insert(self: &Arc<Self>, stream: ByteStream, idle: Duration) -> u32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let touched = Arc::new(Mutex::new(Instant::now()));
        self.lock().insert(
            id,
            Entry {
                stream: Arc::new(tokio::sync::Mutex::new(stream)),
                touched: touched.clone(),
            },
        );
        tokio::spawn(watch(Arc::downgrade(self), id, touched, idle));
        id
    }

    pub fn get(&self, id: u32) -> Option<Reading> {
        self.lock().get(&id).map(|entry| Reading {
            stream: entry.stream.clone(),
            touched: entry.touched.clone(),
        })
    }

    pub fn remove(&self, id: u32) {
        let removed = self.lock().remove(&id);
        drop(removed);
    }

    fn expire(&self, id: u32) {
        let removed = self.lock().remove(&id);
        if removed.is_some() {
            let mut expired = self.expired.lock().unwrap_or_else(|p| p.into_inner());
            // Bounded: ids nobody ever asks about again are forgotten wholesale.
            if expired.len() >= 10_000 {
                expired.clear();
            }
            expired.insert(id);
        }
        drop(removed);
    }

    /// Whether `id` was dropped for want of a read (asked once: the answer is then forgotten).
    pub fn take_expired(&self, id: u32) -> bool {
        self.expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
    }

    fn is_open(&self, id: u32) -> bool {
        self.lock().contains_key(&id)
    }

    fn is_being_read(&self, id: u32) -> bool {
        self.lock()
            .get(&id)
            .is_some_and(|entry| entry.stream.try_lock().is_err())
    }
}

/// What one read of a stream gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Bytes(bytes::Bytes),
    End,
    /// The stream ended badly and is closed: a code (`TIMEOUT`, `CONNECTION_FAILED`, `INTERNAL`)
    /// and a message.
    Failed(&'static str, String),
}

/// Reads the next chunk of stream `id`. Whatever goes wrong (a panic included), the stream is
/// removed at once, so its request and slot are freed.
pub async fn next_chunk(registry: &StreamRegistry, id: u32, idle: Duration) -> Chunk {
    use futures::FutureExt;
    let Some(reading) = registry.get(id) else {
        if registry.take_expired(id) {
            return Chunk::Failed(
                Code::Timeout.as_str(),
                format!(
                    "the stream was closed after {} ms without a read (requestTimeout)",
                    idle.as_millis()
                ),
            );
        }
        return Chunk::End;
    };
    reading.touch();
    let read = async {
        crate::faults::trip(crate::faults::Fault::StreamRead);
        reading.stream.lock().await.next().await
    };
    let next = std::panic::AssertUnwindSafe(read).catch_unwind().await;
    reading.touch();
    let chunk = match next {
        Ok(Ok(Some(bytes))) => return Chunk::Bytes(bytes),
        Ok(Ok(None)) => Chunk::End,
        Ok(Err(crate::forward::StreamError::Idle(idle))) => Chunk::Failed(
            Code::Timeout.as_str(),
            format!("no stream data for {} ms (timed out)", idle.as_millis()),
        ),
        Ok(Err(crate::forward::StreamError::Transport(detail))) => Chunk::Failed(
            Code::ConnectionFailed.as_str(),
            format!("connection error: {detail}"),
        ),
        Err(panic) => Chunk::Failed(
            Code::Internal.as_str(),
            crate::error::PoolError::from_panic(panic).to_string(),
        ),
    };
    registry.remove(id);
    chunk
}

/// Drops stream `id` once nobody has read it for `idle`. A read in progress is not idleness: the
/// read bounds its own wait for the next chunk.
async fn watch(
    registry: Weak<StreamRegistry>,
    id: u32,
    touched: Arc<Mutex<Instant>>,
    idle: Duration,
) {
    let mut wait = idle;
    loop {
        tokio::time::sleep(wait).await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        if !registry.is_open(id) {
            return;
        }
        if registry.is_being_read(id) {
            wait = idle;
            continue;
        }
        let since = touched.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if since < idle {
            wait = idle - since;
            continue;
        }
        registry.expire(id);
        return;
    }
}
