//! The `method` label.

/// The `method` label: one of the nine standard methods exactly as sent (`GET`, `HEAD`, `POST`, `PUT`, `DELETE`,
/// `CONNECT`, `OPTIONS`, `TRACE`, `PATCH`), anything else (including lower-case `get`) → `_OTHER`.
pub fn normalize_method(method: &str) -> &'static str {
    METHODS[method_index(method)]
}

/// The nine standard methods, then the value every other method is counted under.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The position of a method's label value in [`METHODS`].
#[inline]
pub fn method_index(method: &str) -> usize {
    METHODS[..9].iter().position(|m| *m == method).unwrap_or(9)
}
