//! Content negotiation: which format an `Accept` header asks for, whether gzip is accepted.

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Length-delimited `io.prometheus.client.MetricFamily` protobuf messages: the format of
    /// native histograms.
    Protobuf,
}

impl Format {
    /// The format the `Accept` header prefers, by the rule Prometheus' own client libraries use
    /// (client_golang `expfmt.NegotiateAccept`): media ranges in order of their `q` (ties keep
    /// their order; `q=0` excludes), the first one we serve wins: `text/plain` with no version or
    /// version 0.0.4, `application/openmetrics-text` with no version or version 1.0.0 or 0.0.1,
    /// `application/vnd.google.protobuf` with `proto=io.prometheus.client.MetricFamily` and
    /// `encoding=delimited`. Anything else (another version, `*/*`) is skipped; with nothing
    /// left, text 0.0.4, which every scraper understands.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best: Option<(f64, Format)> = None;
        for range in accept.unwrap_or("").split(',') {
            let Some((format, q)) = served_range(range) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, format)| format)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Protobuf => PROTOBUF_CONTENT_TYPE,
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

/// The format one `Accept` media range asks for and its `q`, if it is one we serve; a range with
/// a malformed `q` is ignored.
fn served_range(range: &str) -> Option<(Format, f64)> {
    let mut parts = range.split(';').map(str::trim);
    let media = parts.next()?;
    let (mut q, mut version, mut proto, mut encoding) = (1.0, None, None, None);
    for param in parts {
        let (name, value) = param.split_once('=')?;
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "q" => q = value.parse::<f64>().ok().filter(|q| (0.0..=1.0).contains(q))?,
            "version" => version = Some(value),
            "proto" => proto = Some(value),
            "encoding" => encoding = Some(value),
            _ => {}
        }
    }
    let format = if media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        if proto != Some("io.prometheus.client.MetricFamily") || encoding != Some("delimited") {
            return None;
        }
        Format::Protobuf
    } else if media.eq_ignore_ascii_case("text/plain") && matches!(version, None | Some("0.0.4")) {
        Format::Text
    } else if media.eq_ignore_ascii_case("application/openmetrics-text")
        && matches!(version, None | Some("1.0.0" | "0.0.1"))
    {
        Format::OpenMetrics
    } else {
        return None;
    };
    Some((format, q))
}

/// Whether the parameters of one media range or coding say `q=0` (not acceptable).
fn has_zero_quality<'a>(mut params: impl Iterator<Item = &'a str>) -> bool {
    params.any(|p| {
        p.strip_prefix("q=")
            .and_then(|q| q.parse::<f64>().ok())
            .is_some_and(|q| q <= 0.0)
    })
}
