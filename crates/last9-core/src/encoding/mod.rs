//! Rendering the registry for a scrape: Prometheus text 0.0.4, OpenMetrics 1.0 and the protobuf
//! format (the one that carries native histograms, see [`protobuf`]), optionally gzip-compressed, chosen from the scraper's `Accept` and `Accept-Encoding` headers.
//!
//! Output is sized exactly, then written once into its final buffer: each series' label text was
//! escaped when the series was made, and numbers go through `itoa`/`ryu`, so no sample allocates.

mod negotiate;
pub mod otel;
pub mod protobuf;
mod response;
pub mod runtime;

pub use negotiate::{
    accepts_gzip, Format, OPENMETRICS_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE, TEXT_CONTENT_TYPE,
};
pub use response::{respond, scrape, ScrapeResponse};

use crate::model::body::Body;
use crate::model::exemplar::Exemplar;
use crate::model::histogram::float_text;
use crate::model::registry::Registry;
use crate::model::semconv;
use crate::snapshot::{Snapshot, SnapshotSeries};
use std::sync::Arc;

/// The metric every recorder writes.
pub const DURATION_NAME: &str = "http_requests_duration_milliseconds";
pub const DURATION_HELP: &str = "HTTP requests duration per path, in milliseconds.";
/// 1 when a worker of a pre-fork server serves sums known to be partial (see the store).
pub const STORE_DEGRADED_NAME: &str = "last9_store_degraded";
const STORE_DEGRADED_HELP: &str =
    "1 when these sums miss some worker's series (the multi-process store is unusable or a file could not take them); see the log.";
/// The gauge of requests inside the app.
pub const IN_FLIGHT_NAME: &str = "http_requests_in_flight";
pub const IN_FLIGHT_HELP: &str =
    "HTTP requests inside the app now, per method (per is /_all: counted before routing).";
/// Outbound calls (lineage).
pub const CLIENT_NAME: &str = "http_client_requests_duration_milliseconds";
pub const CLIENT_HELP: &str = "Outbound HTTP calls duration per upstream and calling route, in milliseconds.";
/// Inbound requests by calling service (lineage); `_total` is added by the encoder.
pub const CALLERS_NAME: &str = "http_requests_callers";
pub const CALLERS_HELP: &str = "HTTP requests per calling service and path.";
/// Body sizes (`body_sizes` on), in bytes.
pub const REQUEST_BODY_NAME: &str = "http_request_body_size_bytes";
pub const REQUEST_BODY_HELP: &str = "HTTP request body size per path, in bytes.";
pub const RESPONSE_BODY_NAME: &str = "http_response_body_size_bytes";
pub const RESPONSE_BODY_HELP: &str = "HTTP response body size per path, in bytes.";
/// Requests whose label value was counted as `_other`, per label; `_total` is added by the encoder.
pub const OVERFLOW_NAME: &str = "last9_label_overflow";
pub const OVERFLOW_HELP: &str =
    "HTTP requests counted under _other in a label (past its cap, not yet admitted, \
     or malformed), per label.";

pub use crate::values::escape::escape_label_value;

/// Escapes HELP text: backslash and line feed (and, for OpenMetrics, double quote).
fn escape_help(help: &str, format: Format) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// Where encoded bytes go: a length counter for sizing, then the output buffer itself. One
/// encoder drives both, so the size and the bytes cannot disagree.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

struct Measure(usize);

impl Sink for Measure {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

struct Fill<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Sink for Fill<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

/// The samples of one family.
pub enum Samples<'a> {
    /// Histogram series of a snapshot (its request durations or its outbound calls).
    Histogram(&'a Snapshot, &'a [SnapshotSeries]),
    Gauge(&'a [(Arc<str>, i64)]),
    Counter(&'a [(Arc<str>, u64)]),
    /// Histogram series under OpenTelemetry's names, in seconds (see [`otel`]).
    OtelHistogram(&'a Snapshot, &'a [SnapshotSeries], otel::Rename),
    /// `http_requests_in_flight` as `http_server_active_requests`.
    OtelGauge(&'a [(Arc<str>, i64)]),
    /// The runtime families (`process_*`, `python_*`, `last9_info`, worker starts and exits).
    Runtime(&'a crate::runtime::RuntimeSnapshot),
    /// The host's own families (prometheus_client's), already in the scrape's format.
    Foreign(&'a Snapshot),
}

/// One metric family to encode: its metadata and its samples.
pub struct Family<'a> {
    /// The family's name; a counter's samples add `_total`.
    pub name: &'a str,
    pub help: &'a str,
    pub unit: Option<&'a str>,
    pub samples: Samples<'a>,
}

impl<'a> Family<'a> {
    /// The request-duration histogram.
    pub fn duration(snapshot: &'a Snapshot) -> Family<'a> {
        Family {
            name: DURATION_NAME,
            help: DURATION_HELP,
            unit: Some("milliseconds"),
            samples: Samples::Histogram(snapshot, snapshot.series()),
        }
    }

    /// Every family of a snapshot: request durations, requests in flight, the lineage families
    /// when they have samples, and the overflow counter; under the seed's names, OpenTelemetry's
    /// or both (see [`semconv`]).
    pub fn all(snapshot: &'a Snapshot) -> Vec<Family<'a>> {
        let mode = semconv::get();
        let mut families = Vec::with_capacity(9);
        if mode.seed() {
            families.push(Family::duration(snapshot));
            families.push(Family {
                name: IN_FLIGHT_NAME,
                help: IN_FLIGHT_HELP,
                unit: None,
                samples: Samples::Gauge(snapshot.gauges()),
            });
        }
        if mode.otel() {
            families.push(Family {
                name: otel::SERVER_DURATION_NAME,
                help: otel::SERVER_DURATION_HELP,
                unit: Some("seconds"),
                samples: Samples::OtelHistogram(snapshot, snapshot.series(), otel::Rename::Server),
            });
            families.push(Family {
                name: otel::ACTIVE_NAME,
                help: otel::ACTIVE_HELP,
                unit: None,
                samples: Samples::OtelGauge(snapshot.gauges()),
            });
        }
        if !snapshot.client_series().is_empty() && mode.seed() {
            families.push(Family {
                name: CLIENT_NAME,
                help: CLIENT_HELP,
                unit: Some("milliseconds"),
                samples: Samples::Histogram(snapshot, snapshot.client_series()),
            });
        }
        if !snapshot.client_series().is_empty() && mode.otel() {
            families.push(Family {
                name: otel::CLIENT_DURATION_NAME,
                help: otel::CLIENT_DURATION_HELP,
                unit: Some("seconds"),
                samples: Samples::OtelHistogram(snapshot, snapshot.client_series(), otel::Rename::Client),
            });
        }
        let bodies = [
            (
                Body::Request,
                (REQUEST_BODY_NAME, REQUEST_BODY_HELP),
                (otel::REQUEST_BODY_NAME, otel::REQUEST_BODY_HELP),
            ),
            (
                Body::Response,
                (RESPONSE_BODY_NAME, RESPONSE_BODY_HELP),
                (otel::RESPONSE_BODY_NAME, otel::RESPONSE_BODY_HELP),
            ),
        ];
        for (which, (name, help), (otel_name, otel_help)) in bodies {
            let series = snapshot.body_series(which);
            if series.is_empty() {
                continue;
            }
            if mode.seed() {
                families.push(Family {
                    name,
                    help,
                    unit: Some("bytes"),
                    samples: Samples::Histogram(snapshot, series),
                });
            }
            if mode.otel() {
                families.push(Family {
                    name: otel_name,
                    help: otel_help,
                    unit: Some("bytes"),
                    samples: Samples::OtelHistogram(snapshot, series, otel::Rename::Body),
                });
            }
        }
        if !snapshot.store_degraded().is_empty() {
            families.push(Family {
                name: STORE_DEGRADED_NAME,
                help: STORE_DEGRADED_HELP,
                unit: None,
                samples: Samples::Gauge(snapshot.store_degraded()),
            });
        }
        if !snapshot.callers().is_empty() {
            families.push(Family {
                name: CALLERS_NAME,
                help: CALLERS_HELP,
                unit: None,
                samples: Samples::Counter(snapshot.callers()),
            });
        }
        families.push(Family {
            name: OVERFLOW_NAME,
            help: OVERFLOW_HELP,
            unit: None,
            samples: Samples::Counter(snapshot.overflow()),
        });
        if let Some(runtime) = snapshot.runtime() {
            for samples in [Samples::Runtime(runtime), Samples::Foreign(snapshot)] {
                families.push(Family {
                    name: "",
                    help: "",
                    unit: None,
                    samples,
                });
            }
        }
        families
    }
}

fn write_families(sink: &mut impl Sink, families: &[Family<'_>], format: Format) {
    let openmetrics = format == Format::OpenMetrics;
    let mut number = itoa::Buffer::new();
    let mut float = ryu::Buffer::new();
    for family in families {
        match family.samples {
            Samples::Runtime(runtime_families) => {
                sink.put(&runtime::encode(runtime_families, openmetrics));
                continue;
            }
            Samples::Foreign(snapshot) => {
                sink.put(snapshot.foreign_text(openmetrics));
                continue;
            }
            _ => {}
        }
        let name = family.name.as_bytes();
        let (kind, suffix): (&[u8], &[u8]) = match family.samples {
            Samples::Histogram(..) | Samples::OtelHistogram(..) => (b"histogram", b""),
            Samples::Gauge(_) | Samples::OtelGauge(_) => (b"gauge", b""),
            Samples::Counter(_) => (b"counter", b"_total"),
            Samples::Runtime(_) | Samples::Foreign(_) => continue,
        };
        // Text 0.0.4 names a counter's family with its samples' `_total`; OpenMetrics without.
        let family_suffix: &[u8] = if openmetrics { b"" } else { suffix };
        sink.put(b"# HELP ");
        sink.put(name);
        sink.put(family_suffix);
        sink.put(b" ");
        sink.put(escape_help(family.help, format).as_bytes());
        sink.put(b"\n# TYPE ");
        sink.put(name);
        sink.put(family_suffix);
        sink.put(b" ");
        sink.put(kind);
        sink.put(b"\n");
        if let (true, Some(unit)) = (openmetrics, family.unit) {
            sink.put(b"# UNIT ");
            sink.put(name);
            sink.put(b" ");
            sink.put(unit.as_bytes());
            sink.put(b"\n");
        }
        match family.samples {
            Samples::Histogram(snapshot, series) => {
                write_histograms(sink, name, snapshot, series, openmetrics, &mut number, &mut float)
            }
            Samples::Gauge(samples) => {
                for (labels, value) in samples {
                    write_sample(sink, name, b"", labels, itoa::Buffer::new().format(*value));
                }
            }
            Samples::Counter(samples) => {
                for (labels, value) in samples {
                    write_sample(sink, name, suffix, labels, number.format(*value));
                }
            }
            Samples::OtelHistogram(snapshot, series, rename) => {
                otel::write_histograms(sink, name, snapshot, series, rename, openmetrics)
            }
            Samples::OtelGauge(samples) => otel::write_gauges(sink, name, samples),
            Samples::Runtime(_) | Samples::Foreign(_) => {}
        }
    }
    if openmetrics {
        sink.put(b"# EOF\n");
    }
}

fn write_sample(sink: &mut impl Sink, name: &[u8], suffix: &[u8], labels: &str, value: &str) {
    sink.put(name);
    sink.put(suffix);
    if !labels.is_empty() {
        sink.put(b"{");
        sink.put(labels.as_bytes());
        sink.put(b"}");
    }
    sink.put(b" ");
    sink.put(value.as_bytes());
    sink.put(b"\n");
}

fn write_histograms(
    sink: &mut impl Sink,
    name: &[u8],
    snapshot: &Snapshot,
    series: &[SnapshotSeries],
    openmetrics: bool,
    number: &mut itoa::Buffer,
    float: &mut ryu::Buffer,
) {
    for series in series {
        let labels = series.labels.as_bytes();
        let counts = snapshot.cumulative_counts(series);
        let last = counts.len() - 1;
        for (i, count) in counts.iter().enumerate() {
            let le = if i < last {
                series.buckets.le(i, openmetrics)
            } else {
                "+Inf"
            };
            sink.put(name);
            sink.put(b"_bucket{");
            sink.put(labels);
            sink.put(b",le=\"");
            sink.put(le.as_bytes());
            sink.put(b"\"} ");
            sink.put(number.format(*count).as_bytes());
            if let Some(Some(exemplar)) = series.exemplars.get(i).filter(|_| openmetrics) {
                write_exemplar(sink, exemplar, float);
            }
            sink.put(b"\n");
        }
        sink.put(name);
        sink.put(b"_sum{");
        sink.put(labels);
        sink.put(b"} ");
        sink.put(float_text(float, series.sum_ns as f64 / 1e6, openmetrics).as_bytes());
        sink.put(b"\n");
        write_sample(sink, name, b"_count", &series.labels, number.format(counts[last]));
    }
}

/// An OpenMetrics exemplar after a bucket's value: ` # {trace_id="…",span_id="…"} value time`
/// (63 characters of labels, within the format's 128).
fn write_exemplar(sink: &mut impl Sink, exemplar: &Exemplar, float: &mut ryu::Buffer) {
    sink.put(b" # {trace_id=\"");
    sink.put(exemplar.trace_id_hex().as_bytes());
    sink.put(b"\",span_id=\"");
    sink.put(exemplar.span_id_hex().as_bytes());
    sink.put(b"\"} ");
    sink.put(float_text(float, exemplar.value_ms, true).as_bytes());
    sink.put(b" ");
    sink.put(float_text(float, exemplar.timestamp, true).as_bytes());
}

/// Exact length of the encoding of `families`.
pub fn encoded_len(families: &[Family<'_>], format: Format) -> usize {
    if format == Format::Protobuf {
        return protobuf::encode_families(families).len();
    }
    let mut measure = Measure(0);
    write_families(&mut measure, families, format);
    measure.0
}

/// Encodes `families` into `out`, which must be exactly [`encoded_len`] bytes long.
pub fn encode_into(families: &[Family<'_>], format: Format, out: &mut [u8]) {
    if format == Format::Protobuf {
        out.copy_from_slice(&protobuf::encode_families(families));
        return;
    }
    let mut fill = Fill { out, at: 0 };
    write_families(&mut fill, families, format);
    assert_eq!(
        fill.at,
        fill.out.len(),
        "encoded length changed between sizing and writing"
    );
}

/// Encodes `families` into a new buffer.
pub fn encode_families(families: &[Family<'_>], format: Format) -> Vec<u8> {
    if format == Format::Protobuf {
        return protobuf::encode_families(families);
    }
    let mut out = vec![0; encoded_len(families, format)];
    encode_into(families, format, &mut out);
    out
}

/// Renders every series of a registry; for the global registry in multi-process mode, the sum
/// over every process of the server (see [`crate::store`]).
pub fn encode(registry: &Registry, format: Format) -> String {
    let snapshot = Snapshot::of(registry);
    let bytes = encode_families(&Family::all(&snapshot), format);
    String::from_utf8(bytes).expect("the encoder writes UTF-8 only")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::Buckets;
    use crate::model::registry::{ConstLabels, Limits, Request};

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
        let method = recorder.enter("GET");
        recorder.leave(method);
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

    const IN_FLIGHT: &str = "# HELP http_requests_in_flight HTTP requests inside the app now, per method (per is /_all: counted before routing).\n\
        # TYPE http_requests_in_flight gauge\n\
        http_requests_in_flight{per=\"/_all\",hostname=\"box\",method=\"GET\",program=\"shop\",tenant=\"\",cluster=\"\"} 0\n";

    const OVERFLOW_SAMPLES: &str = "last9_label_overflow_total{label=\"per\"} 0\n\
        last9_label_overflow_total{label=\"domain\"} 0\n";

    fn overflow_family(format: Format) -> String {
        let name = match format {
            Format::Text => "last9_label_overflow_total",
            Format::OpenMetrics | Format::Protobuf => "last9_label_overflow",
        };
        format!(
            "# HELP {name} HTTP requests counted under _other in a label (past its cap, not yet admitted, \
             or malformed), per label.\n# TYPE {name} counter\n{OVERFLOW_SAMPLES}"
        )
    }

    #[test]
    fn in_flight_counts_requests_between_enter_and_leave() {
        let registry = registry_with_one_request();
        let recorder = registry.recorders()[0].clone();
        let a = recorder.enter("POST");
        recorder.enter("POST");
        recorder.leave(a);
        let text = encode(&registry, Format::Text);
        assert!(text.contains("http_requests_in_flight{per=\"/_all\",hostname=\"box\",method=\"POST\",program=\"shop\",tenant=\"\",cluster=\"\"} 1\n"), "{text}");
    }

    #[test]
    fn body_sizes_render_in_bytes_under_both_namings() {
        let registry = registry_with_one_request();
        let recorder = registry.recorders()[0].clone();
        let request = Request {
            route: recorder.route("/user/{id}"),
            host: Some("example.com"),
            method: "GET",
            status: 200,
            duration_ns: 2_000_000,
        };
        recorder.observe_with_body_sizes(&request, None, None, Some(100), Some(70_000));
        recorder.observe_with_body_sizes(&request, None, None, Some(0), None);
        let text = encode(&registry, Format::Text);
        let has = |text: &str, line: String| assert!(text.contains(&line), "{line} not in {text}");
        has(&text, "# TYPE http_request_body_size_bytes histogram\n".into());
        has(
            &text,
            format!("http_request_body_size_bytes_bucket{{{LABELS},le=\"64\"}} 1\n"),
        );
        has(
            &text,
            format!("http_request_body_size_bytes_bucket{{{LABELS},le=\"256\"}} 2\n"),
        );
        has(
            &text,
            format!("http_request_body_size_bytes_sum{{{LABELS}}} 100\n"),
        );
        has(
            &text,
            format!("http_request_body_size_bytes_count{{{LABELS}}} 2\n"),
        );
        // The response's size was unknown once: one observation.
        has(
            &text,
            format!("http_response_body_size_bytes_bucket{{{LABELS},le=\"65536\"}} 0\n"),
        );
        has(
            &text,
            format!("http_response_body_size_bytes_sum{{{LABELS}}} 70000\n"),
        );
        has(
            &text,
            format!("http_response_body_size_bytes_count{{{LABELS}}} 1\n"),
        );
        let om = encode(&registry, Format::OpenMetrics);
        has(&om, "# UNIT http_request_body_size_bytes bytes\n".into());
        has(&om, "# UNIT http_response_body_size_bytes bytes\n".into());
        // OpenTelemetry's names and labels, every byte bound kept.
        let snapshot = Snapshot::of(&registry);
        let otel_family = Family {
            name: otel::REQUEST_BODY_NAME,
            help: otel::REQUEST_BODY_HELP,
            unit: Some("bytes"),
            samples: Samples::OtelHistogram(
                &snapshot,
                snapshot.body_series(Body::Request),
                otel::Rename::Body,
            ),
        };
        let otel = String::from_utf8(encode_families(&[otel_family], Format::Text)).unwrap();
        let labels = r#"http_route="/user/{id}",hostname="box",server_address="example.com",http_request_method="GET",program="shop",http_response_status_code="200",tenant="",cluster="""#;
        has(
            &otel,
            format!("http_server_request_body_size_bytes_bucket{{{labels},le=\"64\"}} 1\n"),
        );
        has(
            &otel,
            format!("http_server_request_body_size_bytes_bucket{{{labels},le=\"67108864\"}} 2\n"),
        );
        has(
            &otel,
            format!("http_server_request_body_size_bytes_sum{{{labels}}} 100\n"),
        );
    }

    #[test]
    fn lineage_families_render_as_histogram_and_counter() {
        let registry = registry_with_one_request();
        let recorder = registry.recorders()[0].clone();
        recorder.observe_client(Some(recorder.route("/a")), "api:8000", "GET", "200", 2_000_000);
        recorder.count_caller(recorder.route("/a"), Some("web"), 200);
        let text = encode(&registry, Format::Text);
        assert!(text.contains("# TYPE http_client_requests_duration_milliseconds histogram\n"));
        assert!(text.contains("http_client_requests_duration_milliseconds_count{per=\"/a\",hostname=\"box\",upstream=\"api:8000\",method=\"GET\",program=\"shop\",status=\"200\",tenant=\"\",cluster=\"\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE http_requests_callers_total counter\nhttp_requests_callers_total{caller=\"web\",per=\"/a\",status=\"2xx\",hostname=\"box\",program=\"shop\",tenant=\"\",cluster=\"\"} 1\n"), "{text}");
        let om = encode(&registry, Format::OpenMetrics);
        assert!(
            om.contains("# TYPE http_requests_callers counter\nhttp_requests_callers_total{"),
            "{om}"
        );
    }

    #[test]
    fn text_format_is_exact() {
        let expected = format!(
            "# HELP http_requests_duration_milliseconds HTTP requests duration per path, in milliseconds.\n\
             # TYPE http_requests_duration_milliseconds histogram\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"1\"}} 0\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"2.5\"}} 1\n\
             http_requests_duration_milliseconds_bucket{{{LABELS},le=\"+Inf\"}} 1\n\
             http_requests_duration_milliseconds_sum{{{LABELS}}} 2\n\
             http_requests_duration_milliseconds_count{{{LABELS}}} 1\n\
             {IN_FLIGHT}{}",
            overflow_family(Format::Text)
        );
        assert_eq!(encode(&registry_with_one_request(), Format::Text), expected);
    }

    #[test]
    fn openmetrics_carries_the_exemplar_on_its_bucket_and_text_does_not() {
        let registry = Registry::new();
        let recorder = registry
            .recorder(
                ConstLabels::default(),
                Buckets::new(&[1.0, 2.5]).unwrap(),
                Limits::default(),
            )
            .unwrap();
        let request = Request {
            route: recorder.route("/t"),
            host: Some("example.com"),
            method: "GET",
            status: 200,
            duration_ns: 2_000_000,
        };
        let mut trace_id = [0u8; 16];
        trace_id[15] = 0x2a;
        recorder.observe_traced(&request, Some((trace_id, [0xff; 8])));
        let om = encode(&registry, Format::OpenMetrics);
        let line = om.lines().find(|l| l.contains("le=\"2.5\"")).unwrap();
        let (sample, exemplar) = line.split_once(" # ").unwrap();
        assert!(sample.ends_with("} 1"), "{line}");
        let (labels, rest) = exemplar.split_once("} ").unwrap();
        assert_eq!(
            labels,
            "{trace_id=\"0000000000000000000000000000002a\",span_id=\"ffffffffffffffff\""
        );
        let (value, time) = rest.split_once(' ').unwrap();
        assert_eq!(value, "2.0");
        assert!(time.parse::<f64>().unwrap() > 1.6e9);
        assert_eq!(om.matches(" # {").count(), 1, "only its bucket has it");
        assert!(!encode(&registry, Format::Text).contains(" # {"));
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
             {IN_FLIGHT}{}\
             # EOF\n",
            overflow_family(Format::OpenMetrics)
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
        assert!(text.contains("# TYPE http_requests_in_flight gauge\n# HELP last9_label_overflow_total"));
        assert!(text.ends_with(OVERFLOW_SAMPLES), "{text}");
        assert!(encode(&Registry::new(), Format::OpenMetrics).ends_with("# EOF\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(out, r#"a\\b\"c\nd"#);
    }

    #[test]
    fn negotiation_follows_the_prometheus_rule() {
        use Format::{OpenMetrics as Om, Protobuf as Pb, Text};
        let cases: &[(Option<&str>, Format)] = &[
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), Text),
            // What Prometheus 2.x and 3.x send.
            (
                Some("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
                Om,
            ),
            (Some("application/openmetrics-text"), Om),
            (Some("application/openmetrics-text; version=0.0.1"), Om),
            (Some("APPLICATION/OpenMetrics-Text; version=\"1.0.0\""), Om),
            // q values: the higher wins, whatever the order.
            (Some("application/openmetrics-text;q=0.5,text/plain;q=1"), Text),
            (Some("text/plain;q=0.2, application/openmetrics-text;q=0.9"), Om),
            (Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5"), Text),
            // Equal q: the first listed wins.
            (Some("text/plain, application/openmetrics-text"), Text),
            (Some("application/openmetrics-text, text/plain"), Om),
            // q=0 excludes; a malformed q ignores the range.
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("application/openmetrics-text;q=0.0, text/plain;q=0.1"), Text),
            (Some("application/openmetrics-text;q=high"), Text),
            (Some("application/openmetrics-text;q=2"), Text),
            // Versions we do not serve are skipped: text 0.0.4 is the answer.
            (Some("application/openmetrics-text; version=2.0.0"), Text),
            (Some("application/openmetrics-text; version=2.0.0, application/openmetrics-text; version=1.0.0;q=0.1"), Om),
            (Some("text/plain; version=1.0.0"), Text),
            // Protobuf: only the delimited MetricFamily stream.
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"), Pb),
            // What Prometheus 2.42 sends with --enable-feature=native-histograms.
            (
                Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
                Pb,
            ),
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"), Text),
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily"), Text),
            (Some("application/vnd.google.protobuf;encoding=delimited, application/openmetrics-text;q=0.1"), Om),
        ];
        for &(accept, expected) in cases {
            assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
        }
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
