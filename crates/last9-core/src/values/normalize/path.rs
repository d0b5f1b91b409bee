//! Raw paths of apps without a router: ids, uuids, dates, hex ids and tokens collapsed into
//! placeholders, long paths folded, so a path becomes a bounded label value.

use std::borrow::Cow;

use super::rewriter::Rewriter;

/// Segments of a raw path kept before the rest is folded into `/{rest}`.
pub(super) const MAX_SEGMENTS: usize = 16;

/// Segments longer than this are never meaningful words, whatever they contain.
pub(super) const MAX_SEGMENT_LEN: usize = 64;

/// For apps with no router: a raw URL path with ids collapsed so that `/user/123` and `/user/456` give one value.
///
/// Per `/`-separated segment (empty segments and a trailing slash are kept as they are):
/// - all ASCII digits, or an integer with sign or a decimal number (`-5`, `3.14`) → `{id}`;
/// - a UUID (8-4-4-4-12 hex, any case, optionally in braces) → `{uuid}`;
/// - an ISO date `2024-01-02` (optionally followed by a `T…` time) → `{date}`;
/// - hex of 16+ chars, or hex of 8+ chars containing at least one digit → `{hex}`;
/// - a token of 20+ chars from the base64/base64url alphabet (`A-Za-z0-9+/=_-`, also `.` for
///   JWT-like) that mixes letters and digits → `{token}`;
/// - a segment containing `@` → `{id}`;
/// - any other segment longer than 64 bytes → `{token}`;
/// - anything else (words like `users`, `v2`, `api`, `static`, `favicon.ico`) kept as is.
///
/// Bounds: at most 16 segments are kept; deeper paths end in `/{rest}`. Control characters (C0,
/// DEL and C1) are replaced by `_` before a segment is classified. A query string or fragment (from the first `?` or `#`) is dropped.
/// The result always starts with `/`: an empty path gives `/`, a path not starting with `/` gets
/// one prepended (`*` for OPTIONS → `/*`).
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    // The query string is never part of the route, and is the easiest way to explode cardinality.
    let path = match path.find(['?', '#']) {
        Some(end) => &path[..end],
        None => path,
    };
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    let mut rw = Rewriter::new(path);
    let mut start = match path.strip_prefix('/') {
        Some(_) => 1,
        None => {
            rw.replace(0, 0, &["/"]);
            0
        }
    };
    let mut index = 0;
    loop {
        let end = path[start..].find('/').map_or(path.len(), |i| start + i);
        let segment = &path[start..end];
        if index == MAX_SEGMENTS {
            let trailing_slash = segment.is_empty() && end == path.len();
            if !trailing_slash {
                // `start > 0` here: MAX_SEGMENTS segments and their slashes come before it.
                rw.replace(start - 1, path.len(), &["/{rest}"]);
            }
            break;
        }
        if segment.chars().any(char::is_control) {
            // Classify the cleaned text, so normalising twice gives the same result.
            let clean: String = segment
                .chars()
                .map(|c| if c.is_control() { '_' } else { c })
                .collect();
            let placeholder = classify_segment(&clean);
            rw.replace(start, end, &[placeholder.unwrap_or(&clean)]);
        } else if let Some(placeholder) = classify_segment(segment) {
            rw.replace(start, end, &[placeholder]);
        }
        if end == path.len() {
            break;
        }
        start = end + 1;
        index += 1;
    }
    rw.finish()
}

/// The placeholder replacing a path segment, or None to keep it.
fn classify_segment(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        None
    } else if is_number(segment) || segment.contains('@') {
        Some("{id}")
    } else if is_uuid(segment) {
        Some("{uuid}")
    } else if is_date(segment) {
        Some("{date}")
    } else if is_hex_id(segment) {
        Some("{hex}")
    } else if is_token(segment) || segment.len() > MAX_SEGMENT_LEN {
        Some("{token}")
    } else {
        None
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `123`, `-5`, `+7`, `3.14`, `-0.5`.
fn is_number(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    match unsigned.split_once('.') {
        Some((whole, fraction)) => is_digits(whole) && is_digits(fraction),
        None => is_digits(unsigned),
    }
}

/// 8-4-4-4-12 hex digits, any case, optionally in braces.
fn is_uuid(s: &str) -> bool {
    let s = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(s);
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// `2024-01-02`, optionally followed by a time such as `T10:20:30.5+02:00`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 10 {
        return false;
    }
    let (date, time) = b.split_at(10);
    let shape = date.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        _ => c.is_ascii_digit(),
    });
    if !shape {
        return false;
    }
    let two_digits = |i: usize| (date[i] - b'0') * 10 + (date[i + 1] - b'0');
    let time_ok = match time {
        [] => true,
        [b'T', first, rest @ ..] => {
            first.is_ascii_digit() && rest.iter().all(|c| c.is_ascii_digit() || b":.,+-Z".contains(c))
        }
        _ => false,
    };
    (1..=12).contains(&two_digits(5)) && (1..=31).contains(&two_digits(8)) && time_ok
}

/// Hex of 16+ chars, or of 8+ chars with a digit (so words like `deadbeef` or `facade` stay).
fn is_hex_id(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
        && (s.len() >= 16 || (s.len() >= 8 && s.bytes().any(|b| b.is_ascii_digit())))
}

/// Base64, base64url or JWT-like text of 20+ chars mixing letters and digits (so long slugs of
/// plain words stay).
fn is_token(s: &str) -> bool {
    s.len() >= 20
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=_-.".contains(&b))
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes().any(|b| b.is_ascii_digit())
}
