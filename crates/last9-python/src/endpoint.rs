//! `MetricsEndpoint`: the app's own metrics path, answered the same way by every entry point.
//!
//! It holds who may scrape ([`Access`]) and renders the answer with the GIL released, writing
//! the body once, straight into the `bytes` object handed back: a scrape of many series never
//! holds up the app's other threads, nor copies the body while holding the GIL.

use std::sync::Arc;

use last9_core::access::Access;
use last9_core::live::{self, Live};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

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
    /// The live page under `<path>/ui`, when the app asked for it (`ui=True`, `LAST9_UI=1`).
    live: Option<Arc<Live>>,
}

#[pymethods]
impl MetricsEndpoint {
    /// Raises `MetricsError` for credentials that cannot work (half a pair, both kinds).
    #[new]
    #[pyo3(signature = (
        registry, path = String::from("/metrics"), *, username = None, password = None,
        bearer_token = None, ui = false,
    ))]
    fn new(
        registry: &Registry,
        path: String,
        username: Option<&str>,
        password: Option<&str>,
        bearer_token: Option<&str>,
        ui: bool,
    ) -> PyResult<MetricsEndpoint> {
        let access = Access::from_settings(username, password, bearer_token, "LAST9_METRICS")
            .map_err(|e| MetricsError::new_err(e.0))?;
        Ok(MetricsEndpoint {
            registry: registry.inner,
            path,
            access,
            live: ui.then(|| Live::of(registry.inner)),
        })
    }

    /// Whether `path` asks for the live page (False) or its data (True); None when it asks for
    /// neither, or the live page is off.
    fn ui_route(&self, path: &str) -> Option<bool> {
        self.ui_target(path)
    }

    /// The answer to a GET (or HEAD) of the live page (`data` False) or its data (True):
    /// `(status, headers, body)`, protected like the metrics. Computed with the GIL released.
    #[pyo3(signature = (authorization = None, data = false, head = false))]
    pub(crate) fn respond_ui<'py>(
        &self,
        py: Python<'py>,
        authorization: Option<&str>,
        data: bool,
        head: bool,
    ) -> PyResult<(u16, Bound<'py, PyList>, Bound<'py, PyBytes>)> {
        let Some(live) = &self.live else {
            let headers = PyList::new(py, [("Content-Type", "text/plain; charset=utf-8")])?;
            return Ok((404, headers, PyBytes::new(py, b"Not Found\n")));
        };
        if let Some(refused) = self.unauthorized(py, authorization, head)? {
            return Ok(refused);
        }
        let response = py.detach(|| live.respond(data));
        let headers = PyList::empty(py);
        headers.append(("Content-Type", response.content_type))?;
        headers.append(("Content-Length", response.body.len().to_string()))?;
        for header in live::HEADERS {
            headers.append(header)?;
        }
        let body = PyBytes::new(py, if head { b"" } else { &response.body });
        Ok((response.status, headers, body))
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
        if let Some(refused) = self.unauthorized(py, authorization, head)? {
            return Ok(refused);
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

/// A response as the Python side receives it.
type Answer<'py> = (u16, Bound<'py, PyList>, Bound<'py, PyBytes>);

impl MetricsEndpoint {
    /// The path answered with the metrics.
    pub(crate) fn path_str(&self) -> &str {
        &self.path
    }

    /// See `ui_route`; free when the live page is off (no request path is looked at).
    #[inline]
    pub(crate) fn ui_target(&self, path: &str) -> Option<bool> {
        self.live.as_ref()?;
        live::under(path, &self.path)
    }

    /// Whether the live page is on.
    #[inline]
    pub(crate) fn has_ui(&self) -> bool {
        self.live.is_some()
    }

    /// Answers a WSGI GET or HEAD of the live page or its data; None for other methods.
    pub(crate) fn serve_wsgi_ui<'py>(
        &self,
        data: bool,
        environ: &Bound<'py, PyDict>,
        start_response: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = environ.py();
        let text = |key: &Bound<'py, pyo3::types::PyString>| {
            environ
                .get_item(key)
                .ok()
                .flatten()
                .and_then(|v| v.extract::<String>().ok())
        };
        let head = match text(intern!(py, "REQUEST_METHOD")).as_deref() {
            Some("GET") => false,
            Some("HEAD") => true,
            _ => return Ok(None),
        };
        let authorization = text(intern!(py, "HTTP_AUTHORIZATION"));
        let (status, headers, body) = self.respond_ui(py, authorization.as_deref(), data, head)?;
        let status_line = match status {
            200 => "200 OK",
            401 => "401 Unauthorized",
            404 => "404 Not Found",
            _ => "503 Service Unavailable",
        };
        start_response.call1((status_line, headers))?;
        Ok(Some(PyList::new(py, [body])?.into_any()))
    }

    /// The 401 answer when this request may not scrape.
    fn unauthorized<'py>(
        &self,
        py: Python<'py>,
        authorization: Option<&str>,
        head: bool,
    ) -> PyResult<Option<Answer<'py>>> {
        let Some(challenge) = self.refusal(authorization) else {
            return Ok(None);
        };
        let headers = PyList::new(
            py,
            [
                ("Content-Type", "text/plain; charset=utf-8".to_owned()),
                ("Content-Length", UNAUTHORIZED.len().to_string()),
                ("WWW-Authenticate", challenge.to_owned()),
            ],
        )?;
        let body = PyBytes::new(py, if head { b"" } else { UNAUTHORIZED });
        Ok(Some((401, headers, body)))
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
