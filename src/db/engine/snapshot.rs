//! What `getStats()` and `/metrics` read of a database pool at one moment.

use crate::stats::OutcomeSnapshot;

/// Live gauges and counters.
#[derive(Debug)]
pub struct PoolSnapshot {
    pub total_connections: u32,
    /// Connections with no statement in flight and no transaction.
    pub idle_connections: u32,
    /// Statements waiting for a connection or for room in a connection's pipeline.
    pub waiting_requests: u64,
    pub acquire_timeouts: u64,
    pub outcomes: OutcomeSnapshot,
}
