//! The ASGI middleware's per-request path.
//!
//! `AsgiMiddleware.__call__` adds no coroutine frame of its own: it calls the app and hands the
//! server an [`Awaiting`] proxy that drives the app's coroutine with `PyIter_Send` (no
//! `StopIteration` per step) and notices how it ends. The app's `send` is an [`Exchange`], whose
//! `__call__` notes the status on `http.response.start`, records on the last body message and
//! returns the server's own `send(...)` awaitable, so no coroutine is made for it either. `receive`
//! is wrapped only to notice `http.disconnect`.
//!
//! Statuses: the one sent; 500 when the app raises before its response is complete; 499 when the
//! client went away before then (the app received `http.disconnect`), or the app returned
//! without completing a response.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU8, Ordering};
use std::time::Instant;

use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use last9_core::normalize::METHODS;
use last9_core::RouteId;

use crate::body_size::Sizes;
use crate::endpoint::MetricsEndpoint;
use crate::lineage::set_inbound;
use crate::recorder::Recorder;
use crate::registry::Registry;
use crate::request::{log_failure_once, scope_header};

/// Status recorded for a request whose client disconnected before the response was complete
/// (nginx's "client closed request").
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

const FINISHED: u8 = 1;
const DISCONNECTED: u8 = 2;

#[pyclass(subclass, frozen, module = "last9._core")]
pub struct AsgiMiddleware {
    app: Py<PyAny>,
    recorder: Py<Recorder>,
    registry: Py<Registry>,
    /// Called with the scope once the response is complete; returns the route template or None.
    route_getter: Option<Py<PyAny>>,
    /// The templates the route getter has learnt, by `id()` of the object the router left in
    /// `scope["route"]` (else `scope["endpoint"]`): a str value is that object's template, read
    /// here without calling the getter; anything else, or no entry, asks the getter.
    route_cache: Option<Py<PyDict>>,
    /// The app's own metrics path, and that path as an interned string.
    metrics: Option<(Py<MetricsEndpoint>, Py<PyString>)>,
}

#[pymethods]
impl AsgiMiddleware {
    #[new]
    #[pyo3(signature = (app, recorder, registry, route_getter = None, metrics = None, route_cache = None))]
    fn new(
        py: Python<'_>,
        app: Py<PyAny>,
        recorder: Py<Recorder>,
        registry: Py<Registry>,
        route_getter: Option<Py<PyAny>>,
        metrics: Option<Py<MetricsEndpoint>>,
        route_cache: Option<Py<PyDict>>,
    ) -> AsgiMiddleware {
        let metrics = metrics.map(|endpoint| {
            let interned = PyString::intern(py, endpoint.get().path_str()).unbind();
            (endpoint, interned)
        });
        AsgiMiddleware {
            app,
            recorder,
            registry,
            route_getter,
            route_cache,
            metrics,
        }
    }

    /// ASGI 3: returns the awaitable the server awaits.
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        scope: &Bound<'py, PyAny>,
        receive: &Bound<'py, PyAny>,
        send: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let app = this.app.bind(py);
        let Ok(scope_dict) = scope.cast::<PyDict>() else {
            return app.call1((scope, receive, send));
        };
        if !text_is(scope_dict, intern!(py, "type"), intern!(py, "http"), "http") {
            // lifespan, websocket: not ours to measure, passed on untouched.
            return app.call1((scope, receive, send));
        }
        if let Some((metrics, interned)) = &this.metrics {
            let (method, get, head) = (intern!(py, "method"), intern!(py, "GET"), intern!(py, "HEAD"));
            let path = metrics.get().path_str();
            if text_is(scope_dict, intern!(py, "path"), interned.bind(py), path)
                && (text_is(scope_dict, method, get, "GET") || text_is(scope_dict, method, head, "HEAD"))
            {
                return slf.call_method1(intern!(py, "_serve_metrics"), (scope, send));
            }
            if metrics.get().has_ui() {
                // `<metrics path>/ui`: the live page, only when the app turned it on.
                let path = scope_dict.get_item(intern!(py, "path")).ok().flatten();
                let path = path.as_ref().and_then(|p| p.cast::<PyString>().ok());
                let ui = path.and_then(|p| metrics.get().ui_target(p.to_str().ok()?));
                if let Some(data) = ui {
                    if text_is(scope_dict, method, get, "GET") || text_is(scope_dict, method, head, "HEAD") {
                        return slf.call_method1(intern!(py, "_serve_ui"), (scope, send, data));
                    }
                }
            }
        }
        let started = Instant::now();
        let method = scope_dict.get_item(intern!(py, "method")).ok().flatten();
        let method = method.as_ref().and_then(|m| m.cast::<PyString>().ok());
        let method = method.and_then(|m| m.to_str().ok()).unwrap_or("");
        let recorder = this.recorder.get();
        if recorder.excludes_on_entry() && excluded_on_entry(recorder, scope_dict, method) {
            // Left out by the `exclude` setting: the app's own call, nothing else.
            return app.call1((scope, receive, send));
        }
        let token = recorder.enter(method);
        recorder.open_label(scope_dict);
        let exchange = Bound::new(
            py,
            Exchange {
                middleware: slf.clone().unbind(),
                scope: scope_dict.clone().unbind(),
                send: send.clone().unbind(),
                started,
                token,
                status: AtomicU16::new(0),
                state: AtomicU8::new(0),
                sizes: recorder.body_sizes().then(|| Sizes::asgi(scope_dict)),
            },
        )?;
        if last9_core::lineage::enabled() {
            // In this request's task context: outbound calls it makes are counted under its route.
            set_inbound(py, Some((slf.as_any(), scope)))?;
        }
        let receiver = Bound::new(
            py,
            Receive {
                inner: receive.clone().unbind(),
                exchange: exchange.clone().unbind(),
            },
        )?;
        let awaitable = match app.call1((scope, receiver, &exchange)) {
            Ok(awaitable) => awaitable,
            Err(err) => {
                exchange.get().raised(py);
                return Err(err);
            }
        };
        let inner = match awaitable_iterator(awaitable) {
            Ok(inner) => inner,
            Err(err) => {
                exchange.get().raised(py);
                return Err(err);
            }
        };
        let proxy = Awaiting {
            inner: inner.unbind(),
            role: Role::App(exchange.unbind()),
            done: AtomicBool::new(false),
        };
        Ok(Bound::new(py, proxy)?.into_any())
    }

    /// The wrapped application.
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

    /// Records an outbound call made while `scope`'s request runs, under its route as known
    /// now (lineage; called by `last9.lineage`).
    fn observe_client(
        &self,
        scope: &Bound<'_, PyDict>,
        upstream: &str,
        method: &str,
        status: &str,
        duration_ns: u64,
    ) {
        let route = self.route_id(scope);
        let traceparent = crate::request::scope_header(scope, b"traceparent");
        let trace = crate::trace::current(
            scope.py(),
            traceparent
                .as_ref()
                .and_then(|t| std::str::from_utf8(t.as_bytes()).ok()),
        );
        self.recorder
            .get()
            .observe_client_route(route, upstream, method, status, duration_ns, trace);
    }

    #[getter]
    fn metrics_path(&self) -> Option<&str> {
        self.metrics.as_ref().map(|(metrics, _)| metrics.get().path_str())
    }

    /// The app's own metrics path: who may scrape it and how it is rendered.
    #[getter]
    fn metrics(&self, py: Python<'_>) -> Option<Py<MetricsEndpoint>> {
        self.metrics.as_ref().map(|(metrics, _)| metrics.clone_ref(py))
    }
}

impl AsgiMiddleware {
    /// The template the route cache holds for the object the router left in the scope, if any.
    fn cached_template<'py>(&self, scope: &Bound<'py, PyDict>) -> Option<Bound<'py, PyAny>> {
        let py = scope.py();
        let cache = self.route_cache.as_ref()?.bind(py);
        let named = |key| {
            scope
                .get_item(key)
                .ok()
                .flatten()
                .filter(|value| !value.is_none())
        };
        let key = named(intern!(py, "route")).or_else(|| named(intern!(py, "endpoint")))?;
        // `id(key)`: the getter keeps the objects it learnt alive, so an id stays that object's.
        let id = (key.as_ptr() as usize).into_pyobject(py).ok()?;
        let template = cache.get_item(id).ok().flatten()?;
        template.is_exact_instance_of::<PyString>().then_some(template)
    }

    /// Records a finished request: its duration, the end of its time in flight, and (with
    /// lineage on) its caller. Never raises.
    fn record(
        &self,
        scope: &Bound<'_, PyDict>,
        status: u16,
        started: Instant,
        token: u8,
        sizes: Option<(Option<u64>, Option<u64>)>,
    ) {
        let elapsed = started.elapsed();
        let recorder = self.recorder.get();
        recorder.leave(token);
        let route = self.route_id(scope);
        if last9_core::lineage::enabled() {
            let caller = scope_header(scope, b"x-last9-caller")
                .or_else(|| scope_header(scope, b"x-envoy-downstream-service-cluster"));
            let caller = caller.as_ref().map(|c| String::from_utf8_lossy(c.as_bytes()));
            recorder.count_caller_route(route, caller.as_deref(), status);
        }
        // The in-flight token is the method's label index, read once when the request entered.
        let method = METHODS[usize::from(token) % METHODS.len()];
        recorder.record_scope_sized(route, scope, Some(method), status, elapsed, sizes);
    }

    /// The request's route. A route getter that raises is logged once and counts as no route.
    fn route_id(&self, scope: &Bound<'_, PyDict>) -> RouteId {
        let py = scope.py();
        let recorder = self.recorder.get();
        let template = match (&self.route_getter, recorder.routed()) {
            (Some(getter), true) => self.cached_template(scope).or_else(|| {
                getter
                    .bind(py)
                    .call1((scope,))
                    .inspect_err(|err| log_failure_once(py, err))
                    .ok()
            }),
            _ => None,
        };
        let template = template
            .as_ref()
            .and_then(|t| t.cast::<PyString>().ok())
            .and_then(|t| t.to_str().ok());
        recorder.scope_route(template, scope)
    }
}

/// Whether the `exclude` setting leaves a request out as it enters: by its method, or its raw
/// path (`root_path` and `path`; servers that already put `root_path` in `path` are not doubled).
fn excluded_on_entry(recorder: &Recorder, scope: &Bound<'_, PyDict>, method: &str) -> bool {
    let py = scope.py();
    let text = |key| {
        let value = scope.get_item(key).ok().flatten()?;
        value.cast_into::<PyString>().ok()
    };
    let path = text(intern!(py, "path"));
    let path = path.as_ref().and_then(|p| p.to_str().ok()).unwrap_or("");
    let root = text(intern!(py, "root_path"));
    match root.as_ref().and_then(|r| r.to_str().ok()) {
        Some(root) if !root.is_empty() && !path.starts_with(root) => {
            recorder.excluded_on_entry(method, &format!("{root}{path}"))
        }
        _ => recorder.excluded_on_entry(method, path),
    }
}

/// Whether `dict[key]` is the string `expected` (read without copying it). `interned` is
/// `expected` as an interned string: servers' literals such as "http" are the same object.
fn text_is(
    dict: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    interned: &Bound<'_, PyString>,
    expected: &str,
) -> bool {
    match dict.get_item(key) {
        Ok(Some(value)) => {
            value.is(interned)
                || value
                    .cast::<PyString>()
                    .is_ok_and(|text| text.to_str().is_ok_and(|text| text == expected))
        }
        _ => false,
    }
}

/// What `await x` iterates: a coroutine itself, anything else through its `__await__`.
fn awaitable_iterator(awaitable: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    static COROUTINE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let py = awaitable.py();
    let coroutine = COROUTINE.import(py, "types", "CoroutineType")?;
    if awaitable.get_type().is(coroutine) {
        return Ok(awaitable);
    }
    match awaitable.getattr(intern!(py, "__await__")) {
        Ok(method) => method.call0(),
        // Generator-based coroutines (`types.coroutine`) are awaited as iterators.
        Err(_) if awaitable.hasattr(intern!(py, "send")).unwrap_or(false) => Ok(awaitable),
        Err(_) => Err(PyTypeError::new_err(format!(
            "the ASGI app returned {}, which is not awaitable",
            awaitable.get_type().name()?
        ))),
    }
}

/// The `send` handed to the app: notes the status, records when the response is complete, and
/// returns the server's `send(message)` for the app to await.
#[pyclass(frozen, module = "last9._core")]
pub struct Exchange {
    middleware: Py<AsgiMiddleware>,
    scope: Py<PyDict>,
    send: Py<PyAny>,
    started: Instant,
    /// Given back to the recorder's in-flight count once, when recorded or dropped.
    token: u8,
    status: AtomicU16,
    state: AtomicU8,
    /// The body sizes so far, when `body_sizes` is on.
    sizes: Option<Sizes>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // Never finished (the server dropped the awaitable unawaited): out of flight anyway.
        if *self.state.get_mut() & FINISHED == 0 {
            self.middleware.get().recorder.get().leave(self.token);
        }
    }
}

#[pymethods]
impl Exchange {
    fn __call__<'py>(&self, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = message.py();
        if let Ok(message) = message.cast::<PyDict>() {
            self.note(message);
        }
        self.send.bind(py).call1((message,))
    }
}

impl Exchange {
    fn note(&self, message: &Bound<'_, PyDict>) {
        let py = message.py();
        let Ok(Some(kind)) = message.get_item(intern!(py, "type")) else {
            return;
        };
        let Ok(kind) = kind.cast::<PyString>() else {
            return;
        };
        match kind.to_str() {
            Ok("http.response.start") => {
                if let Ok(Some(status)) = message.get_item(intern!(py, "status")) {
                    if let Ok(code) = status.extract::<u16>() {
                        self.status.store(code, Ordering::Relaxed);
                    }
                }
            }
            Ok("http.response.body") => {
                if let (Some(sizes), Ok(Some(body))) = (&self.sizes, message.get_item(intern!(py, "body"))) {
                    sizes.sent(&body);
                }
                let more = match message.get_item(intern!(py, "more_body")) {
                    Ok(Some(more)) => more.is_truthy().unwrap_or(false),
                    _ => false,
                };
                if !more {
                    self.completed(py);
                }
            }
            // The path-send extension ends a response in one message.
            Ok("http.response.pathsend") => {
                if let Some(sizes) = &self.sizes {
                    sizes.response_unknown(); // the server sends the file: its size is not seen
                }
                self.completed(py)
            }
            _ => {}
        }
    }

    /// The app sent the end of its response: its status, unless the client had already gone
    /// (a 500 that an error handler sends to a client that hung up is not a status it got).
    fn completed(&self, py: Python<'_>) {
        let status = if self.disconnected() {
            CLIENT_CLOSED_REQUEST
        } else {
            self.status.load(Ordering::Relaxed)
        };
        self.finish(py, status);
    }

    /// Records once, whichever way the request ends first.
    fn finish(&self, py: Python<'_>, status: u16) {
        if self.state.fetch_or(FINISHED, Ordering::Relaxed) & FINISHED != 0 {
            return;
        }
        let sizes = self.sizes.as_ref().map(Sizes::totals);
        self.middleware
            .get()
            .record(self.scope.bind(py), status, self.started, self.token, sizes);
    }

    fn disconnected(&self) -> bool {
        self.state.load(Ordering::Relaxed) & DISCONNECTED != 0
    }

    /// The app raised (or was closed) before its response was complete.
    fn raised(&self, py: Python<'_>) {
        let status = if self.disconnected() {
            CLIENT_CLOSED_REQUEST
        } else {
            500
        };
        self.finish(py, status);
    }

    /// The app returned; if its response is incomplete, the client went away or the app gave up,
    /// and neither is a status the client received in full.
    fn returned(&self, py: Python<'_>) {
        let status = self.status.load(Ordering::Relaxed);
        let status = if self.disconnected() || status == 0 {
            CLIENT_CLOSED_REQUEST
        } else {
            status
        };
        self.finish(py, status);
    }
}

/// The `receive` handed to the app: the server's, watched for `http.disconnect`.
#[pyclass(frozen, module = "last9._core")]
pub struct Receive {
    inner: Py<PyAny>,
    exchange: Py<Exchange>,
}

#[pymethods]
impl Receive {
    fn __call__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = awaitable_iterator(self.inner.bind(py).call0()?)?;
        let proxy = Awaiting {
            inner: inner.unbind(),
            role: Role::Receive(self.exchange.clone_ref(py)),
            done: AtomicBool::new(false),
        };
        Ok(Bound::new(py, proxy)?.into_any())
    }
}

enum Role {
    /// The app's own coroutine: its end (return or exception) may end the request.
    App(Py<Exchange>),
    /// A `receive()` call: its result may say the client went away.
    Receive(Py<Exchange>),
}

/// Awaits an inner coroutine step by step, passing every value, `send`, `throw` and `close`
/// through, and tells its role how the coroutine ended.
#[pyclass(frozen, module = "last9._core")]
pub struct Awaiting {
    inner: Py<PyAny>,
    role: Role,
    done: AtomicBool,
}

/// One step of the inner coroutine.
enum Step<'py> {
    Yielded(Bound<'py, PyAny>),
    Returned(Bound<'py, PyAny>),
}

#[pymethods]
impl Awaiting {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.step(py, &py.None().into_bound(py))
    }

    fn send<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.step(py, value)? {
            Some(yielded) => Ok(Some(yielded)),
            // As a method, `send` reports the end by raising StopIteration.
            None => Err(PyStopIteration::new_err(())),
        }
    }

    #[pyo3(signature = (*args))]
    fn throw<'py>(&self, py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.inner.bind(py);
        let result = match inner.getattr(intern!(py, "throw")) {
            Ok(throw) => throw.call1(args),
            Err(_) => Err(error_from_throw_args(args)),
        };
        match result {
            Ok(yielded) => Ok(yielded),
            Err(err) if err.is_instance_of::<PyStopIteration>(py) => {
                let value = err
                    .value(py)
                    .getattr(intern!(py, "value"))
                    .unwrap_or_else(|_| py.None().into_bound(py));
                self.ended(py, Ok(&value));
                Err(err)
            }
            Err(err) => {
                self.ended(py, Err(()));
                Err(err)
            }
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.inner.bind(py);
        let result = match inner.getattr(intern!(py, "close")) {
            Ok(close) => close.call0().map(drop),
            Err(_) => Ok(()),
        };
        // Closed before its end: the request was abandoned.
        self.ended(py, Err(()));
        result
    }
}

impl Awaiting {
    fn step<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.done.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match send_into(self.inner.bind(py), value) {
            Ok(Step::Yielded(yielded)) => Ok(Some(yielded)),
            Ok(Step::Returned(result)) => {
                self.ended(py, Ok(&result));
                if result.is_none() {
                    Ok(None)
                } else {
                    Err(PyStopIteration::new_err((result.unbind(),)))
                }
            }
            Err(err) => {
                self.ended(py, Err(()));
                Err(err)
            }
        }
    }

    /// Called once, when the inner coroutine returned (`Ok(value)`) or raised.
    fn ended(&self, py: Python<'_>, outcome: Result<&Bound<'_, PyAny>, ()>) {
        if self.done.swap(true, Ordering::Relaxed) {
            return;
        }
        match (&self.role, outcome) {
            (Role::App(exchange), Ok(_)) => exchange.get().returned(py),
            (Role::App(exchange), Err(())) => exchange.get().raised(py),
            (Role::Receive(exchange), Ok(message)) => {
                if let Some(sizes) = &exchange.get().sizes {
                    sizes.received_message(message);
                }
                if is_disconnect(message) {
                    exchange.get().state.fetch_or(DISCONNECTED, Ordering::Relaxed);
                }
            }
            (Role::Receive(_), Err(())) => {}
        }
    }
}

fn is_disconnect(message: &Bound<'_, PyAny>) -> bool {
    let py = message.py();
    let Ok(message) = message.cast::<PyDict>() else {
        return false;
    };
    text_is(
        message,
        intern!(py, "type"),
        intern!(py, "http.disconnect"),
        "http.disconnect",
    )
}

/// `PyIter_Send`: one step of a coroutine without raising StopIteration at its end.
fn send_into<'py>(inner: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> PyResult<Step<'py>> {
    let py = inner.py();
    let mut result: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: both pointers are valid for the call (held by the Bounds); on RETURN and NEXT
    // `result` is a new reference, on ERROR it is NULL and an exception is set.
    unsafe {
        match ffi::PyIter_Send(inner.as_ptr(), value.as_ptr(), &mut result) {
            ffi::PySendResult::PYGEN_NEXT => Ok(Step::Yielded(Bound::from_owned_ptr(py, result))),
            ffi::PySendResult::PYGEN_RETURN => Ok(Step::Returned(Bound::from_owned_ptr(py, result))),
            ffi::PySendResult::PYGEN_ERROR => Err(PyErr::fetch(py)),
        }
    }
}

/// The exception `throw(type[, value[, traceback]])` asks for, for an iterator with no `throw`.
fn error_from_throw_args(args: &Bound<'_, PyTuple>) -> PyErr {
    let value = args.get_item(1).ok().filter(|v| !v.is_none());
    match (args.get_item(0), value) {
        (_, Some(value)) => PyErr::from_value(value),
        (Ok(kind), None) if kind.is_instance_of::<PyType>() => match kind.call0() {
            Ok(instance) => PyErr::from_value(instance),
            Err(err) => err,
        },
        (Ok(instance), None) => PyErr::from_value(instance),
        (Err(err), None) => err,
    }
}
