//! The receiver's URL and credentials, checked once at start, and kept out of every log line.

use base64::Engine as _;

use super::Config;
use crate::error::Error;

/// Where and how to send, checked once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// The URL without credentials.
    pub(super) url: String,
    pub(super) authorization: Option<String>,
    /// What must never be logged: the password, the bearer token, basic auth's base64.
    pub(super) secrets: Vec<String>,
}

impl Endpoint {
    pub(super) fn from_config(config: &Config) -> Result<Endpoint, Error> {
        let invalid = |why: String| Error::InvalidRemoteWrite(why);
        let url = config.url.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            invalid(format!(
                "url must start with http:// or https://, not {:?}",
                Endpoint::redact(url)
            ))
        })?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(invalid(format!(
                "url must start with http:// or https://, not {scheme}://"
            )));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(invalid("url has no host".into()));
        }
        let clean = format!("{scheme}://{host}{}", if path.is_empty() { "/" } else { path });
        if ureq::http::Uri::try_from(clean.as_str()).is_err() {
            return Err(invalid(format!(
                "url {:?} is not a valid URL",
                Endpoint::redact(url)
            )));
        }

        let explicit = (
            config.username.clone().filter(|u| !u.is_empty()),
            config.password.clone().filter(|p| !p.is_empty()),
        );
        let basic = match (userinfo, explicit) {
            (Some(_), (Some(_), _) | (_, Some(_))) => {
                return Err(invalid(
                    "credentials are given both in the url and as username/password".into(),
                ))
            }
            // `user@host` is a user with an empty password.
            (Some(userinfo), _) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                Some((percent_decode(user), percent_decode(pass)))
            }
            (None, (Some(user), Some(pass))) => Some((user, pass)),
            (None, (Some(_), None)) => return Err(invalid("username is set but password is not".into())),
            (None, (None, Some(_))) => return Err(invalid("password is set but username is not".into())),
            (None, (None, None)) => None,
        };
        let bearer = config.bearer_token.clone().filter(|t| !t.is_empty());
        let mut secrets = Vec::new();
        let authorization = match (basic, bearer) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "use either basic auth (username and password) or a bearer token, not both".into(),
                ))
            }
            (Some((user, pass)), None) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                let authorization = format!("Basic {encoded}");
                secrets.extend([encoded, pass]);
                Some(authorization)
            }
            (None, Some(token)) => {
                let authorization = format!("Bearer {token}");
                secrets.push(token);
                Some(authorization)
            }
            (None, None) => None,
        };
        if let Some(value) = &authorization {
            if value.bytes().any(|b| b.is_ascii_control()) {
                return Err(invalid("credentials must not contain control characters".into()));
            }
        }
        // Longest first, so that a secret inside another is not redacted by halves.
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Ok(Endpoint {
            url: clean,
            authorization,
            secrets,
        })
    }

    /// The URL with any credentials replaced by `***`, for messages.
    pub(super) fn redact(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_string();
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        match rest[..authority_end].rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}{}", &rest[authority_end..]),
            None => url.to_string(),
        }
    }
}

/// `%XX` escapes of URL userinfo turned back into bytes (anything malformed is kept as is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
