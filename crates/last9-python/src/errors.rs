//! The one exception type of the module, raised for bad configuration.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

create_exception!(
    last9._core,
    MetricsError,
    PyValueError,
    "Invalid metrics configuration."
);

pub fn to_py(err: last9_core::Error) -> PyErr {
    MetricsError::new_err(err.to_string())
}
