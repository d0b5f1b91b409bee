//! The model alone: recording a request into an existing series, random access, at 1 / 10k /
//! 100k series, in thread CPU time, candidates interleaved round by round.
//!
//! The Python benchmark (`bench/bench_observe.py`) is the headline: it is the path users hit,
//! and it also pays for Python's and the route cache's lookups of 10k/100k distinct route
//! strings. This one starts from route ids already resolved (what a real app's bounded set of
//! templates resolves to through its cache), so its growth from 1 to N series is the model's:
//! finding the series and touching its cells.
//!
//! `cargo bench -p last9-core --bench observe` prints one line per size: `<series> <ns>`.

use last9_core::{Buckets, ConstLabels, Limits, Registry, Request, RouteId};

const SIZES: [usize; 3] = [1, 10_000, 100_000];
/// Random picks cycled through: more than the largest size, so every series is hit.
const PICKS: usize = 1 << 18;
const CALLS: usize = 500_000;
const ROUNDS: usize = 15;

fn thread_time_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; this clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// A recorder with `n` series (one route each) and random picks among their routes.
fn candidate(registry: &Registry, n: usize) -> (std::sync::Arc<last9_core::Recorder>, Vec<RouteId>) {
    let consts = ConstLabels {
        hostname: "box".into(),
        program: format!("bench{n}"),
        ..ConstLabels::default()
    };
    let limits = Limits {
        max_routes: n + 1,
        max_domains: 100,
    };
    let recorder = registry
        .recorder(consts, Buckets::last9_default(), limits)
        .expect("one recorder per size");
    let routes: Vec<RouteId> = (0..n)
        .map(|i| recorder.route(&format!("/api/resource{i}/{{id}}")))
        .collect();
    for &route in &routes {
        recorder.observe(&request(route));
    }
    assert_eq!(recorder.len(), n);
    // xorshift64*: the same picks on every run.
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
    let picks = (0..PICKS)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            routes[(state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n]
        })
        .collect();
    (recorder, picks)
}

fn request(route: RouteId) -> Request<'static> {
    Request {
        route,
        host: Some("example.com"),
        method: "GET",
        status: 200,
        duration_ns: 1_000_000,
    }
}

fn main() {
    let registry = Registry::new();
    let candidates: Vec<_> = SIZES.iter().map(|&n| (n, candidate(&registry, n))).collect();
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); SIZES.len()];
    for round in 0..=ROUNDS {
        for (i, (_, (recorder, picks))) in candidates.iter().enumerate() {
            let start = thread_time_ns();
            for call in 0..CALLS {
                recorder.observe(&request(picks[call % PICKS]));
            }
            let ns = (thread_time_ns() - start) as f64 / CALLS as f64;
            // Round 0 warms the caches and the allocator up.
            if round > 0 {
                rounds[i].push(ns);
            }
        }
    }
    for ((n, _), mut ns) in candidates.iter().zip(rounds) {
        ns.sort_by(f64::total_cmp);
        println!("{n} {:.1}", ns[ns.len() / 2]);
    }
}
