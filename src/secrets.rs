//! Secrets out of URLs before anyone sees them: `getPoolConfig()`, stats, errors, the dashboard.
//!
//! A URL can carry a secret in its user info (`https://user:key@proxy`) and in its query
//! (`?api-key=…`, `?sig=…`, `?password=…`); the copy shown keeps everything else.

/// What a query parameter's name says about its value.
fn names_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "auth",
        "sig",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `url` with its password, secret-looking query values and (unless `keep_user`) its user name
/// replaced by `****`.
pub fn masked(url: &url::Url, keep_user: bool) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("****"));
    }
    if !keep_user && !shown.username().is_empty() {
        let _ = shown.set_username("****");
    }
    if url.query_pairs().any(|(name, _)| names_secret(&name)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let value = if names_secret(&name) {
                    "****".to_string()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::masked;

    fn shown(url: &str, keep_user: bool) -> String {
        masked(&url::Url::parse(url).unwrap(), keep_user)
    }

    #[test]
    fn user_info_and_secret_parameters_are_masked() {
        assert_eq!(
            shown("http://user:hunter2@proxy:8080/v1", false),
            "http://****:****@proxy:8080/v1"
        );
        assert_eq!(
            shown("https://sk-abc@proxy/v1", false),
            "https://****@proxy/v1"
        );
        assert_eq!(
            shown(
                "https://proxy/v1?api-key=sk1&region=eu&access_token=t&sig=s",
                false
            ),
            "https://proxy/v1?api-key=****&region=eu&access_token=****&sig=****"
        );
        assert_eq!(
            shown("postgres://app:pw@db/x?password=pw&sslmode=require", true),
            "postgres://app:****@db/x?password=****&sslmode=require"
        );
        assert_eq!(
            shown("https://api.openai.com/v1", false),
            "https://api.openai.com/v1"
        );
    }
}
