//! When a write request is sent again: the remote-write 1.0 rules, and an exponential backoff.
//!
//! The specification asks senders to retry on 5xx with a backoff, never to retry other 4xx
//! (the request would fail the same way again), and allows retrying 429. Network failures
//! (refused connections, resets, timeouts) are retried like 5xx.

use std::time::Duration;

/// What to do with a request after the receiver answered `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: move on to the next request.
    Delivered,
    /// Try the same request again after a pause.
    Retry,
    /// The receiver will never take it: drop it and count its samples.
    Reject,
}

/// The remote-write 1.0 rule for a response status.
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 | 500..=599 => Verdict::Retry,
        // 1xx/3xx here mean a proxy or URL problem that resending will not fix (redirects are
        // not followed: a POST body must not be replayed elsewhere); 4xx are the request's fault.
        _ => Verdict::Reject,
    }
}

/// Longest pause a `Retry-After` header may ask for; more than that and the queue would
/// overflow anyway.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The pause a `Retry-After: <seconds>` header asks for, capped at [`MAX_RETRY_AFTER`]. The
/// HTTP-date form is ignored (the backoff applies instead).
pub fn retry_after(header: Option<&str>) -> Option<Duration> {
    let seconds: u64 = header?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// Exponential backoff: `min`, then twice the last pause, up to `max`; [`Backoff::reset`] after
/// a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const DEFAULT_MIN: Duration = Duration::from_millis(250);
    pub const DEFAULT_MAX: Duration = Duration::from_secs(10);

    pub fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff { min, max, next: min }
    }

    /// The pause before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new(Backoff::DEFAULT_MIN, Backoff::DEFAULT_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_statuses_are_delivered() {
        for status in [200, 204, 299] {
            assert_eq!(verdict(status), Verdict::Delivered, "{status}");
        }
    }

    #[test]
    fn server_errors_and_429_are_retried() {
        for status in [429, 500, 502, 503, 504, 599] {
            assert_eq!(verdict(status), Verdict::Retry, "{status}");
        }
    }

    #[test]
    fn other_client_errors_and_odd_statuses_are_not_retried() {
        for status in [
            400, 401, 403, 404, 409, 413, 415, 499, 100, 301, 302, 307, 308, 600,
        ] {
            assert_eq!(verdict(status), Verdict::Reject, "{status}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<u64> = (0..7).map(|_| backoff.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn default_backoff_goes_from_a_quarter_second_to_ten_seconds() {
        let mut backoff = Backoff::default();
        assert_eq!(backoff.next_delay(), Duration::from_millis(250));
        let last = (0..10).map(|_| backoff.next_delay()).last();
        assert_eq!(last, Some(Duration::from_secs(10)));
    }

    #[test]
    fn retry_after_seconds_are_honoured_within_a_cap() {
        assert_eq!(retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(Some(" 0 ")), Some(Duration::ZERO));
        assert_eq!(retry_after(Some("3600")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(None), None);
    }
}
