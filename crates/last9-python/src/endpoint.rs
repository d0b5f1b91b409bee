//! `MetricsEndpoint`: the app's own metrics path, answered the same way by every entry point.
//!
//! It holds who may scrape ([`Access`]) and renders the answer with the GIL released, writing
//! the body once, straight into the `bytes` object handed back: a scrape of many series never
//! holds up the app's other threads, nor copies the body while holding the GIL.

use last9_core::access::Access;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::errors::MetricsError;
use crate::registry::Registry;
use crate::render::render;

/// Body of the answer to a scrape without the right credentials.
const UNAUTHORIZED: &[u8] = b"Unauthorized\n";

/// The metrics path of an app: its registry, the path, and who may scrape it.
#[pyclass(frozen, module = "last9._core")]
pub struct MetricsEndpoint {
    registry: &'static last9_core::Registry,
    path: String,
    access: Access,
}

#[pymethods]
impl MetricsEndpoint {
    /// Raises `MetricsError` for credentials that cannot work (half a pair, both kinds).
    #[new]
    #[pyo3(signature = (registry, path = String::from("/metrics"), *, username = None, password = None, bearer_token = None))]
    fn new(
        registry: &Registry,
        path: String,
        username: Option<&str>,
        password: Option<&str>,
        bearer_token: Option<&str>,
    ) -> PyResult<MetricsEndpoint> {
        let access = Access::from_settings(username, password, bearer_token, "LAST9_METRICS")
            .map_err(|e| MetricsError::new_err(e.0))?;
        Ok(MetricsEndpoint {
            registry: registry.inner,
            path,
            access,
        })
    }

    /// The answer to a GET (or, with `head`, a HEAD) of the path: `(status, headers, body)`,
    /// headers as `(name, value)` strings. 401 with `WWW-Authenticate` unless `authorization`
    /// (the request's `Authorization` header) is what the endpoint requires.
    #[pyo3(signature = (authorization = None, accept = None, accept_encoding = None, head = false))]
    pub(crate) fn respond<'py>(
        &self,
        py: Python<'py>,
        authorization: Option<&str>,
        accept: Option<&str>,
        accept_encoding: Option<&str>,
        head: bool,
    ) -> PyResult<(u16, Bound<'py, PyList>, Bound<'py, PyBytes>)> {
        if let Some(challenge) = self.refusal(authorization) {
            let headers = PyList::new(
                py,
                [
                    ("Content-Type", "text/plain; charset=utf-8".to_owned()),
                    ("Content-Length", UNAUTHORIZED.len().to_string()),
                    ("WWW-Authenticate", challenge.to_owned()),
                ],
            )?;
            let body = PyBytes::new(py, if head { b"" } else { UNAUTHORIZED });
            return Ok((401, headers, body));
        }
        let (content_type, content_encoding, length, body) =
            render(py, self.registry, accept, accept_encoding, head)?;
        let headers = PyList::empty(py);
        headers.append(("Content-Type", content_type))?;
        headers.append(("Content-Length", length.to_string()))?;
        if let Some(encoding) = content_encoding {
            headers.append(("Content-Encoding", encoding))?;
        }
        headers.append(("Vary", "Accept, Accept-Encoding"))?;
        Ok((200, headers, body))
    }

    /// Whether a request with this `Authorization` header may scrape.
    #[pyo3(signature = (authorization = None))]
    fn allows(&self, authorization: Option<&str>) -> bool {
        self.access.allows(authorization.map(str::as_bytes))
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Whether scrapes need credentials.
    #[getter]
    fn protected(&self) -> bool {
        !self.access.is_open()
    }

    fn __repr__(&self) -> String {
        format!("<last9 MetricsEndpoint {} {:?}>", self.path, self.access)
    }
}

impl MetricsEndpoint {
    /// The path answered with the metrics.
    pub(crate) fn path_str(&self) -> &str {
        &self.path
    }

    /// The `WWW-Authenticate` challenge if this request may not scrape.
    fn refusal(&self, authorization: Option<&str>) -> Option<&'static str> {
        if self.access.allows(authorization.map(str::as_bytes)) {
            None
        } else {
            self.access.challenge()
        }
    }
}
