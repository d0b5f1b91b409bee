//! A point-in-time copy of histogram series, taken once per scrape.
//!
//! Copying the counts first (a few MB for 10,000 series) makes a scrape consistent, and lets
//! the encoder size its output exactly before writing it once into its final buffer.

use std::sync::{Arc, OnceLock};

use crate::model::body::{self, Body};
use crate::model::exemplar::Exemplar;
use crate::model::histogram::Buckets;
use crate::model::native::NativeBuckets;
use crate::model::registry::{Registry, DOMAIN_OVERFLOW, ROUTE_OVERFLOW};
use crate::runtime::{self, RuntimeSnapshot};

/// Where the global registry's series of every process come from in multi-process mode: the
/// store layer installs it (see `store::Registry::global`), so a snapshot needs no file.
#[derive(Debug, Clone, Copy)]
pub struct SharedSource {
    /// The series of every process, summed by label set; None in single-process mode.
    pub snapshot: fn() -> Option<Snapshot>,
    /// Whether this process's scrapes are known to be partial (`last9_store_degraded`).
    pub degraded: fn() -> Option<bool>,
    /// The runtime families of every live worker and the master; None in single-process mode.
    pub runtime: fn() -> Option<RuntimeSnapshot>,
}

static SHARED_SOURCE: OnceLock<SharedSource> = OnceLock::new();

/// Installs the [`SharedSource`] (once; the store does it when it makes the global registry).
pub fn install_shared_source(source: SharedSource) {
    let _ = SHARED_SOURCE.set(source);
}

fn shared_source() -> Option<&'static SharedSource> {
    SHARED_SOURCE.get()
}

/// One series of a snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotSeries {
    /// Escaped label pairs without braces, e.g. `per="/x",status="200"`.
    pub labels: Arc<str>,
    pub buckets: Arc<Buckets>,
    /// Where this series' cumulative counts start in [`Snapshot::counts`].
    start: usize,
    pub sum_ns: u64,
    /// The native buckets, when the layout keeps them.
    pub native: Option<NativeBuckets>,
    /// The latest exemplar of each classic bucket (`+Inf` last); empty when none was recorded.
    pub exemplars: Box<[Option<Exemplar>]>,
}

/// Histogram series and their cumulative bucket counts.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    series: Vec<SnapshotSeries>,
    counts: Vec<u64>,
    /// `http_requests_in_flight`: escaped label text and value.
    gauges: Vec<(Arc<str>, i64)>,
    /// `http_client_requests_duration_milliseconds` (counts in `counts` too).
    client: Vec<SnapshotSeries>,
    /// `http_requests_callers_total`.
    callers: Vec<(Arc<str>, u64)>,
    /// `http_request_body_size_bytes` and `http_response_body_size_bytes` (counts in `counts`
    /// too), by [`Body`].
    bodies: [Vec<SnapshotSeries>; 2],
    /// `last9_label_overflow_total`: requests counted under `_other`, per label.
    overflow: Vec<(Arc<str>, u64)>,
    /// `last9_store_degraded`, for a worker of a pre-fork server: whether these sums are known
    /// to be partial (see `store::degraded`).
    pub store_degraded: Option<bool>,
    /// The runtime families and the host's own (prometheus_client's), for the global registry
    /// once the binding started runtime metrics.
    extra: Option<Arc<Extra>>,
}

/// What a scrape of the global registry adds after last9's own families.
#[derive(Debug, Default)]
struct Extra {
    runtime: RuntimeSnapshot,
    /// The host's families as text 0.0.4 and as OpenMetrics, each asked for once (the encoder
    /// sizes, then writes: both passes must see the same bytes).
    foreign: [OnceLock<Vec<u8>>; 2],
}

impl Snapshot {
    /// Every series of a registry, recorders in creation order, series in creation order. For
    /// the global registry in multi-process mode: every process's series, summed by label set.
    pub fn of(registry: &Registry) -> Snapshot {
        let mut snapshot = Snapshot::of_series(registry);
        if registry.is_shared() && runtime::started() {
            let runtime = shared_source()
                .and_then(|source| (source.runtime)())
                .unwrap_or_else(RuntimeSnapshot::single);
            snapshot.extra = Some(Arc::new(Extra {
                runtime,
                foreign: Default::default(),
            }));
        }
        snapshot
    }

    /// The runtime families, when this snapshot has them.
    pub fn runtime(&self) -> Option<&RuntimeSnapshot> {
        self.extra.as_ref().map(|extra| &extra.runtime)
    }

    /// The host's own families (prometheus_client's) in this format, asked for at the first
    /// call for each format; empty without them.
    pub fn foreign_text(&self, openmetrics: bool) -> &[u8] {
        let Some(extra) = &self.extra else { return &[] };
        extra.foreign[openmetrics as usize].get_or_init(|| runtime::foreign(openmetrics))
    }

    fn of_series(registry: &Registry) -> Snapshot {
        if registry.is_shared() {
            // The lineage families are in the store too: summed over processes like the rest.
            if let Some(mut snapshot) = shared_source().and_then(|source| (source.snapshot)()) {
                snapshot.count_overflow();
                return snapshot;
            }
        }
        let recorders = registry.recorders();
        let mut snapshot = Snapshot::default();
        for recorder in &recorders {
            let buckets = recorder.buckets_arc();
            recorder.for_each_series_full(|labels, counts, sum_ns, extras| {
                snapshot.push_series(
                    labels.into(),
                    buckets.clone(),
                    counts.iter().copied(),
                    sum_ns,
                    extras.native,
                    extras.exemplars,
                );
            });
            recorder.in_flight(|labels, value| snapshot.push_gauge(labels, value));
        }
        snapshot.add_lineage(&recorders);
        for recorder in &recorders {
            for which in [Body::Request, Body::Response] {
                recorder.for_each_body_series(which, |labels, counts, sum| {
                    let buckets = body::shared_buckets().clone();
                    snapshot.push_body_series(which, labels.into(), buckets, counts, sum);
                });
            }
        }
        snapshot.count_overflow();
        if registry.is_shared() {
            snapshot.store_degraded = shared_source().and_then(|source| (source.degraded)());
        }
        snapshot
    }

    /// Counts the requests each capped label put under its overflow value, from the series
    /// themselves: exact, summed over processes like them, and free on the request path.
    pub fn count_overflow(&mut self) {
        // A `"` inside a value is escaped, so `name="` after a comma only starts a label.
        let route = format!("per=\"{ROUTE_OVERFLOW}\",");
        let domain = format!(",domain=\"{DOMAIN_OVERFLOW}\",");
        let (mut routes, mut domains) = (0u64, 0u64);
        for series in &self.series {
            let count = self.counts[series.start + series.buckets.cells() - 1];
            if series.labels.starts_with(&route) {
                routes = routes.wrapping_add(count);
            }
            if series.labels.contains(&domain) {
                domains = domains.wrapping_add(count);
            }
        }
        self.overflow = vec![
            ("label=\"per\"".into(), routes),
            ("label=\"domain\"".into(), domains),
        ];
        if !self.callers.is_empty() {
            let caller = format!("caller=\"{}\",", crate::model::lineage::OVERFLOW_VALUE);
            let callers = self
                .callers
                .iter()
                .filter(|(labels, _)| labels.starts_with(&caller))
                .fold(0u64, |sum, (_, n)| sum.wrapping_add(*n));
            self.overflow.push(("label=\"caller\"".into(), callers));
        }
    }

    /// The overflow counter's samples (see [`Self::count_overflow`]).
    pub fn overflow(&self) -> &[(Arc<str>, u64)] {
        &self.overflow
    }

    /// The `last9_store_degraded` sample, when there is one.
    pub fn store_degraded(&self) -> &'static [(Arc<str>, i64)] {
        type Sample = (Arc<str>, i64);
        static NO_LABELS: std::sync::OnceLock<[[Sample; 1]; 2]> = std::sync::OnceLock::new();
        let samples = NO_LABELS.get_or_init(|| [[(Arc::from(""), 0)], [(Arc::from(""), 1)]]);
        match self.store_degraded {
            None => &[],
            Some(degraded) => &samples[degraded as usize],
        }
    }

    /// Adds the lineage series of these recorders (this process's own; in multi-process mode
    /// the store's merge gives every process's instead).
    pub fn add_lineage(&mut self, recorders: &[Arc<crate::model::registry::Recorder>]) {
        for recorder in recorders {
            let buckets = recorder.buckets_arc();
            recorder.lineage().client_series(|labels, histogram| {
                let start = self.counts.len();
                let mut total = 0u64;
                self.counts.extend(histogram.counts().map(|count| {
                    total = total.wrapping_add(count);
                    total
                }));
                self.client.push(SnapshotSeries {
                    labels,
                    buckets: buckets.clone(),
                    start,
                    sum_ns: histogram.sum_ns(),
                    native: histogram.native(&buckets),
                    exemplars: histogram.exemplars(),
                });
            });
            self.callers.extend(recorder.lineage().callers());
        }
    }

    /// Adds an outbound-call series from its per-bucket counts (`+Inf` last).
    pub fn push_client_series(
        &mut self,
        labels: Arc<str>,
        buckets: Arc<Buckets>,
        counts: impl IntoIterator<Item = u64>,
        sum_ns: u64,
        native: Option<NativeBuckets>,
        exemplars: Box<[Option<Exemplar>]>,
    ) {
        self.push_series(labels, buckets, counts, sum_ns, native, exemplars);
        let series = self.series.pop().expect("pushed just above");
        self.client.push(series);
    }

    /// Adds a body-size series from its per-bucket counts (`+Inf` last) and byte sum (in the
    /// unit of [`crate::model::body`]).
    pub fn push_body_series(
        &mut self,
        which: Body,
        labels: Arc<str>,
        buckets: Arc<Buckets>,
        counts: impl IntoIterator<Item = u64>,
        sum: u64,
    ) {
        self.push_series(labels, buckets, counts, sum, None, Box::new([]));
        let series = self.series.pop().expect("pushed just above");
        self.bodies[which as usize].push(series);
    }

    /// The series of one body-size histogram.
    pub fn body_series(&self, which: Body) -> &[SnapshotSeries] {
        &self.bodies[which as usize]
    }

    /// Adds a sample of the callers counter.
    pub fn push_caller(&mut self, labels: Arc<str>, count: u64) {
        self.callers.push((labels, count));
    }

    /// The outbound-call histogram's series.
    pub fn client_series(&self) -> &[SnapshotSeries] {
        &self.client
    }

    /// The callers counter's samples.
    pub fn callers(&self) -> &[(Arc<str>, u64)] {
        &self.callers
    }

    /// Adds a sample of the in-flight gauge.
    pub fn push_gauge(&mut self, labels: Arc<str>, value: i64) {
        self.gauges.push((labels, value));
    }

    /// The in-flight gauge's samples.
    pub fn gauges(&self) -> &[(Arc<str>, i64)] {
        &self.gauges
    }

    /// Adds a series from its per-bucket counts (`+Inf` last), which are made cumulative here.
    pub fn push(
        &mut self,
        labels: Arc<str>,
        buckets: Arc<Buckets>,
        counts: impl IntoIterator<Item = u64>,
        sum_ns: u64,
    ) {
        self.push_series(labels, buckets, counts, sum_ns, None, Box::new([]));
    }

    /// [`Self::push`] with native buckets and exemplars.
    pub fn push_series(
        &mut self,
        labels: Arc<str>,
        buckets: Arc<Buckets>,
        counts: impl IntoIterator<Item = u64>,
        sum_ns: u64,
        native: Option<NativeBuckets>,
        exemplars: Box<[Option<Exemplar>]>,
    ) {
        let start = self.counts.len();
        let mut total = 0u64;
        self.counts.extend(counts.into_iter().map(|count| {
            total = total.wrapping_add(count);
            total
        }));
        debug_assert_eq!(self.counts.len() - start, buckets.cells());
        self.series.push(SnapshotSeries {
            labels,
            buckets,
            start,
            sum_ns,
            native,
            exemplars,
        });
    }

    pub fn series(&self) -> &[SnapshotSeries] {
        &self.series
    }

    /// Cumulative counts of a series, `+Inf` (the series' count) last.
    pub fn cumulative_counts(&self, series: &SnapshotSeries) -> &[u64] {
        &self.counts[series.start..series.start + series.buckets.cells()]
    }

    /// The latest exemplar of each classic bucket of a series (empty when it has none).
    pub fn exemplars<'a>(&self, series: &'a SnapshotSeries) -> &'a [Option<Exemplar>] {
        &series.exemplars
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_become_cumulative() {
        let buckets = Arc::new(Buckets::new(&[1.0, 2.0]).unwrap());
        let mut snapshot = Snapshot::default();
        snapshot.push("a=\"1\"".into(), buckets.clone(), [1, 0, 2], 10);
        snapshot.push("a=\"2\"".into(), buckets, [0, 5, 0], 20);
        let [first, second] = snapshot.series() else {
            panic!("two series")
        };
        assert_eq!(snapshot.cumulative_counts(first), &[1, 1, 3]);
        assert_eq!(snapshot.cumulative_counts(second), &[0, 5, 5]);
    }
}
