//! The dedicated metrics server, running on a Rust thread.

use last9_core::access::Access;
use last9_core::server;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::errors::MetricsError;

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
    /// port in use is waited for in the background instead of being an error. Credentials
    /// (basic auth or a bearer token) and TLS files protect the endpoint.
    #[new]
    #[pyo3(signature = (
        registry, port, addr = "0.0.0.0", path = "/metrics", *, standby = false,
        username = None, password = None, bearer_token = None,
        tls_cert_file = None, tls_key_file = None, tls_client_ca_file = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        registry: &Registry,
        port: u16,
        addr: &str,
        path: &str,
        standby: bool,
        username: Option<&str>,
        password: Option<&str>,
        bearer_token: Option<&str>,
        tls_cert_file: Option<PathBuf>,
        tls_key_file: Option<PathBuf>,
        tls_client_ca_file: Option<PathBuf>,
    ) -> PyResult<MetricsServer> {
        const SETTING: &str = "LAST9_METRICS";
        let access = Access::from_settings(username, password, bearer_token, SETTING)
            .map_err(|e| MetricsError::new_err(e.0))?;
        let tls = match (tls_cert_file, tls_key_file) {
            (None, None) if tls_client_ca_file.is_none() => None,
            (Some(cert), Some(key)) => Some(py.detach(|| {
                server::Tls::from_files(&cert, &key, tls_client_ca_file.as_deref(), SETTING)
                    .map_err(|e| MetricsError::new_err(e.0))
            })?),
            _ => {
                return Err(MetricsError::new_err(format!(
                    "{SETTING}_TLS_CERT_FILE and {SETTING}_TLS_KEY_FILE must be set together \
                     ({SETTING}_TLS_CLIENT_CA_FILE needs both)"
                )))
            }
        };
        let protection = server::Protection { access, tls };
        let handler = last9_core::scrape::handler(registry.inner, path.to_string());
        let started =
            py.detach(|| server::MetricsServer::start_with(addr, port, handler, protection, standby));
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
