//! Lineage: who calls whom, from metrics, without a mesh proxy.
//!
//! - `http_client_requests_duration_milliseconds{per, hostname, upstream, method, program,
//!   status, tenant, cluster}`: outbound calls, by the inbound route that made them;
//! - `http_requests_callers_total{caller, per, hostname, program, tenant, cluster}`: inbound
//!   requests by the calling service (the `x-last9-caller` header that instrumented clients
//!   send, else Envoy's `x-envoy-downstream-service-cluster`, else `unknown`).
//!
//! Every value that comes from the network is bounded by an interner. These series live in the
//! process's memory (in pre-fork servers a scrape shows them for the worker it reached).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ahash::AHashMap;
use parking_lot::RwLock;

use crate::model::histogram::{Buckets, Histogram};
use crate::model::registry::{escaped_pairs, ConstLabels};
use crate::values::labels::{BoundedInterner, ValueId};
use crate::values::normalize::{method_index, METHODS};

/// The caller of a request that named none.
pub const UNKNOWN_CALLER: &str = "unknown";
/// Past the caps: callers, upstreams and statuses.
pub const OVERFLOW_VALUE: &str = "_other";
/// Distinct status values (codes and error kinds) an app's outbound calls may have.
const MAX_STATUSES: usize = 64;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether middlewares count callers and publish the inbound request to clients.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
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
}

/// The lineage series of one recorder (one set of constant labels).
pub struct Lineage {
    upstreams: BoundedInterner,
    statuses: BoundedInterner,
    callers_seen: BoundedInterner,
    client: RwLock<AHashMap<ClientKey, (Arc<str>, Histogram)>>,
    client_order: RwLock<Vec<ClientKey>>,
    callers: RwLock<AHashMap<CallerKey, (Arc<str>, AtomicU64)>>,
    callers_order: RwLock<Vec<CallerKey>>,
}

impl Lineage {
    pub fn new(max_upstreams: usize) -> Lineage {
        Lineage {
            upstreams: BoundedInterner::new(OVERFLOW_VALUE, max_upstreams),
            statuses: BoundedInterner::new(OVERFLOW_VALUE, MAX_STATUSES),
            callers_seen: {
                let callers = BoundedInterner::new(OVERFLOW_VALUE, max_upstreams);
                callers.intern(UNKNOWN_CALLER);
                callers
            },
            client: RwLock::new(AHashMap::new()),
            client_order: RwLock::new(Vec::new()),
            callers: RwLock::new(AHashMap::new()),
            callers_order: RwLock::new(Vec::new()),
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
        if let Some((_, h)) = self.client.read().get(&key) {
            keep(h, h.observe(buckets, duration_ns));
            return;
        }
        let mut map = self.client.write();
        let (_, h) = map.entry(key).or_insert_with(|| {
            self.client_order.write().push(key);
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
            let text = escaped_pairs(&pairs);
            (text.into(), Histogram::new(buckets))
        });
        keep(h, h.observe(buckets, duration_ns));
    }

    /// Counts one inbound request from `caller` (None: it named none).
    pub fn count_caller(&self, consts: &ConstLabels, per: (ValueId, &str), caller: Option<&str>) {
        let caller = match caller.map(str::trim) {
            Some(c) if !c.is_empty() => c,
            _ => UNKNOWN_CALLER,
        };
        let key = CallerKey {
            // Named by the client: admitted by frequency, like every request-derived value.
            caller: self.callers_seen.intern_observed(caller),
            per: per.0,
        };
        if let Some((_, n)) = self.callers.read().get(&key) {
            n.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut map = self.callers.write();
        let (_, n) = map.entry(key).or_insert_with(|| {
            self.callers_order.write().push(key);
            let caller = self.callers_seen.value(key.caller);
            let mut pairs = vec![
                ("caller", &*caller),
                ("per", per.1),
                ("hostname", &consts.hostname),
                ("program", &consts.program),
                ("tenant", &consts.tenant),
                ("cluster", &consts.cluster),
            ];
            pairs.extend(consts.extra_pairs());
            let text = escaped_pairs(&pairs);
            (text.into(), AtomicU64::new(0))
        });
        n.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls `f` with each outbound series, in creation order.
    pub fn client_series(&self, mut f: impl FnMut(Arc<str>, &Histogram)) {
        let map = self.client.read();
        for key in self.client_order.read().iter() {
            if let Some((text, h)) = map.get(key) {
                f(text.clone(), h);
            }
        }
    }

    /// The callers counters, in creation order.
    pub fn callers(&self) -> Vec<(Arc<str>, u64)> {
        let map = self.callers.read();
        self.callers_order
            .read()
            .iter()
            .filter_map(|key| map.get(key))
            .map(|(text, n)| (text.clone(), n.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_bounded_and_missing_ones_are_unknown() {
        let lineage = Lineage::new(2);
        let consts = ConstLabels::default();
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
            lineage.count_caller(&consts, (1, "/x"), caller);
        }
        let callers: Vec<String> = lineage
            .callers()
            .into_iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let count = |caller: &str| {
            callers
                .iter()
                .find(|c| c.starts_with(&format!("caller=\"{caller}\",per=\"/x\"")))
                .map(|c| c.rsplit(' ').next().unwrap().to_string())
        };
        assert_eq!(count("a").as_deref(), Some("1"), "{callers:?}");
        assert_eq!(count("unknown").as_deref(), Some("2"), "{callers:?}");
        // a's first two requests, and b's three (no slot was left for it).
        assert_eq!(count("_other").as_deref(), Some("5"), "{callers:?}");
        assert_eq!(count("b"), None, "{callers:?}");
    }
}
