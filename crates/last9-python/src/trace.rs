//! The trace context of a request, for exemplars: the active OpenTelemetry span when
//! `opentelemetry-api` is installed and a span is recording, else a valid W3C `traceparent`
//! header. Only OpenTelemetry's SDK records spans, so the current span is looked at only once
//! the SDK's tracing module has been imported: without it, the cost is two dictionary lookups
//! (`sys.modules` and the header).

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use last9_core::exemplar::parse_traceparent;

pub(crate) type TraceIds = ([u8; 16], [u8; 8]);

/// `opentelemetry.trace.get_current_span`, if the package can be imported (looked up once).
fn current_span_fn(py: Python<'_>) -> Option<&Py<PyAny>> {
    static GET_CURRENT_SPAN: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();
    GET_CURRENT_SPAN
        .get_or_init(py, || {
            py.import("opentelemetry.trace")
                .and_then(|m| m.getattr("get_current_span"))
                .ok()
                .map(Bound::unbind)
        })
        .as_ref()
}

/// Whether OpenTelemetry's SDK (the only source of recording spans) has been imported; once
/// it has, it stays.
fn sdk_loaded(py: Python<'_>) -> bool {
    static LOADED: AtomicBool = AtomicBool::new(false);
    if LOADED.load(Ordering::Relaxed) {
        return true;
    }
    static MODULES: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();
    let modules = MODULES.get_or_init(py, || {
        py.import("sys")
            .and_then(|sys| sys.getattr("modules"))
            .ok()
            .map(Bound::unbind)
    });
    let loaded = modules.as_ref().is_some_and(|modules| {
        modules
            .bind(py)
            .contains(intern!(py, "opentelemetry.sdk.trace"))
            .unwrap_or(false)
    });
    if loaded {
        LOADED.store(true, Ordering::Relaxed);
    }
    loaded
}

/// The ids of the recording OpenTelemetry span, if there is one. Any failure counts as none.
fn otel_span(py: Python<'_>) -> Option<TraceIds> {
    if !sdk_loaded(py) {
        return None;
    }
    let span = current_span_fn(py)?.bind(py).call0().ok()?;
    if !span.call_method0("is_recording").ok()?.is_truthy().ok()? {
        return None;
    }
    let context = span.call_method0("get_span_context").ok()?;
    let trace_id: u128 = context.getattr("trace_id").ok()?.extract().ok()?;
    let span_id: u64 = context.getattr("span_id").ok()?.extract().ok()?;
    (trace_id != 0 && span_id != 0).then(|| (trace_id.to_be_bytes(), span_id.to_be_bytes()))
}

/// The trace context of the request being recorded (`traceparent`: its header, if any).
pub(crate) fn current(py: Python<'_>, traceparent: Option<&str>) -> Option<TraceIds> {
    otel_span(py).or_else(|| traceparent.and_then(parse_traceparent))
}
