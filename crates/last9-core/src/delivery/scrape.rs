//! The scrape handler: serves a registry's metrics on a path of the [`MetricsServer`].
//!
//! [`MetricsServer`]: crate::delivery::server::MetricsServer

use crate::delivery::server::{Handler, ScrapeRequest};
use crate::encoding::{scrape, ScrapeResponse};
use crate::model::registry::Registry;

/// A handler for [`crate::delivery::server::MetricsServer`] that serves `registry` on `path`.
pub fn handler(registry: &'static Registry, path: String) -> Handler {
    std::sync::Arc::new(move |request: &ScrapeRequest<'_>| {
        if request.path != path && !(path == "/metrics" && request.path == "/") {
            return ScrapeResponse {
                status: 404,
                content_type: "text/plain; charset=utf-8",
                content_encoding: None,
                body: b"Not Found. Metrics are at /metrics\n".to_vec(),
            };
        }
        scrape(registry, request.accept, request.accept_encoding)
    })
}
