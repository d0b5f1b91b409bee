//! `Recorder`: one application's recording settings, resolved to a core recorder once.

use std::sync::Arc;
use std::time::Duration;

use last9_core::normalize::{self, RouteSyntax};
use last9_core::{Buckets, ConstLabels, Limits, Request, RouteId, RouteTemplates};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::errors::to_py;
use crate::registry::Registry;

/// How a request's route is found: from the framework's template, or from the raw path.
enum Routing {
    Templates(RouteTemplates),
    RawPath,
}

#[pyclass(frozen, module = "last9._core")]
pub struct Recorder {
    core: Arc<last9_core::Recorder>,
    routing: Routing,
}

pub(crate) fn parse_syntax(name: &str) -> PyResult<RouteSyntax> {
    Ok(match name {
        "angle" => RouteSyntax::Angle,
        "angle_name_first" => RouteSyntax::AngleNameFirst,
        "brace" => RouteSyntax::Brace,
        "regex" => RouteSyntax::Regex,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown route syntax {other:?}; expected 'angle', 'angle_name_first', 'brace' or 'regex'"
            )))
        }
    })
}

impl Recorder {
    /// The route of a request from what the framework said (`template`) and its path.
    pub(crate) fn route(&self, template: Option<&str>, path: &str) -> RouteId {
        match (&self.routing, template) {
            (Routing::Templates(templates), Some(template)) => templates.route(template),
            (Routing::Templates(_), None) => self.core.unmatched(),
            (Routing::RawPath, _) => self.core.raw_path(path),
        }
    }

    /// The route of a request to an app without a router.
    pub(crate) fn raw_path_route(&self, path: &str) -> RouteId {
        self.core.raw_path(path)
    }

    pub(crate) fn record(
        &self,
        route: RouteId,
        host: Option<&str>,
        method: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let duration_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.core.observe(&Request {
            route,
            host,
            method,
            status,
            duration_ns,
        });
    }

    pub(crate) fn routed(&self) -> bool {
        matches!(self.routing, Routing::Templates(_))
    }

    /// Records one request of an ASGI app: the method and Host header are read from the scope
    /// without copying, the path only for apps without a router.
    pub(crate) fn record_scope(
        &self,
        template: Option<&str>,
        scope: &Bound<'_, PyDict>,
        status: u16,
        elapsed: Duration,
    ) {
        let py = scope.py();
        let route = if self.routed() {
            self.route(template, "")
        } else {
            let root = scope_text(scope, intern!(py, "root_path"));
            let path = scope_text(scope, intern!(py, "path"));
            let full = format!(
                "{}{}",
                root.as_deref().unwrap_or(""),
                path.as_deref().unwrap_or("")
            );
            self.route(None, &full)
        };
        let method = scope.get_item(intern!(py, "method")).ok().flatten();
        let method = method
            .as_ref()
            .and_then(|m| m.cast::<PyString>().ok())
            .and_then(|m| m.to_str().ok())
            .unwrap_or("");
        match host_header(scope) {
            Some(host) => match std::str::from_utf8(host.as_bytes()) {
                Ok(host) => self.record(route, Some(host), method, status, elapsed),
                Err(_) => {
                    let host = String::from_utf8_lossy(host.as_bytes());
                    self.record(route, Some(&host), method, status, elapsed);
                }
            },
            None => {
                let server = server_host(scope);
                self.record(route, server.as_deref(), method, status, elapsed);
            }
        }
    }
}

/// A string value of a scope, if it is one.
fn scope_text(scope: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> Option<String> {
    let value = scope.get_item(key).ok()??;
    value.cast::<PyString>().ok()?.to_str().ok().map(str::to_owned)
}

#[pymethods]
impl Recorder {
    /// Recording settings of one application.
    ///
    /// `route_syntax` names how the app's framework spells route templates ("angle", "brace",
    /// …); None means the app has no router and paths are normalised instead.
    #[new]
    #[pyo3(signature = (
        registry, *, hostname, program, tenant = String::new(), cluster = String::new(), buckets = None,
        max_routes = 500, max_domains = 100, route_syntax = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        registry: &Registry,
        hostname: String,
        program: String,
        tenant: String,
        cluster: String,
        buckets: Option<Vec<f64>>,
        max_routes: usize,
        max_domains: usize,
        route_syntax: Option<&str>,
    ) -> PyResult<Recorder> {
        let buckets = match buckets {
            Some(bounds) => Buckets::new(&bounds).map_err(to_py)?,
            None => Buckets::last9_default(),
        };
        let consts = ConstLabels {
            hostname,
            program,
            tenant,
            cluster,
        };
        let limits = Limits {
            max_routes,
            max_domains,
        };
        let core = registry.inner.recorder(consts, buckets, limits).map_err(to_py)?;
        let routing = match route_syntax {
            Some(name) => Routing::Templates(RouteTemplates::new(core.clone(), parse_syntax(name)?)),
            None => Routing::RawPath,
        };
        Ok(Recorder { core, routing })
    }

    /// Records one request. `route` is the framework's template (None: no route matched) and
    /// `path` the raw path, used when the app has no router.
    #[pyo3(signature = (route, path, host, method, status, duration_ns))]
    fn observe(
        &self,
        route: Option<&str>,
        path: &str,
        host: Option<&str>,
        method: &str,
        status: u16,
        duration_ns: u64,
    ) {
        let route = self.route(route, path);
        self.record(route, host, method, status, Duration::from_nanos(duration_ns));
    }

    /// Records one request of an ASGI app from its scope: path, method and Host header are
    /// read here rather than in Python.
    #[pyo3(signature = (route, scope, status, duration_ns))]
    fn observe_scope(&self, route: Option<&str>, scope: &Bound<'_, PyDict>, status: u16, duration_ns: u64) {
        self.record_scope(route, scope, status, Duration::from_nanos(duration_ns));
    }

    #[getter]
    fn program(&self) -> &str {
        &self.core.consts().program
    }

    #[getter]
    fn hostname(&self) -> &str {
        &self.core.consts().hostname
    }

    #[getter]
    fn tenant(&self) -> &str {
        &self.core.consts().tenant
    }

    #[getter]
    fn cluster(&self) -> &str {
        &self.core.consts().cluster
    }

    #[getter]
    fn buckets(&self) -> Vec<f64> {
        self.core.buckets().bounds_ms().to_vec()
    }

    fn __repr__(&self) -> String {
        format!(
            "<last9 Recorder program={:?} with {} series>",
            self.core.consts().program,
            self.core.len()
        )
    }
}

/// The Host header of an ASGI scope: `headers` is an iterable of `(bytes, bytes)` pairs.
fn host_header<'py>(scope: &Bound<'py, PyDict>) -> Option<Bound<'py, PyBytes>> {
    let headers = scope.get_item(intern!(scope.py(), "headers")).ok()??;
    if let Ok(list) = headers.cast::<PyList>() {
        return list.iter().find_map(|pair| host_value(&pair));
    }
    headers
        .try_iter()
        .ok()?
        .flatten()
        .find_map(|pair| host_value(&pair))
}

fn host_value<'py>(pair: &Bound<'py, PyAny>) -> Option<Bound<'py, PyBytes>> {
    let (name, value) = match pair.cast::<PyTuple>() {
        Ok(pair) if pair.len() == 2 => (pair.get_item(0).ok()?, pair.get_item(1).ok()?),
        Ok(_) => return None,
        Err(_) => (pair.get_item(0).ok()?, pair.get_item(1).ok()?),
    };
    let name = name.cast::<PyBytes>().ok()?;
    if name.as_bytes().eq_ignore_ascii_case(b"host") {
        value.cast_into::<PyBytes>().ok()
    } else {
        None
    }
}

/// The host of the scope's `server` pair, for requests without a Host header.
fn server_host(scope: &Bound<'_, PyDict>) -> Option<String> {
    let server = scope.get_item(intern!(scope.py(), "server")).ok()??;
    server.get_item(0).ok()?.extract::<String>().ok()
}

/// A raw URL path with ids collapsed, as used for apps without a router.
#[pyfunction]
pub fn normalize_path(path: &str) -> String {
    normalize::normalize_path(path).into_owned()
}

/// A framework's route template in `{param}` form.
#[pyfunction]
pub fn route_template(template: &str, syntax: &str) -> PyResult<String> {
    Ok(normalize::route_template(template, parse_syntax(syntax)?).into_owned())
}
