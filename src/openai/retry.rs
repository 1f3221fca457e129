//! When an OpenAI request is retried, and how long it waits first.
//!
//! openai-node's policy, which our users already rely on: 408, 409, 429 and 5xx responses,
//! connection errors and timeouts are retried; 400/401/403/404/422 never; a 429 whose error code
//! is `insufficient_quota` never (waiting does not buy quota); an `x-should-retry` header
//! overrides the status. The wait honours `retry-after-ms`, then `retry-after` (seconds or an
//! HTTP date), capped at 60 s; otherwise exponential backoff from `retryDelay` with jitter.

use std::time::{Duration, SystemTime};

/// Longest server-requested wait we honour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Cap of our own exponential backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// What a failed attempt looked like, as far as the retry decision goes.
pub enum Failure<'a> {
    /// An HTTP response with this status, headers (lower-case names) and body.
    Status {
        status: u16,
        header: &'a dyn Fn(&str) -> Option<String>,
        error_code: Option<&'a str>,
    },
    /// The connection failed or the attempt timed out; nothing usable came back.
    Transport,
}

pub fn should_retry(failure: &Failure<'_>) -> bool {
    match failure {
        Failure::Transport => true,
        Failure::Status {
            status,
            header,
            error_code,
        } => {
            match header("x-should-retry").as_deref() {
                Some("true") => return true,
                Some("false") => return false,
                _ => {}
            }
            if *status == 429 && *error_code == Some("insufficient_quota") {
                return false;
            }
            matches!(status, 408 | 409 | 429) || *status >= 500
        }
    }
}

/// The server's requested wait, from `retry-after-ms` or `retry-after`, if it gave one we accept.
pub fn retry_after(header: &dyn Fn(&str) -> Option<String>, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        if let Some(wait) = capped_seconds(ms / 1000.0) {
            return Some(wait);
        }
    }
    let value = header("retry-after")?;
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return capped_seconds(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// A server-given number of seconds as a wait, at most `MAX_RETRY_AFTER` (capped before it
/// becomes a `Duration`: `1e20` seconds does not fit one); None for a negative or non-number.
pub fn capped_seconds(seconds: f64) -> Option<Duration> {
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// Exponential backoff from `base` for retry number `retry` (0 for the first), with up to 25%
/// jitter taken off so that clients that failed together do not come back together.
pub fn backoff(base: Duration, retry: u32, jitter: f64) -> Duration {
    let policy = crate::backoff::Backoff {
        base,
        first_immediate: false,
        cap: Some(MAX_BACKOFF),
    };
    policy.wait(retry, jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn status(
        code: u16,
        pairs: &'static [(&'static str, &'static str)],
        error_code: Option<&'static str>,
    ) -> bool {
        let h = headers(pairs);
        should_retry(&Failure::Status {
            status: code,
            header: &h,
            error_code,
        })
    }

    #[test]
    fn retries_what_openai_node_retries() {
        for code in [408, 409, 429, 500, 502, 503, 504] {
            assert!(status(code, &[], None), "{code}");
        }
        for code in [400, 401, 403, 404, 422] {
            assert!(!status(code, &[], None), "{code}");
        }
        assert!(should_retry(&Failure::Transport));
    }

    #[test]
    fn insufficient_quota_is_final_and_x_should_retry_overrides() {
        assert!(!status(429, &[], Some("insufficient_quota")));
        assert!(status(400, &[("x-should-retry", "true")], None));
        assert!(!status(503, &[("x-should-retry", "false")], None));
    }

    #[test]
    fn retry_after_headers_in_every_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "150")]), now),
            Some(Duration::from_millis(150))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3600")]), now),
            Some(MAX_RETRY_AFTER)
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(5));
        let leaked: &'static str = Box::leak(date.into_boxed_str());
        let pairs: &'static [(&'static str, &'static str)] =
            Box::leak(vec![("retry-after", leaked)].into_boxed_slice());
        assert_eq!(
            retry_after(&headers(pairs), now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        for huge in ["1e20", "1e308", "18446744073709551616"] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(vec![("retry-after", huge)].into_boxed_slice());
            assert_eq!(retry_after(&headers(pairs), now), Some(MAX_RETRY_AFTER));
        }
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1e25")]), now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "NaN")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let base = Duration::from_millis(1000);
        assert_eq!(backoff(base, 0, 0.0), Duration::from_millis(1000));
        assert_eq!(backoff(base, 1, 0.0), Duration::from_millis(2000));
        assert_eq!(backoff(base, 2, 1.0), Duration::from_millis(3000));
        assert_eq!(backoff(base, 30, 0.0), Duration::from_secs(8));
    }
}
