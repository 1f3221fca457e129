//! The Postgres engine: one pool of connections shared by pipelining, speaking the protocol
//! through our own layer (`wire`), and every statement's path through it (a lease, the
//! statement guard, the retry policy, the count in the stats), transactions on a connection of
//! their own, health, gauges and close.
//!
//! Depends on `codec` (parameters in, rows out) and `auth::context` (the role a statement runs
//! as); knows nothing of PostgREST.

pub mod config;
pub mod connect;
pub mod connection;
pub mod db_pool;
pub mod execute;
pub mod guard;
pub mod immediate;
pub mod lexer;
pub mod occupancy;
pub mod policy;
pub mod pool;
pub mod request;
pub mod retry;
pub mod snapshot;
pub mod timings;
pub mod transaction;
pub mod typeinfo;
pub mod wire;

pub use db_pool::DbPool;
