//! Module implementing who may read the metrics: none, HTTP basic auth or a bearer token.
//!
//! Metrics name hosts, routes and domains, so an operator may protect the endpoint the way the
//! Prometheus exporter toolkit does. The same [`Access`] guards the app's own metrics path and
//! the dedicated server. Comparisons take the same time whatever the guess, so a client cannot
//! learn the secret byte by byte.

use std::fmt;

use base64::Engine as _;

/// What a scrape must present in its `Authorization` header.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Access {
    /// Anyone may scrape (the default).
    #[default]
    Open,
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
}

/// Settings that cannot make an [`Access`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessError(pub String);

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AccessError {}

impl fmt::Debug for Access {
    // Never print the secrets, even in a debug dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Open => f.write_str("Open"),
            Access::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <redacted> }}")
            }
            Access::Bearer { .. } => f.write_str("Bearer { token: <redacted> }"),
        }
    }
}

impl Access {
    /// Builds the access rule from optional settings; empty strings count as unset.
    ///
    /// `setting` prefixes error messages, so they name what the user wrote (e.g. `LAST9_METRICS`).
    pub fn from_settings(
        username: Option<&str>,
        password: Option<&str>,
        bearer_token: Option<&str>,
        setting: &str,
    ) -> Result<Access, AccessError> {
        let given = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_owned);
        match (given(username), given(password), given(bearer_token)) {
            (None, None, None) => Ok(Access::Open),
            (None, None, Some(token)) => {
                if token.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
                    return Err(AccessError(format!("{setting}_BEARER_TOKEN must not contain spaces or control characters")));
                }
                Ok(Access::Bearer { token })
            }
            (Some(username), Some(password), None) => {
                if username.contains(':') {
                    return Err(AccessError(format!("{setting}_USERNAME must not contain ':'")));
                }
                Ok(Access::Basic { username, password })
            }
            (Some(_), None, None) | (None, Some(_), None) => Err(AccessError(format!(
                "{setting}_USERNAME and {setting}_PASSWORD must be set together"
            ))),
            _ => Err(AccessError(format!(
                "{setting}_BEARER_TOKEN cannot be combined with {setting}_USERNAME/{setting}_PASSWORD: choose one"
            ))),
        }
    }

    /// Whether anything is required at all.
    pub fn is_open(&self) -> bool {
        matches!(self, Access::Open)
    }

    /// Whether a request with this `Authorization` header value may scrape.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        match self {
            Access::Open => true,
            Access::Basic { username, password } => {
                let Some(credentials) = authorization.and_then(|h| strip_scheme(h, b"basic")) else {
                    return false;
                };
                let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(trim(credentials)) else {
                    return false;
                };
                let mut expected = Vec::with_capacity(username.len() + 1 + password.len());
                expected.extend_from_slice(username.as_bytes());
                expected.push(b':');
                expected.extend_from_slice(password.as_bytes());
                constant_time_eq(&decoded, &expected)
            }
            Access::Bearer { token } => match authorization.and_then(|h| strip_scheme(h, b"bearer")) {
                Some(presented) => constant_time_eq(trim(presented), token.as_bytes()),
                None => false,
            },
        }
    }

    /// The `WWW-Authenticate` value of a 401 answer, if credentials are required.
    pub fn challenge(&self) -> Option<&'static str> {
        match self {
            Access::Open => None,
            Access::Basic { .. } => Some("Basic realm=\"metrics\", charset=\"UTF-8\""),
            Access::Bearer { .. } => Some("Bearer realm=\"metrics\""),
        }
    }
}

/// The credentials after `scheme` and a space, if the header uses that scheme (case-insensitive).
fn strip_scheme<'a>(header: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    let header = trim(header);
    if header.len() <= scheme.len() || !header[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = &header[scheme.len()..];
    (rest[0] == b' ').then(|| &rest[1..])
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Compares in time that depends only on the lengths, never on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> Vec<u8> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {encoded}").into_bytes()
    }

    #[test]
    fn open_access_allows_everyone() {
        let access = Access::from_settings(None, Some(""), None, "LAST9_METRICS").unwrap();
        assert!(access.is_open());
        assert!(access.allows(None));
        assert_eq!(access.challenge(), None);
    }

    #[test]
    fn basic_auth_needs_the_exact_pair() {
        let access = Access::from_settings(Some("prom"), Some("s3cret"), None, "LAST9_METRICS").unwrap();
        assert!(access.allows(Some(&basic("prom", "s3cret"))));
        assert!(access.allows(Some(b"basic cHJvbTpzM2NyZXQ=")));
        assert!(!access.allows(Some(&basic("prom", "s3cre"))));
        assert!(!access.allows(Some(&basic("prom", "s3cret!"))));
        assert!(!access.allows(Some(&basic("other", "s3cret"))));
        assert!(!access.allows(Some(b"Basic !!notbase64")));
        assert!(!access.allows(Some(b"Bearer s3cret")));
        assert!(!access.allows(None));
        assert!(access.challenge().unwrap().starts_with("Basic"));
    }

    #[test]
    fn bearer_token_must_match() {
        let access = Access::from_settings(None, None, Some("tok-123"), "LAST9_METRICS").unwrap();
        assert!(access.allows(Some(b"Bearer tok-123")));
        assert!(access.allows(Some(b"bearer  tok-123 ")));
        assert!(!access.allows(Some(b"Bearer tok-12")));
        assert!(!access.allows(Some(b"Bearertok-123")));
        assert!(!access.allows(Some(b"Basic tok-123")));
        assert!(!access.allows(Some(b"")));
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let half = Access::from_settings(Some("prom"), None, None, "LAST9_METRICS").unwrap_err();
        assert!(
            half.0
                .contains("LAST9_METRICS_USERNAME and LAST9_METRICS_PASSWORD"),
            "{half}"
        );
        let both = Access::from_settings(Some("a"), Some("b"), Some("c"), "LAST9_METRICS").unwrap_err();
        assert!(both.0.contains("LAST9_METRICS_BEARER_TOKEN"), "{both}");
        assert!(Access::from_settings(Some("a:b"), Some("c"), None, "X").is_err());
        assert!(Access::from_settings(None, None, Some("a b"), "X").is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let access = Access::from_settings(Some("prom"), Some("s3cret"), None, "X").unwrap();
        assert!(!format!("{access:?}").contains("s3cret"));
        let access = Access::from_settings(None, None, Some("xyzzy-42"), "X").unwrap();
        assert!(!format!("{access:?}").contains("xyzzy"));
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
