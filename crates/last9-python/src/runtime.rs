//! Runtime metrics and prometheus_client's families: what only the interpreter knows, handed
//! to the core (see `last9_core::runtime`).

use last9_core::runtime;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// Starts this process's runtime metrics: its GC counters from `gc.get_stats()` (as
/// `(collections, collected, uncollectable)` per generation), `python_info`'s labels and the
/// app's version.
#[pyfunction]
pub fn start_runtime_metrics(
    gc_stats: Vec<(u64, u64, u64)>,
    python_info: Vec<(String, String)>,
    service_version: &str,
) {
    let pairs: Vec<(&str, &str)> = python_info
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    runtime::set_info(Some(&pairs), env!("CARGO_PKG_VERSION"), service_version);
    let stats: Vec<[u64; 3]> = gc_stats.into_iter().map(|(a, b, c)| [a, b, c]).collect();
    runtime::seed_gc(&stats);
}

/// A `gc.callbacks` hook: counts each finished collection.
#[pyfunction]
pub fn gc_callback(phase: &str, info: &Bound<'_, PyDict>) {
    if phase != "stop" {
        return;
    }
    let get = |key: &str| -> Option<u64> { info.get_item(key).ok()??.extract().ok() };
    if let (Some(generation), Some(collected), Some(uncollectable)) =
        (get("generation"), get("collected"), get("uncollectable"))
    {
        runtime::gc_collected(generation as usize, collected, uncollectable);
    }
}

/// Sets the callable that renders prometheus_client's families, `render(openmetrics) ->
/// bytes`, for every scrape of the global registry; None removes it. A render that fails or
/// returns something else adds nothing.
#[pyfunction]
#[pyo3(signature = (render))]
pub fn set_prometheus_client_source(render: Option<Py<PyAny>>) {
    let source = render.map(|render| -> runtime::ForeignSource {
        Box::new(move |openmetrics| {
            // Scrapes run on threads of their own; none while the interpreter shuts down.
            Python::try_attach(|py| {
                render
                    .call1(py, (openmetrics,))
                    .ok()
                    .and_then(|text| {
                        text.bind(py)
                            .cast::<PyBytes>()
                            .ok()
                            .map(|b| b.as_bytes().to_vec())
                    })
                    .unwrap_or_default()
            })
            .unwrap_or_default()
        })
    });
    runtime::set_foreign(source);
}
