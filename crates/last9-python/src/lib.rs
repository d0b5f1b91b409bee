//! `last9._core`: the Python face of `last9-core`.
//!
//! Kept thin: configuration objects, the WSGI and ASGI hot paths (written here because a Rust
//! `__call__` costs less than a Python frame), and rendering with the GIL released. Framework knowledge
//! stays in the Python package.

use pyo3::prelude::*;

mod asgi;
mod body_size;
mod endpoint;
mod errors;
mod exclude;
mod lineage;
mod recorder;
mod registry;
mod remote_write;
mod render;
mod request;
mod runtime;
mod server;
mod trace;
mod wsgi;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MetricsError", m.py().get_type::<errors::MetricsError>())?;
    m.add_class::<registry::Registry>()?;
    m.add_class::<recorder::Recorder>()?;
    m.add_class::<exclude::Exclusions>()?;
    m.add_class::<endpoint::MetricsEndpoint>()?;
    m.add_class::<wsgi::WsgiMiddleware>()?;
    m.add_class::<wsgi::StartResponse>()?;
    m.add_class::<wsgi::Body>()?;
    m.add_class::<body_size::CountingInput>()?;
    m.add_class::<asgi::AsgiMiddleware>()?;
    m.add_class::<asgi::Exchange>()?;
    m.add_class::<asgi::Receive>()?;
    m.add_class::<asgi::Awaiting>()?;
    m.add_class::<server::MetricsServer>()?;
    m.add_class::<remote_write::RemoteWriter>()?;
    m.add_function(wrap_pyfunction!(registry::global_registry, m)?)?;
    m.add_function(wrap_pyfunction!(registry::enable_multiprocess, m)?)?;
    m.add_function(wrap_pyfunction!(registry::multiprocess_dir, m)?)?;
    m.add_function(wrap_pyfunction!(recorder::normalize_path, m)?)?;
    m.add_function(wrap_pyfunction!(recorder::route_template, m)?)?;
    m.add_function(wrap_pyfunction!(lineage::enable_lineage, m)?)?;
    m.add_function(wrap_pyfunction!(lineage::lineage_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::start_runtime_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::gc_callback, m)?)?;
    m.add_function(wrap_pyfunction!(runtime::set_prometheus_client_source, m)?)?;
    Ok(())
}
