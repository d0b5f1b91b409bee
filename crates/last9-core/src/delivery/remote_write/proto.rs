//! The remote-write 1.0 wire format: a protobuf `WriteRequest`, snappy block compressed.
//!
//! Only three messages are needed, so they are written by hand (field numbers from Prometheus'
//! `prompb/types.proto` and `remote.proto`), in canonical proto3 form: fields in number order,
//! zero values and empty strings left out.
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! A histogram goes out in its classic form: one series per bucket (`_bucket` with `le`), `_sum`
//! and `_count`, each with the series' labels. Labels are sorted by name, `__name__` included;
//! labels with an empty value are left out, as the specification requires (Prometheus treats an
//! empty label as an absent one, so this matches what a scrape stores).

use std::borrow::Cow;

use crate::encoding::{
    CALLERS_NAME, CLIENT_NAME, DURATION_NAME, IN_FLIGHT_NAME, OVERFLOW_NAME, STORE_DEGRADED_NAME,
};
use crate::runtime::Kind;
use crate::snapshot::{Snapshot, SnapshotSeries};

pub const CONTENT_TYPE: &str = "application/x-protobuf";
pub const CONTENT_ENCODING: &str = "snappy";
pub const VERSION_HEADER: &str = "X-Prometheus-Remote-Write-Version";
pub const VERSION: &str = "0.1.0";

/// Samples per request unless configured otherwise (Prometheus' own `max_samples_per_send`).
pub const DEFAULT_MAX_SAMPLES_PER_REQUEST: usize = 2000;

/// Wire type 2 (length-delimited) and 1 (64-bit), and 0 (varint), for field numbers 1 and 2.
const TAG_1_LEN: u8 = 0x0a;
const TAG_2_LEN: u8 = 0x12;
const TAG_1_FIXED64: u8 = 0x09;
const TAG_2_VARINT: u8 = 0x10;

/// One compressed write request, ready to send, and how many samples it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRequest {
    pub body: Vec<u8>,
    pub samples: usize,
}

/// Samples in the classic form of a series: one per bucket (`+Inf` included), sum and count.
pub fn sample_count(series: &SnapshotSeries) -> usize {
    series.buckets.cells() + 2
}

/// One unit of a write request: a histogram series in its classic form, or one sample.
enum Item<'a> {
    Histogram(&'a str, &'a SnapshotSeries),
    Sample(Cow<'a, str>, &'a str, f64),
}

impl Item<'_> {
    fn samples(&self) -> usize {
        match self {
            Item::Histogram(_, series) => sample_count(series),
            Item::Sample(..) => 1,
        }
    }
}

/// Every family of `snapshot` as a scrape shows it (prometheus_client's excepted: it is the
/// host's text, not samples), in the scrape's order.
fn items(snapshot: &Snapshot) -> Vec<Item<'_>> {
    let mut items: Vec<Item<'_>> = Vec::with_capacity(snapshot.len() + snapshot.gauges().len() + 8);
    items.extend(
        snapshot
            .series()
            .iter()
            .map(|s| Item::Histogram(DURATION_NAME, s)),
    );
    items.extend(
        snapshot
            .gauges()
            .iter()
            .map(|(labels, value)| Item::Sample(Cow::Borrowed(IN_FLIGHT_NAME), labels, *value as f64)),
    );
    items.extend(
        snapshot
            .client_series()
            .iter()
            .map(|s| Item::Histogram(CLIENT_NAME, s)),
    );
    items.extend(
        snapshot
            .store_degraded()
            .iter()
            .map(|(labels, value)| Item::Sample(Cow::Borrowed(STORE_DEGRADED_NAME), labels, *value as f64)),
    );
    let counter = |name: &str| Cow::Owned(format!("{name}_total"));
    items.extend(
        snapshot
            .callers()
            .iter()
            .map(|(labels, value)| Item::Sample(counter(CALLERS_NAME), labels, *value as f64)),
    );
    items.extend(
        snapshot
            .overflow()
            .iter()
            .map(|(labels, value)| Item::Sample(counter(OVERFLOW_NAME), labels, *value as f64)),
    );
    if let Some(runtime) = snapshot.runtime() {
        for family in runtime.families() {
            let name: Cow<'_, str> = match family.kind {
                Kind::Counter => counter(family.name),
                Kind::Gauge => Cow::Borrowed(family.name),
            };
            items.extend(
                family
                    .samples
                    .iter()
                    .map(|(labels, value)| Item::Sample(name.clone(), labels, *value)),
            );
        }
    }
    items
}

/// Every family of `snapshot` as write requests of at most `max_samples` samples each (a
/// series' samples are never split across requests), every sample stamped `timestamp_ms` and
/// carrying `external` labels (`job`, `instance`, ...) unless it has a label of that name.
pub fn write_requests(
    snapshot: &Snapshot,
    external: &[(String, String)],
    timestamp_ms: i64,
    max_samples: usize,
) -> Vec<EncodedRequest> {
    let all = items(snapshot);
    let mut requests = Vec::new();
    let mut proto = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    let mut start = 0;
    while start < all.len() {
        let mut end = start;
        let mut samples = 0;
        while end < all.len() {
            let more = all[end].samples();
            if end > start && samples + more > max_samples {
                break;
            }
            samples += more;
            end += 1;
        }
        proto.clear();
        for item in &all[start..end] {
            match item {
                Item::Histogram(name, series) => {
                    encode_histogram(name, snapshot, series, external, timestamp_ms, &mut proto)
                }
                Item::Sample(name, labels, value) => {
                    encode_sample(name, labels, *value, external, timestamp_ms, &mut proto)
                }
            }
        }
        let body = encoder
            .compress_vec(&proto)
            .expect("snappy takes any input below 4 GiB");
        requests.push(EncodedRequest { body, samples });
        start = end;
    }
    requests
}

/// The label pairs of a series to push: its own (empty values and reserved names left out),
/// then the external labels it does not have.
fn base_labels<'a>(
    pairs: &'a [(&'a str, Cow<'a, str>)],
    external: &'a [(String, String)],
) -> impl Iterator<Item = (&'a str, &'a str)> + Clone {
    let own = pairs
        .iter()
        .filter(|(name, value)| !value.is_empty() && *name != "le" && *name != "__name__")
        .map(|(name, value)| (*name, value.as_ref()));
    let extra = external
        .iter()
        .filter(|(name, value)| !value.is_empty() && !pairs.iter().any(|(own, _)| own == name))
        .map(|(name, value)| (name.as_str(), value.as_str()));
    own.chain(extra)
}

fn encode_sample(
    name: &str,
    labels: &str,
    value: f64,
    external: &[(String, String)],
    timestamp_ms: i64,
    out: &mut Vec<u8>,
) {
    let pairs = label_pairs(labels);
    let mut all: Vec<(&str, &str)> = base_labels(&pairs, external).collect();
    all.push(("__name__", name));
    write_time_series(out, &mut all, value, timestamp_ms);
}

/// Appends the uncompressed protobuf `WriteRequest` of the histogram `series` of `snapshot`
/// (without external labels) to `out`.
pub fn encode_write_request(
    name: &str,
    snapshot: &Snapshot,
    series: &[SnapshotSeries],
    timestamp_ms: i64,
    out: &mut Vec<u8>,
) {
    for histogram in series {
        encode_histogram(name, snapshot, histogram, &[], timestamp_ms, out);
    }
}

fn encode_histogram(
    name: &str,
    snapshot: &Snapshot,
    histogram: &SnapshotSeries,
    external: &[(String, String)],
    timestamp_ms: i64,
    out: &mut Vec<u8>,
) {
    let bucket_name = format!("{name}_bucket");
    let sum_name = format!("{name}_sum");
    let count_name = format!("{name}_count");
    let pairs = label_pairs(&histogram.labels);
    let base = base_labels(&pairs, external);
    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(pairs.len() + external.len() + 2);
    let counts = snapshot.cumulative_counts(histogram);
    let last = counts.len() - 1;
    for (i, &count) in counts.iter().enumerate() {
        labels.clear();
        labels.extend(base.clone());
        labels.push(("__name__", &bucket_name));
        labels.push((
            "le",
            if i < last {
                histogram.buckets.le(i, true)
            } else {
                "+Inf"
            },
        ));
        write_time_series(out, &mut labels, count as f64, timestamp_ms);
    }
    labels.clear();
    labels.extend(base.clone());
    labels.push(("__name__", &sum_name));
    write_time_series(out, &mut labels, histogram.sum_ns as f64 / 1e6, timestamp_ms);
    labels.clear();
    labels.extend(base);
    labels.push(("__name__", &count_name));
    write_time_series(out, &mut labels, counts[last] as f64, timestamp_ms);
}

/// Reads a series' label text (`per="/a",status="200"`, values escaped with `\\`, `\"` and
/// `\n`, as the registry renders it once per series) back into name/value pairs. Values without
/// escapes are borrowed. Text that does not follow that form ends the list.
pub fn label_pairs(text: &str) -> Vec<(&str, Cow<'_, str>)> {
    let mut pairs = Vec::with_capacity(8);
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let name = name.strip_prefix(',').unwrap_or(name);
        let Some(end) = closing_quote(after) else { break };
        let raw = &after[..end];
        let value = if raw.contains('\\') {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        };
        pairs.push((name, value));
        rest = &after[end + 1..];
    }
    pairs
}

/// Index of the first `"` not escaped by a backslash.
fn closing_quote(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

fn unescape(raw: &str) -> String {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => value.push('\n'),
                Some(escaped) => value.push(escaped),
                None => {}
            },
            (c, false) => value.push(c),
        }
    }
    value
}

/// Writes `timeseries` (field 1 of `WriteRequest`) with one sample; sorts `labels` by name.
fn write_time_series(out: &mut Vec<u8>, labels: &mut [(&str, &str)], value: f64, timestamp_ms: i64) {
    labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let sample_len = sample_len(value, timestamp_ms);
    let series_len: usize = labels
        .iter()
        .map(|(name, value)| nested_len(label_len(name, value)))
        .sum::<usize>()
        + nested_len(sample_len);
    out.push(TAG_1_LEN);
    put_varint(out, series_len as u64);
    for (name, value) in labels.iter() {
        out.push(TAG_1_LEN);
        put_varint(out, label_len(name, value) as u64);
        put_string(out, TAG_1_LEN, name);
        put_string(out, TAG_2_LEN, value);
    }
    out.push(TAG_2_LEN);
    put_varint(out, sample_len as u64);
    if value.to_bits() != 0 {
        out.push(TAG_1_FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }
    if timestamp_ms != 0 {
        out.push(TAG_2_VARINT);
        put_varint(out, timestamp_ms as u64);
    }
}

fn label_len(name: &str, value: &str) -> usize {
    string_len(name) + string_len(value)
}

fn sample_len(value: f64, timestamp_ms: i64) -> usize {
    let value_len = if value.to_bits() != 0 { 9 } else { 0 };
    let timestamp_len = if timestamp_ms != 0 {
        1 + varint_len(timestamp_ms as u64)
    } else {
        0
    };
    value_len + timestamp_len
}

/// Size of a string field: nothing when empty (proto3 default), else tag, length and bytes.
fn string_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        nested_len(s.len())
    }
}

/// Size of a length-delimited field whose payload is `len` bytes.
fn nested_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_string(out: &mut Vec<u8>, tag: u8, s: &str) {
    if s.is_empty() {
        return;
    }
    out.push(tag);
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    // 7 bits per byte; zero still takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::escape_label_value;
    use crate::model::histogram::Buckets;
    use std::sync::Arc;

    /// Series labelled `per` (and an empty `tenant`), each with buckets 1 ms and +Inf holding
    /// 0 and 2 requests (cumulative: 0 and 2), summing to 0.5 ms.
    fn snapshot(pers: &[&str]) -> Snapshot {
        let buckets = Arc::new(Buckets::new(&[1.0]).unwrap());
        let mut snapshot = Snapshot::default();
        for per in pers {
            let labels = format!("per=\"{per}\",tenant=\"\"");
            snapshot.push(labels.into(), buckets.clone(), [0, 2], 500_000);
        }
        snapshot
    }

    fn encode(snapshot: &Snapshot, timestamp_ms: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_write_request("m", snapshot, snapshot.series(), timestamp_ms, &mut out);
        out
    }

    #[test]
    fn a_small_request_has_the_exact_bytes() {
        let out = encode(&snapshot(&["/x"]), 1000);
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            // m_bucket{le="1.0",per="/x"} 0 @1000: the zero value is left out of the Sample.
            &[0x0a, 0x31][..],
            &[0x0a, 0x14, 0x0a, 0x08], b"__name__", &[0x12, 0x08], b"m_bucket",
            &[0x0a, 0x09, 0x0a, 0x02], b"le", &[0x12, 0x03], b"1.0",
            &[0x0a, 0x09, 0x0a, 0x03], b"per", &[0x12, 0x02], b"/x",
            &[0x12, 0x03, 0x10, 0xe8, 0x07],
            // m_bucket{le="+Inf",per="/x"} 2 @1000
            &[0x0a, 0x3b],
            &[0x0a, 0x14, 0x0a, 0x08], b"__name__", &[0x12, 0x08], b"m_bucket",
            &[0x0a, 0x0a, 0x0a, 0x02], b"le", &[0x12, 0x04], b"+Inf",
            &[0x0a, 0x09, 0x0a, 0x03], b"per", &[0x12, 0x02], b"/x",
            &[0x12, 0x0c, 0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x40, 0x10, 0xe8, 0x07],
            // m_sum{per="/x"} 0.5 @1000
            &[0x0a, 0x2c],
            &[0x0a, 0x11, 0x0a, 0x08], b"__name__", &[0x12, 0x05], b"m_sum",
            &[0x0a, 0x09, 0x0a, 0x03], b"per", &[0x12, 0x02], b"/x",
            &[0x12, 0x0c, 0x09, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f, 0x10, 0xe8, 0x07],
            // m_count{per="/x"} 2 @1000
            &[0x0a, 0x2e],
            &[0x0a, 0x13, 0x0a, 0x08], b"__name__", &[0x12, 0x07], b"m_count",
            &[0x0a, 0x09, 0x0a, 0x03], b"per", &[0x12, 0x02], b"/x",
            &[0x12, 0x0c, 0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x40, 0x10, 0xe8, 0x07],
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn labels_are_sorted_by_name_with_le_in_place() {
        let names = [
            "per", "hostname", "domain", "method", "program", "status", "tenant", "cluster",
        ];
        let text: Vec<String> = names.iter().map(|n| format!("{n}=\"{n}-value\"")).collect();
        let mut snapshot = Snapshot::default();
        snapshot.push(
            text.join(",").into(),
            Arc::new(Buckets::new(&[1.0]).unwrap()),
            [1, 0],
            1_000_000,
        );
        assert_eq!(
            label_names_of_first_series(&encode(&snapshot, 1)),
            [
                "__name__", "cluster", "domain", "hostname", "le", "method", "per", "program", "status",
                "tenant"
            ]
        );
    }

    /// Reads the label names of the first `TimeSeries` back out of a `WriteRequest`.
    fn label_names_of_first_series(proto: &[u8]) -> Vec<String> {
        let (series, _) = read_len(&proto[1..]);
        let mut names = Vec::new();
        let mut rest = series;
        while rest[0] == TAG_1_LEN {
            let (label, after) = read_len(&rest[1..]);
            let (name, _) = read_len(&label[1..]);
            names.push(String::from_utf8(name.to_vec()).unwrap());
            rest = after;
        }
        names
    }

    fn read_len(bytes: &[u8]) -> (&[u8], &[u8]) {
        let (mut len, mut shift, mut i) = (0usize, 0, 0);
        loop {
            len |= ((bytes[i] & 0x7f) as usize) << shift;
            shift += 7;
            i += 1;
            if bytes[i - 1] < 0x80 {
                break;
            }
        }
        (&bytes[i..i + len], &bytes[i + len..])
    }

    #[test]
    fn varints_match_the_protobuf_encoding() {
        let cases: [(u64, &[u8]); 5] = [
            (0, &[0x00]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (300, &[0xac, 0x02]),
            (1_700_000_000_000, &[0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31]),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len(), "{value}");
        }
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn requests_are_split_by_sample_count_and_decompress_to_the_protobuf() {
        let all = snapshot(&["/0", "/1", "/2", "/3", "/4"]);
        // 4 samples per series: 2 series (8 samples) fit in 10, the fifth goes alone.
        let requests = write_requests(&all, &[], 7, 10);
        assert_eq!(requests.iter().map(|r| r.samples).collect::<Vec<_>>(), [8, 8, 4]);
        let mut expected = Vec::new();
        encode_write_request(DURATION_NAME, &all, &all.series()[2..4], 7, &mut expected);
        let body = snap::raw::Decoder::new()
            .decompress_vec(&requests[1].body)
            .unwrap();
        assert_eq!(body, expected);
    }

    #[test]
    fn a_series_larger_than_the_limit_still_goes_out() {
        let requests = write_requests(&snapshot(&["/big"]), &[], 7, 1);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].samples, 4);
    }

    /// Every time series of a decompressed request: its labels by name, and its value.
    fn series_of(body: &[u8]) -> Vec<(Vec<(String, String)>, f64)> {
        let mut proto = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        let mut found = Vec::new();
        let mut rest: &[u8] = &proto;
        while !rest.is_empty() {
            assert_eq!(rest[0], TAG_1_LEN);
            let (series, after) = read_len(&rest[1..]);
            let (mut labels, mut value) = (Vec::new(), f64::NAN);
            let mut inner = series;
            while !inner.is_empty() {
                let tag = inner[0];
                let (field, after_field) = read_len(&inner[1..]);
                if tag == TAG_1_LEN {
                    let (name, after_name) = read_len(&field[1..]);
                    let (value, _) = read_len(&after_name[1..]);
                    labels.push((
                        String::from_utf8(name.to_vec()).unwrap(),
                        String::from_utf8(value.to_vec()).unwrap(),
                    ));
                } else {
                    // Zero values are left out (canonical proto3).
                    value = match field.first() {
                        Some(&TAG_1_FIXED64) => f64::from_le_bytes(field[1..9].try_into().unwrap()),
                        _ => 0.0,
                    };
                }
                inner = after_field;
            }
            found.push((labels, value));
            rest = after;
        }
        proto.clear();
        found
    }

    #[test]
    fn every_family_is_pushed_with_the_external_labels_it_lacks() {
        let mut all = snapshot(&["/a"]);
        all.push_gauge("method=\"GET\",job=\"own\"".into(), 3);
        all.count_overflow();
        let external = [
            ("job".to_string(), "api".to_string()),
            ("instance".to_string(), "web-1".to_string()),
        ];
        let requests = write_requests(&all, &external, 7, 1000);
        let series: Vec<_> = requests.iter().flat_map(|r| series_of(&r.body)).collect();
        let named = |name: &str| -> Vec<&(Vec<(String, String)>, f64)> {
            series
                .iter()
                .filter(|(labels, _)| labels.iter().any(|(k, v)| k == "__name__" && v == name))
                .collect()
        };
        assert_eq!(named("http_requests_duration_milliseconds_count").len(), 1);
        let (gauge_labels, gauge_value) = named(IN_FLIGHT_NAME)[0];
        assert_eq!(*gauge_value, 3.0);
        // The series' own `job` wins over the external one; `instance` is added.
        assert!(gauge_labels.contains(&("job".into(), "own".into())));
        assert!(gauge_labels.contains(&("instance".into(), "web-1".into())));
        assert_eq!(named("last9_label_overflow_total").len(), 2);
        for (labels, _) in &series {
            assert!(labels.iter().any(|(k, _)| k == "instance"), "{labels:?}");
            let names: Vec<&String> = labels.iter().map(|(k, _)| k).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted);
        }
    }

    #[test]
    fn an_empty_snapshot_makes_no_request() {
        assert!(write_requests(&Snapshot::default(), &[], 7, 10).is_empty());
    }

    #[test]
    fn label_text_reads_back_to_the_values_that_made_it() {
        let values = ["/a\"b\\c\nd", "", "é,=\"x\"", "\\n", "plain", "\\"];
        let mut text = String::new();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("l{i}=\""));
            escape_label_value(&mut text, value);
            text.push('"');
        }
        let pairs = label_pairs(&text);
        let names: Vec<String> = (0..values.len()).map(|i| format!("l{i}")).collect();
        assert_eq!(
            pairs.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(),
            names
        );
        assert_eq!(pairs.iter().map(|(_, v)| v.as_ref()).collect::<Vec<_>>(), values);
        assert!(matches!(pairs[4].1, Cow::Borrowed("plain")));
    }
}
