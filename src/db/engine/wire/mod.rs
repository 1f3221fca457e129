//! The Postgres wire protocol in our hands: sessions opened and authenticated (`startup`, with
//! `tls`), requests written and their answers read by each connection's task (`channel`,
//! `driver`, `exchange`), CancelRequest (`cancel`), the server's errors (`db_error`).
//!
//! The message codec and SCRAM are the `postgres-protocol` crate's (the rust-postgres project's,
//! on which tokio-postgres is built). Owning the rest is what lets a request be any sequence of
//! Parse/Bind/Describe/Execute closed by one Sync (a user client's role, claims and statement in
//! one implicit transaction), rows go from the socket's buffer straight into the reply text, a
//! request be written by the caller's own thread, and every ReadyForQuery's transaction status
//! be checked.
//!
//! This layer knows nothing of pools, prepared-statement caches or retries: it reports what the
//! server did (`exchange::Answer`) or why it cannot say (`exchange::Failed`).

pub mod cancel;
pub mod channel;
pub mod db_error;
pub mod driver;
pub mod exchange;
pub mod socket;
pub mod startup;
#[cfg(test)]
mod testing;
pub mod tls;
