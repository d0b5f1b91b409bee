//! The WSGI middleware's per-request path.
//!
//! `WsgiMiddleware.__call__` times the app, learns the status through a `StartResponse`
//! wrapper and records once the response is complete: at once for a list or tuple body (or one
//! of the types the adapter says are rendered when returned), when the body is exhausted or
//! closed otherwise. It never changes what the app returns, and an
//! exception from the app is recorded as 500 and re-raised as it was.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList, PyString, PyTuple, PyType};

use last9_core::normalize::METHODS;
use last9_core::RouteId;

use crate::body_size::Sizes;
use crate::endpoint::MetricsEndpoint;
use crate::lineage::set_inbound;
use crate::recorder::Recorder;
use crate::registry::Registry;
use crate::request::{environ_text, log_failure_once, with_raw_path};

#[pyclass(subclass, frozen, module = "last9._core")]
pub struct WsgiMiddleware {
    app: Py<PyAny>,
    recorder: Py<Recorder>,
    registry: Py<Registry>,
    /// Called with the environ once the app has answered; returns the route template or None.
    route_getter: Option<Py<PyAny>>,
    /// `(environ key, attribute names)`: the template is `environ[key].attr1.attr2…`, read
    /// without a Python call. When a step gives None, the route getter is asked instead.
    route_source: Option<(Py<PyString>, Vec<Py<PyString>>)>,
    /// Whether the route source's key is last9's own (`last9.…`), removed once the request is
    /// over (its value may hold the request, which holds the environ). A framework's own key,
    /// such as `werkzeug.request`, is left where the framework put it.
    owns_source_key: bool,
    /// The app's own metrics path, answered instead of reaching the app.
    metrics: Option<Py<MetricsEndpoint>>,
    /// Types of bodies the app returns fully rendered (Django's `HttpResponse`): recorded as
    /// soon as the app returns and passed on unwrapped, as list and tuple bodies are.
    complete_bodies: Option<Py<PyTuple>>,
    /// Whether the route is read when the app calls `start_response`, while the framework still
    /// holds its request (Flask clears `environ["werkzeug.request"]` before it returns).
    route_at_start: bool,
    /// Werkzeug's `ClosingIterator` and `Response` types, for apps whose responses are
    /// Werkzeug's: see [`WsgiMiddleware::is_rendered_werkzeug`].
    werkzeug: Option<(Py<PyType>, Py<PyType>)>,
}

#[pymethods]
impl WsgiMiddleware {
    #[new]
    #[pyo3(signature = (
        app, recorder, registry, route_getter = None, metrics = None, route_source = None,
        complete_bodies = None, route_at_start = false, werkzeug = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        recorder: Py<Recorder>,
        registry: Py<Registry>,
        route_getter: Option<Py<PyAny>>,
        metrics: Option<Py<MetricsEndpoint>>,
        route_source: Option<(Py<PyString>, Vec<Py<PyString>>)>,
        complete_bodies: Option<Py<PyTuple>>,
        route_at_start: bool,
        werkzeug: Option<(Py<PyType>, Py<PyType>)>,
    ) -> WsgiMiddleware {
        let owns_source_key = route_source
            .as_ref()
            .is_some_and(|(key, _)| key.bind(py).to_str().is_ok_and(|key| key.starts_with("last9.")));
        WsgiMiddleware {
            app,
            recorder,
            registry,
            route_getter,
            route_source,
            owns_source_key,
            metrics,
            complete_bodies: complete_bodies.filter(|types| !types.bind(py).is_empty()),
            route_at_start,
            werkzeug,
        }
    }

    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        environ: &Bound<'py, PyAny>,
        start_response: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let started = Instant::now();
        let this = slf.get();
        let Ok(environ_dict) = environ.cast::<PyDict>() else {
            // Not a WSGI environ: nothing to measure, and not ours to reject.
            return this.app.bind(py).call1((environ, start_response));
        };
        if let Some(metrics) = &this.metrics {
            let metrics = metrics.get();
            let path_info = environ_text(environ_dict, intern!(py, "PATH_INFO"));
            if path_info
                .as_ref()
                .is_some_and(|p| p.to_str().ok() == Some(metrics.path_str()))
            {
                if let Some(answer) = serve_metrics(metrics, environ_dict, start_response)? {
                    return Ok(answer);
                }
            } else if metrics.has_ui() {
                // `<metrics path>/ui`: the live page, only when the app turned it on.
                let ui = path_info
                    .as_ref()
                    .and_then(|p| metrics.ui_target(p.to_str().ok()?));
                if let Some(data) = ui {
                    if let Some(answer) = metrics.serve_wsgi_ui(data, environ_dict, start_response)? {
                        return Ok(answer);
                    }
                }
            }
        }
        let method = environ_text(environ_dict, intern!(py, "REQUEST_METHOD"));
        let method = method.as_ref().and_then(|m| m.to_str().ok()).unwrap_or("");
        let recorder = this.recorder.get();
        if recorder.excludes_on_entry()
            && with_raw_path(environ_dict, |path| recorder.excluded_on_entry(method, path))
        {
            // Left out by the `exclude` setting: the app's own call, nothing else.
            return this.app.bind(py).call1((environ, start_response));
        }
        let token = recorder.enter(method);
        recorder.open_label(environ_dict);
        if last9_core::lineage::enabled() {
            // Only outbound calls' `per` depends on this: a failure must not reach the app.
            let _ = set_inbound(py, Some((slf.as_any(), environ)));
        }
        let request = Entered {
            started,
            token,
            sizes: recorder.body_sizes().then(|| Sizes::wsgi(environ_dict)),
        };
        let responder = Bound::new(
            py,
            StartResponse {
                inner: start_response.clone().unbind(),
                status: AtomicU16::new(0),
                route: OnceLock::new(),
                request: this
                    .route_at_start
                    .then(|| (slf.clone().unbind(), environ_dict.clone().unbind())),
            },
        )?;
        let body = match this.app.bind(py).call1((environ, &responder)) {
            Ok(body) => body,
            Err(err) => {
                this.record(environ_dict, 500, responder.get().route(), request);
                return Err(err);
            }
        };
        let answered = responder.get();
        let status = answered.status.load(Ordering::Relaxed);
        if status != 0 {
            let whole = body.is_exact_instance_of::<PyList>()
                || body.is_exact_instance_of::<PyTuple>()
                || this.is_complete(&body);
            let rendered = if whole {
                None
            } else {
                this.rendered_werkzeug(&body)
            };
            if whole || rendered.is_some() {
                if let Some(sizes) = &request.sizes {
                    match rendered {
                        // Its chunks are the response's own list, unless Werkzeug sends none.
                        Some(chunks) if werkzeug_sends_body(method, status) => sizes.sent_all(&chunks),
                        Some(_) => {}
                        None => sizes.sent_all(&body),
                    }
                }
                this.record(environ_dict, status, answered.route(), request);
                return Ok(body);
            }
        }
        if status != 0 && is_file_wrapper(environ_dict, &body) {
            // Kept as it is so the server can still use sendfile; timed up to here.
            if let Some(sizes) = &request.sizes {
                sizes.response_unknown();
            }
            this.record(environ_dict, status, answered.route(), request);
            return Ok(body);
        }
        let iterator = match body.try_iter() {
            Ok(iterator) => iterator.unbind(),
            Err(err) => {
                this.record(environ_dict, 500, answered.route(), request);
                return Err(err);
            }
        };
        let wrapped = Body {
            iterator,
            body: body.unbind(),
            pending: Some(Pending {
                middleware: slf.clone().unbind(),
                environ: environ_dict.clone().unbind(),
                responder: responder.unbind(),
                request,
            }),
            closed: false,
        };
        Ok(Bound::new(py, wrapped)?.into_any())
    }

    /// The wrapped application.
    /// Records an outbound call made while `environ`'s request runs, under its route as known
    /// now (lineage; called by `last9.lineage`).
    fn observe_client(
        &self,
        environ: &Bound<'_, PyDict>,
        upstream: &str,
        method: &str,
        status: &str,
        duration_ns: u64,
    ) {
        let route = self.route_of(environ, false);
        let py = environ.py();
        let traceparent = environ_text(environ, intern!(py, "HTTP_TRACEPARENT"));
        let trace = crate::trace::current(py, traceparent.as_ref().and_then(|t| t.to_str().ok()));
        self.recorder
            .get()
            .observe_client_route(route, upstream, method, status, duration_ns, trace);
    }

    #[getter]
    fn app(&self, py: Python<'_>) -> Py<PyAny> {
        self.app.clone_ref(py)
    }

    #[getter]
    fn recorder(&self, py: Python<'_>) -> Py<Recorder> {
        self.recorder.clone_ref(py)
    }

    #[getter]
    fn registry(&self, py: Python<'_>) -> Py<Registry> {
        self.registry.clone_ref(py)
    }

    #[getter]
    fn metrics_path(&self) -> Option<&str> {
        self.metrics.as_ref().map(|m| m.get().path_str())
    }

    #[getter]
    fn metrics(&self, py: Python<'_>) -> Option<Py<MetricsEndpoint>> {
        self.metrics.as_ref().map(|m| m.clone_ref(py))
    }
}

impl WsgiMiddleware {
    /// When the body is Werkzeug's `ClosingIterator` over a response rendered in full (a list or
    /// tuple body; a streamed one is a generator): that list or tuple. The body is then recorded
    /// at once and passed on unwrapped, as a list body is. Werkzeug wraps every response's body
    /// so, and its last callback is the response's own `close`, which names the response.
    fn rendered_werkzeug<'py>(&self, body: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
        let (closing, response_type) = self.werkzeug.as_ref()?;
        let py = body.py();
        if !body.get_type().is(closing.bind(py)) {
            return None;
        }
        let response = body
            .getattr(intern!(py, "_callbacks"))
            .ok()
            .and_then(|callbacks| callbacks.cast_into::<PyList>().ok())
            .and_then(|callbacks| callbacks.iter().next_back())
            .and_then(|close| close.getattr(intern!(py, "__self__")).ok())?;
        if !response.is_instance(response_type.bind(py)).unwrap_or(false) {
            return None;
        }
        response.getattr(intern!(py, "response")).ok().filter(|rendered| {
            rendered.is_exact_instance_of::<PyList>() || rendered.is_exact_instance_of::<PyTuple>()
        })
    }

    /// Whether the body is of a type the adapter declared fully rendered when returned.
    fn is_complete(&self, body: &Bound<'_, PyAny>) -> bool {
        self.complete_bodies
            .as_ref()
            .is_some_and(|types| body.is_instance(types.bind(body.py())).unwrap_or(false))
    }

    /// Records a finished request, once: its duration, the end of its time in flight, and (with
    /// lineage on) its caller. `route`: as read when the response started, if it was. Never
    /// raises: a failure is logged once and dropped.
    fn record(&self, environ: &Bound<'_, PyDict>, status: u16, route: Option<RouteId>, request: Entered) {
        let elapsed = request.started.elapsed();
        let py = environ.py();
        let recorder = self.recorder.get();
        recorder.leave(request.token);
        let route = route.unwrap_or_else(|| self.route_of(environ, true));
        if last9_core::lineage::enabled() {
            let _ = set_inbound(py, None);
            let caller = environ_text(environ, intern!(py, "HTTP_X_LAST9_CALLER"))
                .or_else(|| environ_text(environ, intern!(py, "HTTP_X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER")));
            recorder.count_caller_route(route, caller.as_ref().and_then(|c| c.to_str().ok()), status);
        }
        let host = environ_text(environ, intern!(py, "HTTP_HOST"))
            .or_else(|| environ_text(environ, intern!(py, "SERVER_NAME")));
        // The in-flight token is the method's label index, read once when the request entered.
        let method = METHODS[usize::from(request.token) % METHODS.len()];
        let traceparent = environ_text(environ, intern!(py, "HTTP_TRACEPARENT"));
        let trace = crate::trace::current(py, traceparent.as_ref().and_then(|t| t.to_str().ok()));
        let label = recorder.environ_label(environ);
        recorder.record_sized(
            route,
            host.as_ref().and_then(|h| h.to_str().ok()),
            method,
            status,
            elapsed,
            label.as_ref().and_then(|l| l.to_str().ok()),
            trace,
            request.sizes.map(|sizes| sizes.totals()),
        );
    }

    /// The route template of a finished request: from the route source if it gives one, else
    /// from the route getter. A getter that raises is logged once and counts as no route.
    /// The request's route; `done` once the request is over (the framework's object that held
    /// the template may then be dropped from the environ).
    fn route_of(&self, environ: &Bound<'_, PyDict>, done: bool) -> RouteId {
        let recorder = self.recorder.get();
        if recorder.routed() {
            let template = self.template(environ, done);
            let template = template.as_ref().and_then(|t| t.cast::<PyString>().ok());
            recorder.route(template.and_then(|t| t.to_str().ok()), "")
        } else {
            recorder.environ_raw_path_route(environ)
        }
    }

    fn template<'py>(&self, environ: &Bound<'py, PyDict>, done: bool) -> Option<Bound<'py, PyAny>> {
        let py = environ.py();
        let source = self
            .route_source
            .as_ref()
            .map(|(key, attrs)| (key.bind(py), attrs));
        if let Some((key, attrs)) = source {
            let found = environ.get_item(key).ok().flatten().and_then(|value| {
                attrs.iter().try_fold(value, |value, attr| {
                    value.getattr(attr.bind(py)).ok().filter(|next| !next.is_none())
                })
            });
            if found.is_some() {
                if done && self.owns_source_key {
                    let _ = environ.del_item(key);
                }
                return found;
            }
        }
        let from_getter = self.route_getter.as_ref().and_then(|getter| {
            getter
                .bind(py)
                .call1((environ,))
                .inspect_err(|err| log_failure_once(py, err))
                .ok()
        });
        if let Some((key, _)) = source.filter(|_| self.owns_source_key) {
            // The source's value may hold the request, which holds the environ: drop the cycle.
            if environ.contains(key).unwrap_or(false) {
                let _ = environ.del_item(key);
            }
        }
        from_getter
    }
}

/// Answers a GET or HEAD on the metrics path (401 without the right credentials, never passed
/// to the app); None for other methods, which go to the app.
fn serve_metrics<'py>(
    metrics: &MetricsEndpoint,
    environ: &Bound<'py, PyDict>,
    start_response: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = environ.py();
    let method = environ_text(environ, intern!(py, "REQUEST_METHOD"));
    let head = match method.as_ref().and_then(|m| m.to_str().ok()) {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Ok(None),
    };
    let authorization = environ_text(environ, intern!(py, "HTTP_AUTHORIZATION"));
    let accept = environ_text(environ, intern!(py, "HTTP_ACCEPT"));
    let accept_encoding = environ_text(environ, intern!(py, "HTTP_ACCEPT_ENCODING"));
    let (status, headers, body) = metrics.respond(
        py,
        text(&authorization),
        text(&accept),
        text(&accept_encoding),
        head,
    )?;
    let status_line = if status == 200 {
        "200 OK"
    } else {
        "401 Unauthorized"
    };
    start_response.call1((status_line, headers))?;
    Ok(Some(PyList::new(py, [body])?.into_any()))
}

/// Borrowed UTF-8 of an optional string.
fn text<'a>(value: &'a Option<Bound<'_, PyString>>) -> Option<&'a str> {
    value.as_ref().and_then(|v| v.to_str().ok())
}

/// Whether a rendered Werkzeug response sends its body: not for HEAD nor for a status without
/// one (1xx, 204, 304), as `Response.get_app_iter` decides.
fn werkzeug_sends_body(method: &str, status: u16) -> bool {
    method != "HEAD" && !matches!(status, 100..=199 | 204 | 304)
}

fn is_file_wrapper(environ: &Bound<'_, PyDict>, body: &Bound<'_, PyAny>) -> bool {
    let Ok(Some(wrapper)) = environ.get_item(intern!(environ.py(), "wsgi.file_wrapper")) else {
        return false;
    };
    wrapper
        .cast::<pyo3::types::PyType>()
        .is_ok_and(|class| body.is_instance(class).unwrap_or(false))
}

/// The `start_response` handed to the app: notes the status code (and, for adapters that ask,
/// the route), then calls the server's.
#[pyclass(frozen, module = "last9._core")]
pub struct StartResponse {
    inner: Py<PyAny>,
    status: AtomicU16,
    /// The route, read at the first call when `request` is set.
    route: OnceLock<RouteId>,
    /// The middleware and environ to read the route from as the response starts.
    request: Option<(Py<WsgiMiddleware>, Py<PyDict>)>,
}

impl StartResponse {
    fn route(&self) -> Option<RouteId> {
        self.route.get().copied()
    }
}

#[pymethods]
impl StartResponse {
    /// Passes the app's own arguments on untouched (so `exc_info`, positional or keyword,
    /// reaches the server as given).
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let code = args.get_item(0).ok().and_then(|status| {
            let status = status.cast_into::<PyString>().ok()?;
            status.to_str().ok().and_then(status_code)
        });
        if let Some(code) = code {
            self.status.store(code, Ordering::Relaxed);
        }
        if let Some((middleware, environ)) = &self.request {
            if self.route.get().is_none() {
                let _ = self.route.set(middleware.get().route_of(environ.bind(py), false));
            }
        }
        self.inner.bind(py).call(args, kwargs)
    }
}

/// The code of a WSGI status line such as `404 Not Found`.
fn status_code(status: &str) -> Option<u16> {
    let digits = status.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What is needed to record a streamed response once it ends.
/// A request counted in flight: recorded (and let go) exactly once.
struct Entered {
    started: Instant,
    token: u8,
    /// The body sizes so far, when `body_sizes` is on.
    sizes: Option<Arc<Sizes>>,
}

struct Pending {
    middleware: Py<WsgiMiddleware>,
    environ: Py<PyDict>,
    responder: Py<StartResponse>,
    request: Entered,
}

impl Pending {
    fn finish(self, py: Python<'_>, failed: bool) {
        let responder = self.responder.get();
        let status = if failed {
            500
        } else {
            responder.status.load(Ordering::Relaxed)
        };
        self.middleware
            .get()
            .record(self.environ.bind(py), status, responder.route(), self.request);
    }
}

/// The app's response iterable, passed through item by item; records when it ends.
#[pyclass(module = "last9._core")]
pub struct Body {
    iterator: Py<PyIterator>,
    body: Py<PyAny>,
    pending: Option<Pending>,
    closed: bool,
}

#[pymethods]
impl Body {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut iterator = self.iterator.bind(py).clone();
        match iterator.next() {
            Some(Ok(chunk)) => {
                if let Some(sizes) = self.pending.as_ref().and_then(|p| p.request.sizes.as_ref()) {
                    sizes.sent(&chunk);
                }
                Ok(Some(chunk))
            }
            None => {
                self.finish(py, false);
                Ok(None)
            }
            Some(Err(err)) => {
                self.finish(py, true);
                Err(err)
            }
        }
    }

    /// Closes the app's iterable (once, as PEP 3333 asks) and records if not done yet.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let result = match self.body.bind(py).getattr(intern!(py, "close")) {
            Ok(close) => close.call0().map(drop),
            Err(_) => Ok(()),
        };
        self.finish(py, result.is_err());
        result
    }
}

impl Drop for Body {
    /// A body dropped by a server that neither exhausted nor closed it: the request is no
    /// longer in flight (it is not recorded, having no known end).
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending
                .middleware
                .get()
                .recorder
                .get()
                .leave(pending.request.token);
        }
    }
}

impl Body {
    fn finish(&mut self, py: Python<'_>, failed: bool) {
        if let Some(pending) = self.pending.take() {
            pending.finish(py, failed);
        }
    }
}
