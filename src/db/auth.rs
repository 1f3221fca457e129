//! User tokens: verifying a Supabase-style JWT and deriving the role its statements run as.
//!
//! As PostgREST: HS256 signed with the project's secret (`jwtSecret`), `exp` honoured with a
//! 30 s allowance for clock skew, any other algorithm (including `none`) refused, the `role`
//! claim naming the database role (the configured authenticated role when absent), and the whole
//! verified payload exposed to SQL as `request.jwt.claims`. jsonwebtoken does the cryptography.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::error::PoolError;

/// Seconds of clock skew tolerated on `exp`, as PostgREST allows.
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

pub fn verify(
    token: &str,
    secret: Option<&str>,
    default_role: &str,
) -> Result<VerifiedToken, PoolError> {
    let secret = secret.ok_or_else(|| {
        PoolError::InvalidConfig(
            "verifying access tokens needs jwtSecret (or env SUPABASE_JWT_SECRET)".into(),
        )
    })?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| invalid(e.kind_description()))?;
    let claims = data.claims;
    if !claims.is_object() {
        return Err(invalid("the payload is not a JSON object"));
    }
    let role = match claims.get("role") {
        None | Some(Value::Null) => default_role.to_string(),
        Some(Value::String(role)) if is_role_name(role) => role.clone(),
        Some(_) => return Err(invalid("the role claim is not a role name")),
    };
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

fn is_role_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && !name.contains('\0')
}

trait KindDescription {
    fn kind_description(&self) -> &'static str;
}

impl KindDescription for jsonwebtoken::errors::Error {
    fn kind_description(&self) -> &'static str {
        use jsonwebtoken::errors::ErrorKind;
        match self.kind() {
            ErrorKind::ExpiredSignature => "the token has expired",
            ErrorKind::InvalidSignature => "the signature does not match",
            ErrorKind::InvalidAlgorithm => "the token is not signed with HS256",
            ErrorKind::ImmatureSignature => "the token is not valid yet",
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => "the token is malformed",
            _ => "the token could not be verified",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn sign(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn a_valid_token_gives_its_role_and_claims() {
        let token = sign(
            json!({"sub": "u1", "role": "authenticated", "exp": now() + 600}),
            SECRET,
        );
        let verified = verify(&token, Some(SECRET), "authenticated").unwrap();
        assert_eq!(verified.role, "authenticated");
        let claims: Value = serde_json::from_str(&verified.claims_json).unwrap();
        assert_eq!(claims["sub"], "u1");
    }

    #[test]
    fn a_missing_role_claim_uses_the_default_role() {
        let token = sign(json!({"sub": "u1", "exp": now() + 600}), SECRET);
        assert_eq!(
            verify(&token, Some(SECRET), "authenticated").unwrap().role,
            "authenticated"
        );
    }

    #[test]
    fn expired_tampered_and_unsigned_tokens_are_refused() {
        let expired = sign(json!({"sub": "u1", "exp": now() - 600}), SECRET);
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
        for token in [
            expired,
            wrong_key,
            tampered,
            alg_none,
            "garbage".to_string(),
        ] {
            let err = verify(&token, Some(SECRET), "authenticated").unwrap_err();
            assert_eq!(err.code(), "INVALID_TOKEN", "{token}");
        }
    }

    #[test]
    fn no_secret_is_a_config_error() {
        assert_eq!(
            verify("x.y.z", None, "authenticated").unwrap_err().code(),
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
