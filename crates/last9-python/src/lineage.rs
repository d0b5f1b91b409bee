//! Lineage: which request is running (for outbound clients) and the switch that turns it on.

use pyo3::intern;
use pyo3::prelude::*;

/// Publishes the running request to outbound clients (`last9.lineage._inbound`).
pub(crate) fn set_inbound(
    py: Python<'_>,
    value: Option<(&Bound<'_, PyAny>, &Bound<'_, PyAny>)>,
) -> PyResult<()> {
    static VAR: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let var = VAR.get_or_try_init(py, || {
        py.import("last9.lineage")
            .and_then(|m| m.getattr("_inbound"))
            .map(Bound::unbind)
    })?;
    match value {
        Some(pair) => var.bind(py).call_method1(intern!(py, "set"), (pair,))?,
        None => var.bind(py).call_method1(intern!(py, "set"), (py.None(),))?,
    };
    Ok(())
}

/// Turns on lineage: middlewares count callers and tell outbound clients which request runs.
#[pyfunction]
pub fn enable_lineage() {
    last9_core::lineage::enable();
}

/// Whether [`enable_lineage`] was called.
#[pyfunction]
pub fn lineage_enabled() -> bool {
    last9_core::lineage::enabled()
}
