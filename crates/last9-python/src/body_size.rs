//! Body sizes (`body_sizes` on): what the WSGI and ASGI middlewares note as bodies pass.
//!
//! A request's size is its `Content-Length` when it has one, else the bytes the app reads
//! (`wsgi.input` through [`CountingInput`], ASGI `http.request` messages); a response's is the
//! sum of its body chunks. With the setting off nothing here is made: no wrapper, no counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::request::{environ_text, scope_header};

/// The sizes of one request's bodies so far (shared with its [`CountingInput`]).
#[derive(Default)]
pub(crate) struct Sizes {
    /// The request's `Content-Length`, when it gave a valid one.
    content_length: Option<u64>,
    /// Request bytes the app read (used without a `Content-Length`).
    received: AtomicU64,
    /// Response bytes sent so far.
    sent: AtomicU64,
    /// True when the response's size cannot be known (a WSGI file wrapper, sent by the server).
    unknown_response: std::sync::atomic::AtomicBool,
}

impl Sizes {
    /// Sizes for a WSGI request: its `CONTENT_LENGTH`, 0 without one nor a `Transfer-Encoding`,
    /// else (a chunked body) `wsgi.input` wrapped to count the bytes the app reads.
    pub(crate) fn wsgi(environ: &Bound<'_, PyDict>) -> Arc<Sizes> {
        let py = environ.py();
        let content_length = declared_length(environ);
        let sizes = Arc::new(Sizes {
            content_length,
            ..Sizes::default()
        });
        if content_length.is_none() {
            let key = intern!(py, "wsgi.input");
            if let Ok(Some(input)) = environ.get_item(key) {
                let counting = CountingInput {
                    inner: input.unbind(),
                    sizes: sizes.clone(),
                };
                // A server's environ that refuses the wrapper only loses the request's size.
                if let Ok(counting) = Bound::new(py, counting) {
                    let _ = environ.set_item(key, counting);
                }
            }
        }
        sizes
    }

    /// Sizes for an ASGI request: its `content-length` header, else `http.request` bodies.
    pub(crate) fn asgi(scope: &Bound<'_, PyDict>) -> Sizes {
        let content_length = scope_header(scope, b"content-length")
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok().and_then(parse_length));
        Sizes {
            content_length,
            ..Sizes::default()
        }
    }

    /// Adds a response body chunk (bytes-like; anything else adds its `len()` when it has one).
    #[inline]
    pub(crate) fn sent(&self, chunk: &Bound<'_, PyAny>) {
        self.sent.fetch_add(byte_len(chunk), Ordering::Relaxed);
    }

    /// Adds every chunk of a response body given whole (a list or tuple, or a rendered body;
    /// never an iterator, which this would use up).
    pub(crate) fn sent_all(&self, body: &Bound<'_, PyAny>) {
        if let Ok(list) = body.cast::<PyList>() {
            list.iter().for_each(|chunk| self.sent(&chunk));
        } else if let Ok(tuple) = body.cast::<PyTuple>() {
            tuple.iter().for_each(|chunk| self.sent(&chunk));
        } else if let Ok(chunks) = body.try_iter() {
            // A body the adapter declared rendered (Django's HttpResponse): iterating it again
            // gives its content as the server will.
            chunks.flatten().for_each(|chunk| self.sent(&chunk));
        }
    }

    /// Notes that the response went out in a way whose size is not seen (a file wrapper).
    pub(crate) fn response_unknown(&self) {
        self.unknown_response.store(true, Ordering::Relaxed);
    }

    /// Adds the body of an ASGI `http.request` message the app received.
    pub(crate) fn received_message(&self, message: &Bound<'_, PyAny>) {
        let py = message.py();
        let Ok(message) = message.cast::<PyDict>() else {
            return;
        };
        let is_request = message
            .get_item(intern!(py, "type"))
            .ok()
            .flatten()
            .is_some_and(|t| {
                t.cast::<PyString>()
                    .is_ok_and(|t| t.to_str().ok() == Some("http.request"))
            });
        if let (true, Ok(Some(body))) = (is_request, message.get_item(intern!(py, "body"))) {
            self.received.fetch_add(byte_len(&body), Ordering::Relaxed);
        }
    }

    /// `(request bytes, response bytes)` as the recorder takes them (None: unknown).
    pub(crate) fn totals(&self) -> (Option<u64>, Option<u64>) {
        let request = self
            .content_length
            .unwrap_or_else(|| self.received.load(Ordering::Relaxed));
        let response =
            (!self.unknown_response.load(Ordering::Relaxed)).then(|| self.sent.load(Ordering::Relaxed));
        (Some(request), response)
    }
}

/// The size a WSGI request declares: its `CONTENT_LENGTH`, else 0 without a
/// `Transfer-Encoding` (RFC 9112 6.3: it has no body); None for a chunked body.
pub(crate) fn declared_length(environ: &Bound<'_, PyDict>) -> Option<u64> {
    let py = environ.py();
    environ_text(environ, intern!(py, "CONTENT_LENGTH"))
        .and_then(|v| v.to_str().ok().and_then(parse_length))
        .or_else(|| {
            environ_text(environ, intern!(py, "HTTP_TRANSFER_ENCODING"))
                .is_none()
                .then_some(0)
        })
}

/// A `Content-Length` value: digits only (RFC 9110), else None.
fn parse_length(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The length of a chunk: bytes without a call, a string as UTF-8 (Werkzeug encodes a
/// response's string items so), else its `len()` (0 when it has none).
#[inline]
fn byte_len(chunk: &Bound<'_, PyAny>) -> u64 {
    if let Ok(bytes) = chunk.cast::<PyBytes>() {
        return bytes.as_bytes().len() as u64;
    }
    match chunk.cast::<PyString>() {
        Ok(text) => text.to_str().map_or(0, |text| text.len() as u64),
        Err(_) => chunk.len().map_or(0, |n| n as u64),
    }
}

/// `wsgi.input` of a request without a `Content-Length`: the server's stream, counting what
/// the app reads. Every other attribute is the stream's own.
#[pyclass(frozen, module = "last9._core")]
pub struct CountingInput {
    inner: Py<PyAny>,
    sizes: Arc<Sizes>,
}

impl CountingInput {
    fn call<'py>(
        &self,
        py: Python<'py>,
        method: &Bound<'py, PyString>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.inner.bind(py).getattr(method)?.call(args, kwargs)
    }

    fn count(&self, data: &Bound<'_, PyAny>) {
        self.sizes.received.fetch_add(byte_len(data), Ordering::Relaxed);
    }
}

#[pymethods]
impl CountingInput {
    #[pyo3(signature = (*args, **kwargs))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = self.call(py, intern!(py, "read"), args, kwargs)?;
        self.count(&data);
        Ok(data)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn readline<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = self.call(py, intern!(py, "readline"), args, kwargs)?;
        self.count(&data);
        Ok(data)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn readlines<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let lines = self.call(py, intern!(py, "readlines"), args, kwargs)?;
        if let Ok(list) = lines.cast::<PyList>() {
            list.iter().for_each(|line| self.count(&line));
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next line, as iterating the stream gives it.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let line = self.inner.bind(py).call_method0(intern!(py, "readline"))?;
        if line.len().unwrap_or(0) == 0 {
            return Ok(None);
        }
        self.count(&line);
        Ok(Some(line))
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
        self.inner.bind(py).getattr(name)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_length;

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(parse_length("42"), Some(42));
        assert_eq!(parse_length(" 7 "), Some(7));
        for bad in ["", "-1", "1e3", "0x10", "99999999999999999999999"] {
            assert_eq!(parse_length(bad), None, "{bad}");
        }
    }
}
