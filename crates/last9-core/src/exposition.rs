//! Rendering the registry for a scrape: Prometheus text 0.0.4 and OpenMetrics 1.0, optionally
//! gzip-compressed, chosen from the scraper's `Accept` and `Accept-Encoding` headers.
//!
//! Output is written straight into one `String`: each series' label text was escaped when the
//! series was made, and numbers go through `itoa`/`ryu`, so no sample allocates.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::histogram::{format_float, Buckets};
use crate::registry::Registry;
use crate::server::{ScrapeRequest, ScrapeResponse};

/// The metric every recorder writes.
pub const DURATION_NAME: &str = "http_requests_duration_milliseconds";
pub const DURATION_HELP: &str = "HTTP requests duration per path, in milliseconds.";

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header lists `application/openmetrics-text` (with a q above
    /// zero), else Prometheus text, which every scraper understands.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::Text };
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            if !media.eq_ignore_ascii_case("application/openmetrics-text") {
                continue;
            }
            if !has_zero_quality(parts) {
                return Format::OpenMetrics;
            }
        }
        Format::Text
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Whether `Accept-Encoding` allows gzip (`gzip`, `x-gzip` or `*`, without `q=0`).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    header.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let wanted = ["gzip", "x-gzip", "*"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n));
        wanted && !has_zero_quality(parts)
    })
}

/// Whether the parameters of one media range or coding say `q=0` (not acceptable).
fn has_zero_quality<'a>(mut params: impl Iterator<Item = &'a str>) -> bool {
    params.any(|p| {
        p.strip_prefix("q=")
            .and_then(|q| q.parse::<f64>().ok())
            .is_some_and(|q| q <= 0.0)
    })
}

/// Escapes a label value for both formats: backslash, double quote and line feed.
pub fn escape_label_value(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes HELP text: backslash and line feed (and, for OpenMetrics, double quote).
fn escape_help(out: &mut String, help: &str, format: Format) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// One series as the encoder sees it, whichever store it comes from.
pub struct SeriesView<'a> {
    /// Escaped label pairs without braces, e.g. `per="/x",status="200"`.
    pub labels: &'a str,
    pub buckets: &'a Buckets,
    /// Per-bucket counts, `+Inf` last (not cumulative).
    pub counts: &'a [u64],
    pub sum_ns: u64,
}

/// Writes the HELP, TYPE (and, for OpenMetrics, UNIT) lines of a family.
pub fn write_family_header(
    out: &mut String,
    format: Format,
    name: &str,
    kind: &str,
    help: &str,
    unit: Option<&str>,
) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_help(out, help, format);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
    if let (Format::OpenMetrics, Some(unit)) = (format, unit) {
        out.push_str("# UNIT ");
        out.push_str(name);
        out.push(' ');
        out.push_str(unit);
        out.push('\n');
    }
}

/// Writes one histogram series: cumulative buckets, then sum and count.
pub fn write_histogram_series(out: &mut String, format: Format, name: &str, series: &SeriesView<'_>) {
    let openmetrics = format == Format::OpenMetrics;
    let mut number = itoa::Buffer::new();
    let last = series.counts.len() - 1;
    let mut cumulative = 0u64;
    for (i, count) in series.counts.iter().enumerate() {
        cumulative += count;
        let le = if i < last {
            series.buckets.le(i, openmetrics)
        } else {
            "+Inf"
        };
        write_sample_start(out, name, "_bucket", series.labels);
        out.push_str(",le=\"");
        out.push_str(le);
        out.push_str("\"} ");
        out.push_str(number.format(cumulative));
        out.push('\n');
    }
    write_sample_start(out, name, "_sum", series.labels);
    out.push_str("} ");
    out.push_str(&format_float(series.sum_ns as f64 / 1e6, openmetrics));
    out.push('\n');
    write_sample_start(out, name, "_count", series.labels);
    out.push_str("} ");
    out.push_str(number.format(cumulative));
    out.push('\n');
}

#[inline]
fn write_sample_start(out: &mut String, name: &str, suffix: &str, labels: &str) {
    out.push_str(name);
    out.push_str(suffix);
    out.push('{');
    out.push_str(labels);
}

/// Renders every series of a registry; for the global registry in multi-process mode, the sum
/// over every process of the server (see [`crate::store`]).
pub fn encode(registry: &Registry, format: Format) -> String {
    if registry.is_shared() {
        if let Some(text) = crate::store::encode_shared(format) {
            return text;
        }
    }
    let recorders = registry.recorders();
    let series_count: usize = recorders.iter().map(|r| r.len()).sum();
    let mut out = String::with_capacity(512 + series_count * 33 * 190);
    write_family_header(
        &mut out,
        format,
        DURATION_NAME,
        "histogram",
        DURATION_HELP,
        Some("milliseconds"),
    );
    let mut counts = Vec::new();
    for recorder in &recorders {
        for series in recorder.series() {
            let histogram = series.histogram();
            counts.clear();
            counts.extend(histogram.counts());
            let view = SeriesView {
                labels: series.labels(),
                buckets: recorder.buckets(),
                counts: &counts,
                sum_ns: histogram.sum_ns(),
            };
            write_histogram_series(&mut out, format, DURATION_NAME, &view);
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Answers a scrape: format and compression from the request's headers.
pub fn scrape(registry: &Registry, accept: Option<&str>, accept_encoding: Option<&str>) -> ScrapeResponse {
    let format = Format::negotiate(accept);
    let body = encode(registry, format).into_bytes();
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

/// A handler for [`crate::server::MetricsServer`] that serves `registry` on `path`.
pub fn handler(registry: &'static Registry, path: String) -> crate::server::Handler {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ConstLabels, Limits, Request};

    fn registry_with_one_request() -> Registry {
        let registry = Registry::new();
        let consts = ConstLabels {
            hostname: "box".into(),
            program: "shop".into(),
            ..Default::default()
        };
        let recorder = registry
            .recorder(consts, Buckets::new(&[1.0, 2.5]).unwrap(), Limits::default())
            .unwrap();
        let route = recorder.route("/user/{id}");
        recorder.observe(&Request {
            route,
            host: Some("example.com"),
            method: "GET",
            status: 200,
            duration_ns: 2_000_000,
        });
        registry
    }

    const LABELS: &str = r#"per="/user/{id}",hostname="box",domain="example.com",method="GET",program="shop",status="200",tenant="",cluster="""#;

    #[test]
    fn text_format_is_exact() {
        let expected = format!(
            "# HELP http_requests_duration_milliseconds HTTP requests duration per path, in milliseconds.\n\
             # TYPE http_requests_duration_milliseconds histogram\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"1\"}} 0\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"2.5\"}} 1\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"+Inf\"}} 1\n\
             http_requests_duration_milliseconds_sum{{{LABELS}}} 2\n\
             http_requests_duration_milliseconds_count{{{LABELS}}} 1\n"
        );
        assert_eq!(encode(&registry_with_one_request(), Format::Text), expected);
    }

    #[test]
    fn openmetrics_format_is_exact() {
        let expected = format!(
            "# HELP http_requests_duration_milliseconds HTTP requests duration per path, in milliseconds.\n\
             # TYPE http_requests_duration_milliseconds histogram\n\
             # UNIT http_requests_duration_milliseconds milliseconds\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"1.0\"}} 0\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"2.5\"}} 1\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"+Inf\"}} 1\n\
             http_requests_duration_milliseconds_sum{{{LABELS}}} 2.0\n\
             http_requests_duration_milliseconds_count{{{LABELS}}} 1\n\
             # EOF\n"
        );
        assert_eq!(
            encode(&registry_with_one_request(), Format::OpenMetrics),
            expected
        );
    }

    #[test]
    fn an_empty_registry_still_describes_the_family() {
        let text = encode(&Registry::new(), Format::Text);
        assert!(text.starts_with("# HELP http_requests_duration_milliseconds "));
        assert!(text.ends_with(" histogram\n"));
        assert!(encode(&Registry::new(), Format::OpenMetrics).ends_with("# EOF\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(out, r#"a\\b\"c\nd"#);
    }

    #[test]
    fn openmetrics_is_chosen_only_when_asked_for() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }

    #[test]
    fn gzip_is_used_only_when_allowed() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=1.0, *;q=0.5")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn gzip_bodies_decompress_to_the_text() {
        let registry = registry_with_one_request();
        let response = scrape(&registry, None, Some("gzip"));
        assert_eq!(response.content_encoding, Some("gzip"));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&response.body[..]), &mut text)
            .unwrap();
        assert_eq!(text, encode(&registry, Format::Text));
    }
}
