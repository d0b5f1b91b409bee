//! Requests left out of every family: the `exclude` setting (`LAST9_EXCLUDE`).
//!
//! Each entry is one of:
//! - a route template in `{param}` form (`/static/{path}`): every request whose route is that
//!   template is left out, whatever the parameter names the app's router uses (`{path}` matches
//!   `<path:filename>`); a template without parameters (`/healthz`) is also a raw path, so its
//!   requests are known as they enter;
//! - a regular expression on the raw path, written with a leading `^` (`^/internal/.*`);
//! - an HTTP method (`OPTIONS`).
//!
//! OpenTelemetry's `OTEL_PYTHON_EXCLUDED_URLS` patterns are searched anywhere in the raw path
//! ([`Exclusions::new`]'s `unanchored`), as OpenTelemetry searches them in the URL.
//!
//! Requests excluded by path or method are known before the app runs ([`Exclusions::on_entry`]):
//! they are never timed nor counted in flight. Those excluded by a template with parameters are
//! known once the router matched ([`Exclusions::template`]), and their route is
//! [`crate::RouteId::EXCLUDED`], which every family skips.

use ahash::AHashSet;
use regex::RegexSet;

use crate::values::normalize::{method_index, METHODS};

/// Longest regular expression program accepted (bytes of compiled size), so that a setting
/// cannot make each request's check slow or the start-up use much memory.
const MAX_PATTERN_SIZE: usize = 1 << 20;

/// What the `exclude` setting leaves out.
#[derive(Debug, Default)]
pub struct Exclusions {
    /// Templates without parameters: raw paths excluded on entry.
    paths: AHashSet<Box<str>>,
    /// Every template, with parameter names erased (`/static/{}`).
    templates: AHashSet<Box<str>>,
    /// Regular expressions on the raw path.
    patterns: Option<RegexSet>,
    /// One bit per index of [`METHODS`].
    methods: u16,
}

impl Exclusions {
    /// Exclusions from `entries` (templates, `^` regular expressions, methods) and from
    /// `unanchored` regular expressions (OpenTelemetry's, searched anywhere in the path).
    ///
    /// Returns the reason an entry cannot be used.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        unanchored: impl IntoIterator<Item = &'a str>,
    ) -> Result<Exclusions, String> {
        let mut exclusions = Exclusions::default();
        let mut patterns: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            if entry.starts_with('^') {
                patterns.push(entry.to_string());
            } else if entry.starts_with('/') {
                if !entry.contains('{') {
                    exclusions.paths.insert(entry.into());
                }
                exclusions.templates.insert(template_shape(entry).into());
            } else if is_method(entry) {
                let index = method_index(entry);
                if index == METHODS.len() - 1 {
                    return Err(format!(
                        "{entry:?} is not a method recorded on its own (one of {})",
                        METHODS[..METHODS.len() - 1].join(", ")
                    ));
                }
                exclusions.methods |= 1 << index;
            } else {
                return Err(format!(
                    "{entry:?} is neither a route template (starting with '/'), a regular \
                     expression (starting with '^') nor an HTTP method"
                ));
            }
        }
        patterns.extend(
            unanchored
                .into_iter()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        );
        if !patterns.is_empty() {
            let set = regex::RegexSetBuilder::new(&patterns)
                .size_limit(MAX_PATTERN_SIZE)
                .build()
                .map_err(|error| format!("not a regular expression: {error}"))?;
            exclusions.patterns = Some(set);
        }
        Ok(exclusions)
    }

    /// Whether nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.patterns.is_none() && self.methods == 0
    }

    /// Whether a request is excluded as it enters: by its method, its raw path matching a
    /// template without parameters, or a regular expression.
    #[inline]
    pub fn on_entry(&self, method: &str, path: &str) -> bool {
        self.method(method)
            || self.paths.contains(path)
            || self.patterns.as_ref().is_some_and(|p| p.is_match(path))
    }

    /// Whether requests of this method are excluded.
    #[inline]
    pub fn method(&self, method: &str) -> bool {
        self.methods != 0 && self.methods & (1 << method_index(method)) != 0
    }

    /// Whether requests of this route template (`{param}` form) are excluded.
    pub fn template(&self, template: &str) -> bool {
        !self.templates.is_empty() && self.templates.contains(template_shape(template).as_str())
    }

    /// Whether some template can only be told once the route is known.
    pub fn has_templates(&self) -> bool {
        !self.templates.is_empty()
    }
}

/// Upper-case ASCII letters only, as methods are spelled.
fn is_method(entry: &str) -> bool {
    !entry.is_empty() && entry.bytes().all(|b| b.is_ascii_uppercase())
}

/// A `{param}` template with its parameter names erased: `/a/{id}/{rest}` → `/a/{}/{}`.
fn template_shape(template: &str) -> String {
    let mut shape = String::with_capacity(template.len());
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' if !in_param => {
                in_param = true;
                shape.push('{');
            }
            '}' if in_param => {
                in_param = false;
                shape.push('}');
            }
            _ if in_param => {}
            c => shape.push(c),
        }
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exclusions(entries: &[&str]) -> Exclusions {
        Exclusions::new(entries.iter().copied(), []).unwrap()
    }

    #[test]
    fn a_template_without_parameters_is_a_raw_path_known_on_entry() {
        let ex = exclusions(&["/healthz"]);
        assert!(ex.on_entry("GET", "/healthz"));
        assert!(!ex.on_entry("GET", "/healthz/"));
        assert!(!ex.on_entry("GET", "/healthzz"));
        assert!(ex.template("/healthz"));
    }

    #[test]
    fn a_template_with_parameters_matches_whatever_the_parameter_names() {
        let ex = exclusions(&["/static/{path}"]);
        assert!(!ex.on_entry("GET", "/static/css/site.css"));
        assert!(ex.template("/static/{filename}"));
        assert!(ex.template("/static/{path}"));
        assert!(!ex.template("/static/{a}/{b}"));
        assert!(!ex.template("/static"));
    }

    #[test]
    fn regular_expressions_are_anchored_by_their_caret() {
        let ex = exclusions(&["^/internal/.*"]);
        assert!(ex.on_entry("GET", "/internal/x"));
        assert!(!ex.on_entry("GET", "/api/internal/x"));
    }

    #[test]
    fn opentelemetry_patterns_are_searched_anywhere_in_the_path() {
        let ex = Exclusions::new([], ["healthz", "client/.*/info"]).unwrap();
        assert!(ex.on_entry("GET", "/api/healthz"));
        assert!(ex.on_entry("GET", "/client/7/info"));
        assert!(!ex.on_entry("GET", "/client/7"));
    }

    #[test]
    fn methods_are_excluded_on_entry() {
        let ex = exclusions(&["OPTIONS", "HEAD"]);
        assert!(ex.on_entry("OPTIONS", "/x"));
        assert!(ex.on_entry("HEAD", "/x"));
        assert!(!ex.on_entry("GET", "/x"));
        assert!(!ex.on_entry("PROPFIND", "/x"));
    }

    #[test]
    fn nothing_configured_excludes_nothing() {
        let ex = exclusions(&[" ", ""]);
        assert!(ex.is_empty());
        assert!(!ex.on_entry("GET", "/"));
        assert!(!ex.template("/"));
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for bad in ["healthz", "PROPFIND", "^(", "get"] {
            let error = Exclusions::new([bad], []).unwrap_err();
            assert!(
                error.contains(bad.trim_start_matches('^')) || error.contains("regular"),
                "{error}"
            );
        }
        assert!(Exclusions::new([], ["("]).is_err());
    }
}
