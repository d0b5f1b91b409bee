//! The `domain` label from a Host header.

use std::borrow::Cow;

/// The `domain` label from a Host header (or SERVER_NAME): lower-cased, port dropped (`Example.COM:8080` →
/// `example.com`; `[::1]:8000` → `[::1]`), a trailing dot dropped. Returns None when the value is not a plausible host
/// name (empty after trimming, longer than 253 bytes, characters outside `a-z0-9.-_` for names or outside hex/`:`/`.`
/// inside IPv6 brackets, no letter or digit at all, a non-numeric port): the caller then counts it under one fixed
/// value.
pub fn normalize_host(host: &str) -> Option<Cow<'_, str>> {
    let host = host.trim();
    let (name, port) = if host.starts_with('[') {
        let close = host.find(']')?;
        (&host[..=close], &host[close + 1..])
    } else {
        match host.find(':') {
            Some(colon) => (&host[..colon], &host[colon..]),
            None => (host, ""),
        }
    };
    if !port.is_empty() && !port.strip_prefix(':')?.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let plausible = if let Some(inner) = name.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        inner
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    if !plausible || name.len() > 253 || !name.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}
