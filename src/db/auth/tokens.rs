//! User tokens: verifying a Supabase-style JWT and deriving the role its statements run as.
//!
//! Two key systems, as Supabase has them, and both may be configured at once (a project
//! migrating keeps both alive):
//! - the legacy shared secret (`jwtSecret`): HS256 only;
//! - the asymmetric signing keys (`jwksUrl`): ES256, RS256 (or whatever each published key
//!   declares), looked up by the token's `kid` in the key set (`jwks.rs`).
//!
//! The token's header picks the system: an HMAC algorithm goes to the secret and never to a
//! published key (so a public key cannot be abused as an HMAC secret); any other algorithm goes
//! to the key named by `kid`, which must be a key for exactly that algorithm. `alg: none` and
//! unknown algorithms are refused. Then, as PostgREST: `exp` and `nbf` with a 30 s allowance for
//! clock skew, the `role` claim naming the database role (the configured authenticated role when
//! absent), and the whole verified payload exposed to SQL as `request.jwt.claims`. Unlike
//! PostgREST, whose login role can only switch to the roles granted to it, a backend's login role
//! is usually a superuser, so the role must also be one of `allowedRoles`. jsonwebtoken does the
//! cryptography.

use std::sync::Arc;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

use crate::db::auth::jwks::{printable, KeySet, VerifyKey};
use crate::error::PoolError;

/// Seconds of clock skew tolerated on `exp` and `nbf`, as PostgREST allows.
pub const CLOCK_SKEW_SECS: u64 = 30;

/// A verified token: who its statements run as, and what they see as claims.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub role: String,
    pub claims_json: String,
    /// Epoch seconds after which the token is no longer accepted (with the skew allowance).
    pub expires_at: Option<u64>,
}

fn invalid(reason: impl std::fmt::Display) -> PoolError {
    PoolError::InvalidToken(format!("invalid access token: {reason}"))
}

/// Verifies user tokens for one pool.
pub struct TokenVerifier {
    secret: Option<String>,
    key_set: Option<KeySet>,
    default_role: String,
    allowed_roles: Vec<String>,
}

/// Which key a token needs, read from its (unverified) header.
enum KeyChoice {
    Secret,
    Published(String),
}

impl TokenVerifier {
    pub fn new(
        secret: Option<String>,
        key_set: Option<KeySet>,
        default_role: String,
        allowed_roles: Vec<String>,
    ) -> Self {
        TokenVerifier {
            secret,
            key_set,
            default_role,
            allowed_roles,
        }
    }

    /// Verifies with what is at hand: `Ok(None)` when the token's key must be fetched first
    /// (then call `verify`). Every other outcome is final.
    pub fn verify_now(&self, token: &str) -> Result<Option<VerifiedToken>, PoolError> {
        let header = read_header(token)?;
        match self.key_choice(&header)? {
            KeyChoice::Secret => self.verify_with_secret(token).map(Some),
            KeyChoice::Published(kid) => {
                let key_set = self.key_set()?;
                match key_set.cached_key(&kid).map_err(invalid)? {
                    Some(key) => self.verify_with_key(token, &header, &kid, &key).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// Verifies, fetching the key set when the token's key is not cached.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, PoolError> {
        let header = read_header(token)?;
        match self.key_choice(&header)? {
            KeyChoice::Secret => self.verify_with_secret(token),
            KeyChoice::Published(kid) => {
                let key: Arc<VerifyKey> = self.key_set()?.key(&kid).await.map_err(invalid)?;
                self.verify_with_key(token, &header, &kid, &key)
            }
        }
    }

    fn key_set(&self) -> Result<&KeySet, PoolError> {
        self.key_set.as_ref().ok_or_else(|| {
            invalid("the token is signed with an asymmetric key, and no jwksUrl (or env SUPABASE_JWKS_URL / SUPABASE_URL) is configured")
        })
    }

    fn key_choice(&self, header: &Header) -> Result<KeyChoice, PoolError> {
        if self.secret.is_none() && self.key_set.is_none() {
            return Err(PoolError::InvalidConfig(
                "verifying access tokens needs jwtSecret (or env SUPABASE_JWT_SECRET) or jwksUrl (or env SUPABASE_JWKS_URL / SUPABASE_URL)".into(),
            ));
        }
        match header.alg {
            Algorithm::HS256 => Ok(KeyChoice::Secret),
            Algorithm::HS384 | Algorithm::HS512 => Err(invalid(format!(
                "the token is signed with {:?}; shared-secret tokens must use HS256",
                header.alg
            ))),
            _ => match &header.kid {
                Some(kid) => Ok(KeyChoice::Published(kid.clone())),
                None => Err(invalid(format!(
                    "the token is signed with {:?} but names no key (kid)",
                    header.alg
                ))),
            },
        }
    }

    fn verify_with_secret(&self, token: &str) -> Result<VerifiedToken, PoolError> {
        let secret = self.secret.as_deref().ok_or_else(|| {
            invalid("the token is signed with HS256, and no jwtSecret (or env SUPABASE_JWT_SECRET) is configured")
        })?;
        let claims = decode_claims(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
        )?;
        self.identity(claims)
    }

    fn verify_with_key(
        &self,
        token: &str,
        header: &Header,
        kid: &str,
        key: &VerifyKey,
    ) -> Result<VerifiedToken, PoolError> {
        if header.alg != key.algorithm {
            return Err(invalid(format!(
                "the token says {:?}, but key '{}' is for {:?} only",
                header.alg,
                printable(kid),
                key.algorithm
            )));
        }
        let claims = decode_claims(token, &key.key, key.algorithm)?;
        self.identity(claims)
    }

    /// The role and claims of a verified payload, if the role is one the pool allows.
    fn identity(&self, claims: Value) -> Result<VerifiedToken, PoolError> {
        if !claims.is_object() {
            return Err(invalid("the payload is not a JSON object"));
        }
        let role = match claims.get("role") {
            None | Some(Value::Null) => self.default_role.clone(),
            Some(Value::String(role)) if is_role_name(role) => role.clone(),
            Some(_) => return Err(invalid("the role claim is not a role name")),
        };
        if !self.allowed_roles.contains(&role) {
            return Err(invalid(format!(
                "the token's role '{}' is not in allowedRoles ({})",
                printable(&role),
                self.allowed_roles.join(", ")
            )));
        }
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| exp + CLOCK_SKEW_SECS);
        Ok(VerifiedToken {
            role,
            claims_json: claims.to_string(),
            expires_at,
        })
    }
}

fn read_header(token: &str) -> Result<Header, PoolError> {
    decode_header(token).map_err(|_| {
        invalid("the token header is malformed or names an algorithm that is not accepted (alg none never is)")
    })
}

fn decode_claims(token: &str, key: &DecodingKey, algorithm: Algorithm) -> Result<Value, PoolError> {
    let mut validation = Validation::new(algorithm);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    decode::<Value>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| invalid(e.kind_description(algorithm)))
}

fn is_role_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && !name.contains('\0')
}

trait KindDescription {
    fn kind_description(&self, algorithm: Algorithm) -> String;
}

impl KindDescription for jsonwebtoken::errors::Error {
    fn kind_description(&self, algorithm: Algorithm) -> String {
        use jsonwebtoken::errors::ErrorKind;
        match self.kind() {
            ErrorKind::ExpiredSignature => "the token has expired".into(),
            ErrorKind::InvalidSignature => "the signature does not match".into(),
            ErrorKind::InvalidAlgorithm => format!("the token is not signed with {algorithm:?}"),
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => "the token is malformed".into(),
            _ => "the token could not be verified".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey};
    use serde_json::json;

    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn default_roles() -> Vec<String> {
        ["anon", "authenticated", "service_role"]
            .map(String::from)
            .to_vec()
    }

    fn hs256_verifier() -> TokenVerifier {
        TokenVerifier::new(
            Some(SECRET.into()),
            None,
            "authenticated".into(),
            default_roles(),
        )
    }

    fn sign_with(algorithm: Algorithm, claims: Value, secret: &str) -> String {
        encode(
            &Header::new(algorithm),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn sign(claims: Value, secret: &str) -> String {
        sign_with(Algorithm::HS256, claims, secret)
    }

    fn verify(verifier: &TokenVerifier, token: &str) -> Result<VerifiedToken, PoolError> {
        verifier
            .verify_now(token)
            .map(|v| v.expect("HS256 never needs a fetch"))
    }

    #[test]
    fn a_valid_token_gives_its_role_and_claims() {
        let token = sign(
            json!({"sub": "u1", "role": "authenticated", "exp": now() + 600}),
            SECRET,
        );
        let verified = verify(&hs256_verifier(), &token).unwrap();
        assert_eq!(verified.role, "authenticated");
        let claims: Value = serde_json::from_str(&verified.claims_json).unwrap();
        assert_eq!(claims["sub"], "u1");
    }

    #[test]
    fn a_missing_role_claim_uses_the_default_role() {
        let token = sign(json!({"sub": "u1", "exp": now() + 600}), SECRET);
        assert_eq!(
            verify(&hs256_verifier(), &token).unwrap().role,
            "authenticated"
        );
    }

    #[test]
    fn expired_premature_tampered_and_unsigned_tokens_are_refused() {
        let expired = sign(json!({"sub": "u1", "exp": now() - 600}), SECRET);
        let premature = sign(json!({"sub": "u1", "nbf": now() + 600}), SECRET);
        let wrong_key = sign(
            json!({"sub": "u1", "exp": now() + 600}),
            "another-secret-of-sufficient-length!!",
        );
        let good = sign(json!({"sub": "u1", "exp": now() + 600}), SECRET);
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload = base64_url(br#"{"sub":"admin","role":"service_role"}"#);
        parts[1] = &forged_payload;
        let tampered = parts.join(".");
        let alg_none = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            base64_url(br#"{"sub":"u1","role":"service_role"}"#)
        );
        let hs512 = sign_with(Algorithm::HS512, json!({"sub": "u1"}), SECRET);
        for token in [
            expired,
            premature,
            wrong_key,
            tampered,
            alg_none,
            hs512,
            "garbage".to_string(),
        ] {
            let err = verify(&hs256_verifier(), &token).unwrap_err();
            assert_eq!(err.code(), "INVALID_TOKEN", "{token}");
        }
    }

    #[test]
    fn only_allowed_roles_are_taken() {
        let verifier = hs256_verifier();
        for role in ["postgres", "pg_write_server_files", "supabase_admin"] {
            let token = sign(json!({"sub": "u1", "role": role}), SECRET);
            let err = verify(&verifier, &token).unwrap_err();
            assert_eq!(err.code(), "INVALID_TOKEN");
            assert!(err.to_string().contains("allowedRoles"), "{err}");
        }
        let service = sign(json!({"role": "service_role"}), SECRET);
        assert_eq!(verify(&verifier, &service).unwrap().role, "service_role");

        let mut roles = default_roles();
        roles.push("editor".into());
        let widened = TokenVerifier::new(Some(SECRET.into()), None, "authenticated".into(), roles);
        let editor = sign(json!({"role": "editor"}), SECRET);
        assert_eq!(verify(&widened, &editor).unwrap().role, "editor");
    }

    #[test]
    fn asymmetric_tokens_need_a_key_set_and_a_kid() {
        // The header decides before any signature check: RS256 without jwksUrl is refused, and
        // so is a token that names no kid.
        let rs256_header = base64_url(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
        let no_kid_header = base64_url(br#"{"alg":"ES256","typ":"JWT"}"#);
        let body = base64_url(br#"{"sub":"u1"}"#);
        let err = verify(&hs256_verifier(), &format!("{rs256_header}.{body}.c2ln")).unwrap_err();
        assert!(err.to_string().contains("no jwksUrl"), "{err}");
        let with_keys = TokenVerifier::new(
            None,
            Some(
                KeySet::new(
                    "http://127.0.0.1:9/jwks".into(),
                    crate::db::auth::jwks::FETCH_TIMEOUT,
                )
                .unwrap(),
            ),
            "authenticated".into(),
            default_roles(),
        );
        let err = with_keys
            .verify_now(&format!("{no_kid_header}.{body}.c2ln"))
            .unwrap_err();
        assert!(err.to_string().contains("names no key"), "{err}");
        // An HS256 token is never checked against published keys.
        let hs = sign(json!({"sub": "u1"}), SECRET);
        let err = with_keys.verify_now(&hs).unwrap_err();
        assert!(err.to_string().contains("no jwtSecret"), "{err}");
        // A kid the empty cache does not know needs a fetch.
        assert!(with_keys
            .verify_now(&format!("{rs256_header}.{body}.c2ln"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn no_key_system_is_a_config_error() {
        let verifier = TokenVerifier::new(None, None, "authenticated".into(), default_roles());
        let token = sign(json!({"sub": "u1"}), SECRET);
        assert_eq!(
            verifier.verify_now(&token).unwrap_err().code(),
            "INVALID_CONFIG"
        );
    }

    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
