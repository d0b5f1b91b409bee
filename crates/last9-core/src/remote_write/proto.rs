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

use crate::histogram::format_float;
use crate::snapshot::{HistogramSnapshot, Snapshot};

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

/// The snapshot as write requests of at most `max_samples` samples each (a histogram's series are
/// never split across requests), every sample stamped `timestamp_ms`.
pub fn write_requests(snapshot: &Snapshot, timestamp_ms: i64, max_samples: usize) -> Vec<EncodedRequest> {
    let mut requests = Vec::new();
    let mut proto = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    let mut start = 0;
    while start < snapshot.series.len() {
        let mut end = start;
        let mut samples = 0;
        while end < snapshot.series.len() {
            let more = snapshot.series[end].sample_count();
            if end > start && samples + more > max_samples {
                break;
            }
            samples += more;
            end += 1;
        }
        proto.clear();
        encode_write_request(
            snapshot.name,
            &snapshot.series[start..end],
            timestamp_ms,
            &mut proto,
        );
        let body = encoder
            .compress_vec(&proto)
            .expect("snappy takes any input below 4 GiB");
        requests.push(EncodedRequest { body, samples });
        start = end;
    }
    requests
}

/// Appends the uncompressed protobuf `WriteRequest` of `series` to `out`.
pub fn encode_write_request(name: &str, series: &[HistogramSnapshot], timestamp_ms: i64, out: &mut Vec<u8>) {
    let bucket_name = format!("{name}_bucket");
    let sum_name = format!("{name}_sum");
    let count_name = format!("{name}_count");
    for histogram in series {
        let les: Vec<String> = histogram
            .buckets
            .iter()
            .map(|&(bound, _)| format_float(bound, true))
            .collect();
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(histogram.labels.len() + 2);
        let base = || {
            histogram
                .labels
                .iter()
                .filter(|(name, value)| !value.is_empty() && name != "le" && name != "__name__")
                .map(|(name, value)| (name.as_str(), value.as_str()))
        };
        for (&(_, count), le) in histogram.buckets.iter().zip(&les) {
            labels.clear();
            labels.extend(base());
            labels.push(("__name__", &bucket_name));
            labels.push(("le", le));
            write_time_series(out, &mut labels, count as f64, timestamp_ms);
        }
        labels.clear();
        labels.extend(base());
        labels.push(("__name__", &sum_name));
        write_time_series(out, &mut labels, histogram.sum, timestamp_ms);
        labels.clear();
        labels.extend(base());
        labels.push(("__name__", &count_name));
        write_time_series(out, &mut labels, histogram.count as f64, timestamp_ms);
    }
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

    fn snapshot(series: Vec<HistogramSnapshot>) -> Snapshot {
        Snapshot { name: "m", series }
    }

    fn small_series(per: &str) -> HistogramSnapshot {
        HistogramSnapshot {
            labels: vec![("tenant".into(), String::new()), ("per".into(), per.into())],
            buckets: vec![(1.0, 0), (f64::INFINITY, 2)],
            sum: 0.5,
            count: 2,
        }
    }

    #[test]
    fn a_small_request_has_the_exact_bytes() {
        let mut out = Vec::new();
        encode_write_request("m", &[small_series("/x")], 1000, &mut out);
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
        let series = HistogramSnapshot {
            labels: [
                "per", "hostname", "domain", "method", "program", "status", "tenant", "cluster",
            ]
            .iter()
            .map(|n| (n.to_string(), format!("{n}-value")))
            .collect(),
            buckets: vec![(f64::INFINITY, 1)],
            sum: 1.0,
            count: 1,
        };
        let mut out = Vec::new();
        encode_write_request("m", &[series], 1, &mut out);
        let names = label_names_of_first_series(&out);
        assert_eq!(
            names,
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
        let series: Vec<HistogramSnapshot> = (0..5).map(|i| small_series(&format!("/{i}"))).collect();
        // 4 samples per series: 2 series (8 samples) fit in 10, the fifth goes alone.
        let requests = write_requests(&snapshot(series.clone()), 7, 10);
        assert_eq!(requests.iter().map(|r| r.samples).collect::<Vec<_>>(), [8, 8, 4]);
        let mut expected = Vec::new();
        encode_write_request("m", &series[2..4], 7, &mut expected);
        let body = snap::raw::Decoder::new()
            .decompress_vec(&requests[1].body)
            .unwrap();
        assert_eq!(body, expected);
    }

    #[test]
    fn a_series_larger_than_the_limit_still_goes_out() {
        let requests = write_requests(&snapshot(vec![small_series("/big")]), 7, 1);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].samples, 4);
    }

    #[test]
    fn an_empty_snapshot_makes_no_request() {
        assert!(write_requests(&snapshot(Vec::new()), 7, 10).is_empty());
    }
}
