//! The dedicated metrics server, running on a Rust thread.

use last9_core::exposition;
use last9_core::server;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use std::sync::Mutex;

use crate::registry::Registry;

/// A metrics HTTP server serving one registry; it stops when `stop()` is called.
#[pyclass(frozen, module = "last9._core")]
pub struct MetricsServer {
    inner: Mutex<Option<server::MetricsServer>>,
    #[pyo3(get)]
    port: u16,
    #[pyo3(get)]
    addr: String,
}

#[pymethods]
impl MetricsServer {
    /// Starts serving `registry` on `addr:port` (port 0 picks a free port). With `standby`, a
    /// port in use is waited for in the background instead of being an error.
    #[new]
    #[pyo3(signature = (registry, port, addr = "0.0.0.0", path = "/metrics", *, standby = false))]
    fn new(
        py: Python<'_>,
        registry: &Registry,
        port: u16,
        addr: &str,
        path: &str,
        standby: bool,
    ) -> PyResult<MetricsServer> {
        let handler = exposition::handler(registry.inner, path.to_string());
        let started = py.detach(|| {
            if standby {
                server::MetricsServer::start_or_standby(addr, port, handler)
            } else {
                server::MetricsServer::start(addr, port, handler)
            }
        });
        let started =
            started.map_err(|e| PyOSError::new_err(format!("cannot serve metrics on {addr}:{port}: {e}")))?;
        let local = started.local_addr();
        Ok(MetricsServer {
            inner: Mutex::new(Some(started)),
            port: local.port(),
            addr: local.ip().to_string(),
        })
    }

    /// Whether this server has its port (False while a standby server waits for it).
    #[getter]
    fn serving(&self) -> bool {
        self.inner
            .lock()
            .map(|guard| guard.as_ref().is_some_and(|s| s.is_serving()))
            .unwrap_or(false)
    }

    /// Stops the server and waits for its thread.
    fn stop(&self, py: Python<'_>) {
        let taken = self.inner.lock().map(|mut guard| guard.take()).ok().flatten();
        if let Some(mut running) = taken {
            py.detach(move || running.stop());
        }
    }

    fn __repr__(&self) -> String {
        format!("<last9 MetricsServer on {}:{}>", self.addr, self.port)
    }
}
