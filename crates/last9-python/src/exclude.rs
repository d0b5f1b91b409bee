//! `Exclusions`: the `exclude` setting, compiled once at start-up.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::errors::MetricsError;

/// What the `exclude` setting leaves out: route templates, `^` regular expressions on the raw
/// path, methods; and OpenTelemetry's excluded-URL patterns, searched anywhere in the path.
#[pyclass(frozen, module = "last9._core")]
pub struct Exclusions {
    pub(crate) inner: Arc<last9_core::exclude::Exclusions>,
}

#[pymethods]
impl Exclusions {
    /// Raises `MetricsError` naming `setting` when an entry cannot be used.
    #[new]
    #[pyo3(signature = (entries, unanchored = Vec::new(), *, setting = "LAST9_EXCLUDE (exclude)"))]
    fn new(entries: Vec<String>, unanchored: Vec<String>, setting: &str) -> PyResult<Exclusions> {
        let inner = last9_core::exclude::Exclusions::new(
            entries.iter().map(String::as_str),
            unanchored.iter().map(String::as_str),
        )
        .map_err(|why| MetricsError::new_err(format!("{setting}: {why}")))?;
        Ok(Exclusions {
            inner: Arc::new(inner),
        })
    }

    /// Whether a request is left out as it enters (its method, or its raw path).
    fn on_entry(&self, method: &str, path: &str) -> bool {
        self.inner.on_entry(method, path)
    }

    /// Whether requests of this route template (`{param}` form) are left out.
    fn template(&self, template: &str) -> bool {
        self.inner.template(template)
    }

    fn __bool__(&self) -> bool {
        !self.inner.is_empty()
    }
}
