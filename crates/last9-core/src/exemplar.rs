//! Exemplars: the trace of one request, kept with the bucket its duration fell in.
//!
//! A series keeps at most one exemplar per classic bucket (the latest wins), allocated only when
//! the first request with a trace context arrives; requests without one never touch it. Writers
//! take the series' lock with `try_lock` and skip the write when another thread holds it: a
//! newer exemplar is coming anyway, and recording never waits.

use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

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

/// The exemplars of one series, one per classic bucket.
#[derive(Debug, Default)]
pub struct Exemplars {
    slots: Mutex<Option<Box<[Option<Exemplar>]>>>,
}

impl Exemplars {
    /// Keeps `(trace_id, span_id)` as the exemplar of bucket `bucket` of `buckets`.
    pub fn record(&self, buckets: usize, bucket: usize, trace_id: [u8; 16], span_id: [u8; 8], value_ms: f64) {
        let Some(mut slots) = self.slots.try_lock() else {
            return;
        };
        let slots = slots.get_or_insert_with(|| vec![None; buckets].into_boxed_slice());
        if let Some(slot) = slots.get_mut(bucket) {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            *slot = Some(Exemplar {
                trace_id,
                span_id,
                value_ms,
                timestamp,
            });
        }
    }

    /// Moves the exemplars of `old` into a new value (a series moving to new cells).
    pub fn take(old: &Exemplars) -> Exemplars {
        Exemplars {
            slots: Mutex::new(old.slots.lock().take()),
        }
    }

    /// A copy of the exemplars (empty when the series never had one).
    pub fn read(&self) -> Box<[Option<Exemplar>]> {
        self.slots.lock().clone().unwrap_or_default()
    }
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
    fn the_latest_exemplar_of_a_bucket_wins() {
        let exemplars = Exemplars::default();
        assert!(exemplars.read().is_empty());
        exemplars.record(3, 1, [1; 16], [1; 8], 5.0);
        exemplars.record(3, 1, [2; 16], [2; 8], 6.0);
        let read = exemplars.read();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0], None);
        assert_eq!(read[1].unwrap().trace_id, [2; 16]);
        assert_eq!(read[1].unwrap().value_ms, 6.0);
    }
}
