//! A scrape's answer: the negotiated format, encoded, gzipped when the client allows.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::{accepts_gzip, encode_families, Family, Format};
use crate::model::registry::Registry;
use crate::snapshot::Snapshot;

/// An encoded answer to a scrape, as an HTTP server sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeResponse {
    pub status: u16,
    pub content_type: &'static str,
    /// For example `Some("gzip")`.
    pub content_encoding: Option<&'static str>,
    pub body: Vec<u8>,
}

/// Answers a scrape: format and compression from the request's headers.
pub fn scrape(registry: &Registry, accept: Option<&str>, accept_encoding: Option<&str>) -> ScrapeResponse {
    let format = Format::negotiate(accept);
    let snapshot = Snapshot::of(registry);
    let body = encode_families(&Family::all(&snapshot), format);
    respond(format, body, accepts_gzip(accept_encoding))
}

/// Builds the HTTP answer for a rendered body, compressing it when the client allows.
pub fn respond(format: Format, body: Vec<u8>, gzip: bool) -> ScrapeResponse {
    let content_type = format.content_type();
    if gzip {
        let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 8), Compression::fast());
        if encoder.write_all(&body).is_ok() {
            if let Ok(compressed) = encoder.finish() {
                return ScrapeResponse {
                    status: 200,
                    content_type,
                    content_encoding: Some("gzip"),
                    body: compressed,
                };
            }
        }
    }
    ScrapeResponse {
        status: 200,
        content_type,
        content_encoding: None,
        body,
    }
}
