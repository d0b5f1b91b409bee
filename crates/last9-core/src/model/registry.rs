//! The registry: every series of `http_requests_duration_milliseconds` in this process.
//!
//! A [`Recorder`] owns the series of one set of constant labels (hostname, program, tenant,
//! cluster). Middlewares with the same constant labels share a recorder, so a process never
//! exposes the same label set twice.
//!
//! Layout (the observe path): a series is found by its key of interned ids in a hash map whose
//! 32-byte entries hold, beside the key, the address of the series' counts and sum
//! ([`ClassicCells`]) and its index in the vector of histograms. Recording into an existing
//! series touches the map's entry and then the series' cells, nothing in between: the vector is
//! read only for native buckets and exemplars. Heap cells are compact (`u32` counts, the sum on
//! the first line, see [`Histogram`]) and carved from shared chunks (`model/cells.rs`), not
//! allocated one by one. No label text is kept per series: a scrape builds it from the interned
//! ids.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use ahash::AHashMap;
use parking_lot::{Mutex, RwLock};

use crate::error::Error;
use crate::model::body::{self, Body};
use crate::model::cells::CellArena;
use crate::model::exemplar::Exemplar;
use crate::model::gauge::Gauge;
use crate::model::histogram::{prefetch, Buckets, ClassicCells, Histogram};
use crate::model::lineage::Lineage;
use crate::model::native::NativeBuckets;
use crate::process;
use crate::values::escape::escape_label_value;
use crate::values::exclude::Exclusions;
use crate::values::labels::{BoundedInterner, ResolveCache, ValueId, MAX_VALUE_LEN, OVERFLOW};
use crate::values::normalize::{
    method_index, normalize_host, normalize_path, route_template, RouteSyntax, METHODS,
};

/// The `per` value of a request no route matched.
pub const UNMATCHED: &str = "/unmatched";
/// The `per` value of routes past the route limit.
pub const ROUTE_OVERFLOW: &str = "/_other";
/// The `domain` value of hosts past the domain limit, and of malformed Host headers.
pub const DOMAIN_OVERFLOW: &str = "_other";
/// The `per` value of `http_requests_in_flight`: a request is counted from the moment it enters,
/// before any routing, so its gauge is per method over all routes.
pub const ALL_ROUTES: &str = "/_all";

/// Labels that are the same for every request of an application.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConstLabels {
    pub hostname: String,
    pub program: String,
    pub tenant: String,
    pub cluster: String,
    /// The `labels` setting: more constant labels, added to every family after the seed's.
    pub extra: Vec<(String, String)>,
}

impl ConstLabels {
    /// The `labels` setting's pairs, in the order given.
    pub fn extra_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.extra
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

/// How many distinct values a label taken from requests may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_routes: usize,
    pub max_domains: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_routes: 500,
            max_domains: 100,
        }
    }
}

/// How many raw paths and hosts each recorder remembers the resolution of, and the bytes each
/// of these caches may use (keys plus bookkeeping).
const RAW_CACHE_CAPACITY: usize = 4096;
const RAW_CACHE_BYTES: usize = 1 << 20;
/// Longest raw path remembered; longer ones are normalised on each request.
const MAX_CACHED_PATH_LEN: usize = 1024;
/// Longest Host header taken as a host: a name has at most 253 bytes, then `:` and a port.
/// Longer ones are malformed and count as `_other` without being looked at or remembered.
pub const MAX_HOST_LEN: usize = 255 + 6;

/// What makes one series of a recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    route: ValueId,
    domain: ValueId,
    method: u8,
    status: u16,
    /// The request label's value (0 when the recorder has none).
    label: ValueId,
}

/// A label whose value each request brings (a header), bounded by an allow-list or a cap:
/// values past it count as [`LABEL_OVERFLOW`], a request without one as the empty value.
pub struct RequestLabel {
    name: String,
    values: BoundedInterner,
}

/// The value of a request label outside its allow-list or past its cap.
pub const LABEL_OVERFLOW: &str = "_other";

impl RequestLabel {
    /// `name` takes at most `max_values` values from requests, or only `allowed` ones.
    pub fn new(name: &str, allowed: Option<&[String]>, max_values: usize) -> RequestLabel {
        let values = BoundedInterner::new(LABEL_OVERFLOW, max_values.max(1) + 1);
        values.intern("");
        if let Some(allowed) = allowed {
            values.allow_only(allowed.iter().map(String::as_str));
        }
        RequestLabel {
            name: name.to_string(),
            values,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn id(&self, value: Option<&str>) -> ValueId {
        self.values.intern_observed(value.unwrap_or(""))
    }
}

/// A series' entry in the index: where to record, and its place in `cells` and `keys`.
#[derive(Clone, Copy)]
struct Slot {
    classic: ClassicCells,
    index: u32,
}

#[derive(Default)]
struct SeriesTable {
    index: AHashMap<SeriesKey, Slot>,
    /// Each series' cells, in creation order: the order of a scrape.
    cells: Vec<Histogram>,
    keys: Vec<SeriesKey>,
    arena: CellArena,
    /// `http_requests_in_flight` by method index, made on first use.
    in_flight: [Option<Gauge>; METHODS.len()],
}

/// Records requests of one application into its series.
pub struct Recorder {
    consts: ConstLabels,
    buckets: Arc<Buckets>,
    limits: Limits,
    routes: BoundedInterner,
    domains: BoundedInterner,
    /// Raw paths (apps without a router) and raw Host headers already resolved.
    raw_paths: ResolveCache<RouteId>,
    raw_hosts: ResolveCache<ValueId>,
    series: RwLock<SeriesTable>,
    /// Whether the cells follow the process's store (true for the global registry's recorders):
    /// in multi-process mode they live in this process's file of the shared directory.
    shared: Option<&'static dyn SharedCells>,
    /// The [`process::epoch`] the cells were last placed at, and the process that placed them.
    epoch: AtomicU64,
    bound_pid: AtomicU32,
    lineage: Lineage,
    /// The request label, set once by the app that made this recorder.
    request_label: OnceLock<RequestLabel>,
    /// Whether `status` is the status class (`2xx`), set once by the app that made the recorder.
    status_classes: OnceLock<bool>,
    /// The body-size series (`body_sizes` on), keyed like the duration series.
    bodies: RwLock<BodyTable>,
}

/// The body-size histograms of each series that has any: request's, then response's.
#[derive(Default)]
struct BodyTable {
    index: AHashMap<SeriesKey, u32>,
    keys: Vec<SeriesKey>,
    cells: Vec<[Histogram; 2]>,
}

/// The parts of a request that become labels.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub route: RouteId,
    /// Host header, else SERVER_NAME.
    pub host: Option<&'a str>,
    pub method: &'a str,
    /// The status code sent; 0 when none was.
    pub status: u16,
    pub duration_ns: u64,
}

/// A route value already interned in a recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteId(ValueId);

impl RouteId {
    /// The route of a request the `exclude` setting leaves out: no family records it.
    pub const EXCLUDED: RouteId = RouteId(ValueId::MAX);

    /// Whether this is [`RouteId::EXCLUDED`].
    #[inline]
    pub fn is_excluded(self) -> bool {
        self == RouteId::EXCLUDED
    }
}

impl Recorder {
    fn new(
        consts: ConstLabels,
        buckets: Buckets,
        limits: Limits,
        shared: Option<&'static dyn SharedCells>,
    ) -> Recorder {
        let routes = BoundedInterner::new(ROUTE_OVERFLOW, limits.max_routes);
        routes.intern(UNMATCHED);
        Recorder {
            consts,
            buckets: Arc::new(buckets),
            limits,
            routes,
            domains: BoundedInterner::new(DOMAIN_OVERFLOW, limits.max_domains),
            raw_paths: ResolveCache::new(RAW_CACHE_CAPACITY, RAW_CACHE_BYTES, MAX_CACHED_PATH_LEN),
            raw_hosts: ResolveCache::new(RAW_CACHE_CAPACITY, RAW_CACHE_BYTES, MAX_HOST_LEN),
            series: RwLock::new(SeriesTable::default()),
            shared,
            epoch: AtomicU64::new(process::epoch()),
            bound_pid: AtomicU32::new(process::pid()),
            lineage: Lineage::new(limits, shared),
            request_label: OnceLock::new(),
            status_classes: OnceLock::new(),
            bodies: RwLock::new(BodyTable::default()),
        }
    }

    pub fn consts(&self) -> &ConstLabels {
        &self.consts
    }

    pub fn buckets(&self) -> &Buckets {
        &self.buckets
    }

    pub fn buckets_arc(&self) -> Arc<Buckets> {
        self.buckets.clone()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A route template already in `{param}` form.
    pub fn route(&self, template: &str) -> RouteId {
        RouteId(self.routes.intern(template))
    }

    /// The route of a request no route matched.
    pub fn unmatched(&self) -> RouteId {
        self.route(UNMATCHED)
    }

    /// The route of an app without a router: its path with ids collapsed. A new route may need
    /// a few requests to be admitted (see [`crate::values::labels`]); until then its paths are not
    /// remembered, so that each of those requests is counted towards admission.
    #[inline]
    pub fn raw_path(&self, path: &str) -> RouteId {
        match self.raw_paths.get(path) {
            Some(route) => route,
            None => self.resolve_path(path),
        }
    }

    #[cold]
    fn resolve_path(&self, path: &str) -> RouteId {
        let route = RouteId(self.routes.intern_observed(&normalize_path(path)));
        if route.0 != OVERFLOW || self.routes.is_full() {
            self.raw_paths.remember(path, route);
        }
        route
    }

    /// Makes `domains` (Host values, normalised here) the only ones with a series of their own:
    /// every other host counts as `_other`. Returns the entries that are no host name.
    pub fn allow_only_domains<'a>(&self, domains: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut allowed = Vec::new();
        let mut invalid = Vec::new();
        for domain in domains {
            match normalize_host(domain) {
                Some(host) => allowed.push(host.into_owned()),
                None => invalid.push(domain.to_string()),
            }
        }
        if invalid.is_empty() {
            self.domains.allow_only(allowed.iter().map(String::as_str));
        }
        invalid
    }

    /// The domain id of a request's Host header (None: the request had none).
    #[inline]
    fn domain(&self, host: Option<&str>) -> ValueId {
        let Some(host) = host else {
            return self.domains.intern("");
        };
        match self.raw_hosts.get(host) {
            Some(id) => id,
            None => self.resolve_host(host),
        }
    }

    #[cold]
    fn resolve_host(&self, host: &str) -> ValueId {
        if host.len() > MAX_HOST_LEN {
            return OVERFLOW;
        }
        let id = match normalize_host(host) {
            Some(name) => self.domains.intern_observed(&name),
            None => OVERFLOW,
        };
        // A host not admitted yet is not remembered, so that its next request counts towards
        // admission; once the cap is full, `_other` is final and remembered too.
        if id != OVERFLOW || self.domains.is_full() {
            self.raw_hosts.remember(host, id);
        }
        id
    }

    /// Records one request (none of an excluded route).
    pub fn observe(&self, request: &Request<'_>) {
        self.observe_full(request, None, None);
    }

    /// Records one request that carried a trace context (`trace_id`, `span_id`): it becomes the
    /// exemplar of its series.
    pub fn observe_traced(&self, request: &Request<'_>, trace: Option<([u8; 16], [u8; 8])>) {
        self.observe_full(request, None, trace);
    }

    /// Gives this recorder's duration series a label taken from each request; false when it
    /// has one already under another name.
    pub fn set_request_label(&self, label: RequestLabel) -> bool {
        let name = label.name.clone();
        let set = self.request_label.get_or_init(|| label);
        set.name == name
    }

    /// Makes `status` the status class (`2xx`, `3xx`, ...) rather than the code; false when the
    /// recorder already records the other way.
    pub fn set_status_classes(&self, classes: bool) -> bool {
        *self.status_classes.get_or_init(|| classes) == classes
    }

    /// The request label, if the recorder has one.
    pub fn request_label(&self) -> Option<&RequestLabel> {
        self.request_label.get()
    }

    /// Records one request with the value its request label takes (None: the request has none).
    pub fn observe_labelled(&self, request: &Request<'_>, label: Option<&str>) {
        self.observe_full(request, label, None);
    }

    /// Records one request with the value its request label takes and its trace context (the
    /// exemplar of its series), each when it has one.
    pub fn observe_full(
        &self,
        request: &Request<'_>,
        label: Option<&str>,
        trace: Option<([u8; 16], [u8; 8])>,
    ) {
        if request.route.is_excluded() {
            return;
        }
        if let Some(cells) = self
            .shared
            .filter(|_| self.epoch.load(Ordering::Relaxed) != process::epoch())
        {
            cells.sync();
        }
        let key = self.series_key(request, label);
        self.observe_key(key, request.duration_ns, trace);
    }

    /// [`Self::observe_full`] with the request's body sizes in bytes (`body_sizes` on; None: that
    /// body's size is unknown), recorded under the same labels as its duration.
    pub fn observe_with_body_sizes(
        &self,
        request: &Request<'_>,
        label: Option<&str>,
        trace: Option<([u8; 16], [u8; 8])>,
        request_bytes: Option<u64>,
        response_bytes: Option<u64>,
    ) {
        if request.route.is_excluded() {
            return;
        }
        self.follow_store();
        // One key for both: a host or label value not admitted yet is counted once.
        let key = self.series_key(request, label);
        self.observe_key(key, request.duration_ns, trace);
        self.observe_body_sizes(key, request_bytes, response_bytes);
    }

    /// Records a duration in the series of `key`.
    #[inline]
    fn observe_key(&self, key: SeriesKey, duration_ns: u64, trace: Option<([u8; 16], [u8; 8])>) {
        // Every observation happens under the table lock, so moving the cells (see `rebind`)
        // never loses one.
        let (widen, index) = {
            let table = self.series.read();
            let found = table.index.get(&key).copied();
            match found {
                Some(slot) => (self.record(&table, slot, duration_ns, trace), slot.index),
                None => {
                    drop(table);
                    self.observe_new(key, duration_ns, trace)
                }
            }
        };
        if widen {
            self.widen(index);
        }
    }

    /// Records into an existing series, under the table's lock. True when the series must move
    /// to wide cells (see [`Self::widen`]).
    #[inline]
    fn record(
        &self,
        table: &SeriesTable,
        slot: Slot,
        duration_ns: u64,
        trace: Option<([u8; 16], [u8; 8])>,
    ) -> bool {
        if self.buckets.native().is_some() {
            // The native cells and the histogram's handle to them: fetched beside the classic
            // cells, not after them.
            prefetch(&table.cells[slot.index as usize]);
            slot.classic.prefetch_native(&self.buckets);
        }
        // SAFETY: the table's lock keeps the series' histogram, and so its cells, alive.
        let (bucket, widen) = unsafe { slot.classic.observe(&self.buckets, duration_ns) };
        if self.buckets.native().is_some() || trace.is_some() {
            let histogram = &table.cells[slot.index as usize];
            histogram.observe_native(&self.buckets, duration_ns);
            if let Some((trace_id, span_id)) = trace {
                histogram.keep_exemplar(bucket, trace_id, span_id, duration_ns);
            }
        }
        widen
    }

    /// The key of a request's series (its labels as ids).
    #[inline]
    fn series_key(&self, request: &Request<'_>, label: Option<&str>) -> SeriesKey {
        let status = match request.status {
            // A class is kept as its first code (200 for 2xx), and rendered as `2xx`.
            code @ 100..=999 if self.status_classes.get() == Some(&true) => code / 100 * 100,
            code @ 100..=999 => code,
            _ => 0,
        };
        SeriesKey {
            route: request.route.0,
            domain: self.domain(request.host),
            method: method_index(request.method) as u8,
            status,
            label: self.request_label.get().map_or(0, |l| l.id(label)),
        }
    }

    /// Records the body sizes of the request of series `key`.
    fn observe_body_sizes(&self, key: SeriesKey, request_bytes: Option<u64>, response_bytes: Option<u64>) {
        let buckets = body::shared_buckets();
        let observe = |cells: &[Histogram; 2]| {
            for (histogram, bytes) in cells.iter().zip([request_bytes, response_bytes]) {
                if let Some(bytes) = bytes {
                    body::observe_bytes(histogram, buckets, bytes);
                }
            }
        };
        {
            let table = self.bodies.read();
            if let Some(&i) = table.index.get(&key) {
                observe(&table.cells[i as usize]);
                return;
            }
        }
        let mut table = self.bodies.write();
        let table = &mut *table;
        let i = match table.index.get(&key) {
            Some(&i) => i as usize,
            None => {
                let cells = [Body::Request, Body::Response].map(|which| self.body_histogram(which, &key));
                table.index.insert(key, table.cells.len() as u32);
                table.cells.push(cells);
                table.keys.push(key);
                table.cells.len() - 1
            }
        };
        observe(&table.cells[i]);
    }

    /// Fresh cells for a body-size series: in the process's store file when there is one.
    fn body_histogram(&self, which: Body, key: &SeriesKey) -> Histogram {
        let buckets = body::shared_buckets();
        match self.shared {
            Some(cells) => self.with_pairs(key, |pairs| {
                cells.body_histogram(which, buckets, self.limits, pairs)
            }),
            None => Histogram::new(buckets),
        }
    }

    /// Calls `f` with the escaped label text, per-bucket counts and sum of each body-size series
    /// of `which` body, in creation order.
    pub fn for_each_body_series(&self, which: Body, mut f: impl FnMut(&str, Vec<u64>, u64)) {
        let series: Vec<(SeriesKey, Vec<u64>, u64)> = {
            let table = self.bodies.read();
            table
                .keys
                .iter()
                .zip(&table.cells)
                .map(|(key, cells)| {
                    let h = &cells[which as usize];
                    (*key, h.counts().collect(), h.sum_ns())
                })
                .collect()
        };
        for (key, counts, sum) in series {
            f(&self.with_pairs(&key, escaped_pairs), counts, sum);
        }
    }

    #[cold]
    fn observe_new(
        &self,
        key: SeriesKey,
        duration_ns: u64,
        trace: Option<([u8; 16], [u8; 8])>,
    ) -> (bool, u32) {
        let mut table = self.series.write();
        let table = &mut *table;
        let slot = match table.index.get(&key) {
            Some(&slot) => slot,
            None => {
                let histogram = self.histogram(&mut table.arena, &key);
                // Fewer than 2^32 series: each has a route, domain, method and status of its own,
                // all of them capped far below that.
                let slot = Slot {
                    classic: histogram.classic(),
                    index: table.cells.len() as u32,
                };
                table.index.insert(key, slot);
                table.cells.push(histogram);
                table.keys.push(key);
                slot
            }
        };
        (self.record(table, slot, duration_ns, trace), slot.index)
    }

    /// Moves series `index` from compact cells to wide ones once a count reached
    /// [`crate::model::histogram::WIDEN_AT`]. Recording happens under the table's read lock, so
    /// under its write lock the copy is exact; every thread that saw the mark comes here, so the
    /// counts never wrap.
    #[cold]
    fn widen(&self, index: u32) {
        let mut table = self.series.write();
        let table = &mut *table;
        let i = index as usize;
        if !table.cells[i].needs_widening() {
            return;
        }
        let wide = Histogram::new(&self.buckets);
        let added = wide.add_from(&self.buckets, &table.cells[i]);
        debug_assert!(added, "wide cells take any counts");
        table.cells[i] = wide;
        let classic = table.cells[i].classic();
        if let Some(slot) = table.index.get_mut(&table.keys[i]) {
            slot.classic = classic;
        }
    }

    /// The lineage series (outbound calls, callers) of this recorder.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Records one outbound call made while serving `per` (None: outside any request).
    pub fn observe_client(
        &self,
        per: Option<RouteId>,
        upstream: &str,
        method: &str,
        status: &str,
        duration_ns: u64,
    ) {
        self.observe_client_traced(per, upstream, method, status, duration_ns, None);
    }

    /// [`Self::observe_client`] of a call made in a traced span, which becomes its exemplar.
    pub fn observe_client_traced(
        &self,
        per: Option<RouteId>,
        upstream: &str,
        method: &str,
        status: &str,
        duration_ns: u64,
        trace: Option<([u8; 16], [u8; 8])>,
    ) {
        let per = per.unwrap_or_else(|| self.unmatched());
        if per.is_excluded() {
            return;
        }
        self.follow_store();
        let per = per.0;
        let text = self.routes.value(per);
        self.lineage.observe_client(
            &self.consts,
            &self.buckets,
            (per, &text),
            upstream,
            method,
            status,
            duration_ns,
            trace,
        );
    }

    /// Counts one inbound request of `route` from `caller` (None: it named none), answered
    /// with `status` (0: none was sent).
    pub fn count_caller(&self, route: RouteId, caller: Option<&str>, status: u16) {
        if route.is_excluded() {
            return;
        }
        self.follow_store();
        let text = self.routes.value(route.0);
        self.lineage
            .count_caller(&self.consts, &self.buckets, (route.0, &text), caller, status);
    }

    /// Brings the cells up to the store after a fork or on entering multi-process mode.
    #[inline]
    fn follow_store(&self) {
        if let Some(cells) = self
            .shared
            .filter(|_| self.epoch.load(Ordering::Relaxed) != process::epoch())
        {
            cells.sync();
        }
    }

    /// A request entered the app: counts it in `http_requests_in_flight` until [`Self::leave`].
    /// Returns the method's index, to give back to `leave`.
    #[inline]
    pub fn enter(&self, method: &str) -> u8 {
        let method = method_index(method) as u8;
        self.in_flight_add(method, 1);
        method
    }

    /// The request that [`Self::enter`] returned `method` for is done (recorded or dropped).
    #[inline]
    pub fn leave(&self, method: u8) {
        self.in_flight_add(method, -1);
    }

    fn in_flight_add(&self, method: u8, delta: i64) {
        if let Some(cells) = self
            .shared
            .filter(|_| self.epoch.load(Ordering::Relaxed) != process::epoch())
        {
            cells.sync();
        }
        let i = method as usize % METHODS.len();
        {
            let table = self.series.read();
            if let Some(gauge) = &table.in_flight[i] {
                gauge.add(delta);
                return;
            }
        }
        let mut table = self.series.write();
        let gauge = table.in_flight[i].get_or_insert_with(|| self.gauge(i));
        gauge.add(delta);
    }

    /// A fresh in-flight cell for a method: in the process's store file when there is one.
    fn gauge(&self, method: usize) -> Gauge {
        let Some(cells) = self.shared else {
            return Gauge::new();
        };
        self.with_gauge_pairs(method, |pairs| cells.gauge(pairs))
    }

    fn with_gauge_pairs<R>(&self, method: usize, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
        let mut pairs = vec![
            ("per", ALL_ROUTES),
            ("hostname", self.consts.hostname.as_str()),
            ("method", METHODS[method]),
            ("program", &self.consts.program),
            ("tenant", &self.consts.tenant),
            ("cluster", &self.consts.cluster),
        ];
        pairs.extend(self.consts.extra_pairs());
        f(&pairs)
    }

    /// Calls `f` with the escaped label text and value of each in-flight gauge made so far.
    pub fn in_flight(&self, mut f: impl FnMut(Arc<str>, i64)) {
        let table = self.series.read();
        for (method, gauge) in table.in_flight.iter().enumerate() {
            if let Some(gauge) = gauge {
                let text = self.with_gauge_pairs(method, escaped_pairs);
                f(text.into(), gauge.get());
            }
        }
    }

    /// Fresh cells for a series: in the process's store file when there is one.
    fn histogram(&self, arena: &mut CellArena, key: &SeriesKey) -> Histogram {
        let placed = self.shared.and_then(|cells| {
            self.with_pairs(key, |pairs| cells.histogram(&self.buckets, self.limits, pairs))
        });
        placed.unwrap_or_else(|| arena.histogram(&self.buckets))
    }

    /// Moves every series to fresh cells placed by the store as it is now: a forked child
    /// starts from zero in its own file (the counts so far are its parent's), while a process
    /// entering multi-process mode carries its counts over.
    pub(crate) fn rebind(&self, epoch: u64) {
        let mut table = self.series.write();
        if self.epoch.load(Ordering::Relaxed) == epoch {
            return;
        }
        let pid = process::pid();
        let same_process = self.bound_pid.load(Ordering::Relaxed) == pid;
        let table = &mut *table;
        for (key, cells) in table.keys.iter().zip(table.cells.iter_mut()) {
            let mut histogram = self.histogram(&mut table.arena, key);
            if same_process && !histogram.add_from(&self.buckets, cells) {
                // Counts too large for compact cells.
                histogram = Histogram::new(&self.buckets);
                histogram.add_from(&self.buckets, cells);
            }
            *cells = histogram;
            if let Some(slot) = table.index.get_mut(key) {
                slot.classic = cells.classic();
            }
        }
        for method in 0..METHODS.len() {
            let Some(old) = table.in_flight[method].take() else {
                continue;
            };
            let gauge = self.gauge(method);
            // A forked child has none of its parent's requests in flight.
            if same_process {
                gauge.add(old.get());
            }
            table.in_flight[method] = Some(gauge);
        }
        let mut bodies = self.bodies.write();
        let bodies = &mut *bodies;
        for (key, cells) in bodies.keys.iter().zip(bodies.cells.iter_mut()) {
            for which in [Body::Request, Body::Response] {
                let histogram = self.body_histogram(which, key);
                if same_process {
                    histogram.add_from(body::shared_buckets(), &cells[which as usize]);
                }
                cells[which as usize] = histogram;
            }
        }
        self.lineage.rebind(&self.buckets, same_process);
        self.bound_pid.store(pid, Ordering::Relaxed);
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Calls `f` with the label pairs of a series, in the contract's order.
    fn with_pairs<R>(&self, key: &SeriesKey, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
        let route = self.routes.value(key.route);
        let domain = self.domains.value(key.domain);
        let mut status = itoa::Buffer::new();
        let class;
        let status = if self.status_classes.get() == Some(&true) && key.status != 0 {
            class = format!("{}xx", key.status / 100);
            class.as_str()
        } else {
            status.format(key.status)
        };
        let mut pairs: Vec<(&str, &str)> = vec![
            ("per", &route),
            ("hostname", &self.consts.hostname),
            ("domain", &domain),
            ("method", METHODS[key.method as usize]),
            ("program", &self.consts.program),
            ("status", status),
            ("tenant", &self.consts.tenant),
            ("cluster", &self.consts.cluster),
        ];
        let label = self
            .request_label
            .get()
            .map(|l| (l.name.as_str(), l.values.value(key.label)));
        if let Some((name, value)) = &label {
            pairs.push((name, value));
        }
        pairs.extend(self.consts.extra_pairs());
        f(&pairs)
    }

    /// Calls `f` with the escaped label text (`per="…",…,cluster="…"`, without braces or `le`),
    /// per-bucket counts (`+Inf` last) and sum of every series, in creation order. The counts are
    /// copied under the table's read lock and the text is built after it, so a scrape never holds
    /// up the creation of a series for longer than a copy.
    pub fn for_each_series(&self, mut f: impl FnMut(&str, &[u64], u64)) {
        self.for_each_series_full(|labels, counts, sum_ns, _| f(labels, counts, sum_ns));
    }

    /// [`Self::for_each_series`] with each series' native buckets and exemplars.
    pub fn for_each_series_full(&self, mut f: impl FnMut(&str, &[u64], u64, SeriesExtras)) {
        let width = self.buckets.cells();
        let (keys, counts, sums, extras) = {
            let table = self.series.read();
            let mut counts = Vec::with_capacity(table.cells.len() * width);
            let mut sums = Vec::with_capacity(table.cells.len());
            let mut extras = Vec::with_capacity(table.cells.len());
            for histogram in &table.cells {
                counts.extend(histogram.counts());
                sums.push(histogram.sum_ns());
                extras.push(SeriesExtras {
                    native: histogram.native(&self.buckets),
                    exemplars: histogram.exemplars(),
                });
            }
            (table.keys.clone(), counts, sums, extras)
        };
        for ((i, key), extras) in keys.iter().enumerate().zip(extras) {
            let labels = self.with_pairs(key, escaped_pairs);
            f(&labels, &counts[i * width..(i + 1) * width], sums[i], extras);
        }
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.read().cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a series has beside its classic counts and sum.
pub struct SeriesExtras {
    pub native: Option<NativeBuckets>,
    /// The latest exemplar of each classic bucket (empty when there is none).
    pub exemplars: Box<[Option<Exemplar>]>,
}

/// `name="value",…` with values escaped.
pub(crate) fn escaped_pairs(pairs: &[(&str, &str)]) -> String {
    let mut text = String::with_capacity(128);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(name);
        text.push_str("=\"");
        escape_label_value(&mut text, value);
        text.push('"');
    }
    text
}

/// Turns framework route templates into route ids, caching the conversion per template.
pub struct RouteTemplates {
    recorder: Arc<Recorder>,
    syntax: RouteSyntax,
    cache: ResolveCache<RouteId>,
    /// Templates the `exclude` setting leaves out: they resolve to [`RouteId::EXCLUDED`].
    exclusions: Option<Arc<Exclusions>>,
}

impl RouteTemplates {
    pub fn new(recorder: Arc<Recorder>, syntax: RouteSyntax) -> RouteTemplates {
        // Templates come from the app's code, so few; the bounds only guard against odd apps.
        let cache = ResolveCache::new(4 * recorder.limits.max_routes, RAW_CACHE_BYTES, MAX_VALUE_LEN * 4);
        RouteTemplates {
            recorder,
            syntax,
            cache,
            exclusions: None,
        }
    }

    /// Leaves out the requests of the templates `exclusions` names (checked once per template).
    pub fn with_exclusions(mut self, exclusions: Option<Arc<Exclusions>>) -> RouteTemplates {
        self.exclusions = exclusions.filter(|e| e.has_templates());
        self
    }

    /// The route id of a template in the framework's own syntax (`/item/<int:id>`).
    #[inline]
    pub fn route(&self, raw: &str) -> RouteId {
        if let Some(route) = self.cache.get(raw) {
            return route;
        }
        let template = route_template(raw, self.syntax);
        let route = match &self.exclusions {
            Some(exclusions) if exclusions.template(&template) => RouteId::EXCLUDED,
            _ => self.recorder.route(&template),
        };
        self.cache.remember(raw, route);
        route
    }

    /// Interns the templates (framework syntax) the app's router knows, before any request.
    pub fn register<'a>(&self, templates: impl IntoIterator<Item = &'a str>) {
        for template in templates {
            self.route(template);
        }
    }
}

/// Where the cells of the global registry's series live, and how they follow the process across
/// a fork: the store layer implements it (the model knows no file), see [`Registry::global`].
pub trait SharedCells: Send + Sync {
    /// Brings the cells up to the current [`process::epoch`] (after a fork, or on entering
    /// multi-process mode); called by a recorder that sees a new epoch.
    fn sync(&self);
    /// The cells of a new histogram series with these labels, when they are to live outside the
    /// heap (None: the recorder carves them from its own chunks).
    fn histogram(&self, buckets: &Buckets, limits: Limits, pairs: &[(&str, &str)]) -> Option<Histogram>;
    /// The cell of a new in-flight gauge with these labels.
    fn gauge(&self, pairs: &[(&str, &str)]) -> Gauge;
    /// The cells of a new outbound-call series (lineage) of a recorder with these buckets.
    fn client_histogram(&self, buckets: &Buckets, limits: Limits, pairs: &[(&str, &str)]) -> Histogram;
    /// The cell of a new callers counter (lineage) of a recorder with these buckets.
    fn counter(&self, buckets: &Buckets, limits: Limits, pairs: &[(&str, &str)]) -> Gauge;
    /// The cells of a new body-size series (`buckets` are the byte buckets).
    fn body_histogram(
        &self,
        which: Body,
        buckets: &Buckets,
        limits: Limits,
        pairs: &[(&str, &str)],
    ) -> Histogram;
}

/// All recorders of a process (or of a test).
#[derive(Default)]
pub struct Registry {
    recorders: Mutex<Vec<Arc<Recorder>>>,
    /// The global registry: its series follow the process into multi-process mode.
    shared: Option<&'static dyn SharedCells>,
}

impl Registry {
    /// A registry of this process only (tests, or apps keeping two sets of metrics apart).
    pub fn new() -> Registry {
        Registry::default()
    }

    /// A registry whose new series take their cells from `cells`: the global registry, which
    /// [`Registry::global`] (in the store layer) makes with the multi-process store.
    pub fn with_shared_cells(cells: &'static dyn SharedCells) -> Registry {
        Registry {
            recorders: Mutex::new(Vec::new()),
            shared: Some(cells),
        }
    }

    /// Whether this is the global registry, whose scrape covers every process in
    /// multi-process mode.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Locks everything a fork must not copy half-changed (see `store`'s fork handlers).
    pub(crate) fn lock_for_fork(&self) {
        std::mem::forget(self.recorders.lock());
        // SAFETY: the list is locked (just above) until `unlock_after_fork`.
        for recorder in unsafe { &*self.recorders.data_ptr() } {
            std::mem::forget(recorder.series.write());
            std::mem::forget(recorder.bodies.write());
            recorder.lineage.lock_for_fork();
        }
    }

    /// Undoes `lock_for_fork`, in the parent and in the child.
    ///
    /// # Safety
    ///
    /// Only after `lock_for_fork`, once.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        for recorder in &*self.recorders.data_ptr() {
            recorder.lineage.unlock_after_fork();
            recorder.bodies.force_unlock_write();
            recorder.series.force_unlock_write();
        }
        self.recorders.force_unlock();
    }

    /// The recorder for these constant labels, made on first use. Two middlewares with the same
    /// constant labels share one; asking for it with other buckets is an error, since one label
    /// set cannot have two bucket layouts.
    pub fn recorder(
        &self,
        consts: ConstLabels,
        buckets: Buckets,
        limits: Limits,
    ) -> Result<Arc<Recorder>, Error> {
        let mut recorders = self.recorders.lock();
        if let Some(existing) = recorders.iter().find(|r| r.consts == consts) {
            if *existing.buckets != buckets {
                return Err(Error::ConflictingBuckets(consts.program.clone()));
            }
            return Ok(existing.clone());
        }
        let recorder = Arc::new(Recorder::new(consts, buckets, limits, self.shared));
        recorders.push(recorder.clone());
        Ok(recorder)
    }

    /// The recorders, in creation order.
    pub fn recorders(&self) -> Vec<Arc<Recorder>> {
        self.recorders.lock().clone()
    }

    /// Number of series over all recorders.
    pub fn series_count(&self) -> usize {
        self.recorders.lock().iter().map(|r| r.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consts(program: &str) -> ConstLabels {
        ConstLabels {
            hostname: "box".into(),
            program: program.into(),
            ..Default::default()
        }
    }

    fn recorder(limits: Limits) -> Arc<Recorder> {
        Registry::new()
            .recorder(consts("app"), Buckets::last9_default(), limits)
            .unwrap()
    }

    #[test]
    fn a_series_near_u32_overflow_moves_to_wide_cells_without_losing_a_count() {
        let rec = recorder(Limits::default());
        let route = rec.route("/a");
        rec.observe(&request(route, "example.com", 200));
        let bucket = rec.buckets().index_of(1_000_000);
        let start = u64::from(crate::model::histogram::WIDEN_AT) - 100;
        {
            let table = rec.series.read();
            assert!(table.cells[0].is_compact());
            table.cells[0].set_count(bucket, start);
        }
        let (threads, each) = (4, 10_000);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..each {
                        rec.observe(&request(route, "example.com", 200));
                    }
                });
            }
        });
        let table = rec.series.read();
        assert!(!table.cells[0].is_compact(), "the series moved to wide cells");
        let counts: Vec<u64> = table.cells[0].counts().collect();
        assert_eq!(counts[bucket], start + threads * each, "no count lost or wrapped");
        assert_eq!(counts.iter().sum::<u64>(), counts[bucket]);
        assert_eq!(table.cells[0].sum_ns(), (1 + threads * each) * 1_000_000);
        drop(table);
        // Recording goes on into the wide cells, past what a u32 holds.
        rec.series.read().cells[0].set_count(bucket, u64::from(u32::MAX));
        rec.observe(&request(route, "example.com", 200));
        assert_eq!(series(&rec)[0].1, u64::from(u32::MAX) + 1);
    }

    /// Label text and request count of each series, in creation order.
    fn series(rec: &Recorder) -> Vec<(String, u64)> {
        let mut all = Vec::new();
        rec.for_each_series(|labels, counts, _| all.push((labels.to_string(), counts.iter().sum())));
        all
    }

    fn request(route: RouteId, host: &str, status: u16) -> Request<'_> {
        Request {
            route,
            host: Some(host),
            method: "GET",
            status,
            duration_ns: 1_000_000,
        }
    }

    #[test]
    fn same_labels_share_a_series() {
        let rec = recorder(Limits::default());
        let route = rec.route("/user/{id}");
        for _ in 0..3 {
            rec.observe(&request(route, "example.com", 200));
        }
        rec.observe(&request(route, "example.com", 404));
        assert_eq!(rec.len(), 2);
        assert_eq!(series(&rec)[0].1, 3);
    }

    #[test]
    fn label_text_has_the_contract_order_and_escapes_values() {
        let rec = recorder(Limits::default());
        rec.observe(&request(rec.route("/a\"b\\c\nd"), "Example.COM:8080", 503));
        assert_eq!(
            series(&rec)[0].0,
            r#"per="/a\"b\\c\nd",hostname="box",domain="example.com",method="GET",program="app",status="503",tenant="",cluster="""#
        );
    }

    #[test]
    fn hosts_and_routes_past_the_limits_overflow() {
        let rec = recorder(Limits {
            max_routes: 5,
            max_domains: 3,
        });
        for i in 0..100 {
            // Three times each: values many requests share, admitted while there is room.
            for _ in 0..3 {
                let route = rec.raw_path(&format!("/page-{i}/x"));
                rec.observe(&request(route, &format!("h{i}.example.com"), 200));
            }
        }
        // 4 routes + /unmatched, 3 hosts; the rest share the overflow values.
        assert!(rec.len() <= 5 * 4);
        let labels: Vec<String> = series(&rec).into_iter().map(|(labels, _)| labels).collect();
        assert!(labels.iter().any(|l| l.contains(r#"per="/_other""#)));
        assert!(labels.iter().any(|l| l.contains(r#"domain="_other""#)));
        // Once a cap is full, `_other` is final: raw values are remembered again, so requests
        // past the caps cost one lookup, as before admission existed.
        assert!(rec.raw_hosts.len() > 90 && rec.raw_paths.len() > 90);
    }

    /// Requests per `domain` value, from the series.
    fn requests_by_domain(rec: &Recorder) -> AHashMap<String, u64> {
        let mut counts = AHashMap::new();
        for (labels, count) in series(rec) {
            let domain = labels
                .split(",domain=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            *counts.entry(domain.to_string()).or_default() += count;
        }
        counts
    }

    #[test]
    fn junk_hosts_do_not_keep_real_domains_out() {
        let rec = recorder(Limits::default());
        let route = rec.route("/x");
        let mut junk = 0;
        for i in 0..1000 {
            if i % 20 == 0 {
                rec.observe(&request(route, "shop.example", 200));
            }
            rec.observe(&request(route, &format!("junk-{i}.example"), 200));
            junk += 1;
        }
        for _ in 0..50 {
            rec.observe(&request(route, "api.example", 200));
        }
        let counts = requests_by_domain(&rec);
        // shop.example came first and took a first-come slot; nine junk hosts took the others.
        assert_eq!(counts["shop.example"], 50);
        assert_eq!(counts.keys().filter(|d| d.starts_with("junk-")).count(), 9);
        // api.example came after: admitted on its third request.
        assert_eq!(counts["api.example"], 48);
        assert_eq!(counts["_other"], junk - 9 + 2);
        assert_eq!(counts.values().sum::<u64>(), 1100);
    }

    #[test]
    fn the_overflow_counter_sums_the_requests_under_other() {
        let registry = Registry::new();
        let rec = registry
            .recorder(
                consts("app"),
                Buckets::last9_default(),
                Limits {
                    max_routes: 5,
                    max_domains: 3,
                },
            )
            .unwrap();
        for i in 0..40 {
            let route = rec.raw_path(&format!("/page-{i}"));
            rec.observe(&request(route, &format!("h{i}.example"), 200));
        }
        rec.observe(&request(rec.unmatched(), "bad host", 200));
        let snapshot = crate::snapshot::Snapshot::of(&registry);
        let overflow: Vec<(String, u64)> = snapshot
            .overflow()
            .iter()
            .map(|(l, n)| (l.to_string(), *n))
            .collect();
        // One first-come slot each (/unmatched took the route's): everything else is _other.
        assert_eq!(
            overflow,
            [
                ("label=\"per\"".to_string(), 40),
                ("label=\"domain\"".to_string(), 40)
            ]
        );
        let text = crate::encoding::encode(&registry, crate::encoding::Format::Text);
        assert!(
            text.contains("# TYPE last9_label_overflow_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("last9_label_overflow_total{label=\"domain\"} 40\n"),
            "{text}"
        );
    }

    #[test]
    fn request_caches_keep_no_long_or_unadmitted_keys() {
        let rec = recorder(Limits::default());
        let long = "a".repeat(60_000);
        for i in 0..200 {
            // Too long to be a host; a long path of a route many requests share.
            let host = format!("{i}{long}");
            let route = rec.raw_path(&format!("/files/{i}/{long}"));
            rec.observe(&request(route, &host, 200));
            // A host name of a valid length padded with spaces is no host either.
            rec.observe(&request(
                route,
                &format!("shop.example{}", " ".repeat(300 + i)),
                200,
            ));
        }
        assert_eq!(rec.raw_hosts.len(), 0);
        assert_eq!(rec.raw_paths.len(), 0);
        assert!(requests_by_domain(&rec).keys().all(|d| d == "_other"));
        // Junk that is short enough is not remembered either, until it is admitted.
        for i in 0..5000 {
            rec.observe(&request(
                rec.raw_path(&format!("/{i}.php")),
                &format!("j{i}.example"),
                200,
            ));
        }
        assert!(rec.raw_hosts.len() <= 10 && rec.raw_paths.len() <= 50);
    }

    #[test]
    fn raw_caches_stay_within_their_byte_budget() {
        let rec = recorder(Limits::default());
        let route = rec.route("/x");
        // Valid, distinct spellings of one admitted host: each is a key of its own.
        for port in 0..20_000 {
            let host = format!("{}.example:{port}", "h".repeat(200));
            rec.observe(&request(route, &host, 200));
        }
        assert!(rec.raw_hosts.bytes() <= RAW_CACHE_BYTES);
        assert!(rec.raw_hosts.len() < RAW_CACHE_CAPACITY);
    }

    #[test]
    fn an_allow_list_keeps_every_other_host_out() {
        let rec = recorder(Limits::default());
        assert_eq!(
            rec.allow_only_domains(["Shop.Example", "api.example:8443", "bad host"]),
            ["bad host"]
        );
        assert!(rec
            .allow_only_domains(["Shop.Example", "api.example:8443"])
            .is_empty());
        let route = rec.route("/x");
        for host in [
            "shop.example",
            "API.example",
            "first.example",
            "first.example",
            "first.example",
        ] {
            rec.observe(&request(route, host, 200));
        }
        let counts = requests_by_domain(&rec);
        assert_eq!(counts["shop.example"], 1);
        assert_eq!(counts["api.example"], 1);
        assert_eq!(counts["_other"], 3);
    }

    #[test]
    fn malformed_hosts_and_methods_have_fixed_values() {
        let rec = recorder(Limits::default());
        let route = rec.unmatched();
        rec.observe(&Request {
            route,
            host: Some("bad host\n"),
            method: "BREW",
            status: 200,
            duration_ns: 1,
        });
        rec.observe(&Request {
            route,
            host: None,
            method: "get",
            status: 42,
            duration_ns: 1,
        });
        let labels: Vec<String> = series(&rec).into_iter().map(|(labels, _)| labels).collect();
        assert!(
            labels[0].contains(r#"domain="_other",method="_OTHER""#),
            "{}",
            labels[0]
        );
        assert!(
            labels[1].contains(r#"domain="",method="_OTHER""#),
            "{}",
            labels[1]
        );
        assert!(labels[1].contains(r#"status="0""#), "{}", labels[1]);
    }

    #[test]
    fn recorders_are_shared_by_constant_labels() {
        let registry = Registry::new();
        let a = registry
            .recorder(consts("a"), Buckets::last9_default(), Limits::default())
            .unwrap();
        let again = registry
            .recorder(consts("a"), Buckets::last9_default(), Limits::default())
            .unwrap();
        let b = registry
            .recorder(consts("b"), Buckets::last9_default(), Limits::default())
            .unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        assert!(!Arc::ptr_eq(&a, &b));
        let conflicting = registry.recorder(consts("a"), Buckets::new(&[1.0]).unwrap(), Limits::default());
        assert!(matches!(conflicting, Err(Error::ConflictingBuckets(_))));
    }

    #[test]
    fn templates_are_converted_once_per_syntax() {
        let rec = recorder(Limits::default());
        let flask = RouteTemplates::new(rec.clone(), RouteSyntax::Angle);
        assert_eq!(flask.route("/item/<int:id>"), rec.route("/item/{id}"));
        assert_eq!(flask.route("/item/<int:id>"), flask.route("/item/<id>"));
    }

    #[test]
    fn series_sharing_a_cell_chunk_keep_their_own_counts() {
        let rec = recorder(Limits::default());
        let route = rec.route("/x");
        // Statuses 100..=399: several chunks of cells; series i gets i - 99 requests of i ms.
        for status in 100..400u16 {
            for _ in 0..(status - 99) {
                rec.observe(&Request {
                    duration_ns: u64::from(status) * 1_000_000,
                    ..request(route, "h", status)
                });
            }
        }
        let mut sums = Vec::new();
        rec.for_each_series(|labels, counts, sum_ns| {
            sums.push((labels.to_string(), counts.iter().sum::<u64>(), sum_ns))
        });
        assert_eq!(sums.len(), 300);
        for (i, (labels, count, sum_ns)) in sums.into_iter().enumerate() {
            let status = 100 + i as u64;
            assert!(labels.contains(&format!("status=\"{status}\"")), "{labels}");
            assert_eq!(count, status - 99);
            assert_eq!(sum_ns, (status - 99) * status * 1_000_000);
        }
    }

    #[test]
    fn excluded_templates_leave_no_series_in_any_family() {
        let rec = recorder(Limits::default());
        let exclusions = Exclusions::new(["/static/{path}"], []).unwrap();
        let flask =
            RouteTemplates::new(rec.clone(), RouteSyntax::Angle).with_exclusions(Some(Arc::new(exclusions)));
        let route = flask.route("/static/<path:filename>");
        assert!(route.is_excluded());
        rec.observe(&request(route, "h", 200));
        rec.count_caller(route, Some("web"), 200);
        rec.observe_client(Some(route), "api:80", "GET", "200", 1);
        assert!(rec.is_empty());
        assert!(rec.lineage().callers().is_empty());
        let mut outbound = 0;
        rec.lineage().client_series(|_, _| outbound += 1);
        assert_eq!(outbound, 0);
        // Excluded templates take no route slot.
        assert_eq!(rec.routes.len(), 1);
        assert!(!flask.route("/name/<name>").is_excluded());
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let rec = recorder(Limits::default());
        let route = rec.route("/x");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        rec.observe(&request(route, "h", 200));
                    }
                });
            }
        });
        assert_eq!(series(&rec)[0].1, 80_000);
    }
}
