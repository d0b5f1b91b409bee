//! A point-in-time copy of the histograms, for senders that push rather than render.
//!
//! A scrape walks the series and writes text; a push needs the same numbers as values: each
//! series' label pairs (unescaped), cumulative bucket counts, sum and count. [`Snapshot`] is that
//! copy. It is built from a [`Registry`] in one place ([`Snapshot::from_registry`]), or series by
//! series from any [`SeriesView`] ([`Snapshot::push_view`]), so a store that merges several
//! processes can feed the same encoders.

use crate::exposition::{SeriesView, DURATION_NAME};
use crate::registry::Registry;

/// Every series of one histogram family at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The family name, without the `_bucket`/`_sum`/`_count` suffixes.
    pub name: &'static str,
    pub series: Vec<HistogramSnapshot>,
}

/// One series of a histogram: labels and values.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// Label pairs in the registry's order, unescaped; `le` is not among them.
    pub labels: Vec<(String, String)>,
    /// Upper bounds in milliseconds with cumulative counts, increasing; the last bound is `+Inf`
    /// and its count equals `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of the observations in milliseconds.
    pub sum: f64,
    pub count: u64,
}

impl HistogramSnapshot {
    /// Number of samples the classic form of this series has: one per bucket, sum and count.
    pub fn sample_count(&self) -> usize {
        self.buckets.len() + 2
    }
}

impl Snapshot {
    /// An empty snapshot of the duration histogram.
    pub fn new() -> Snapshot {
        Snapshot {
            name: DURATION_NAME,
            series: Vec::new(),
        }
    }

    /// Every series of every recorder of `registry`, as it is now.
    pub fn from_registry(registry: &Registry) -> Snapshot {
        let mut snapshot = Snapshot::new();
        let mut counts = Vec::new();
        for recorder in registry.recorders() {
            for series in recorder.series() {
                let histogram = series.histogram();
                counts.clear();
                counts.extend(histogram.counts());
                snapshot.push_view(&SeriesView {
                    labels: series.labels(),
                    buckets: recorder.buckets(),
                    counts: &counts,
                    sum_ns: histogram.sum_ns(),
                });
            }
        }
        snapshot
    }

    /// Adds one series as the exposition encoder sees it.
    pub fn push_view(&mut self, view: &SeriesView<'_>) {
        let bounds = view.buckets.bounds_ms();
        let mut cumulative = 0u64;
        let buckets = view
            .counts
            .iter()
            .enumerate()
            .map(|(i, count)| {
                cumulative += count;
                (bounds.get(i).copied().unwrap_or(f64::INFINITY), cumulative)
            })
            .collect();
        self.series.push(HistogramSnapshot {
            labels: parse_label_text(view.labels),
            buckets,
            sum: view.sum_ns as f64 / 1e6,
            count: cumulative,
        });
    }

    /// Number of samples in the classic form of every series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(HistogramSnapshot::sample_count).sum()
    }
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot::new()
    }
}

/// Reads label text as the registry renders it (`per="/a",status="200"`, values escaped with
/// `\\`, `\"` and `\n`) back into pairs. Text that does not follow that form ends the list.
pub fn parse_label_text(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::with_capacity(8);
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let name = name.strip_prefix(',').unwrap_or(name);
        let mut value = String::with_capacity(after.len().min(64));
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => break,
                },
                c => value.push(c),
            }
        }
        let Some(end) = end else { break };
        pairs.push((name.to_string(), value));
        rest = &after[end..];
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::escape_label_value;
    use crate::histogram::Buckets;
    use crate::registry::{ConstLabels, Limits, Request};

    #[test]
    fn label_text_reads_back_to_the_values_that_made_it() {
        let values = ["/a\"b\\c\nd", "", "é,=\"x\"", "\\n", "plain"];
        let mut text = String::new();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("l{i}=\""));
            escape_label_value(&mut text, value);
            text.push('"');
        }
        let pairs = parse_label_text(&text);
        let expected: Vec<(String, String)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("l{i}"), v.to_string()))
            .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn registry_snapshot_has_cumulative_buckets_sum_and_count() {
        let registry = Registry::new();
        let consts = ConstLabels {
            hostname: "box".into(),
            program: "shop".into(),
            ..Default::default()
        };
        let recorder = registry
            .recorder(consts, Buckets::new(&[1.0, 2.5]).unwrap(), Limits::default())
            .unwrap();
        let route = recorder.route("/user/{id}");
        for duration_ns in [500_000, 2_000_000, 2_000_000, 9_000_000] {
            recorder.observe(&Request {
                route,
                host: Some("example.com"),
                method: "GET",
                status: 200,
                duration_ns,
            });
        }
        let snapshot = Snapshot::from_registry(&registry);
        assert_eq!(snapshot.name, "http_requests_duration_milliseconds");
        assert_eq!(snapshot.series.len(), 1);
        let series = &snapshot.series[0];
        let labels: Vec<(&str, &str)> = series
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("per", "/user/{id}"),
                ("hostname", "box"),
                ("domain", "example.com"),
                ("method", "GET"),
                ("program", "shop"),
                ("status", "200"),
                ("tenant", ""),
                ("cluster", ""),
            ]
        );
        assert_eq!(series.buckets, [(1.0, 1), (2.5, 3), (f64::INFINITY, 4)]);
        assert_eq!(series.sum, 13.5);
        assert_eq!(series.count, 4);
        assert_eq!(snapshot.sample_count(), 5);
    }
}
