//! The live RED page: one self-contained HTML page and the JSON it reads, computed here from a
//! bounded ring of snapshots.
//!
//! Nothing happens until a viewer asks: the first request for the page's data (which the page
//! makes as soon as it loads) starts a sampler thread (`last9-live`) that takes one snapshot every [`ring::INTERVAL_SECS`] seconds
//! and reduces it into the ring; when no viewer has asked for [`VIEWER_TIMEOUT`], the thread
//! empties the ring and ends. Requests of the app are never touched: a snapshot reads the same
//! atomics (and, under pre-fork servers, the same merged store) that a scrape reads.
//!
//! Rates and quantiles are computed as PromQL computes `rate` and `histogram_quantile`
//! ([`promql`]), over the last 1, 5 and 15 minutes.

pub mod promql;
pub mod ring;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::encoding::ScrapeResponse;
use crate::model::registry::Registry;
use crate::snapshot::Snapshot;
use ring::{Frame, Key, Kind, Ring, Row, INTERVAL_SECS, SPAN_SECS};

/// The sampler stops this long after the last request for the page's data.
pub const VIEWER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The windows the page shows, in seconds.
pub const WINDOWS: [u64; 3] = [60, 300, 900];
/// Points of a sparkline over the last 15 minutes (one per 10 s).
const SPARK_POINTS: u64 = 90;
/// Longest a request waits for the ring (held by the sampler) before answering 503.
const LOCK_WAIT: Duration = Duration::from_millis(500);

const PAGE: &str = include_str!("page.html");

/// Headers of the page and its data: the page is self-contained, so it may talk to its own
/// origin only; nothing of it is cached.
pub const HEADERS: [(&str, &str); 3] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src data:",
    ),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
];

/// The live view of one registry.
pub struct Live {
    registry: &'static Registry,
    ring: Mutex<Ring>,
    /// Milliseconds from `created` to the last request for the page's data.
    last_asked: AtomicU64,
    created: Instant,
    /// The process whose sampler thread runs (0: none). A forked child starts its own.
    sampler: AtomicU32,
    /// Time between snapshots ([`INTERVAL_SECS`]; shorter in tests).
    interval: Duration,
    /// The sampler stops this long after the last viewer ([`VIEWER_TIMEOUT`]).
    viewer_timeout: Duration,
}

impl Live {
    /// The one live view of `registry` (shared by the dedicated server and the app's path).
    pub fn of(registry: &'static Registry) -> Arc<Live> {
        static VIEWS: OnceLock<Mutex<Vec<Arc<Live>>>> = OnceLock::new();
        let mut views = VIEWS.get_or_init(Default::default).lock();
        if let Some(live) = views.iter().find(|l| std::ptr::eq(l.registry, registry)) {
            return Arc::clone(live);
        }
        let interval = Duration::from_secs(INTERVAL_SECS);
        let live = Arc::new(Live::with_timing(registry, interval, VIEWER_TIMEOUT));
        views.push(Arc::clone(&live));
        live
    }

    fn with_timing(registry: &'static Registry, interval: Duration, viewer_timeout: Duration) -> Live {
        Live {
            registry,
            ring: Mutex::new(Ring::default()),
            last_asked: AtomicU64::new(0),
            created: Instant::now(),
            sampler: AtomicU32::new(0),
            interval,
            viewer_timeout,
        }
    }

    /// Milliseconds since this view was created.
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The page (`data == false`) or its JSON data.
    pub fn respond(self: &Arc<Self>, data: bool) -> ScrapeResponse {
        if !data {
            return ScrapeResponse {
                status: 200,
                content_type: "text/html; charset=utf-8",
                content_encoding: None,
                body: PAGE.as_bytes().to_vec(),
            };
        }
        self.viewed();
        let Some(ring) = self.ring.try_lock_for(LOCK_WAIT) else {
            return ScrapeResponse {
                status: 503,
                content_type: "text/plain; charset=utf-8",
                content_encoding: None,
                body: b"The live view is busy; try again.\n".to_vec(),
            };
        };
        let body = report(&ring, unix_now()).into_bytes();
        ScrapeResponse {
            status: 200,
            content_type: "application/json",
            content_encoding: None,
            body,
        }
    }

    /// Notes a viewer, and starts the sampler if none runs in this process; its first frame
    /// is taken here, so the answer already has one.
    fn viewed(self: &Arc<Self>) {
        self.last_asked.store(self.elapsed_ms(), Ordering::Relaxed);
        let pid = crate::process::pid();
        let running = self.sampler.load(Ordering::SeqCst);
        if running == pid
            || self
                .sampler
                .compare_exchange(running, pid, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        if running != 0 {
            // A forked child: the parent's ring (and perhaps its lock) is not ours.
            if let Some(mut ring) = self.ring.try_lock_for(LOCK_WAIT) {
                ring.clear();
            }
        }
        self.sample();
        let live = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("last9-live".into())
            .spawn(move || {
                // A bug here must cost the page, never the app.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| live.run(pid)));
                live.sampler.store(0, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.sampler.store(0, Ordering::SeqCst);
        }
    }

    /// The sampler: a frame every interval while viewers keep asking.
    fn run(&self, pid: u32) {
        loop {
            std::thread::sleep(self.interval);
            let idle = self
                .elapsed_ms()
                .saturating_sub(self.last_asked.load(Ordering::Relaxed));
            if u128::from(idle) > self.viewer_timeout.as_millis() || crate::process::pid() != pid {
                self.ring.lock().clear();
                return;
            }
            self.sample();
        }
    }

    fn sample(&self) {
        let snapshot = Snapshot::of(self.registry);
        let at = unix_now();
        if let Some(mut ring) = self.ring.try_lock_for(LOCK_WAIT) {
            ring.push(&snapshot, at);
        }
    }
}

/// Whether `path` asks for the page (`Some(false)`) or its data (`Some(true)`) under the
/// metrics path `base`: `<base>/ui` and `<base>/ui/data.json`.
pub fn under(path: &str, base: &str) -> Option<bool> {
    match path.strip_prefix(base.trim_end_matches('/'))? {
        "/ui" | "/ui/" => Some(false),
        "/ui/data.json" => Some(true),
        _ => None,
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One row over time: `(unix seconds, row)` of each frame that has it, oldest first.
type History<'a> = Vec<(f64, &'a Row)>;

fn history<'a>(frames: &[&'a Frame], key: u32) -> History<'a> {
    frames.iter().filter_map(|f| Some((f.at, f.row(key)?))).collect()
}

/// Rates of a row over a window ending at `end`: per cell, then the errors.
struct Rates {
    cells: Vec<Option<f64>>,
    errors: Option<f64>,
}

fn rates(history: &[(f64, &Row)], cells: usize, end: f64, range: f64) -> Rates {
    // Frames are in time order: the window is a slice of them.
    let first = history.partition_point(|(at, _)| *at < end - range);
    let last = history.partition_point(|(at, _)| *at <= end);
    let window = &history[first..last.max(first)];
    let mut samples = Vec::with_capacity(window.len());
    let mut rate = |value: &dyn Fn(&Row) -> u64| {
        samples.clear();
        samples.extend(window.iter().map(|(at, row)| (*at, value(row) as f64)));
        promql::rate(&samples, end, range)
    };
    Rates {
        cells: (0..cells)
            .map(|i| rate(&|row: &Row| row.counts.get(i).copied().unwrap_or(0)))
            .collect(),
        errors: rate(&|row: &Row| row.errors),
    }
}

/// Writes `"name":value` for a number that may be missing or not finite (`null`).
fn number(out: &mut String, name: &str, value: Option<f64>) {
    let _ = write!(out, "\"{name}\":");
    match value {
        Some(v) if v.is_finite() => {
            out.push_str(ryu::Buffer::new().format_finite(v));
        }
        _ => out.push_str("null"),
    }
}

fn string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // `<` too, so a label can never close a script if the JSON is ever inlined.
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn numbers(out: &mut String, name: &str, values: impl Iterator<Item = Option<f64>>) {
    let _ = write!(out, "\"{name}\":[");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            Some(v) if v.is_finite() => out.push_str(ryu::Buffer::new().format_finite(v)),
            _ => out.push_str("null"),
        }
    }
    out.push(']');
}

/// RED of a row over one window: rate and error ratio, and for histograms p50/p90/p99 (a
/// caller's row is a counter: its errors are its `status="5xx"` series).
fn red(out: &mut String, rates: &Rates, bounds: Option<&[f64]>) {
    let total = rates.cells.last().copied().flatten();
    out.push('{');
    number(out, "rate", total);
    out.push(',');
    let ratio = match (rates.errors, total) {
        (Some(e), Some(t)) if t > 0.0 => Some(e / t),
        _ => None,
    };
    number(out, "error_ratio", ratio);
    if let Some(bounds) = bounds {
        let cumulative: Option<Vec<f64>> = rates.cells.iter().copied().collect();
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            out.push(',');
            let value = cumulative
                .as_ref()
                .and_then(|c| promql::histogram_quantile(q, bounds, c));
            number(out, name, value);
        }
    }
    out.push('}');
}

/// The JSON the page reads, evaluated at `now` (unix seconds).
pub fn report(ring: &Ring, now: f64) -> String {
    let frames: Vec<&Frame> = ring.frames().iter().collect();
    let mut out = String::with_capacity(16 * 1024);
    out.push('{');
    number(&mut out, "now", Some(now));
    let _ = write!(
        out,
        ",\"interval_s\":{INTERVAL_SECS},\"windows_s\":[60,300,900],\"frames\":{},\"ring_bytes\":{},\"ring_limit_bytes\":{},\"truncated\":{},",
        frames.len(),
        ring.bytes(),
        ring::MAX_RING_BYTES,
        ring.truncated
    );
    number(&mut out, "oldest", frames.first().map(|f| f.at));
    out.push_str(",\"programs\":[");
    let mut programs: Vec<&Arc<str>> = ring.keys().iter().map(|(k, _)| &k.program).collect();
    programs.sort();
    programs.dedup();
    let step = SPAN_SECS as f64 / SPARK_POINTS as f64;
    for (p, program) in programs.iter().enumerate() {
        if p > 0 {
            out.push(',');
        }
        out.push_str("{\"program\":");
        string(&mut out, program);
        let in_flight = |f: &Frame| {
            f.in_flight
                .iter()
                .find(|(name, _)| name == *program)
                .map(|(_, v)| *v as f64)
        };
        out.push(',');
        number(&mut out, "in_flight", frames.last().and_then(|f| in_flight(f)));
        out.push(',');
        numbers(
            &mut out,
            "in_flight_spark",
            (1..=SPARK_POINTS).map(|i| {
                let end = now - SPAN_SECS as f64 + i as f64 * step;
                frames
                    .iter()
                    .rev()
                    .find(|f| f.at <= end && f.at > end - step)
                    .and_then(|f| in_flight(f))
            }),
        );
        for (kind, name, label) in [
            (Kind::Route, "routes", "per"),
            (Kind::Upstream, "upstreams", "upstream"),
            (Kind::Caller, "callers", "caller"),
        ] {
            let _ = write!(out, ",\"{name}\":[");
            let mut first = true;
            for (id, (key, buckets)) in ring.keys().iter().enumerate() {
                if key.kind != kind || key.program != **program {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                row(
                    &mut out,
                    &frames,
                    id as u32,
                    key,
                    buckets.as_deref(),
                    label,
                    now,
                    step,
                );
            }
            out.push(']');
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// One row: its windows, and for histograms its sparklines and latency distribution.
#[allow(clippy::too_many_arguments)]
fn row(
    out: &mut String,
    frames: &[&Frame],
    id: u32,
    key: &Key,
    buckets: Option<&crate::model::histogram::Buckets>,
    label: &str,
    now: f64,
    step: f64,
) {
    let bounds = buckets.map(|b| b.bounds_ms());
    let cells = buckets.map_or(1, |b| b.cells());
    let history = history(frames, id);
    let _ = write!(out, "{{\"{label}\":");
    string(out, &key.name);
    out.push_str(",\"windows\":[");
    for (i, window) in WINDOWS.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        red(out, &rates(&history, cells, now, *window as f64), bounds);
    }
    out.push(']');
    let Some(bounds) = bounds else {
        out.push('}');
        return;
    };
    let points: Vec<Rates> = (1..=SPARK_POINTS)
        .map(|i| rates(&history, cells, now - SPAN_SECS as f64 + i as f64 * step, step))
        .collect();
    out.push_str(",\"spark\":{");
    numbers(
        out,
        "rate",
        points.iter().map(|r| r.cells.last().copied().flatten()),
    );
    out.push(',');
    numbers(
        out,
        "error_ratio",
        points
            .iter()
            .map(|r| match (r.errors, r.cells.last().copied().flatten()) {
                (Some(e), Some(t)) if t > 0.0 => Some(e / t),
                _ => None,
            }),
    );
    out.push(',');
    numbers(
        out,
        "p99",
        points.iter().map(|r| {
            let cumulative: Option<Vec<f64>> = r.cells.iter().copied().collect();
            cumulative.and_then(|c| promql::histogram_quantile(0.99, bounds, &c))
        }),
    );
    // The latency distribution: requests per bucket over the last 5 minutes (PromQL's
    // `increase`, which is the rate times the window).
    let five = rates(&history, cells, now, 300.0);
    out.push_str("},");
    numbers(out, "bounds_ms", bounds.iter().map(|b| Some(*b)));
    out.push(',');
    let mut below = 0.0;
    numbers(
        out,
        "distribution",
        five.cells.iter().map(|c| {
            let cumulative = c.unwrap_or(below).max(below);
            let in_bucket = (cumulative - below) * 300.0;
            below = cumulative;
            c.map(|_| in_bucket)
        }),
    );
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::histogram::Buckets;

    fn snapshot(ok: u64, slow: u64, failed: u64) -> Snapshot {
        let buckets = Arc::new(Buckets::new(&[1.0, 2.0]).unwrap());
        let mut snapshot = Snapshot::default();
        let ok_labels = r#"per="/x",program="shop",status="200""#;
        snapshot.push(ok_labels.into(), buckets.clone(), [ok, slow, 0], 0);
        let failed_labels = r#"per="/x",program="shop",status="503""#;
        snapshot.push(failed_labels.into(), buckets, [0, failed, 0], 0);
        snapshot
    }

    #[test]
    fn the_report_gives_rate_error_ratio_and_quantiles_per_route() {
        let mut ring = Ring::default();
        // Every 5 s: 10 fast, 5 slow successes and 5 failures: 4/s, a quarter failing.
        for i in 0..=12u64 {
            ring.push(&snapshot(10 * i, 5 * i, 5 * i), i as f64 * 5.0);
        }
        let json = report(&ring, 60.0);
        let one_minute = json.split("\"windows\":[").nth(1).unwrap();
        assert!(
            one_minute.starts_with("{\"rate\":4.0,\"error_ratio\":0.25,\"p50\":1.0,"),
            "{json}"
        );
        // p90: rank 3.6 of 4, 1.6 into the 2/s of (1,2].
        assert!(one_minute.contains("\"p90\":1.8,"), "{json}");
        assert!(json.contains("\"program\":\"shop\""), "{json}");
        assert!(json.contains("\"per\":\"/x\""), "{json}");
    }

    #[test]
    fn a_callers_edge_has_its_error_ratio() {
        let mut ring = Ring::default();
        // Every 5 s the caller `web` makes 4 requests of /x: 3 answered 2xx, 1 answered 5xx.
        for i in 0..=12u64 {
            let mut snapshot = snapshot(0, 0, 0);
            snapshot.push_caller(
                r#"caller="web",per="/x",status="2xx",program="shop""#.into(),
                3 * i,
            );
            snapshot.push_caller(r#"caller="web",per="/x",status="5xx",program="shop""#.into(), i);
            ring.push(&snapshot, i as f64 * 5.0);
        }
        let json = report(&ring, 60.0);
        let callers = json.split("\"callers\":[").nth(1).unwrap();
        assert!(
            callers.starts_with("{\"caller\":\"web\",\"windows\":[{\"rate\":0.8,\"error_ratio\":0.25}"),
            "{json}"
        );
    }

    #[test]
    fn one_frame_gives_no_rates_yet() {
        let mut ring = Ring::default();
        ring.push(&snapshot(1, 0, 0), 0.0);
        let json = report(&ring, 1.0);
        assert!(
            json.contains("{\"rate\":null,\"error_ratio\":null,\"p50\":null"),
            "{json}"
        );
    }

    /// Waits (at most 10 s) for `done`.
    fn eventually(done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn the_sampler_runs_only_while_viewers_ask() {
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        let live = Arc::new(Live::with_timing(
            registry,
            Duration::from_millis(10),
            Duration::from_millis(500),
        ));
        // Nothing before a viewer: no thread, no frame.
        assert_eq!(live.sampler.load(Ordering::SeqCst), 0);
        assert!(live.ring.lock().frames().is_empty());
        // The page itself starts nothing; its data does, with a first frame at once.
        assert_eq!(live.respond(false).status, 200);
        assert_eq!(live.sampler.load(Ordering::SeqCst), 0);
        let first = live.respond(true);
        assert!(String::from_utf8(first.body).unwrap().contains("\"frames\":1,"));
        assert_eq!(live.sampler.load(Ordering::SeqCst), crate::process::pid());
        assert!(eventually(|| live.ring.lock().frames().len() >= 3));
        // No viewer for longer than the timeout: the thread empties the ring and ends.
        assert!(eventually(|| live.sampler.load(Ordering::SeqCst) == 0));
        assert!(live.ring.lock().frames().is_empty());
        // A new viewer starts it again.
        live.respond(true);
        assert_eq!(live.sampler.load(Ordering::SeqCst), crate::process::pid());
    }

    #[test]
    fn the_stated_bound_of_the_ring_holds() {
        // 15.6 MiB, as docs/pending/livepage.md says.
        assert_eq!(ring::MAX_RING_BYTES, 182 * (8192 * 8 + 512 * 48));
    }

    #[test]
    fn strings_are_escaped_for_json_and_html() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\n</script>");
        assert_eq!(out, r#""a\"b\\c\u000a\u003c/script\u003e""#);
    }
}
