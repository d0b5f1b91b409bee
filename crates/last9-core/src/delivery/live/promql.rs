//! `rate` and `histogram_quantile` computed the way Prometheus computes them (promql/functions.go
//! `extrapolatedRate`, promql/quantile.go `bucketQuantile`), so the live page agrees with a
//! Prometheus scraping the same app.

/// `rate(x[range])` at `end` from the samples `(unix seconds, value)` of one counter that lie in
/// `[end - range, end]`, oldest first. Counter resets are corrected for; the result is
/// extrapolated towards the window's edges as PromQL does. `None` with fewer than two samples.
pub fn rate(samples: &[(f64, f64)], end: f64, range: f64) -> Option<f64> {
    let (&(first_t, first_v), &(last_t, last_v)) = (samples.first()?, samples.last()?);
    if samples.len() < 2 || range <= 0.0 || last_t <= first_t {
        return None;
    }
    let mut increase = last_v - first_v;
    for pair in samples.windows(2) {
        if pair[1].1 < pair[0].1 {
            // A reset: the counter restarted from zero, so everything before it was lost.
            increase += pair[0].1;
        }
    }
    let sampled = last_t - first_t;
    let average_step = sampled / (samples.len() - 1) as f64;
    let mut to_start = first_t - (end - range);
    let to_end = end - last_t;
    if increase > 0.0 && first_v >= 0.0 {
        // A counter does not go below zero: do not extrapolate further back than where it
        // would have been zero.
        let to_zero = sampled * (first_v / increase);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_step * 1.1;
    let edge = |gap: f64| if gap >= threshold { average_step / 2.0 } else { gap };
    let extrapolated = sampled + edge(to_start) + edge(to_end);
    Some(increase * (extrapolated / sampled) / range)
}

/// `histogram_quantile(q, ...)` from cumulative bucket values, one per finite upper bound in
/// `bounds` and a last one for `+Inf`: linear interpolation within the bucket the rank falls
/// in; the highest finite bound when it falls in `+Inf`. `None` when there are no observations
/// (PromQL's NaN).
pub fn histogram_quantile(q: f64, bounds: &[f64], cumulative: &[f64]) -> Option<f64> {
    if q.is_nan() || cumulative.len() != bounds.len() + 1 || bounds.is_empty() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    // Rates of buckets scraped at slightly different times may not be monotonic.
    let mut counts = cumulative.to_vec();
    for i in 1..counts.len() {
        if counts[i] < counts[i - 1] {
            counts[i] = counts[i - 1];
        }
    }
    let observations = *counts.last()?;
    if observations.is_nan() || observations <= 0.0 {
        return None;
    }
    let mut rank = q * observations;
    let b = counts.partition_point(|&c| c < rank);
    if b >= bounds.len() {
        return Some(bounds[bounds.len() - 1]);
    }
    if b == 0 && bounds[0] <= 0.0 {
        return Some(bounds[0]);
    }
    let (mut start, end, mut count) = (0.0, bounds[b], counts[b]);
    if b > 0 {
        start = bounds[b - 1];
        count -= counts[b - 1];
        rank -= counts[b - 1];
    }
    Some(start + (end - start) * (rank / count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn rate_of_a_steady_counter_is_its_slope() {
        // 2/s, scraped every 10 s over exactly the window: no extrapolation needed.
        let samples: Vec<(f64, f64)> = (0..=6)
            .map(|i| (f64::from(i) * 10.0, f64::from(i) * 20.0))
            .collect();
        assert!(close(rate(&samples, 60.0, 60.0).unwrap(), 2.0));
    }

    #[test]
    fn rate_extrapolates_half_a_step_past_distant_edges() {
        // Samples at 20..40 in a window 0..60: edges 20 s away (over 1.1 steps) extrapolate by
        // half a step each: 20 over 20 s, extended to 30 s, is 30 over the 60 s window.
        let samples = [(20.0, 100.0), (30.0, 110.0), (40.0, 120.0)];
        assert!(close(rate(&samples, 60.0, 60.0).unwrap(), 30.0 / 60.0));
    }

    #[test]
    fn rate_does_not_extrapolate_below_zero() {
        // The counter would have been zero 5 s before the first sample.
        let samples = [(20.0, 10.0), (30.0, 30.0), (40.0, 50.0)];
        // increase 40, sampled 20 s, start extended by 5 s (to zero), end by 5 s (half a step).
        assert!(close(
            rate(&samples, 60.0, 60.0).unwrap(),
            40.0 * (30.0 / 20.0) / 60.0
        ));
    }

    #[test]
    fn rate_corrects_counter_resets() {
        // 0, 10, then a restart to 3, then 8: 10 + 8 = 18 over the window.
        let samples = [(0.0, 0.0), (10.0, 10.0), (20.0, 3.0), (30.0, 8.0)];
        assert!(close(rate(&samples, 30.0, 30.0).unwrap(), 18.0 / 30.0));
    }

    #[test]
    fn rate_needs_two_samples() {
        assert_eq!(rate(&[(1.0, 5.0)], 10.0, 60.0), None);
        assert_eq!(rate(&[], 10.0, 60.0), None);
    }

    #[test]
    fn quantile_interpolates_within_the_bucket() {
        let bounds = [1.0, 2.0, 4.0];
        // 10 in (0,1], 10 in (1,2], 20 in (2,4]: the median (rank 20) is the top of (1,2].
        let cumulative = [10.0, 20.0, 40.0, 40.0];
        assert!(close(histogram_quantile(0.5, &bounds, &cumulative).unwrap(), 2.0));
        // p90: rank 36, 16 into the 20 of (2,4] → 2 + 2 × 0.8.
        assert!(close(histogram_quantile(0.9, &bounds, &cumulative).unwrap(), 3.6));
        // p25: rank 10 is the top of the first bucket, which starts at zero.
        assert!(close(
            histogram_quantile(0.25, &bounds, &cumulative).unwrap(),
            1.0
        ));
    }

    #[test]
    fn quantile_in_the_inf_bucket_is_the_highest_bound() {
        let bounds = [1.0, 2.0];
        assert_eq!(histogram_quantile(0.99, &bounds, &[1.0, 1.0, 10.0]), Some(2.0));
    }

    #[test]
    fn quantile_of_nothing_is_none_and_out_of_range_q_is_infinite() {
        assert_eq!(histogram_quantile(0.5, &[1.0], &[0.0, 0.0]), None);
        assert_eq!(
            histogram_quantile(-1.0, &[1.0], &[1.0, 1.0]),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(histogram_quantile(2.0, &[1.0], &[1.0, 1.0]), Some(f64::INFINITY));
    }

    #[test]
    fn quantile_makes_buckets_monotonic() {
        // A bucket read lower than the one below it counts as equal to it.
        let q = histogram_quantile(0.5, &[1.0, 2.0], &[10.0, 8.0, 10.0]).unwrap();
        assert!(close(q, 0.5));
    }
}
