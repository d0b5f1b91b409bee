//! OpenTelemetry's HTTP semantic conventions, as Prometheus names them: the same series as the
//! seed's families, with OpenTelemetry's names, labels and units (seconds; see
//! [`crate::model::semconv`]).
//!
//! Labels are renamed from each series' escaped label text as it is written:
//! `per` → `http_route`, `method` → `http_request_method`, `status` →
//! `http_response_status_code` (and `error_type`, the status, for 5xx; a call that got no status,
//! `timeout`, has `error_type` only), `domain`/`upstream` → `server_address`. The seed's other
//! labels (`program`, `hostname`, `tenant`, `cluster`, constant labels) stay as they are.

use std::sync::Arc;

use super::{write_sample, Sink};
use crate::model::histogram::float_text;
use crate::model::semconv::OTEL_BOUNDS_MS;
use crate::snapshot::{Snapshot, SnapshotSeries};

pub const SERVER_DURATION_NAME: &str = "http_server_request_duration_seconds";
pub const SERVER_DURATION_HELP: &str = "Duration of HTTP server requests.";
pub const ACTIVE_NAME: &str = "http_server_active_requests";
pub const ACTIVE_HELP: &str = "Number of active HTTP server requests.";
pub const CLIENT_DURATION_NAME: &str = "http_client_request_duration_seconds";
pub const CLIENT_DURATION_HELP: &str = "Duration of HTTP client requests.";
pub const REQUEST_BODY_NAME: &str = "http_server_request_body_size_bytes";
pub const REQUEST_BODY_HELP: &str = "Size of HTTP server request bodies.";
pub const RESPONSE_BODY_NAME: &str = "http_server_response_body_size_bytes";
pub const RESPONSE_BODY_HELP: &str = "Size of HTTP server response bodies.";

/// Which family's labels are being renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rename {
    /// `http_server_request_duration_seconds`.
    Server,
    /// `http_server_active_requests`: no route (requests are counted before routing).
    Active,
    /// `http_client_request_duration_seconds`: the calling route stays `per`.
    Client,
    /// `http_server_request_body_size_bytes`, `http_server_response_body_size_bytes`: labels
    /// as [`Rename::Server`], and bytes as they are (every bound kept).
    Body,
}

impl Rename {
    /// Whether the histogram is in bytes (its bounds and sum written as they are).
    pub fn bytes(self) -> bool {
        self == Rename::Body
    }
}

/// The label text of a series under OpenTelemetry's names.
pub fn labels(text: &str, rename: Rename) -> String {
    let mut out = String::with_capacity(text.len() + 48);
    let mut error_type: Option<&str> = None;
    for (name, value) in pairs(text) {
        let renamed = match (name, rename) {
            ("per", Rename::Server | Rename::Body) => "http_route",
            ("per", Rename::Active) => continue,
            ("domain", _) | ("upstream", _) => "server_address",
            ("method", _) => "http_request_method",
            ("status", _) => {
                let numeric = value.bytes().all(|b| b.is_ascii_digit());
                if value.starts_with('5') || !numeric && !value.ends_with("xx") {
                    error_type = Some(value);
                }
                if !numeric && !value.ends_with("xx") {
                    continue; // `timeout`, `connection_error`: no status was received
                }
                "http_response_status_code"
            }
            _ => name,
        };
        push(&mut out, renamed, value);
    }
    if let Some(value) = error_type {
        push(&mut out, "error_type", value);
    }
    out
}

fn push(out: &mut String, name: &str, escaped_value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    out.push_str(escaped_value);
    out.push('"');
}

/// `(name, escaped value)` of each pair of an escaped label text (`a="x",b="y\"z"`).
fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let eq = rest.find("=\"")?;
        let name = rest[..eq].trim_start_matches(',');
        let value_start = eq + 2;
        let bytes = rest.as_bytes();
        let mut i = value_start;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        let value = &rest[value_start..i.min(rest.len())];
        rest = &rest[(i + 1).min(rest.len())..];
        Some((name, value))
    })
}

/// Writes histogram series in seconds, with only OpenTelemetry's bucket bounds.
pub(super) fn write_histograms(
    sink: &mut impl Sink,
    name: &[u8],
    snapshot: &Snapshot,
    series: &[SnapshotSeries],
    rename: Rename,
    openmetrics: bool,
) {
    let (number, float) = (&mut itoa::Buffer::new(), &mut ryu::Buffer::new());
    for series in series {
        let labels = labels(&series.labels, rename);
        let counts = snapshot.cumulative_counts(series);
        let last = counts.len() - 1;
        for (i, bound) in series.buckets.bounds_ms().iter().enumerate() {
            if rename.bytes() {
                let le = series.buckets.le(i, openmetrics);
                write_bucket(sink, name, &labels, le, number.format(counts[i]));
                continue;
            }
            if !OTEL_BOUNDS_MS.contains(bound) {
                continue;
            }
            let le = float_text(float, bound / 1000.0, openmetrics).to_string();
            write_bucket(sink, name, &labels, &le, number.format(counts[i]));
        }
        write_bucket(sink, name, &labels, "+Inf", number.format(counts[last]));
        let sum = series.sum_ns as f64 / if rename.bytes() { 1e6 } else { 1e9 };
        let sum = float_text(float, sum, openmetrics);
        write_sample(sink, name, b"_sum", &labels, sum);
        write_sample(sink, name, b"_count", &labels, number.format(counts[last]));
    }
}

fn write_bucket(sink: &mut impl Sink, name: &[u8], labels: &str, le: &str, count: &str) {
    sink.put(name);
    sink.put(b"_bucket{");
    sink.put(labels.as_bytes());
    if !labels.is_empty() {
        sink.put(b",");
    }
    sink.put(b"le=\"");
    sink.put(le.as_bytes());
    sink.put(b"\"} ");
    sink.put(count.as_bytes());
    sink.put(b"\n");
}

/// Writes gauge samples under OpenTelemetry's label names.
pub(super) fn write_gauges(sink: &mut impl Sink, name: &[u8], samples: &[(Arc<str>, i64)]) {
    for (text, value) in samples {
        let labels = labels(text, Rename::Active);
        write_sample(sink, name, b"", &labels, itoa::Buffer::new().format(*value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"per="/a/{id}",hostname="box",domain="example.com",method="GET",program="shop",status="503",tenant="",cluster="",env="p\"rod""#;

    #[test]
    fn server_labels_are_renamed_and_5xx_has_an_error_type() {
        assert_eq!(
            labels(SEED, Rename::Server),
            r#"http_route="/a/{id}",hostname="box",server_address="example.com",http_request_method="GET",program="shop",http_response_status_code="503",tenant="",cluster="",env="p\"rod",error_type="503""#
        );
    }

    #[test]
    fn active_requests_have_no_route() {
        let text = r#"per="/_all",hostname="box",method="GET",program="shop",tenant="",cluster="""#;
        assert_eq!(
            labels(text, Rename::Active),
            r#"hostname="box",http_request_method="GET",program="shop",tenant="",cluster="""#
        );
    }

    #[test]
    fn a_call_without_a_status_has_only_an_error_type() {
        let text = r#"per="/x",upstream="api:8080",method="GET",status="timeout""#;
        assert_eq!(
            labels(text, Rename::Client),
            r#"per="/x",server_address="api:8080",http_request_method="GET",error_type="timeout""#
        );
    }

    #[test]
    fn status_classes_stay_classes() {
        let text = r#"per="/x",status="2xx""#;
        assert_eq!(
            labels(text, Rename::Server),
            r#"http_route="/x",http_response_status_code="2xx""#
        );
    }
}
