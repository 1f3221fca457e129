//! The request queue: at most `maxConcurrentRequests` in flight, the rest wait first come,
//! first served, optionally at most `maxQueueSize` of them.
//!
//! tokio's semaphore hands released permits to waiters in arrival order, which is the fairness
//! we promise. A `Slot` is the permit: dropping it (success, error, timeout, abandoned stream,
//! a JS callback that threw) frees the place, so no path can leak one. Counts are kept so that
//! `getQueueStatus()` is exact at any moment.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// `maxQueueSize` callers are already waiting.
    Full,
    /// The deadline passed while waiting.
    TimedOut,
    /// `close()` was called.
    Closed,
}

#[derive(Debug)]
struct Shared {
    semaphore: Arc<Semaphore>,
    max_concurrent: usize,
    max_queue: Option<usize>,
    waiting: AtomicUsize,
    closed: AtomicBool,
    released: Notify,
}

#[derive(Debug, Clone)]
pub struct SlotQueue(Arc<Shared>);

/// One place in flight; freed when dropped.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Return the place first, then wake close() to recount.
        drop(self.permit.take());
        self.shared.released.notify_waiters();
    }
}

/// Counts waiting callers, also when a wait is abandoned (its future dropped).
struct Waiting<'a>(&'a AtomicUsize);
impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SlotQueue {
    pub fn new(max_concurrent: usize, max_queue: Option<usize>) -> Self {
        SlotQueue(Arc::new(Shared {
            semaphore: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            max_queue,
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            released: Notify::new(),
        }))
    }

    /// Waits for a place until `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Result<Slot, QueueError> {
        let shared = &self.0;
        if shared.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        if let Ok(permit) = shared.semaphore.clone().try_acquire_owned() {
            return Ok(self.slot(permit));
        }
        let queued = shared.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        let _waiting = Waiting(&shared.waiting);
        if shared.max_queue.is_some_and(|max| queued > max) {
            return Err(QueueError::Full);
        }
        let wait = shared.semaphore.clone().acquire_owned();
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(Ok(permit)) => Ok(self.slot(permit)),
            Ok(Err(_)) => Err(QueueError::Closed),
            Err(_) => Err(QueueError::TimedOut),
        }
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            permit: Some(permit),
            shared: self.0.clone(),
        }
    }

    /// (callers waiting, requests in flight, the cap)
    pub fn status(&self) -> (usize, usize, usize) {
        let shared = &self.0;
        let in_flight = shared.max_concurrent
            - shared
                .semaphore
                .available_permits()
                .min(shared.max_concurrent);
        (
            shared.waiting.load(Ordering::Acquire),
            in_flight,
            shared.max_concurrent,
        )
    }

    /// Stops admitting and fails every waiter with `Closed`; resolves once nothing is in flight
    /// or at `deadline`, whichever comes first. Returns whether everything finished.
    pub async fn close(&self, deadline: Instant) -> bool {
        let shared = &self.0;
        shared.closed.store(true, Ordering::Release);
        // Waiters fail now; in-flight requests keep their permits until they finish.
        shared.semaphore.close();
        let drained = async {
            loop {
                let released = shared.released.notified();
                if shared.semaphore.available_permits() == shared.max_concurrent {
                    return;
                }
                released.await;
            }
        };
        tokio::time::timeout_at(deadline.into(), drained)
            .await
            .is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn caps_in_flight_and_counts_exactly() {
        let queue = SlotQueue::new(2, None);
        let a = queue.acquire(soon(1000)).await.unwrap();
        let _b = queue.acquire(soon(1000)).await.unwrap();
        assert_eq!(queue.status(), (0, 2, 2));
        let q = queue.clone();
        let waiter = tokio::spawn(async move { q.acquire(soon(5000)).await.map(|_| ()) });
        while queue.status().0 != 1 {
            tokio::task::yield_now().await;
        }
        drop(a);
        waiter.await.unwrap().unwrap();
        assert_eq!(queue.status(), (0, 1, 2));
    }

    #[tokio::test]
    async fn first_come_first_served() {
        let queue = SlotQueue::new(1, None);
        let held = queue.acquire(soon(1000)).await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..5 {
            let (q, order) = (queue.clone(), order.clone());
            handles.push(tokio::spawn(async move {
                let slot = q.acquire(soon(5000)).await.unwrap();
                order.lock().unwrap().push(i);
                drop(slot);
            }));
            while queue.status().0 != i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn full_timed_out_and_abandoned_waits_leave_no_trace() {
        let queue = SlotQueue::new(1, Some(1));
        let _held = queue.acquire(soon(1000)).await.unwrap();
        let q = queue.clone();
        let waiting = tokio::spawn(async move { q.acquire(soon(60_000)).await.map(|_| ()) });
        while queue.status().0 != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            queue.acquire(soon(1000)).await.unwrap_err(),
            QueueError::Full
        );
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(queue.status(), (0, 1, 1));
        assert_eq!(
            queue.acquire(soon(20)).await.unwrap_err(),
            QueueError::TimedOut
        );
        assert_eq!(queue.status(), (0, 1, 1));
    }

    #[tokio::test]
    async fn close_rejects_waiters_and_waits_for_in_flight() {
        let queue = SlotQueue::new(1, None);
        let held = queue.acquire(soon(1000)).await.unwrap();
        let q = queue.clone();
        let waiter = tokio::spawn(async move { q.acquire(soon(60_000)).await.map(|_| ()) });
        while queue.status().0 != 1 {
            tokio::task::yield_now().await;
        }
        let q = queue.clone();
        let closing = tokio::spawn(async move { q.close(soon(5000)).await });
        assert_eq!(waiter.await.unwrap().unwrap_err(), QueueError::Closed);
        drop(held);
        assert!(closing.await.unwrap());
        assert_eq!(
            queue.acquire(soon(10)).await.unwrap_err(),
            QueueError::Closed
        );
    }
}
