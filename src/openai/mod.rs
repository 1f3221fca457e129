//! The OpenAI pool: one HTTP client, a fair queue every request passes, retries, accounting.

pub mod queue;
pub mod ratelimit;
pub mod retry;
