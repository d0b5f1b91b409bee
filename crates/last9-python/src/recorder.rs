//! `Recorder`: one application's recording settings, resolved to a core recorder once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use last9_core::model::semconv::{self, Semconv, OTEL_BOUNDS_MS};
use last9_core::native::NativeSpec;
use last9_core::normalize::{self, RouteSyntax};
use last9_core::registry::RequestLabel;
use last9_core::{Buckets, ConstLabels, Limits, Request, RouteId, RouteTemplates};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::errors::{to_py, MetricsError};
use crate::exclude::Exclusions;
use crate::registry::Registry;
use crate::request::{environ_text, scope_headers, scope_text, server_host, with_raw_path};

/// How a request's route is found: from the framework's template, or from the raw path.
enum Routing {
    Templates(RouteTemplates),
    RawPath,
}

#[pyclass(frozen, module = "last9._core")]
pub struct Recorder {
    core: Arc<last9_core::Recorder>,
    routing: Routing,
    /// The `exclude` setting; None when it leaves nothing out.
    exclusions: Option<Arc<last9_core::exclude::Exclusions>>,
    /// Where the request label's value comes from (None: the recorder has no request label).
    label_source: Option<LabelSource>,
    /// Whether the middlewares note body sizes (`body_sizes`).
    body_sizes: bool,
}

/// Where a request label's value comes from.
enum LabelSource {
    /// A request header: its WSGI environ key (`HTTP_X_TIER`) and lower-case ASGI name (`x-tier`).
    Header(Py<PyString>, Vec<u8>),
    /// The app, through `last9.set_label` during the request: the label's name, and the
    /// context variable that hands `set_label` the request's holder (see [`LABEL_KEY`]).
    App(Py<PyString>, Py<PyAny>),
}

/// The environ (WSGI) or scope (ASGI) key of the holder `[name, value]` a request's
/// `last9.set_label` fills; the same list is the value of the app's context variable, so a
/// thread or task that copied the context still reaches it.
const LABEL_KEY: &str = "last9.request_label";

/// The `app_label` argument: the label's name, its allow-list (None: any value up to the cap),
/// its cap, and the context variable `last9.set_label` reads.
type AppLabel = (String, Option<Vec<String>>, usize, Py<PyAny>);

/// The text a holder carries once the app has set it.
fn holder_value<'py>(holder: Option<Bound<'py, PyAny>>) -> Option<Bound<'py, PyString>> {
    let holder = holder?.cast_into::<PyList>().ok()?;
    holder.get_item(1).ok()?.cast_into::<PyString>().ok()
}

pub(crate) fn parse_syntax(name: &str) -> PyResult<RouteSyntax> {
    Ok(match name {
        "angle" => RouteSyntax::Angle,
        "angle_name_first" => RouteSyntax::AngleNameFirst,
        "brace" => RouteSyntax::Brace,
        "regex" => RouteSyntax::Regex,
        "django" => RouteSyntax::Django,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown route syntax {other:?}; expected 'angle', 'angle_name_first', 'brace', 'regex' or 'django'"
            )))
        }
    })
}

impl Recorder {
    /// Whether a request is left out as it enters (by method or raw path): it is then neither
    /// timed nor counted in flight.
    #[inline]
    pub(crate) fn excluded_on_entry(&self, method: &str, path: &str) -> bool {
        self.exclusions.as_ref().is_some_and(|e| e.on_entry(method, path))
    }

    /// Whether any request can be left out as it enters.
    #[inline]
    pub(crate) fn excludes_on_entry(&self) -> bool {
        self.exclusions.is_some()
    }

    /// The route of a request from what the framework said (`template`) and its path.
    pub(crate) fn route(&self, template: Option<&str>, path: &str) -> RouteId {
        match (&self.routing, template) {
            (Routing::Templates(templates), Some(template)) => templates.route(template),
            (Routing::Templates(_), None) => self.core.unmatched(),
            (Routing::RawPath, _) => self.core.raw_path(path),
        }
    }

    /// The route of an app without a router, from SCRIPT_NAME + PATH_INFO as the client sent them.
    pub(crate) fn environ_raw_path_route(&self, environ: &Bound<'_, PyDict>) -> RouteId {
        with_raw_path(environ, |path| self.raw_path_route(path))
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
        self.record_sized(route, host, method, status, elapsed, None, None, None);
    }

    /// [`Self::record`] with the request label's value, the request's trace context (which
    /// becomes an exemplar) and its body sizes in bytes, when `body_sizes` is on
    /// (see [`crate::body_size::Sizes::totals`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_sized(
        &self,
        route: RouteId,
        host: Option<&str>,
        method: &str,
        status: u16,
        elapsed: Duration,
        label: Option<&str>,
        trace: Option<crate::trace::TraceIds>,
        sizes: Option<(Option<u64>, Option<u64>)>,
    ) {
        let duration_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let request = Request {
            route,
            host,
            method,
            status,
            duration_ns,
        };
        match sizes {
            None => self.core.observe_full(&request, label, trace),
            Some((request_bytes, response_bytes)) => {
                self.core
                    .observe_with_body_sizes(&request, label, trace, request_bytes, response_bytes)
            }
        }
    }

    /// Whether the middlewares note body sizes (`body_sizes`).
    #[inline]
    pub(crate) fn body_sizes(&self) -> bool {
        self.body_sizes
    }

    /// The request label's value in a WSGI environ (None: no label, or the request has none).
    #[inline]
    pub(crate) fn environ_label<'py>(&self, environ: &Bound<'py, PyDict>) -> Option<Bound<'py, PyString>> {
        match self.label_source.as_ref()? {
            LabelSource::Header(key, _) => environ_text(environ, key.bind(environ.py())),
            LabelSource::App(..) => holder_value(environ.get_item(intern!(environ.py(), LABEL_KEY)).ok()?),
        }
    }

    /// When the app sets the request label (`last9.set_label`): gives the request an empty
    /// holder, in `carrier` (environ or scope) for the recording and in the context variable
    /// for `set_label`. Called as a request enters; does nothing otherwise. A failure only
    /// leaves the request without the label.
    #[inline]
    pub(crate) fn open_label(&self, carrier: &Bound<'_, PyDict>) {
        if let Some(LabelSource::App(name, var)) = &self.label_source {
            let _ = open_holder(carrier, name, var);
        }
    }

    pub(crate) fn count_caller_route(&self, route: RouteId, caller: Option<&str>, status: u16) {
        self.core.count_caller(route, caller, status);
    }

    pub(crate) fn observe_client_route(
        &self,
        route: RouteId,
        upstream: &str,
        method: &str,
        status: &str,
        ns: u64,
        trace: Option<crate::trace::TraceIds>,
    ) {
        self.core
            .observe_client_traced(Some(route), upstream, method, status, ns, trace);
    }

    pub(crate) fn routed(&self) -> bool {
        matches!(self.routing, Routing::Templates(_))
    }

    /// The route of an ASGI request: from the framework's template, or the raw path (root_path
    /// and path) for an app without a router.
    pub(crate) fn scope_route(&self, template: Option<&str>, scope: &Bound<'_, PyDict>) -> RouteId {
        if self.routed() {
            return self.route(template, "");
        }
        let py = scope.py();
        let root = scope_text(scope, intern!(py, "root_path"));
        let path = scope_text(scope, intern!(py, "path"));
        let full = format!(
            "{}{}",
            root.as_deref().unwrap_or(""),
            path.as_deref().unwrap_or("")
        );
        self.raw_path_route(&full)
    }

    /// Records one request of an ASGI app: the Host header (and the method, unless the caller
    /// knows it already) are read from the scope without copying.
    pub(crate) fn record_scope(
        &self,
        route: RouteId,
        scope: &Bound<'_, PyDict>,
        method: Option<&str>,
        status: u16,
        elapsed: Duration,
    ) {
        self.record_scope_sized(route, scope, method, status, elapsed, None);
    }

    /// [`Self::record_scope`] with the request's body sizes (see [`Self::record_sized`]).
    pub(crate) fn record_scope_sized(
        &self,
        route: RouteId,
        scope: &Bound<'_, PyDict>,
        method: Option<&str>,
        status: u16,
        elapsed: Duration,
        sizes: Option<(Option<u64>, Option<u64>)>,
    ) {
        let py = scope.py();
        let from_scope = match method {
            Some(_) => None,
            None => scope.get_item(intern!(py, "method")).ok().flatten(),
        };
        let method = method.unwrap_or_else(|| {
            from_scope
                .as_ref()
                .and_then(|m| m.cast::<PyString>().ok())
                .and_then(|m| m.to_str().ok())
                .unwrap_or("")
        });
        // One pass over the headers for all three.
        let label_name = match self.label_source.as_ref() {
            Some(LabelSource::Header(_, name)) => &name[..],
            _ => &b""[..],
        };
        let [host, traceparent, header_label] = scope_headers(scope, [b"host", b"traceparent", label_name]);
        let trace = crate::trace::current(
            py,
            traceparent
                .as_ref()
                .and_then(|t| std::str::from_utf8(t.as_bytes()).ok()),
        );
        let label = match self.label_source.as_ref() {
            Some(LabelSource::App(..)) => {
                holder_value(scope.get_item(intern!(py, LABEL_KEY)).ok().flatten()).map(Bound::into_any)
            }
            _ => header_label.map(Bound::into_any),
        };
        let label = label.as_ref().and_then(label_text);
        match host {
            Some(host) => match std::str::from_utf8(host.as_bytes()) {
                Ok(host) => {
                    self.record_sized(route, Some(host), method, status, elapsed, label, trace, sizes)
                }
                Err(_) => {
                    let host = String::from_utf8_lossy(host.as_bytes());
                    self.record_sized(route, Some(&host), method, status, elapsed, label, trace, sizes);
                }
            },
            None => {
                let server = server_host(scope);
                self.record_sized(
                    route,
                    server.as_deref(),
                    method,
                    status,
                    elapsed,
                    label,
                    trace,
                    sizes,
                );
            }
        }
    }
}

/// The text of a request label's value: a header's bytes as UTF-8, or a string.
fn label_text<'a>(value: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    match value.cast::<PyBytes>() {
        Ok(bytes) => std::str::from_utf8(bytes.as_bytes()).ok(),
        Err(_) => value.cast::<PyString>().ok()?.to_str().ok(),
    }
}

/// Gives the core recorder its request label: `allowed` values only, else at most `max`.
fn set_request_label(
    core: &last9_core::Recorder,
    name: &str,
    allowed: Option<&[String]>,
    max: usize,
) -> PyResult<()> {
    let max = allowed.map_or(max, <[String]>::len);
    if core.set_request_label(RequestLabel::new(name, allowed, max)) {
        return Ok(());
    }
    Err(MetricsError::new_err(format!(
        "program {:?} already records with another request label; one label set cannot have two",
        core.consts().program
    )))
}

/// A fresh `[name, None]` holder, put in the request's carrier and in the context variable.
fn open_holder(carrier: &Bound<'_, PyDict>, name: &Py<PyString>, var: &Py<PyAny>) -> PyResult<()> {
    let py = carrier.py();
    let holder = PyList::new(py, [name.bind(py).as_any(), &py.None().into_bound(py)])?;
    carrier.set_item(intern!(py, LABEL_KEY), &holder)?;
    var.bind(py).call_method1(intern!(py, "set"), (holder,))?;
    Ok(())
}

/// The classic buckets and native shape a recorder's histograms keep, from its settings.
fn histogram_layout(
    bounds: Option<Vec<f64>>,
    classic: bool,
    native: Option<(i32, u32, f64)>,
    naming: Semconv,
) -> PyResult<Buckets> {
    if !classic && native.is_none() {
        return Err(MetricsError::new_err(
            "LAST9_CLASSIC_HISTOGRAMS (classic_histograms) and LAST9_NATIVE_HISTOGRAMS \
             (native_histograms) are both off: keep at least one kind of histogram",
        ));
    }
    let buckets = match (classic, bounds) {
        (false, _) => Buckets::none(),
        (true, Some(bounds)) => Buckets::new(&bounds).map_err(to_py)?,
        (true, None) if naming == Semconv::Otel => Buckets::new(&OTEL_BOUNDS_MS).map_err(to_py)?,
        (true, None) => Buckets::last9_default(),
    };
    // OpenTelemetry's families are read from the same cells: they need its bounds.
    let buckets = match naming {
        Semconv::Last9 => buckets,
        _ => buckets.with_bounds(&OTEL_BOUNDS_MS).map_err(to_py)?,
    };
    let Some((schema, max_buckets, zero_threshold)) = native else {
        return Ok(buckets);
    };
    let schema = i8::try_from(schema)
        .ok()
        .filter(|s| (last9_core::native::MIN_SCHEMA..=last9_core::native::MAX_SCHEMA).contains(s))
        .ok_or_else(|| {
            MetricsError::new_err(format!(
                "LAST9_NATIVE_SCHEMA (native_schema) must be between -4 and 8, not {schema}"
            ))
        })?;
    if !(1..=4096).contains(&max_buckets) {
        return Err(MetricsError::new_err(format!(
            "LAST9_NATIVE_MAX_BUCKETS (native_max_buckets) must be between 1 and 4096, not {max_buckets}"
        )));
    }
    let spec = NativeSpec::new(schema, zero_threshold, max_buckets).map_err(|_| {
        MetricsError::new_err(format!(
            "LAST9_NATIVE_ZERO_THRESHOLD (native_zero_threshold) must be a finite number of \
             milliseconds, at least 0, not {zero_threshold}"
        ))
    })?;
    Ok(buckets.with_native(Some(spec)))
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
        max_routes = 500, max_domains = 100, route_syntax = None, domains = None, exclude = None,
        labels = Vec::new(), header_label = None, header_label_values = None, header_label_max = 10,
        group_status = false, semconv = "last9", app_label = None, body_sizes = false,
        classic_histograms = true, native_histograms = true,
        native_schema = last9_core::native::DEFAULT_SCHEMA as i32,
        native_max_buckets = last9_core::native::DEFAULT_MAX_BUCKETS,
        native_zero_threshold = last9_core::native::DEFAULT_ZERO_THRESHOLD_MS
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        registry: &Registry,
        hostname: String,
        program: String,
        tenant: String,
        cluster: String,
        buckets: Option<Vec<f64>>,
        max_routes: usize,
        max_domains: usize,
        route_syntax: Option<&str>,
        domains: Option<Vec<String>>,
        exclude: Option<&Exclusions>,
        labels: Vec<(String, String)>,
        header_label: Option<(String, String)>,
        header_label_values: Option<Vec<String>>,
        header_label_max: usize,
        group_status: bool,
        semconv: &str,
        app_label: Option<AppLabel>,
        body_sizes: bool,
        classic_histograms: bool,
        native_histograms: bool,
        native_schema: i32,
        native_max_buckets: u32,
        native_zero_threshold: f64,
    ) -> PyResult<Recorder> {
        let naming = Semconv::parse(semconv).ok_or_else(|| {
            MetricsError::new_err(format!(
                "LAST9_SEMCONV (semconv) must be 'last9', 'otel' or 'dup', not {semconv:?}"
            ))
        })?;
        let buckets = histogram_layout(
            buckets,
            classic_histograms,
            native_histograms.then_some((native_schema, native_max_buckets, native_zero_threshold)),
            naming,
        )?;
        semconv::set(naming);
        let consts = ConstLabels {
            hostname,
            program,
            tenant,
            cluster,
            extra: labels,
        };
        let limits = Limits {
            max_routes,
            max_domains,
        };
        if let Some(domains) = &domains {
            if domains.len() > max_domains {
                return Err(MetricsError::new_err(format!(
                    "LAST9_DOMAINS (domains) lists {} domains, more than LAST9_MAX_DOMAINS \
                     (max_domains) allows ({max_domains})",
                    domains.len()
                )));
            }
        }
        let core = registry.inner.recorder(consts, buckets, limits).map_err(to_py)?;
        if let Some(domains) = &domains {
            let invalid = core.allow_only_domains(domains.iter().map(String::as_str));
            if !invalid.is_empty() {
                return Err(MetricsError::new_err(format!(
                    "LAST9_DOMAINS (domains) must be host names such as 'example.com', not {invalid:?}"
                )));
            }
        }
        if !core.set_status_classes(group_status) {
            return Err(MetricsError::new_err(format!(
                "program {:?} already records status {}; one label set cannot have both",
                core.consts().program,
                if group_status { "codes" } else { "classes" }
            )));
        }
        let label_source = match (header_label, app_label) {
            (Some(_), Some(_)) => {
                return Err(MetricsError::new_err(
                    "LAST9_HEADER_LABEL (header_label) and LAST9_REQUEST_LABELS (request_labels) \
                     cannot both be set: a label set has one request label",
                ))
            }
            (Some((name, header)), None) => {
                let allowed = header_label_values.as_deref();
                set_request_label(&core, &name, allowed, header_label_max)?;
                let key = format!("HTTP_{}", header.to_ascii_uppercase().replace('-', "_"));
                Some(LabelSource::Header(
                    PyString::intern(py, &key).unbind(),
                    header.to_ascii_lowercase().into_bytes(),
                ))
            }
            (None, Some((name, allowed, max, var))) => {
                set_request_label(&core, &name, allowed.as_deref(), max)?;
                Some(LabelSource::App(PyString::intern(py, &name).unbind(), var))
            }
            (None, None) => None,
        };
        let exclusions = exclude.map(|e| e.inner.clone()).filter(|e| !e.is_empty());
        let routing = match route_syntax {
            Some(name) => Routing::Templates(
                RouteTemplates::new(core.clone(), parse_syntax(name)?).with_exclusions(exclusions.clone()),
            ),
            None => Routing::RawPath,
        };
        Ok(Recorder {
            core,
            routing,
            exclusions,
            label_source,
            body_sizes,
        })
    }

    /// Gives the route templates the app's router knows (framework syntax) their slots before
    /// any request. Does nothing for an app without a router.
    fn register_routes(&self, templates: Vec<String>) {
        if let Routing::Templates(routes) = &self.routing {
            routes.register(templates.iter().map(String::as_str));
        }
    }

    /// Records one request. `route` is the framework's template (None: no route matched) and
    /// `path` the raw path, used when the app has no router. With `body_sizes` on, the body
    /// sizes in bytes are recorded too (None: unknown).
    #[pyo3(signature = (
        route, path, host, method, status, duration_ns, request_bytes = None, response_bytes = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        route: Option<&str>,
        path: &str,
        host: Option<&str>,
        method: &str,
        status: u16,
        duration_ns: u64,
        request_bytes: Option<u64>,
        response_bytes: Option<u64>,
    ) {
        let route = self.route(route, path);
        let elapsed = Duration::from_nanos(duration_ns);
        let sizes = self.body_sizes.then_some((request_bytes, response_bytes));
        self.record_sized(route, host, method, status, elapsed, None, None, sizes);
    }

    /// Records one request from a WSGI environ, or from Django's `request.META` (which has the
    /// same keys under ASGI too): Host, method and, for an app without a router, the path are
    /// read here rather than in Python. With `body_sizes` on, the request's size is its
    /// declared length (unknown for a chunked body) and `response_bytes` the response's.
    #[pyo3(signature = (route, environ, status, duration_ns, response_bytes = None))]
    fn observe_environ(
        &self,
        route: Option<&str>,
        environ: &Bound<'_, PyDict>,
        status: u16,
        duration_ns: u64,
        response_bytes: Option<u64>,
    ) {
        let py = environ.py();
        let route = if self.routed() {
            self.route(route, "")
        } else {
            self.environ_raw_path_route(environ)
        };
        let host = environ_text(environ, intern!(py, "HTTP_HOST"))
            .or_else(|| environ_text(environ, intern!(py, "SERVER_NAME")));
        let method = environ_text(environ, intern!(py, "REQUEST_METHOD"));
        let label = self.environ_label(environ);
        let sizes = self
            .body_sizes
            .then(|| (crate::body_size::declared_length(environ), response_bytes));
        self.record_sized(
            route,
            host.as_ref().and_then(|h| h.to_str().ok()),
            method.as_ref().and_then(|m| m.to_str().ok()).unwrap_or(""),
            status,
            Duration::from_nanos(duration_ns),
            label.as_ref().and_then(|l| l.to_str().ok()),
            None,
            sizes,
        );
    }

    /// Records one request of an ASGI app from its scope: path, method and Host header are
    /// read here rather than in Python.
    #[pyo3(signature = (route, scope, status, duration_ns))]
    fn observe_scope(&self, route: Option<&str>, scope: &Bound<'_, PyDict>, status: u16, duration_ns: u64) {
        let route = self.scope_route(route, scope);
        self.record_scope(route, scope, None, status, Duration::from_nanos(duration_ns));
    }

    /// Records one finished request of a Tornado app from its `RequestHandler`: the status set
    /// on it, the request's method and Host header, and the wall-clock time since the request's
    /// headers were read (`request._start_time`, as `request.request_time()` counts it). Read
    /// here because the same few attribute reads and arithmetic cost several times more in Python.
    #[pyo3(signature = (route, handler))]
    fn observe_tornado(&self, route: Option<&str>, handler: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = handler.py();
        let status = handler
            .getattr(intern!(py, "_status_code"))?
            .extract::<u16>()
            .unwrap_or(0);
        let request = handler.getattr(intern!(py, "request"))?;
        let started: f64 = request.getattr(intern!(py, "_start_time"))?.extract()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        // The wall clock can step back; such a request counts as instantaneous.
        let elapsed = Duration::try_from_secs_f64(now - started).unwrap_or_default();
        let host = request.getattr(intern!(py, "host"))?;
        let host = host.cast::<PyString>().ok().and_then(|h| h.to_str().ok());
        let method = request.getattr(intern!(py, "method"))?;
        let method = method.cast::<PyString>().ok().and_then(|m| m.to_str().ok());
        let route = if self.routed() {
            self.route(route, "")
        } else {
            let path = request.getattr(intern!(py, "path"))?;
            self.raw_path_route(path.cast::<PyString>()?.to_str()?)
        };
        self.record(route, host, method.unwrap_or(""), status, elapsed);
        Ok(())
    }

    /// Counts a request entering the app in `http_requests_in_flight`; returns the token to give
    /// to `leave` once, when the request is recorded or dropped.
    pub(crate) fn enter(&self, method: &str) -> u8 {
        self.core.enter(method)
    }

    pub(crate) fn leave(&self, token: u8) {
        self.core.leave(token)
    }

    /// Records one outbound call. `per` is the calling route's template in the framework's own
    /// syntax (None: outside a request or no route matched).
    #[pyo3(signature = (per, upstream, method, status, duration_ns))]
    fn observe_client(
        &self,
        per: Option<&str>,
        upstream: &str,
        method: &str,
        status: &str,
        duration_ns: u64,
    ) {
        let per = per.map(|p| self.route(Some(p), p));
        self.core
            .observe_client(per, upstream, method, status, duration_ns);
    }

    /// Counts one inbound request of the route `per` (framework syntax; None: unmatched) from
    /// `caller` (None: it named none), answered with `status` (0: none was sent).
    #[pyo3(signature = (per, caller, status=0))]
    fn count_caller(&self, per: Option<&str>, caller: Option<&str>, status: u16) {
        let route = self.route(per, per.unwrap_or(""));
        self.core.count_caller(route, caller, status);
    }

    /// Whether the `exclude` setting leaves a request out as it enters (its method, or its raw
    /// path): the frameworks' hooks ask this first.
    fn excluded(&self, method: &str, path: &str) -> bool {
        self.excluded_on_entry(method, path)
    }

    /// Gives a request about to run a holder for `last9.set_label` (when the app sets a request
    /// label): `carrier` is the dict `observe_environ` or `observe_scope` will read (Django's
    /// `request.META`, Falcon's `req.env` or `req.scope`, Pyramid's environ).
    fn begin_request(&self, carrier: &Bound<'_, PyDict>) {
        self.open_label(carrier);
    }

    /// Whether some request can be left out as it enters (else hooks need not ask).
    #[getter]
    fn excluding(&self) -> bool {
        self.excludes_on_entry()
    }

    /// Whether body sizes are recorded (`body_sizes`): hooks that record themselves ask it.
    #[getter(body_sizes)]
    fn body_sizes_py(&self) -> bool {
        self.body_sizes
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
