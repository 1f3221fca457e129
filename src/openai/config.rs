//! `OpenAIPool.initialize(config)`: the options, their defaults, and their validation.
//!
//! As for the database pool, options arrive as JSON text so that every malformed value gets one
//! `INVALID_CONFIG` message. The API key is kept for the Authorization header and never shown:
//! `getPoolConfig()` reports only whether one is set.

use std::time::Duration;

use serde::Deserialize;

use crate::error::PoolError;
use crate::options::whole_number;

struct Defaults;
impl Defaults {
    const MAX_CONCURRENT_REQUESTS: f64 = 10.0;
    const REQUEST_TIMEOUT_MS: f64 = 60_000.0;
    const MAX_RETRIES: f64 = 3.0;
    const RETRY_DELAY_MS: f64 = 1_000.0;
    const TIMEOUT_MS: f64 = 60_000.0;
    const BASE_URL: &'static str = "https://api.openai.com/v1";
}

const MAX_DURATION_MS: f64 = 2_147_483_647.0;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    max_concurrent_requests: Option<f64>,
    request_timeout: Option<f64>,
    max_retries: Option<f64>,
    retry_delay: Option<f64>,
    timeout: Option<f64>,
    api_key: Option<String>,
    #[serde(rename = "baseURL")]
    base_url: Option<String>,
    organization: Option<String>,
    project: Option<String>,
    max_queue_size: Option<f64>,
    requests_per_minute: Option<f64>,
    tokens_per_minute: Option<f64>,
    rate_limit_window_ms: Option<f64>,
    priority_aging_ms: Option<f64>,
    redis_url: Option<String>,
    limit_key: Option<String>,
    lease_ms: Option<f64>,
    leak_detection_threshold: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigEnv {
    #[serde(rename = "OPENAI_API_KEY")]
    api_key: Option<String>,
    #[serde(rename = "OPENAI_BASE_URL")]
    base_url: Option<String>,
    #[serde(rename = "OPENAI_ORG_ID")]
    organization: Option<String>,
    #[serde(rename = "OPENAI_PROJECT_ID")]
    project: Option<String>,
    #[serde(rename = "CONNECTION_POOLS_REDIS_URL")]
    redis_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub max_concurrent_requests: usize,
    /// One HTTP attempt.
    pub request_timeout: Duration,
    pub max_retries: u32,
    pub retry_delay: Duration,
    /// The whole call: queue wait, attempts and backoff.
    pub timeout: Duration,
    pub api_key: Option<String>,
    /// Without a trailing slash.
    pub base_url: String,
    /// `base_url` as shown (`getPoolConfig()`, errors): user info and secret parameters masked.
    pub masked_base_url: String,
    pub organization: Option<String>,
    pub project: Option<String>,
    pub max_queue_size: Option<usize>,
    /// Budgets per `rate_limit_window` (a minute unless a spec shortens it).
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub rate_limit_window: Duration,
    pub priority_aging: Duration,
    /// Limits shared with every process on the same Redis and key; `None` without Redis.
    pub shared: Option<SharedConfig>,
    /// A slot held by `executeRequest`, or a stream open, longer than this is reported with the
    /// stack that took it (the JS layer reports); `None` when off.
    pub leak_detection_threshold: Option<Duration>,
}

/// `redisUrl`, `limitKey`, `leaseMs`.
#[derive(Clone)]
pub struct SharedConfig {
    pub redis_url: String,
    pub key: String,
    pub lease: Duration,
}

impl std::fmt::Debug for SharedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("SharedConfig")
            .field("key", &self.key)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl SharedConfig {
    /// The options of the shared limits, for `maxConcurrentRequests` and the budgets of `config`.
    pub fn options(&self, config: &OpenAiConfig) -> super::shared::SharedOptions {
        super::shared::SharedOptions {
            redis_url: self.redis_url.clone(),
            key: self.key.clone(),
            lease: self.lease,
            max_concurrent: config.max_concurrent_requests,
            requests_per_window: config.requests_per_minute,
            tokens_per_window: config.tokens_per_minute,
            window: config.rate_limit_window,
        }
    }
}

impl OpenAiConfig {
    /// The queue's limits.
    pub fn limits(&self) -> super::queue::Limits {
        super::queue::Limits {
            max_concurrent: self.max_concurrent_requests,
            max_queue: self.max_queue_size,
            requests_per_window: self.requests_per_minute,
            tokens_per_window: self.tokens_per_minute,
            window: self.rate_limit_window,
            aging: self.priority_aging,
        }
    }
}

fn invalid(message: String) -> PoolError {
    PoolError::InvalidConfig(message)
}

impl OpenAiConfig {
    pub fn from_json(config_json: &str, env_json: &str) -> Result<Self, PoolError> {
        let raw: RawConfig = crate::options::parse(config_json)?;
        let env: ConfigEnv = serde_json::from_str(env_json).unwrap_or_default();

        let base_url = raw
            .base_url
            .or(env.base_url)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| Defaults::BASE_URL.to_string());
        let parsed = url::Url::parse(&base_url)
            .map_err(|e| invalid(format!("baseURL is not a valid URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(
                "baseURL must start with http:// or https://".into(),
            ));
        }
        let max_queue_size = match raw.max_queue_size {
            None => None,
            Some(v) => Some(whole_number("maxQueueSize", Some(v), 0.0, 0.0, 1e9)? as usize),
        };
        let budget = |name: &str, value: Option<f64>| -> Result<Option<u64>, PoolError> {
            value
                .map(|v| whole_number(name, Some(v), 0.0, 1.0, 1e12).map(|n| n as u64))
                .transpose()
        };
        let shared = match raw
            .redis_url
            .or(env.redis_url)
            .filter(|u| !u.trim().is_empty())
        {
            None => None,
            Some(url) => {
                let parsed = url::Url::parse(url.trim())
                    .map_err(|_| invalid("redisUrl is not a valid URL".into()))?;
                if !matches!(parsed.scheme(), "redis" | "rediss" | "unix") {
                    return Err(invalid(
                        "redisUrl must start with redis://, rediss:// or unix://".into(),
                    ));
                }
                let key = raw
                    .limit_key
                    .unwrap_or_else(|| "connection-pools:openai".into());
                if key.is_empty() || key.len() > 200 {
                    return Err(invalid("limitKey must be 1 to 200 characters".into()));
                }
                Some(SharedConfig {
                    redis_url: url.trim().to_string(),
                    key,
                    lease: Duration::from_millis(whole_number(
                        "leaseMs",
                        raw.lease_ms,
                        15_000.0,
                        100.0,
                        MAX_DURATION_MS,
                    )? as u64),
                })
            }
        };
        let leak_ms = whole_number(
            "leakDetectionThreshold",
            raw.leak_detection_threshold,
            0.0,
            0.0,
            MAX_DURATION_MS,
        )? as u64;
        Ok(OpenAiConfig {
            shared,
            leak_detection_threshold: (leak_ms > 0).then(|| Duration::from_millis(leak_ms)),
            requests_per_minute: budget("requestsPerMinute", raw.requests_per_minute)?,
            tokens_per_minute: budget("tokensPerMinute", raw.tokens_per_minute)?,
            rate_limit_window: Duration::from_millis(whole_number(
                "rateLimitWindowMs",
                raw.rate_limit_window_ms,
                60_000.0,
                1.0,
                MAX_DURATION_MS,
            )? as u64),
            priority_aging: Duration::from_millis(whole_number(
                "priorityAgingMs",
                raw.priority_aging_ms,
                10_000.0,
                0.0,
                MAX_DURATION_MS,
            )? as u64),
            max_concurrent_requests: whole_number(
                "maxConcurrentRequests",
                raw.max_concurrent_requests,
                Defaults::MAX_CONCURRENT_REQUESTS,
                1.0,
                10_000.0,
            )? as usize,
            request_timeout: Duration::from_millis(whole_number(
                "requestTimeout",
                raw.request_timeout,
                Defaults::REQUEST_TIMEOUT_MS,
                1.0,
                MAX_DURATION_MS,
            )? as u64),
            max_retries: whole_number(
                "maxRetries",
                raw.max_retries,
                Defaults::MAX_RETRIES,
                0.0,
                100.0,
            )? as u32,
            retry_delay: Duration::from_millis(whole_number(
                "retryDelay",
                raw.retry_delay,
                Defaults::RETRY_DELAY_MS,
                0.0,
                MAX_DURATION_MS,
            )? as u64),
            timeout: Duration::from_millis(whole_number(
                "timeout",
                raw.timeout,
                Defaults::TIMEOUT_MS,
                1.0,
                MAX_DURATION_MS,
            )? as u64),
            api_key: raw.api_key.or(env.api_key).filter(|k| !k.is_empty()),
            base_url: base_url.trim_end_matches('/').to_string(),
            masked_base_url: crate::secrets::masked(&parsed, false)
                .trim_end_matches('/')
                .to_string(),
            organization: raw.organization.or(env.organization),
            project: raw.project.or(env.project),
            max_queue_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_seed() {
        let c = OpenAiConfig::from_json("{}", "{}").unwrap();
        assert_eq!(c.max_concurrent_requests, 10);
        assert_eq!(c.request_timeout, Duration::from_millis(60_000));
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.retry_delay, Duration::from_millis(1000));
        assert_eq!(c.timeout, Duration::from_millis(60_000));
        assert_eq!(c.base_url, "https://api.openai.com/v1");
        assert_eq!(c.max_queue_size, None);
        assert_eq!(c.api_key, None);
    }

    #[test]
    fn env_supplies_key_and_url() {
        let c = OpenAiConfig::from_json(
            r#"{"maxQueueSize": 5}"#,
            r#"{"OPENAI_API_KEY":"sk-test","OPENAI_BASE_URL":"http://127.0.0.1:9/v1/"}"#,
        )
        .unwrap();
        assert_eq!(c.api_key.as_deref(), Some("sk-test"));
        assert_eq!(c.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(c.max_queue_size, Some(5));
    }

    #[test]
    fn bad_values_are_invalid_config() {
        for bad in [
            r#"{"maxConcurrentRequests":0}"#,
            r#"{"requestTimeout":-5}"#,
            r#"{"maxRetries":1.5}"#,
            r#"{"timeout":"60s"}"#,
            r#"{"baseURL":"ftp://x"}"#,
            r#"{"maxConcurentRequests":3}"#,
        ] {
            let err = OpenAiConfig::from_json(bad, "{}").unwrap_err();
            assert_eq!(err.code(), "INVALID_CONFIG", "{bad}");
        }
    }
}
