//! Rendering a scrape with the GIL released, written once into the final `bytes`: shared by
//! `Registry.scrape` and every in-app metrics endpoint.

use last9_core::exposition::{self, Family, Format};
use last9_core::snapshot::Snapshot;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Renders a scrape with the GIL released: `(content type, encoding, body length, body)`.
///
/// Uncompressed, the body is sized first and then encoded straight into the bytes object (a
/// HEAD is only sized); gzip'd, the compressed body is copied in, also without the GIL.
pub(crate) fn render<'py>(
    py: Python<'py>,
    registry: &'static last9_core::Registry,
    accept: Option<&str>,
    accept_encoding: Option<&str>,
    head: bool,
) -> PyResult<(&'static str, Option<&'static str>, usize, Bound<'py, PyBytes>)> {
    let format = Format::negotiate(accept);
    // Compressed and protobuf bodies are built whole first (prost sizes as it writes), then
    // copied once into the bytes object.
    if exposition::accepts_gzip(accept_encoding) || format == Format::Protobuf {
        let response = py.detach(|| exposition::scrape(registry, accept, accept_encoding));
        let length = response.body.len();
        let body = if head {
            PyBytes::new(py, b"")
        } else {
            PyBytes::new_with(py, length, |out| {
                py.detach(|| out.copy_from_slice(&response.body));
                Ok(())
            })?
        };
        return Ok((response.content_type, response.content_encoding, length, body));
    }
    let (snapshot, length) = py.detach(|| {
        let snapshot = Snapshot::of(registry);
        let length = exposition::encoded_len(&Family::all(&snapshot), format);
        (snapshot, length)
    });
    let body = if head {
        PyBytes::new(py, b"")
    } else {
        PyBytes::new_with(py, length, |out| {
            py.detach(|| exposition::encode_into(&Family::all(&snapshot), format, out));
            Ok(())
        })?
    };
    Ok((format.content_type(), None, length, body))
}
