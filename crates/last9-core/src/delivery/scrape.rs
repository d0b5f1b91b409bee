//! The scrape handler: serves a registry's metrics on a path of the [`MetricsServer`], and the
//! live page (see [`crate::delivery::live`]) beside them.
//!
//! [`MetricsServer`]: crate::delivery::server::MetricsServer

use crate::delivery::live::Live;
use crate::delivery::server::{Handler, ScrapeRequest};
use crate::encoding::{scrape, ScrapeResponse};
use crate::model::registry::Registry;

/// A handler for [`crate::delivery::server::MetricsServer`] that serves `registry` on `path`.
pub fn handler(registry: &'static Registry, path: String) -> Handler {
    let live = Live::of(registry);
    std::sync::Arc::new(move |request: &ScrapeRequest<'_>| {
        if let Some(data) = live_page(request, &path) {
            return live.respond(data);
        }
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

/// Whether a request of the dedicated server is for the live page (`Some(false)`) or its data
/// (`Some(true)`): `/` asked for by a browser (scrapers never accept `text/html`, so a scrape of
/// `/` still gets the metrics), `/ui` and `<path>/ui`, and `ui/data.json` under them.
fn live_page(request: &ScrapeRequest<'_>, path: &str) -> Option<bool> {
    let wants_html = request.accept.is_some_and(|a| a.contains("text/html"));
    if request.path == "/" && wants_html {
        return Some(false);
    }
    crate::delivery::live::under(request.path, "")
        .or_else(|| crate::delivery::live::under(request.path, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_the_live_page_and_scrapers_the_metrics() {
        let request = |path, accept| ScrapeRequest {
            method: "GET",
            path,
            accept,
            accept_encoding: None,
        };
        let html = Some("text/html,application/xhtml+xml,*/*;q=0.8");
        let prometheus = Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
        assert_eq!(live_page(&request("/", html), "/metrics"), Some(false));
        assert_eq!(live_page(&request("/", prometheus), "/metrics"), None);
        assert_eq!(live_page(&request("/ui", None), "/metrics"), Some(false));
        assert_eq!(live_page(&request("/metrics/ui", None), "/metrics"), Some(false));
        assert_eq!(live_page(&request("/ui/data.json", None), "/metrics"), Some(true));
        assert_eq!(
            live_page(&request("/metrics/ui/data.json", None), "/metrics"),
            Some(true)
        );
        assert_eq!(live_page(&request("/m/ui/data.json", None), "/m/"), Some(true));
        assert_eq!(live_page(&request("/metrics", html), "/metrics"), None);
        assert_eq!(live_page(&request("/metrics/uix", None), "/metrics"), None);
        assert_eq!(live_page(&request("/other/ui", None), "/metrics"), None);
    }
}
