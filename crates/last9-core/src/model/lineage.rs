//! Lineage: who calls whom, from metrics, without a mesh proxy.
//!
//! - `http_client_requests_duration_milliseconds{per, hostname, upstream, method, program,
//!   status, tenant, cluster}`: outbound calls, by the inbound route that made them;
//! - `http_requests_callers_total{caller, per, status, hostname, program, tenant, cluster}`:
//!   inbound requests by the calling service (the `x-last9-caller` header that instrumented
//!   clients send, else Envoy's `x-envoy-downstream-service-cluster`, else `unknown`) and by
//!   the class of the status answered (`2xx`, `5xx`, ...: at most 10 values, enough for each
//!   edge's error ratio).
//!
//! Every value that comes from the network is bounded by an interner. Like the duration
//! histogram, the cells live in the process's store file in multi-process mode (the registry's
//! [`SharedCells`]), so a scrape sums them over every worker, live or gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ahash::AHashMap;
use parking_lot::RwLock;

use crate::model::gauge::Gauge;
use crate::model::histogram::{Buckets, Histogram};
use crate::model::registry::{escaped_pairs, ConstLabels, Limits, SharedCells};
use crate::values::labels::{BoundedInterner, ValueId};
use crate::values::normalize::{method_index, METHODS};

/// The caller of a request that named none.
pub const UNKNOWN_CALLER: &str = "unknown";
/// Past the caps: callers, upstreams and statuses.
pub const OVERFLOW_VALUE: &str = "_other";
/// Distinct status values (codes and error kinds) an app's outbound calls may have.
const MAX_STATUSES: usize = 64;
/// The callers counter's `status`: the class of the code answered, `0` when none was sent.
const STATUS_CLASSES: [&str; 10] = ["0", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx"];

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether middlewares count callers and publish the inbound request to clients.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The index in [`STATUS_CLASSES`] of a status code.
fn status_class(code: u16) -> u8 {
    match code {
        100..=999 => (code / 100) as u8,
        _ => 0,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey {
    per: ValueId,
    upstream: ValueId,
    method: u8,
    status: ValueId,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct CallerKey {
    caller: ValueId,
    per: ValueId,
    status: u8,
}

/// One lineage series: its label pairs (to place its cells again after a fork), their escaped
/// text, and its cells.
struct Series<C> {
    pairs: Box<[(Box<str>, Box<str>)]>,
    text: Arc<str>,
    cells: C,
}

impl<C> Series<C> {
    fn new(pairs: &[(&str, &str)], place: impl FnOnce(&[(&str, &str)]) -> C) -> Series<C> {
        Series {
            pairs: pairs
                .iter()
                .map(|(n, v)| (Box::from(*n), Box::from(*v)))
                .collect(),
            text: escaped_pairs(pairs).into(),
            cells: place(pairs),
        }
    }

    fn with_pairs<R>(&self, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
        let pairs: Vec<(&str, &str)> = self.pairs.iter().map(|(n, v)| (&**n, &**v)).collect();
        f(&pairs)
    }
}

/// A table of lineage series in creation order (the order of a scrape).
struct Table<K, C> {
    index: AHashMap<K, usize>,
    series: Vec<Series<C>>,
}

impl<K, C> Default for Table<K, C> {
    fn default() -> Self {
        Table {
            index: AHashMap::new(),
            series: Vec::new(),
        }
    }
}

/// The lineage series of one recorder (one set of constant labels).
pub struct Lineage {
    limits: Limits,
    /// Where the cells live (the global registry's store); None: on the heap.
    shared: Option<&'static dyn SharedCells>,
    upstreams: BoundedInterner,
    statuses: BoundedInterner,
    callers_seen: BoundedInterner,
    client: RwLock<Table<ClientKey, Histogram>>,
    callers: RwLock<Table<CallerKey, Gauge>>,
}

impl Lineage {
    /// Upstreams and callers are capped at `limits.max_domains` each.
    pub fn new(limits: Limits, shared: Option<&'static dyn SharedCells>) -> Lineage {
        let max_upstreams = limits.max_domains;
        Lineage {
            limits,
            shared,
            upstreams: BoundedInterner::new(OVERFLOW_VALUE, max_upstreams),
            statuses: BoundedInterner::new(OVERFLOW_VALUE, MAX_STATUSES),
            callers_seen: {
                let callers = BoundedInterner::new(OVERFLOW_VALUE, max_upstreams);
                callers.intern(UNKNOWN_CALLER);
                callers
            },
            client: RwLock::new(Table::default()),
            callers: RwLock::new(Table::default()),
        }
    }

    fn client_cells(&self, buckets: &Buckets, pairs: &[(&str, &str)]) -> Histogram {
        match self.shared {
            Some(shared) => shared.client_histogram(buckets, self.limits, pairs),
            None => Histogram::new(buckets),
        }
    }

    fn caller_cell(&self, buckets: &Buckets, pairs: &[(&str, &str)]) -> Gauge {
        match self.shared {
            Some(shared) => shared.counter(buckets, self.limits, pairs),
            None => Gauge::new(),
        }
    }

    /// Records one outbound call; `per` is the calling route's id in the recorder's interner.
    #[allow(clippy::too_many_arguments)]
    pub fn observe_client(
        &self,
        consts: &ConstLabels,
        buckets: &Buckets,
        per: (ValueId, &str),
        upstream: &str,
        method: &str,
        status: &str,
        duration_ns: u64,
        trace: Option<([u8; 16], [u8; 8])>,
    ) {
        let keep = |h: &Histogram, bucket: usize| {
            if let Some((trace_id, span_id)) = trace {
                h.keep_exemplar(bucket, trace_id, span_id, duration_ns);
            }
        };
        let upstream = self.upstreams.intern(&upstream.to_ascii_lowercase());
        let status = self.statuses.intern(status);
        let method = method_index(method) as u8;
        let key = ClientKey {
            per: per.0,
            upstream,
            method,
            status,
        };
        {
            let table = self.client.read();
            if let Some(&i) = table.index.get(&key) {
                let h = &table.series[i].cells;
                keep(h, h.observe(buckets, duration_ns));
                return;
            }
        }
        let mut table = self.client.write();
        let table = &mut *table;
        let i = *table.index.entry(key).or_insert_with(|| {
            let (upstream, status) = (self.upstreams.value(upstream), self.statuses.value(status));
            let mut pairs = vec![
                ("per", per.1),
                ("hostname", consts.hostname.as_str()),
                ("upstream", &upstream),
                ("method", METHODS[method as usize]),
                ("program", &consts.program),
                ("status", &status),
                ("tenant", &consts.tenant),
                ("cluster", &consts.cluster),
            ];
            pairs.extend(consts.extra_pairs());
            table
                .series
                .push(Series::new(&pairs, |pairs| self.client_cells(buckets, pairs)));
            table.series.len() - 1
        });
        let h = &table.series[i].cells;
        keep(h, h.observe(buckets, duration_ns));
    }

    /// Counts one inbound request from `caller` (None: it named none) answered with `status`
    /// (0: none was sent).
    pub fn count_caller(
        &self,
        consts: &ConstLabels,
        buckets: &Buckets,
        per: (ValueId, &str),
        caller: Option<&str>,
        status: u16,
    ) {
        let caller = match caller.map(str::trim) {
            Some(c) if !c.is_empty() => c,
            _ => UNKNOWN_CALLER,
        };
        let key = CallerKey {
            // Named by the client: admitted by frequency, like every request-derived value.
            caller: self.callers_seen.intern_observed(caller),
            per: per.0,
            status: status_class(status),
        };
        {
            let table = self.callers.read();
            if let Some(&i) = table.index.get(&key) {
                table.series[i].cells.add(1);
                return;
            }
        }
        let mut table = self.callers.write();
        let table = &mut *table;
        let i = *table.index.entry(key).or_insert_with(|| {
            let caller = self.callers_seen.value(key.caller);
            let mut pairs = vec![
                ("caller", &*caller),
                ("per", per.1),
                ("status", STATUS_CLASSES[key.status as usize]),
                ("hostname", &consts.hostname),
                ("program", &consts.program),
                ("tenant", &consts.tenant),
                ("cluster", &consts.cluster),
            ];
            pairs.extend(consts.extra_pairs());
            table
                .series
                .push(Series::new(&pairs, |pairs| self.caller_cell(buckets, pairs)));
            table.series.len() - 1
        });
        table.series[i].cells.add(1);
    }

    /// Moves every series to fresh cells placed by the store as it is now (see
    /// `Recorder::rebind`): counts carry over within one process, a forked child starts at zero.
    pub(crate) fn rebind(&self, buckets: &Buckets, same_process: bool) {
        let mut client = self.client.write();
        for series in client.series.iter_mut() {
            let cells = series.with_pairs(|pairs| self.client_cells(buckets, pairs));
            if same_process {
                cells.add_from(buckets, &series.cells);
            }
            series.cells = cells;
        }
        let mut callers = self.callers.write();
        for series in callers.series.iter_mut() {
            let cell = series.with_pairs(|pairs| self.caller_cell(buckets, pairs));
            if same_process {
                cell.add(series.cells.get());
            }
            series.cells = cell;
        }
    }

    /// Locks the tables for a fork (see `Registry::lock_for_fork`).
    pub(crate) fn lock_for_fork(&self) {
        std::mem::forget(self.client.write());
        std::mem::forget(self.callers.write());
    }

    /// Undoes [`Self::lock_for_fork`].
    ///
    /// # Safety
    ///
    /// Only after `lock_for_fork`, once.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        self.callers.force_unlock_write();
        self.client.force_unlock_write();
    }

    /// Calls `f` with each outbound series, in creation order.
    pub fn client_series(&self, mut f: impl FnMut(Arc<str>, &Histogram)) {
        for series in &self.client.read().series {
            f(series.text.clone(), &series.cells);
        }
    }

    /// The callers counters, in creation order.
    pub fn callers(&self) -> Vec<(Arc<str>, u64)> {
        self.callers
            .read()
            .series
            .iter()
            .map(|series| (series.text.clone(), series.cells.get() as u64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_bounded_and_missing_ones_are_unknown() {
        let lineage = Lineage::new(
            Limits {
                max_domains: 2,
                ..Limits::default()
            },
            None,
        );
        let consts = ConstLabels::default();
        let buckets = Buckets::new(&[1.0]).unwrap();
        // `unknown` takes one of the two slots; `a` is admitted on its third request.
        for caller in [
            Some("a"),
            Some("a"),
            Some("a"),
            Some("b"),
            Some("b"),
            Some("b"),
            None,
            Some(" "),
        ] {
            lineage.count_caller(&consts, &buckets, (1, "/x"), caller, 200);
        }
        let callers: Vec<String> = lineage
            .callers()
            .into_iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let count = |caller: &str| {
            callers
                .iter()
                .find(|c| c.starts_with(&format!("caller=\"{caller}\",per=\"/x\",status=\"2xx\"")))
                .map(|c| c.rsplit(' ').next().unwrap().to_string())
        };
        assert_eq!(count("a").as_deref(), Some("1"), "{callers:?}");
        assert_eq!(count("unknown").as_deref(), Some("2"), "{callers:?}");
        // a's first two requests, and b's three (no slot was left for it).
        assert_eq!(count("_other").as_deref(), Some("5"), "{callers:?}");
        assert_eq!(count("b"), None, "{callers:?}");
    }
}
