//! `Registry`: a set of recorders that one scrape renders.

use std::path::PathBuf;

use last9_core::exposition::{self, Family, Format};
use last9_core::snapshot::Snapshot;
use last9_core::store;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyclass(frozen, module = "last9._core")]
pub struct Registry {
    pub(crate) inner: &'static last9_core::Registry,
}

#[pymethods]
impl Registry {
    /// A new, empty registry. Registries live as long as the process (they are meant for tests
    /// and for apps that keep two sets of metrics apart).
    #[new]
    fn new() -> Registry {
        Registry {
            inner: Box::leak(Box::new(last9_core::Registry::new())),
        }
    }

    /// The exposition text, Prometheus 0.0.4 or OpenMetrics 1.0.
    #[pyo3(signature = (*, openmetrics = false))]
    fn render<'py>(&self, py: Python<'py>, openmetrics: bool) -> PyResult<Bound<'py, PyBytes>> {
        let format = if openmetrics {
            Format::OpenMetrics
        } else {
            Format::Text
        };
        let registry = self.inner;
        let snapshot = py.detach(|| Snapshot::of(registry));
        let families = Family::all(&snapshot);
        let len = py.detach(|| exposition::encoded_len(&families, format));
        // Written once, straight into the bytes object, with the GIL released.
        PyBytes::new_with(py, len, |out| {
            py.detach(|| exposition::encode_into(&families, format, out));
            Ok(())
        })
    }

    /// Answers a scrape from its `Accept` and `Accept-Encoding` headers:
    /// `(content_type, content_encoding or None, body)`, rendered without the GIL.
    #[pyo3(signature = (accept = None, accept_encoding = None))]
    fn scrape<'py>(
        &self,
        py: Python<'py>,
        accept: Option<&str>,
        accept_encoding: Option<&str>,
    ) -> PyResult<(&'static str, Option<&'static str>, Bound<'py, PyBytes>)> {
        let (content_type, encoding, _, body) =
            crate::render::render(py, self.inner, accept, accept_encoding, false)?;
        Ok((content_type, encoding, body))
    }

    /// Whether this is the process-wide registry, which sums every worker of a pre-fork server.
    #[getter]
    fn is_global(&self) -> bool {
        self.inner.is_shared()
    }

    /// Number of series in the registry.
    fn series_count(&self) -> usize {
        self.inner.series_count()
    }

    fn __repr__(&self) -> String {
        format!("<last9 Registry with {} series>", self.inner.series_count())
    }
}

/// Enters multi-process mode: the global registry's series move to a file of this process in a
/// directory shared by the server's processes, and its scrapes sum them all. `directory` must be
/// a private directory of this user (made if missing); otherwise the directory is the one of the server whose root process is `root_pid`
/// (this process when None). Returns the directory; calling again returns the one in use.
#[pyfunction]
#[pyo3(signature = (*, root_pid = None, directory = None))]
pub fn enable_multiprocess(
    py: Python<'_>,
    root_pid: Option<u32>,
    directory: Option<PathBuf>,
) -> PyResult<PathBuf> {
    py.detach(|| store::enable(directory.as_deref(), root_pid))
        .map_err(|e| PyOSError::new_err(format!("cannot use a multi-process directory: {e}")))
}

/// The directory shared by the server's processes, or None in single-process mode.
#[pyfunction]
pub fn multiprocess_dir() -> Option<PathBuf> {
    store::shared_dir()
}

/// The process-wide registry every middleware uses by default.
#[pyfunction]
pub fn global_registry() -> Registry {
    Registry {
        inner: last9_core::Registry::global(),
    }
}
