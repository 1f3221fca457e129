//! connection-pools: Postgres and OpenAI pools for Node.js, written in Rust.
//!
//! Each module owns one job; the napi classes (`db::NativeDatabasePool`) stay thin and the logic
//! they call is plain Rust with its own unit tests.
#![deny(clippy::all)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod backoff;
pub mod crossing;
pub mod db;
pub mod error;
pub mod faults;
pub mod forward;
#[cfg(test)]
mod fuzz;
pub mod http;
pub mod inflight;
pub mod metrics;
pub mod metrics_napi;
mod metrics_otel;
pub mod openai;
pub mod options;
pub mod secrets;
pub mod services;
pub mod stats;
pub mod streams;
