//! Exemplars: the trace of one request, kept with the bucket its duration fell in.
//!
//! A series keeps its latest traced observation (Prometheus 2.42 takes one exemplar per series
//! per scrape anyway) with the classic bucket it fell in, in a few cells beside its counts, so a
//! worker's exemplars live in its store file like its counts. A scrape that merges workers keeps
//! the latest exemplar of each bucket. Requests without a trace context never touch the cells.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A trace id and span id (W3C trace context), the observed value and when it was observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub value_ms: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

impl Exemplar {
    /// Lower-case hex of the trace id and span id, as tracing backends show them.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 15) as usize] as char);
    }
    out
}

fn unhex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Trace and span id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`, lower
/// case), if it is valid: all-zero ids and version `ff` are invalid; a later version may add
/// fields after the flags, as the spec allows.
pub fn parse_traceparent(header: &str) -> Option<([u8; 16], [u8; 8])> {
    let bytes = header.trim().as_bytes();
    if bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let version: [u8; 1] = unhex(&bytes[0..2])?;
    if version[0] == 0xff || (version[0] == 0 && bytes.len() != 55) {
        return None;
    }
    if bytes.len() > 55 && bytes[55] != b'-' {
        return None;
    }
    let trace_id: [u8; 16] = unhex(&bytes[3..35])?;
    let span_id: [u8; 8] = unhex(&bytes[36..52])?;
    let _flags: [u8; 1] = unhex(&bytes[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((trace_id, span_id))
}

/// Cells of a series' exemplar: a sequence word, then bucket, trace id (2), span id, value and
/// time in nanoseconds.
pub const EXEMPLAR_CELLS: usize = 7;

/// The latest exemplar of one series, in [`EXEMPLAR_CELLS`] cells (on the heap or in a worker's
/// mapped file alike), guarded by a sequence lock: a writer makes the sequence odd with one
/// compare-and-swap, writes, and makes it even again; a writer that finds it odd (another one
/// is writing) skips its exemplar, since a newer one is coming anyway, so recording never
/// waits. Readers retry a few times when a write ran under them, then give up on this scrape.
pub struct ExemplarCells<'a>(pub &'a [AtomicU64]);

impl ExemplarCells<'_> {
    /// Keeps a traced observation that fell in classic bucket `bucket`.
    pub fn record(&self, bucket: usize, trace_id: [u8; 16], span_id: [u8; 8], duration_ns: u64) {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let exemplar = Exemplar {
            trace_id,
            span_id,
            value_ms: duration_ns as f64 / 1e6,
            timestamp,
        };
        self.put(bucket, &exemplar);
    }

    /// Writes `exemplar` as the one of bucket `bucket`, unless another writer is at it.
    pub fn put(&self, bucket: usize, exemplar: &Exemplar) {
        let cells = self.0;
        let seq = cells[0].load(Ordering::Relaxed);
        if seq & 1 == 1
            || cells[0]
                .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        let words = [
            bucket as u64,
            u64::from_be_bytes(exemplar.trace_id[..8].try_into().unwrap()),
            u64::from_be_bytes(exemplar.trace_id[8..].try_into().unwrap()),
            u64::from_be_bytes(exemplar.span_id),
            (exemplar.value_ms * 1e6).round() as u64,
            (exemplar.timestamp * 1e9) as u64,
        ];
        for (cell, word) in cells[1..].iter().zip(words) {
            cell.store(word, Ordering::Relaxed);
        }
        cells[0].store(seq + 2, Ordering::Release);
    }

    /// The exemplar and its bucket, unless none was recorded (or a write kept running).
    pub fn read(&self) -> Option<(usize, Exemplar)> {
        let cells = self.0;
        for _ in 0..4 {
            let before = cells[0].load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let words: [u64; 6] = std::array::from_fn(|i| cells[i + 1].load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if cells[0].load(Ordering::Relaxed) != before {
                continue;
            }
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&words[1].to_be_bytes());
            trace_id[8..].copy_from_slice(&words[2].to_be_bytes());
            return Some((
                words[0] as usize,
                Exemplar {
                    trace_id,
                    span_id: words[3].to_be_bytes(),
                    value_ms: words[4] as f64 / 1e6,
                    timestamp: words[5] as f64 / 1e9,
                },
            ));
        }
        None
    }
}

/// Per classic bucket (`buckets` of them), the latest of the exemplars given.
pub fn latest_per_bucket(
    buckets: usize,
    exemplars: impl IntoIterator<Item = (usize, Exemplar)>,
) -> Box<[Option<Exemplar>]> {
    let mut out: Vec<Option<Exemplar>> = Vec::new();
    for (bucket, exemplar) in exemplars {
        if bucket >= buckets {
            continue;
        }
        if out.is_empty() {
            out = vec![None; buckets];
        }
        match &out[bucket] {
            Some(kept) if kept.timestamp >= exemplar.timestamp => {}
            _ => out[bucket] = Some(exemplar),
        }
    }
    out.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_traceparent_gives_its_ids() {
        let (trace, span) = parse_traceparent(VALID).unwrap();
        assert_eq!(hex(&trace), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&span), "00f067aa0ba902b7");
        // A later version may carry more fields.
        assert!(parse_traceparent(&format!("01{}-extra", &VALID[2..])).is_some());
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_latest_exemplar_wins_and_merges_keep_the_latest_per_bucket() {
        let cells: Vec<AtomicU64> = (0..EXEMPLAR_CELLS).map(|_| AtomicU64::new(0)).collect();
        let exemplar = ExemplarCells(&cells);
        assert!(exemplar.read().is_none());
        exemplar.record(1, [1; 16], [1; 8], 5_000_000);
        exemplar.record(2, [2; 16], [3; 8], 6_000_000);
        let (bucket, read) = exemplar.read().unwrap();
        assert_eq!(bucket, 2);
        assert_eq!(
            (read.trace_id, read.span_id, read.value_ms),
            ([2; 16], [3; 8], 6.0)
        );
        assert!(read.timestamp > 1.6e9);
        let old = Exemplar {
            timestamp: 1.0,
            ..read
        };
        let merged = latest_per_bucket(3, [(2, read), (2, old), (0, old), (9, old)]);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0], Some(old));
        assert_eq!(merged[1], None);
        assert_eq!(merged[2], Some(read));
        assert!(latest_per_bucket(3, []).is_empty());
    }

    #[test]
    fn concurrent_writers_never_tear_an_exemplar() {
        let cells: std::sync::Arc<Vec<AtomicU64>> =
            std::sync::Arc::new((0..EXEMPLAR_CELLS).map(|_| AtomicU64::new(0)).collect());
        let writers: Vec<_> = (1..=4u8)
            .map(|t| {
                let cells = cells.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        ExemplarCells(&cells).record(t as usize, [t; 16], [t; 8], t as u64);
                    }
                })
            })
            .collect();
        for _ in 0..20_000 {
            if let Some((bucket, e)) = ExemplarCells(&cells).read() {
                let t = bucket as u8;
                assert_eq!(
                    (e.trace_id, e.span_id, e.value_ms),
                    ([t; 16], [t; 8], t as f64 / 1e6)
                );
            }
        }
        for w in writers {
            w.join().unwrap();
        }
    }
}
