//! How the pool's connections were held when a caller gave up waiting: what `POOL_TIMEOUT`
//! says, so that a timeout explains itself. A leaf: the error type renders it.

use std::time::Duration;

/// How the connections were occupied when a caller gave up waiting: what `POOL_TIMEOUT` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub open: usize,
    pub max: usize,
    /// Connections running pipelined statements, and how many statements they have in flight.
    pub pipelined: usize,
    pub statements: usize,
    /// Connections held whole by transactions.
    pub transactions: usize,
    /// Callers in line when the deadline passed, the one giving up included (the submission
    /// queue adds the statements waiting there for a runner).
    pub waiting: usize,
    /// How long the connection held longest has been held.
    pub oldest_held: Option<Duration>,
}

impl std::fmt::Display for Occupancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} connections open, {} running {} pipelined statements, {} held by \
             transactions; {} callers waiting",
            self.open, self.max, self.pipelined, self.statements, self.transactions, self.waiting
        )?;
        if let Some(oldest) = self.oldest_held {
            write!(
                f,
                "; the oldest holder has had its connection for {} ms",
                oldest.as_millis()
            )?;
        }
        Ok(())
    }
}
