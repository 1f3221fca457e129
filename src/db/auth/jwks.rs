//! The public keys behind user tokens signed with Supabase's asymmetric signing keys (a JWKS).
//!
//! Supabase publishes them at `<project>/auth/v1/.well-known/jwks.json`. The set is fetched
//! lazily (the admin client never needs it), cached for the response's `Cache-Control: max-age`
//! (clamped to `MIN_TTL..=MAX_TTL`, `DEFAULT_TTL` without one), and fetched again early only when
//! a token names a `kid` the set lacks, which is how a rotation shows up. That early refetch is
//! allowed once per `UNKNOWN_KID_COOLDOWN`, so a flood of tokens with made-up kids costs the auth
//! server one request, not one each. Fetches are single-flight: callers that need the same fetch
//! wait for it instead of starting their own. A failed fetch is not retried for `FAILURE_BACKOFF`
//! (keys already known keep verifying meanwhile), and every fetch is bounded by a timeout.
//!
//! Each key is used only with the one algorithm it declares or its type implies (`alg`, `kty`,
//! `crv`): an EC P-256 key verifies ES256 and nothing else, an RSA key RS256 (or its declared
//! `alg`). Symmetric (`oct`) keys in a published set are ignored: HS256 is verified with
//! `jwtSecret` only, so a public key can never be used as an HMAC secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use bytes::Bytes;
use http_body_util::Full;

use crate::http::{header, read_body, Request};

/// Cache lifetime when the response has no `max-age` (Supabase's own clients use 10 minutes).
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// Even `max-age=0` is cached this long: the auth server is not asked once per statement.
pub const MIN_TTL: Duration = Duration::from_secs(60);
/// A removed (revoked) key stops verifying within this long at most.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// At most one early refetch for an unknown `kid` in this long.
pub const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
/// After a failed fetch, no new attempt for this long; tokens needing it are refused at once.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// The longest a key set fetch may take (also bounded by `connectionTimeout`).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A key set larger than this is refused (Supabase's holds a handful of keys, ~1 KB).
const MAX_BODY_BYTES: usize = 1 << 20;

/// A public key and the one algorithm it verifies.
pub struct VerifyKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The algorithm a published key may verify, or `None` if it is not usable for user tokens.
fn algorithm_for(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    let implied = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::RSA(_) => match declared {
            None => Algorithm::RS256,
            Some(KeyAlgorithm::RS256) => Algorithm::RS256,
            Some(KeyAlgorithm::RS384) => Algorithm::RS384,
            Some(KeyAlgorithm::RS512) => Algorithm::RS512,
            Some(KeyAlgorithm::PS256) => Algorithm::PS256,
            Some(KeyAlgorithm::PS384) => Algorithm::PS384,
            Some(KeyAlgorithm::PS512) => Algorithm::PS512,
            Some(_) => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) if params.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    // A declared `alg` that disagrees with the key's type (ES256 on a P-384 key) voids the key.
    let agrees = match declared {
        None => true,
        Some(declared) => format!("{declared:?}") == format!("{implied:?}"),
    };
    agrees.then_some(implied)
}

/// The usable keys of a JWKS document, by `kid`. Keys this library cannot use (no `kid`, an
/// unknown type, an encryption key, a secret) are skipped rather than failing the whole set.
pub fn parse_key_set(body: &[u8]) -> Result<HashMap<String, Arc<VerifyKey>>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(body)
        .map_err(|_| "the key set is not a JWKS document ({\"keys\": [...]})".to_string())?;
    let mut keys = HashMap::new();
    for value in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let (Some(kid), Some(algorithm)) = (jwk.common.key_id.clone(), algorithm_for(&jwk)) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, Arc::new(VerifyKey { algorithm, key }));
        }
    }
    Ok(keys)
}

/// How long a fetched key set is trusted, from its `Cache-Control` header.
pub fn cache_ttl(cache_control: Option<&str>) -> Duration {
    let max_age = cache_control.and_then(|header| {
        header.split(',').find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())?
        })
    });
    max_age.map_or(DEFAULT_TTL, |secs| {
        Duration::from_secs(secs).clamp(MIN_TTL, MAX_TTL)
    })
}

/// What the cache can say about a `kid` without fetching.
enum Cached {
    Key(Arc<VerifyKey>),
    /// A fetch could find it (the set is stale, or the kid is new and the cooldown allows).
    Fetch,
    Refused(String),
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<VerifyKey>>,
    fresh_until: Option<Instant>,
    last_unknown_kid_fetch: Option<Instant>,
    last_failure: Option<(Instant, String)>,
}

/// One pool's cached key set.
pub struct KeySet {
    url: String,
    fetch_timeout: Duration,
    http: crate::http::Transport,
    state: Mutex<State>,
    /// Held while fetching, so that concurrent callers share one fetch.
    fetching: tokio::sync::Mutex<()>,
}

impl KeySet {
    pub fn new(url: String, fetch_timeout: Duration) -> Result<Self, String> {
        // One fetch at a time (see `fetching`); hyper follows no redirects.
        let http = crate::http::Transport::new(crate::http::TransportOptions {
            max_connections: 1,
            connection_wait: fetch_timeout,
            idle_timeout: Duration::from_secs(90),
        });
        Ok(KeySet {
            url,
            fetch_timeout,
            http,
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, kid: &str, now: Instant) -> Cached {
        let state = self.state();
        let fresh = state.fresh_until.is_some_and(|until| now < until);
        if let Some(key) = state.keys.get(kid) {
            // A stale key still verifies while the endpoint is failing (stale-if-error).
            let failing = state
                .last_failure
                .as_ref()
                .is_some_and(|(at, _)| now.duration_since(*at) < FAILURE_BACKOFF);
            if fresh || failing {
                return Cached::Key(key.clone());
            }
            return Cached::Fetch;
        }
        if let Some((at, reason)) = &state.last_failure {
            if now.duration_since(*at) < FAILURE_BACKOFF {
                return Cached::Refused(format!(
                    "the signing keys could not be fetched ({reason})"
                ));
            }
        }
        let cooling = state
            .last_unknown_kid_fetch
            .is_some_and(|at| now.duration_since(at) < UNKNOWN_KID_COOLDOWN);
        if fresh && cooling {
            return Cached::Refused(format!("no signing key has kid '{}'", printable(kid)));
        }
        Cached::Fetch
    }

    /// The key for `kid` if the cache has it; `Ok(None)` if a fetch is needed to tell.
    pub fn cached_key(&self, kid: &str) -> Result<Option<Arc<VerifyKey>>, String> {
        match self.cached(kid, Instant::now()) {
            Cached::Key(key) => Ok(Some(key)),
            Cached::Fetch => Ok(None),
            Cached::Refused(reason) => Err(reason),
        }
    }

    /// The key for `kid`, fetching the set if the cache cannot answer.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyKey>, String> {
        if let Some(key) = self.cached_key(kid)? {
            return Ok(key);
        }
        let _fetching = self.fetching.lock().await;
        // Whoever held the lock before us may have fetched what we need, or spent the budget.
        let now = Instant::now();
        match self.cached(kid, now) {
            Cached::Key(key) => return Ok(key),
            Cached::Refused(reason) => return Err(reason),
            Cached::Fetch => {}
        }
        {
            let mut state = self.state();
            if state.fresh_until.is_some_and(|until| now < until) {
                state.last_unknown_kid_fetch = Some(now);
            }
        }
        let fetched = self.fetch().await;
        let mut state = self.state();
        match fetched {
            Ok((keys, ttl)) => {
                state.keys = keys;
                state.fresh_until = Some(Instant::now() + ttl);
                state.last_failure = None;
            }
            Err(reason) => {
                state.last_failure = Some((Instant::now(), reason.clone()));
                return Err(format!("the signing keys could not be fetched ({reason})"));
            }
        }
        state
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| format!("no signing key has kid '{}'", printable(kid)))
    }

    async fn fetch(&self) -> Result<(HashMap<String, Arc<VerifyKey>>, Duration), String> {
        let attempt = async {
            let request = Request::get(&self.url)
                .header(header::ACCEPT, "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|_| "the key endpoint URL is not a valid URI".to_string())?;
            let response = self
                .http
                .send(request)
                .await
                .map_err(|_| "the key endpoint is unreachable".to_string())?;
            if !response.status().is_success() {
                return Err(format!("the key endpoint answered {}", response.status()));
            }
            let ttl = cache_ttl(
                response
                    .headers()
                    .get(header::CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok()),
            );
            // Errors name no URL: it is configuration, and could carry a token in a query.
            let body = read_body(response.into_body(), MAX_BODY_BYTES)
                .await
                .map_err(|_| {
                    "the key set could not be read (or is larger than 1 MiB)".to_string()
                })?;
            Ok((parse_key_set(&body)?, ttl))
        };
        match tokio::time::timeout(self.fetch_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the key endpoint did not answer within {} ms",
                self.fetch_timeout.as_millis()
            )),
        }
    }
}

/// A kid from an untrusted token, shortened and stripped for an error message.
pub fn printable(kid: &str) -> String {
    kid.chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_P256: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256","use":"sig",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
    const RSA: &str = r#"{"kty":"RSA","kid":"rsa1","e":"AQAB",
        "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;

    fn set(keys: &[&str]) -> Vec<u8> {
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    #[test]
    fn each_key_gets_the_one_algorithm_it_declares_or_implies() {
        let keys = parse_key_set(&set(&[EC_P256, RSA])).unwrap();
        assert_eq!(keys["ec1"].algorithm, Algorithm::ES256);
        assert_eq!(keys["rsa1"].algorithm, Algorithm::RS256);
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let secret = r#"{"kty":"oct","kid":"hs","k":"c2VjcmV0"}"#;
        let encryption = EC_P256
            .replace(r#""use":"sig""#, r#""use":"enc""#)
            .replace("ec1", "enc");
        let wrong_alg = EC_P256.replace("ES256", "ES384").replace("ec1", "mismatch");
        let no_kid = RSA.replace(r#""kid":"rsa1","#, "");
        let unknown = r#"{"kty":"XYZ","kid":"odd"}"#;
        let keys = parse_key_set(&set(&[
            secret,
            &encryption,
            &wrong_alg,
            &no_kid,
            unknown,
            EC_P256,
        ]))
        .unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["ec1"]);
    }

    #[test]
    fn a_document_without_keys_is_an_error() {
        assert!(parse_key_set(b"{}").is_err());
        assert!(parse_key_set(b"<html>").is_err());
        assert!(parse_key_set(br#"{"keys":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn cache_lifetime_follows_max_age_within_bounds() {
        assert_eq!(cache_ttl(None), DEFAULT_TTL);
        assert_eq!(
            cache_ttl(Some("public, max-age=900")),
            Duration::from_secs(900)
        );
        assert_eq!(
            cache_ttl(Some("Max-Age=\"120\", must-revalidate")),
            Duration::from_secs(120)
        );
        assert_eq!(cache_ttl(Some("max-age=0")), MIN_TTL);
        assert_eq!(cache_ttl(Some("max-age=31536000")), MAX_TTL);
        assert_eq!(cache_ttl(Some("no-cache")), DEFAULT_TTL);
        assert_eq!(cache_ttl(Some("max-age=soon")), DEFAULT_TTL);
    }

    fn key_set_with(keys: &[&str], fresh_for: Duration) -> KeySet {
        let set_ = KeySet::new("http://127.0.0.1:9/jwks".into(), FETCH_TIMEOUT).unwrap();
        {
            let mut state = set_.state();
            state.keys = parse_key_set(&set(keys)).unwrap();
            state.fresh_until = Some(Instant::now() + fresh_for);
        }
        set_
    }

    #[test]
    fn an_unknown_kid_may_refetch_once_per_cooldown() {
        let keys = key_set_with(&[EC_P256], DEFAULT_TTL);
        assert!(keys.cached_key("ec1").unwrap().is_some());
        assert!(
            keys.cached_key("new").unwrap().is_none(),
            "first unknown kid: fetch"
        );
        keys.state().last_unknown_kid_fetch = Some(Instant::now());
        let refused = keys.cached_key("other").err().unwrap();
        assert!(
            refused.contains("no signing key has kid 'other'"),
            "{refused}"
        );
        // Known keys keep verifying during the cooldown.
        assert!(keys.cached_key("ec1").unwrap().is_some());
    }

    #[test]
    fn a_failed_fetch_refuses_at_once_but_known_keys_still_verify() {
        let keys = key_set_with(&[EC_P256], Duration::ZERO);
        assert!(keys.cached_key("ec1").unwrap().is_none(), "stale: fetch");
        keys.state().last_failure = Some((Instant::now(), "unreachable".into()));
        assert!(keys.cached_key("ec1").unwrap().is_some(), "stale-if-error");
        let refused = keys.cached_key("new").err().unwrap();
        assert!(
            refused.contains("could not be fetched (unreachable)"),
            "{refused}"
        );
    }

    #[test]
    fn kids_in_messages_are_bounded_and_printable() {
        assert_eq!(printable("a\nb\u{7}c"), "abc");
        assert_eq!(printable(&"k".repeat(500)).len(), 64);
    }
}
