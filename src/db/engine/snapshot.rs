//! What `getStats()` and `/metrics` read of a database pool at one moment.

use crate::stats::{HistogramSnapshot, OutcomeSnapshot};

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
    /// From asking for a place on a connection to getting one, and from getting it to giving it
    /// back (`db.client.connection.wait_time` and `.use_time`).
    pub wait_time: HistogramSnapshot,
    pub use_time: HistogramSnapshot,
}
