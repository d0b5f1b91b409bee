//! `RemoteWriter`: the Python handle of a core remote-write sender.
//!
//! The sender runs on its own Rust thread; Python only starts it, asks for flushes and reads its
//! counters. Its log messages go to the `last9.remote_write` logger. Every call that waits on the
//! sender's thread releases the GIL first, since that thread takes the GIL to log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use last9_core::remote_write::{self, Config, Level, Logger};
use pyo3::prelude::*;

use crate::errors::{to_py, MetricsError};
use crate::registry::Registry;

/// A remote-write sender pushing one registry; see `last9.start_remote_write`.
#[pyclass(frozen, module = "last9._core")]
pub struct RemoteWriter {
    /// Always `Some` until the object is dropped.
    inner: Option<remote_write::RemoteWriter>,
    #[pyo3(get)]
    interval: f64,
    #[pyo3(get)]
    max_pending: usize,
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    match Duration::try_from_secs_f64(value) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(MetricsError::new_err(format!(
            "invalid remote write settings: {name} must be a positive number of seconds, not {value}"
        ))),
    }
}

/// Hands the sender's messages to Python's `logging`, taking the GIL for each one.
fn python_logger() -> Logger {
    Arc::new(|level: Level, message: &str| {
        let number = match level {
            Level::Info => 20,
            Level::Warning => 30,
            Level::Error => 40,
        };
        Python::attach(|py| {
            let logged = py
                .import("logging")
                .and_then(|logging| logging.call_method1("getLogger", ("last9.remote_write",)))
                .and_then(|logger| logger.call_method1("log", (number, message)));
            // Logging itself failing leaves nothing better to do than carry on.
            drop(logged);
        });
    })
}

impl RemoteWriter {
    fn writer(&self) -> &remote_write::RemoteWriter {
        self.inner.as_ref().expect("present until dropped")
    }
}

#[pymethods]
impl RemoteWriter {
    /// Starts pushing `registry` to `url` every `interval` seconds.
    #[new]
    #[pyo3(signature = (
        registry, url, *, interval = 15.0, username = None, password = None, bearer_token = None,
        max_pending = 20, timeout = 10.0, ca_file = None, native_histograms = false,
        headers = Vec::new(), labels = Vec::new()
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        registry: &Registry,
        url: String,
        interval: f64,
        username: Option<String>,
        password: Option<String>,
        bearer_token: Option<String>,
        max_pending: usize,
        timeout: f64,
        ca_file: Option<PathBuf>,
        native_histograms: bool,
        headers: Vec<(String, String)>,
        labels: Vec<(String, String)>,
    ) -> PyResult<RemoteWriter> {
        let mut config = Config::new(url);
        config.native_histograms = native_histograms;
        config.headers = headers;
        config.external_labels = labels;
        config.interval = seconds("interval", interval)?;
        config.timeout = seconds("timeout", timeout)?;
        config.max_pending = max_pending;
        config.username = username;
        config.password = password;
        config.bearer_token = bearer_token;
        if let Some(path) = ca_file {
            let pem = std::fs::read(&path).map_err(|e| {
                MetricsError::new_err(format!(
                    "invalid remote write settings: cannot read ca_file {}: {e}",
                    path.display()
                ))
            })?;
            config.ca_pem = Some(pem);
        }
        let registry = registry.inner;
        let writer = py
            .detach(|| remote_write::RemoteWriter::for_registry(config, registry, Some(python_logger())))
            .map_err(to_py)?;
        Ok(RemoteWriter {
            inner: Some(writer),
            interval,
            max_pending,
        })
    }

    /// Takes a snapshot now and waits up to `timeout` seconds for the queue to be sent.
    #[pyo3(signature = (timeout = 5.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(Duration::ZERO);
        let writer = self.writer();
        py.detach(|| writer.flush(timeout))
    }

    /// Takes a last snapshot, sends what is queued within `timeout` seconds, and stops.
    #[pyo3(signature = (timeout = 5.0))]
    fn stop(&self, py: Python<'_>, timeout: f64) -> bool {
        let timeout = Duration::try_from_secs_f64(timeout).unwrap_or(Duration::ZERO);
        let writer = self.writer();
        py.detach(|| writer.stop(timeout))
    }

    /// The receiver's URL, without credentials.
    #[getter]
    fn url(&self) -> &str {
        self.writer().url()
    }

    #[getter]
    fn sent_samples(&self) -> u64 {
        self.writer().stats().sent_samples
    }

    #[getter]
    fn dropped_samples(&self) -> u64 {
        self.writer().stats().dropped_samples
    }

    #[getter]
    fn sent_requests(&self) -> u64 {
        self.writer().stats().sent_requests
    }

    #[getter]
    fn failed_attempts(&self) -> u64 {
        self.writer().stats().failed_attempts
    }

    #[getter]
    fn snapshots(&self) -> u64 {
        self.writer().stats().snapshots
    }

    #[getter]
    fn pending(&self) -> usize {
        self.writer().stats().pending
    }

    fn __repr__(&self) -> String {
        let stats = self.writer().stats();
        format!(
            "<last9 RemoteWriter to {} every {}s: {} samples sent, {} dropped, {} snapshots pending>",
            self.writer().url(),
            self.interval,
            stats.sent_samples,
            stats.dropped_samples,
            stats.pending
        )
    }
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        // The sender's thread may be waiting for the GIL to log; stopping it must not hold it.
        if let Some(writer) = self.inner.take() {
            Python::attach(|py| py.detach(move || drop(writer)));
        }
    }
}
