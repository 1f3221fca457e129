//! Fetches in flight, by the id the JS side gave them: each can be aborted by its caller's
//! `AbortSignal` wherever it is (a queued one leaves the queue, a running one is dropped, which
//! frees its slot and closes its connection's request) and is answered exactly once, whichever
//! of the fetch and the abort gets there first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::AbortHandle;

/// Where one fetch stands.
#[derive(Debug)]
enum Phase {
    /// Submitted, not yet queued or running.
    Starting,
    /// Waiting in a queue under this ticket.
    Queued(u64),
    /// Running in this task.
    Running(AbortHandle),
    /// Aborted before it could run: whatever it is later given, it gives back at once.
    Aborted,
}

pub struct Entry {
    phase: Mutex<Phase>,
    answered: AtomicBool,
}

impl Entry {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this is the first answer (the one that may reply).
    pub fn answer(&self) -> bool {
        !self.answered.swap(true, Ordering::AcqRel)
    }

    /// Records the queue ticket, unless the fetch was aborted meanwhile.
    pub fn queued(&self, ticket: u64) {
        let mut phase = self.phase();
        if matches!(*phase, Phase::Starting) {
            *phase = Phase::Queued(ticket);
        }
    }

    /// Records the running task; false when the fetch was aborted before it could start (the
    /// caller then aborts the task itself).
    pub fn running(&self, task: AbortHandle) -> bool {
        let mut phase = self.phase();
        if matches!(*phase, Phase::Aborted) {
            return false;
        }
        *phase = Phase::Running(task);
        true
    }

    pub fn is_aborted(&self) -> bool {
        matches!(*self.phase(), Phase::Aborted)
    }
}

/// What an abort must undo.
pub enum Undo {
    /// Take this ticket out of the queue.
    Withdraw(u64),
    /// The task was aborted; nothing else to do.
    Nothing,
}

#[derive(Default)]
pub struct InFlight {
    entries: Mutex<HashMap<u32, Arc<Entry>>>,
}

impl InFlight {
    fn entries(&self) -> MutexGuard<'_, HashMap<u32, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers fetch `id`.
    pub fn begin(&self, id: u32) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            phase: Mutex::new(Phase::Starting),
            answered: AtomicBool::new(false),
        });
        self.entries().insert(id, entry.clone());
        entry
    }

    /// Forgets fetch `id` once it has answered.
    pub fn end(&self, id: u32) {
        self.entries().remove(&id);
    }

    /// Aborts fetch `id`: None when it is unknown or has answered already; otherwise what the
    /// caller still has to undo, and the caller answers it (as aborted).
    pub fn abort(&self, id: u32) -> Option<Undo> {
        let entry = self.entries().remove(&id)?;
        if !entry.answer() {
            return None;
        }
        let mut phase = entry.phase();
        let undo = match std::mem::replace(&mut *phase, Phase::Aborted) {
            Phase::Queued(ticket) => Undo::Withdraw(ticket),
            Phase::Running(task) => {
                task.abort();
                Undo::Nothing
            }
            Phase::Starting | Phase::Aborted => Undo::Nothing,
        };
        Some(undo)
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_is_answered_once_whichever_comes_first() {
        let flights = InFlight::default();
        let first = flights.begin(1);
        first.queued(7);
        assert!(matches!(flights.abort(1), Some(Undo::Withdraw(7))));
        assert!(!first.answer(), "the abort answered it");
        assert!(first.is_aborted());
        assert!(flights.abort(1).is_none());

        let second = flights.begin(2);
        assert!(second.answer());
        flights.end(2);
        assert!(flights.abort(2).is_none(), "answered: nothing to abort");
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn aborting_a_running_fetch_drops_its_task() {
        let flights = InFlight::default();
        let entry = flights.begin(3);
        let task = tokio::spawn(std::future::pending::<()>());
        assert!(entry.running(task.abort_handle()));
        assert!(matches!(flights.abort(3), Some(Undo::Nothing)));
        assert!(task.await.unwrap_err().is_cancelled());

        let late = flights.begin(4);
        flights.abort(4);
        let task = tokio::spawn(std::future::pending::<()>());
        assert!(!late.running(task.abort_handle()), "aborted before it ran");
        task.abort();
    }
}
