//! The live page's memory: a bounded ring of frames, each a reduced snapshot (series summed by
//! program and route, by program and upstream, by caller and program).
//!
//! Bounds: at most [`MAX_FRAMES`] frames, each holding at most [`MAX_CELLS`] counts in at most
//! [`MAX_KEYS`] rows, and at most [`MAX_KEYS`] distinct rows over the ring; rows past the bounds
//! are left out (and the report says so). So the frames take at most [`MAX_RING_BYTES`].

use std::sync::Arc;

use ahash::AHashMap;

use crate::model::histogram::Buckets;
use crate::snapshot::Snapshot;

/// Seconds between two frames.
pub const INTERVAL_SECS: u64 = 5;
/// The longest window the page shows.
pub const SPAN_SECS: u64 = 15 * 60;
/// Frames kept: the longest window and one more, so a 15-minute window has both its ends.
pub const MAX_FRAMES: usize = (SPAN_SECS / INTERVAL_SECS) as usize + 2;
/// Counts one frame may hold (8 bytes each): 256 rows of the default 32 buckets.
pub const MAX_CELLS: usize = 8192;
/// Distinct rows (routes, upstreams, callers) over the ring.
pub const MAX_KEYS: usize = 512;
/// What a row of a frame takes besides its counts: its entry, and the allocation of its counts.
const ROW_BYTES: usize = std::mem::size_of::<(u32, Row)>() + 16;
/// The most the ring's frames can take, in bytes (15.6 MiB on 64-bit machines; the names of
/// the rows come on top, once each).
pub const MAX_RING_BYTES: usize = MAX_FRAMES * (MAX_CELLS * 8 + MAX_KEYS * ROW_BYTES);

/// What a row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Inbound requests of a route (`http_requests_duration_milliseconds`).
    Route,
    /// Outbound calls to an upstream (`http_client_requests_duration_milliseconds`).
    Upstream,
    /// Inbound requests from a caller (`http_requests_callers_total`).
    Caller,
}

/// A row of the page: `program`, and the route, upstream or caller it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub kind: Kind,
    pub program: Arc<str>,
    pub name: Arc<str>,
}

/// One row of one frame: cumulative bucket counts (`+Inf`, the total, last; a caller row has
/// just the total) and how many of them were errors.
#[derive(Debug, Clone)]
pub struct Row {
    pub counts: Box<[u64]>,
    pub errors: u64,
}

/// The reduced snapshot taken at one instant.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Unix time, seconds.
    pub at: f64,
    /// Rows by key id, sorted by id.
    rows: Vec<(u32, Row)>,
    /// `http_requests_in_flight` summed by program.
    pub in_flight: Vec<(Arc<str>, i64)>,
}

impl Frame {
    pub fn row(&self, key: u32) -> Option<&Row> {
        self.rows
            .binary_search_by_key(&key, |(id, _)| *id)
            .ok()
            .map(|i| &self.rows[i].1)
    }

    /// Bytes the rows of this frame take (`in_flight` holds one entry per program).
    fn bytes(&self) -> usize {
        let counts: usize = self.rows.iter().map(|(_, row)| row.counts.len() * 8).sum();
        counts + self.rows.len() * ROW_BYTES
    }
}

/// The frames, oldest first, and the keys their rows refer to.
#[derive(Default)]
pub struct Ring {
    keys: Vec<(Key, Option<Arc<Buckets>>)>,
    ids: AHashMap<Key, u32>,
    frames: std::collections::VecDeque<Frame>,
    /// Whether some row was left out for the bounds.
    pub truncated: bool,
}

impl Ring {
    pub fn frames(&self) -> &std::collections::VecDeque<Frame> {
        &self.frames
    }

    /// Every key with its bucket layout (none for callers), by id.
    pub fn keys(&self) -> &[(Key, Option<Arc<Buckets>>)] {
        &self.keys
    }

    pub fn clear(&mut self) {
        *self = Ring::default();
    }

    /// Bytes the frames of the ring take now (see [`MAX_RING_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.frames.iter().map(Frame::bytes).sum()
    }

    /// Adds the frame of `snapshot` taken at `at`, dropping the oldest past [`MAX_FRAMES`].
    pub fn push(&mut self, snapshot: &Snapshot, at: f64) {
        let frame = self.reduce(snapshot, at);
        if self.frames.len() == MAX_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back(frame);
    }

    fn id(&mut self, key: Key, buckets: Option<&Arc<Buckets>>) -> Option<u32> {
        if let Some(&id) = self.ids.get(&key) {
            return Some(id);
        }
        if self.keys.len() >= MAX_KEYS {
            self.truncated = true;
            return None;
        }
        let id = self.keys.len() as u32;
        self.ids.insert(key.clone(), id);
        self.keys.push((key, buckets.cloned()));
        Some(id)
    }

    fn reduce(&mut self, snapshot: &Snapshot, at: f64) -> Frame {
        let mut rows: AHashMap<u32, Row> = AHashMap::new();
        let mut cells = 0usize;
        let mut add =
            |ring: &mut Ring, key: Key, buckets: Option<&Arc<Buckets>>, counts: &[u64], error: bool| {
                let Some(id) = ring.id(key, buckets) else { return };
                // A key whose bucket layout changed (a program restarted with other buckets) is
                // left out rather than mixed.
                if ring.keys[id as usize].1.as_ref().map(|b| b.cells()).unwrap_or(1) != counts.len() {
                    ring.truncated = true;
                    return;
                }
                let total = counts.last().copied().unwrap_or(0);
                let full = rows.len() >= MAX_KEYS;
                match rows.get_mut(&id) {
                    Some(row) => {
                        for (sum, count) in row.counts.iter_mut().zip(counts) {
                            *sum = sum.wrapping_add(*count);
                        }
                        if error {
                            row.errors = row.errors.wrapping_add(total);
                        }
                    }
                    None if cells + counts.len() > MAX_CELLS || full => ring.truncated = true,
                    None => {
                        cells += counts.len();
                        rows.insert(
                            id,
                            Row {
                                counts: counts.into(),
                                errors: if error { total } else { 0 },
                            },
                        );
                    }
                }
            };
        for series in snapshot.series() {
            let labels = Labels(&series.labels);
            let key = Key {
                kind: Kind::Route,
                program: labels.get("program").into(),
                name: labels.get("per").into(),
            };
            let error = labels.get("status").starts_with('5');
            add(
                self,
                key,
                Some(&series.buckets),
                snapshot.cumulative_counts(series),
                error,
            );
        }
        for series in snapshot.client_series() {
            let labels = Labels(&series.labels);
            let key = Key {
                kind: Kind::Upstream,
                program: labels.get("program").into(),
                name: labels.get("upstream").into(),
            };
            // An error is a 5xx or no answer at all (`timeout`, `connection_error`, `error`).
            let status = labels.get("status");
            let error = status.starts_with('5') || !status.starts_with(|c: char| c.is_ascii_digit());
            add(
                self,
                key,
                Some(&series.buckets),
                snapshot.cumulative_counts(series),
                error,
            );
        }
        for (text, count) in snapshot.callers() {
            let labels = Labels(text);
            let key = Key {
                kind: Kind::Caller,
                program: labels.get("program").into(),
                name: labels.get("caller").into(),
            };
            // `status` is the class answered (`5xx`): the same rule as the routes'.
            let error = labels.get("status").starts_with('5');
            add(self, key, None, &[*count], error);
        }
        let mut in_flight: Vec<(Arc<str>, i64)> = Vec::new();
        for (text, value) in snapshot.gauges() {
            let program = Labels(text).get("program");
            match in_flight.iter_mut().find(|(p, _)| **p == *program) {
                Some((_, sum)) => *sum += value,
                None => in_flight.push((program.into(), *value)),
            }
        }
        let mut rows: Vec<(u32, Row)> = rows.into_iter().collect();
        rows.sort_unstable_by_key(|(id, _)| *id);
        Frame { at, rows, in_flight }
    }
}

/// Escaped label pairs as a snapshot holds them: `per="/x",status="200"`.
struct Labels<'a>(&'a str);

impl Labels<'_> {
    /// The unescaped value of label `name`, empty when absent.
    fn get(&self, name: &str) -> String {
        let mut rest = self.0;
        while let Some(eq) = rest.find("=\"") {
            let label = &rest[..eq];
            let (value, after) = unescape_value(&rest[eq + 2..]);
            if label == name {
                return value;
            }
            rest = after.strip_prefix(',').unwrap_or(after);
        }
        String::new()
    }
}

/// Reads an escaped value up to its closing quote: the value and the text after the quote.
fn unescape_value(text: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &text[i + 1..]),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => value.push(other),
                None => break,
            },
            other => value.push(other),
        }
    }
    (value, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_and_unescaped() {
        let labels = Labels(r#"per="/a\"b\\c",hostname="h,x=\"y\"",program="shop",status="503""#);
        assert_eq!(labels.get("per"), r#"/a"b\c"#);
        assert_eq!(labels.get("hostname"), r#"h,x="y""#);
        assert_eq!(labels.get("program"), "shop");
        assert_eq!(labels.get("status"), "503");
        assert_eq!(labels.get("tenant"), "");
    }

    fn snapshot(ok: u64, failed: u64) -> Snapshot {
        let buckets = Arc::new(Buckets::new(&[1.0, 2.0]).unwrap());
        let mut snapshot = Snapshot::default();
        snapshot.push(
            r#"per="/x",program="shop",status="200""#.into(),
            buckets.clone(),
            [ok, 0, 0],
            0,
        );
        snapshot.push(
            r#"per="/x",program="shop",status="500""#.into(),
            buckets.clone(),
            [0, failed, 0],
            0,
        );
        snapshot.push(
            r#"per="/y",program="shop",status="200""#.into(),
            buckets,
            [1, 0, 0],
            0,
        );
        snapshot.push_gauge(r#"per="/_all",method="GET",program="shop""#.into(), 2);
        snapshot.push_gauge(r#"per="/_all",method="POST",program="shop""#.into(), 1);
        snapshot
    }

    #[test]
    fn frames_sum_series_by_program_and_route() {
        let mut ring = Ring::default();
        ring.push(&snapshot(3, 2), 10.0);
        let frame = &ring.frames()[0];
        let x = ring.keys().iter().position(|(k, _)| &*k.name == "/x").unwrap() as u32;
        let row = frame.row(x).unwrap();
        assert_eq!(&*row.counts, &[3, 5, 5]);
        assert_eq!(row.errors, 2);
        assert_eq!(frame.in_flight, vec![(Arc::from("shop"), 3)]);
        assert!(!ring.truncated);
    }

    #[test]
    fn the_ring_keeps_at_most_max_frames() {
        let mut ring = Ring::default();
        for i in 0..MAX_FRAMES + 5 {
            ring.push(&snapshot(i as u64, 0), i as f64);
        }
        assert_eq!(ring.frames().len(), MAX_FRAMES);
        assert_eq!(ring.frames()[0].at, 5.0);
        assert!(ring.bytes() <= MAX_RING_BYTES);
    }

    #[test]
    fn rows_past_the_cell_bound_are_left_out() {
        let buckets = Arc::new(Buckets::new(&[1.0]).unwrap());
        let mut snapshot = Snapshot::default();
        for i in 0..MAX_CELLS {
            let labels = format!(r#"per="/r{i}",program="p",status="200""#);
            snapshot.push(labels.into(), buckets.clone(), [1, 0], 0);
        }
        let mut ring = Ring::default();
        ring.push(&snapshot, 0.0);
        assert!(ring.truncated);
        assert!(ring.bytes() <= MAX_RING_BYTES / MAX_FRAMES);
    }
}
