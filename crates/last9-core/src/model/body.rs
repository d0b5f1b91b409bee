//! Request and response body sizes (opt-in, `LAST9_BODY_SIZES=1`): two histograms in bytes,
//! `http_request_body_size_bytes` and `http_response_body_size_bytes`, with the duration
//! family's labels.
//!
//! They reuse the duration histogram's cells: a byte count is observed as if it were that many
//! milliseconds (`bytes × 10^6` "nanoseconds"), so the bounds, `le` text and `_sum` the encoders
//! write in milliseconds are bytes here, exactly. A series' sum wraps past 1.8 × 10^13 bytes
//! (18 TB), which a rate shows as one counter reset.

use std::sync::{Arc, OnceLock};

use crate::model::histogram::{Buckets, Histogram};

/// Byte bounds: powers of 4 from 64 B to 64 MiB (11 buckets and `+Inf`).
pub const BODY_BOUNDS_BYTES: [f64; 11] = [
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];

/// Which body a histogram measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Request = 0,
    Response = 1,
}

/// The byte buckets of both body-size families.
pub fn body_buckets() -> Buckets {
    Buckets::new(&BODY_BOUNDS_BYTES).expect("body-size bounds are valid")
}

/// The byte buckets, made once per process (every recorder shares them).
pub fn shared_buckets() -> &'static Arc<Buckets> {
    static BUCKETS: OnceLock<Arc<Buckets>> = OnceLock::new();
    BUCKETS.get_or_init(|| Arc::new(body_buckets()))
}

/// Records a size of `bytes` (see the module's note on units).
#[inline]
pub fn observe_bytes(histogram: &Histogram, buckets: &Buckets, bytes: u64) {
    histogram.observe(buckets, bytes.saturating_mul(1_000_000));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_land_in_their_power_of_four_bucket_and_sum_exactly() {
        let buckets = body_buckets();
        let h = Histogram::new(&buckets);
        for bytes in [0, 64, 65, 1024, 100_000_000] {
            observe_bytes(&h, &buckets, bytes);
        }
        let counts: Vec<u64> = h.counts().collect();
        // 0 and 64 in `le=64`, 65 in `le=256`, 1024 in `le=1024`, 10^8 in `+Inf`.
        assert_eq!(counts[..3], [2, 1, 1]);
        assert_eq!(counts[11], 1);
        assert_eq!(counts.iter().sum::<u64>(), 5);
        assert_eq!(h.sum_ns() as f64 / 1e6, 100_001_153.0);
        assert_eq!(buckets.le(0, false), "64");
        assert_eq!(buckets.le(10, false), "67108864");
    }
}
