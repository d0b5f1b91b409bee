//! Runtime metrics: what prometheus_client's default collectors export (`process_*`,
//! `python_gc_*`, `python_info`), read without the GIL, and under a pre-fork server one series
//! per live worker plus the master.
//!
//! - `process_*` come from `/proc/<pid>`: any process of the server can read its siblings', so
//!   the scraping worker reads every live worker's and the master's at scrape time.
//! - `python_gc_*` only the interpreter itself knows: each process counts its collections in
//!   memory (a `gc.callbacks` hook calls [`gc_collected`]) and, under a pre-fork server, copies
//!   them into its worker-slot file, where the scraping worker reads them.
//! - Under a pre-fork server the store gathers the workers' (`store::slots`); this module reads
//!   one process and knows the families' names. Encoding them is `encoding::runtime`'s.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::values::escape::escape_label_value;

/// Generations of the garbage collector.
pub const GENERATIONS: usize = 3;

/// This process's garbage-collector counters: `[collections, collected, uncollectable]` per
/// generation, as `gc.get_stats()` reports them.
static GC_COUNTS: [[AtomicU64; 3]; GENERATIONS] = [const { [const { AtomicU64::new(0) }; 3] }; GENERATIONS];

/// `python_info`'s and `last9_info`'s label text, set once by the binding.
static INFO: OnceLock<Info> = OnceLock::new();

/// Copies this process's GC counters to where other processes read them (its worker slot):
/// `Some(generation)` after a collection, None for all. Installed by the store.
static GC_SINK: OnceLock<fn(Option<usize>)> = OnceLock::new();

/// Installs the [`GC_SINK`] (once).
pub fn install_gc_sink(sink: fn(Option<usize>)) {
    let _ = GC_SINK.set(sink);
}

/// Whether the binding started runtime metrics (see [`set_info`]): until then scrapes carry none.
pub fn started() -> bool {
    INFO.get().is_some_and(|info| info.python.is_some())
}

/// Constant labels of the info metrics, already escaped.
#[derive(Debug, Clone, Default)]
pub struct Info {
    pub python: Option<Arc<str>>,
    pub last9: Arc<str>,
}

/// Sets the info metrics' labels: the interpreter's (`implementation`, `major`, `minor`,
/// `patchlevel`, `version`, as prometheus_client's `python_info`) and the versions of last9
/// and of the app. Only the first call counts.
pub fn set_info(python: Option<&[(&str, &str)]>, last9_version: &str, service_version: &str) {
    let python = python.map(|pairs| Arc::from(label_text(pairs)));
    let last9 = label_text(&[("version", last9_version), ("service_version", service_version)]);
    let _ = INFO.set(Info {
        python,
        last9: last9.into(),
    });
}

fn label_text(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(&mut out, value);
        out.push('"');
    }
    out
}

/// Starts this process's GC counters from `gc.get_stats()` (which counts since the interpreter
/// began, also before a fork), so that the callback's additions match it.
pub fn seed_gc(stats: &[[u64; 3]]) {
    for (cells, values) in GC_COUNTS.iter().zip(stats) {
        for (cell, value) in cells.iter().zip(values) {
            cell.store(*value, Ordering::Relaxed);
        }
    }
    if let Some(sink) = GC_SINK.get() {
        sink(None);
    }
}

/// One garbage collection of `generation` finished: the `gc.callbacks` "stop" phase.
pub fn gc_collected(generation: usize, collected: u64, uncollectable: u64) {
    let Some(cells) = GC_COUNTS.get(generation) else {
        return;
    };
    cells[0].fetch_add(1, Ordering::Relaxed);
    cells[1].fetch_add(collected, Ordering::Relaxed);
    cells[2].fetch_add(uncollectable, Ordering::Relaxed);
    if let Some(sink) = GC_SINK.get() {
        sink(Some(generation));
    }
}

pub fn own_gc() -> [[u64; 3]; GENERATIONS] {
    std::array::from_fn(|g| std::array::from_fn(|i| GC_COUNTS[g][i].load(Ordering::Relaxed)))
}

/// What `/proc` says of one process, in prometheus_client's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
    pub max_fds: Option<f64>,
}

struct System {
    ticks_per_second: f64,
    page_size: f64,
    boot_time: f64,
}

fn system() -> &'static System {
    static SYSTEM: OnceLock<System> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let boot_time = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                stat.lines()
                    .find_map(|line| line.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0);
        System {
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: if page > 0 { page as f64 } else { 4096.0 },
            boot_time,
        }
    })
}

impl ProcessStats {
    /// Reads a process of this user; None when it is gone (or `/proc` is not there).
    pub fn read(pid: u32) -> Option<ProcessStats> {
        let base = PathBuf::from(format!("/proc/{pid}"));
        let mut stats = ProcessStats::parse_stat(&fs::read_to_string(base.join("stat")).ok()?)?;
        stats.open_fds = fs::read_dir(base.join("fd")).ok()?.count() as f64;
        stats.max_fds = max_fds(pid);
        Some(stats)
    }

    /// `/proc/<pid>/stat`: utime and stime (fields 14, 15), starttime (22), vsize (23), rss (24).
    fn parse_stat(stat: &str) -> Option<ProcessStats> {
        // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<u64>().ok().map(|v| v as f64) };
        let system = system();
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / system.ticks_per_second,
            start_time_seconds: system.boot_time + field(22)? / system.ticks_per_second,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * system.page_size,
            open_fds: 0.0,
            max_fds: None,
        })
    }
}

/// The soft limit on open files of a process of this user: `prlimit`, a syscall, costs a tenth
/// of parsing `/proc/<pid>/limits` (as prometheus_client does).
fn max_fds(pid: u32) -> Option<f64> {
    // SAFETY: all-zero is a valid `rlimit`.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: reads the limit into `limit`; sets nothing (null new limit).
    if unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut limit,
        )
    } != 0
    {
        return None;
    }
    Some(if limit.rlim_cur == libc::RLIM_INFINITY {
        f64::INFINITY
    } else {
        limit.rlim_cur as f64
    })
}

/// One sample with a float value: escaped label text and value.
pub type FloatSample = (Arc<str>, f64);

/// The runtime families of one scrape, ready to encode.
#[derive(Debug, Default, Clone)]
pub struct RuntimeSnapshot {
    pub cpu_seconds: Vec<FloatSample>,
    pub open_fds: Vec<FloatSample>,
    pub max_fds: Vec<FloatSample>,
    pub virtual_bytes: Vec<FloatSample>,
    pub resident_bytes: Vec<FloatSample>,
    pub start_time: Vec<FloatSample>,
    pub gc_collected: Vec<FloatSample>,
    pub gc_uncollectable: Vec<FloatSample>,
    pub gc_collections: Vec<FloatSample>,
    pub python_info: Vec<FloatSample>,
    pub last9_info: Vec<FloatSample>,
    /// Only under a pre-fork server.
    pub worker_starts: Vec<FloatSample>,
    pub worker_exits: Vec<FloatSample>,
}

impl RuntimeSnapshot {
    /// This process alone: series without a `worker` label.
    pub fn single() -> RuntimeSnapshot {
        let mut snapshot = RuntimeSnapshot::default();
        if let Some(stats) = ProcessStats::read(crate::process::pid()) {
            snapshot.push_process(&stats, "");
        }
        snapshot.push_gc(&own_gc(), "");
        snapshot.push_info();
        snapshot
    }

    pub fn push_process(&mut self, stats: &ProcessStats, label: &str) {
        let label: Arc<str> = label.into();
        self.cpu_seconds.push((label.clone(), stats.cpu_seconds));
        self.open_fds.push((label.clone(), stats.open_fds));
        if let Some(max) = stats.max_fds {
            self.max_fds.push((label.clone(), max));
        }
        self.virtual_bytes.push((label.clone(), stats.virtual_bytes));
        self.resident_bytes.push((label.clone(), stats.resident_bytes));
        self.start_time.push((label, stats.start_time_seconds));
    }

    pub fn push_gc(&mut self, gc: &[[u64; 3]; GENERATIONS], worker: &str) {
        for (generation, [collections, collected, uncollectable]) in gc.iter().enumerate() {
            let label: Arc<str> = if worker.is_empty() {
                format!("generation=\"{generation}\"").into()
            } else {
                format!("generation=\"{generation}\",{worker}").into()
            };
            self.gc_collections.push((label.clone(), *collections as f64));
            self.gc_collected.push((label.clone(), *collected as f64));
            self.gc_uncollectable.push((label, *uncollectable as f64));
        }
    }

    pub fn push_info(&mut self) {
        let info = INFO.get_or_init(|| Info {
            python: None,
            last9: label_text(&[("version", env!("CARGO_PKG_VERSION")), ("service_version", "")]).into(),
        });
        if let Some(python) = &info.python {
            self.python_info.push((python.clone(), 1.0));
        } else {
            // Not a Python process (the Rust tests): no GC families either.
            self.gc_collections.clear();
            self.gc_collected.clear();
            self.gc_uncollectable.clear();
        }
        self.last9_info.push((info.last9.clone(), 1.0));
    }
}

/// Renders exposition text that the host keeps (prometheus_client's registry): `openmetrics`
/// says the format; the text carries no `# EOF`.
pub type ForeignSource = Box<dyn Fn(bool) -> Vec<u8> + Send + Sync>;

static FOREIGN: Mutex<Option<Arc<ForeignSource>>> = Mutex::new(None);

/// Sets (or, with None, removes) the source of the host's own families, which scrapes of the
/// global registry carry after last9's.
pub fn set_foreign(source: Option<ForeignSource>) {
    *FOREIGN.lock() = source.map(Arc::new);
}

/// The host's own families in this format; empty when there is no source.
pub fn foreign(openmetrics: bool) -> Vec<u8> {
    let source = FOREIGN.lock().clone();
    source.map_or_else(Vec::new, |render| render(openmetrics))
}

/// Whether a family counts (its samples add `_total`) or measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One runtime family: name (a counter's without `_total`), help, kind and samples.
pub struct RuntimeFamily<'a> {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: &'a [FloatSample],
}

impl RuntimeSnapshot {
    /// The families with samples, in prometheus_client's names and help texts.
    pub fn families(&self) -> Vec<RuntimeFamily<'_>> {
        use Kind::{Counter, Gauge};
        let all = [
            (
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                Counter,
                &self.cpu_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                Gauge,
                &self.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                Gauge,
                &self.max_fds,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Gauge,
                &self.virtual_bytes,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Gauge,
                &self.resident_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                Gauge,
                &self.start_time,
            ),
            (
                "python_gc_objects_collected",
                "Objects collected during gc",
                Counter,
                &self.gc_collected,
            ),
            (
                "python_gc_objects_uncollectable",
                "Uncollectable objects found during GC",
                Counter,
                &self.gc_uncollectable,
            ),
            (
                "python_gc_collections",
                "Number of times this generation was collected",
                Counter,
                &self.gc_collections,
            ),
            (
                "python_info",
                "Python platform information",
                Gauge,
                &self.python_info,
            ),
            (
                "last9_info",
                "Versions of last9 and of the app (LAST9_SERVICE_VERSION)",
                Gauge,
                &self.last9_info,
            ),
            (
                "last9_worker_starts",
                "Workers of this pre-fork server that took a worker slot",
                Counter,
                &self.worker_starts,
            ),
            (
                "last9_worker_exits",
                "Workers of this pre-fork server that are gone",
                Counter,
                &self.worker_exits,
            ),
        ];
        all.into_iter()
            .filter(|(.., samples)| !samples.is_empty())
            .map(|(name, help, kind, samples)| RuntimeFamily {
                name,
                help,
                kind,
                samples: samples.as_slice(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_last_parenthesis() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 1 0 \
                    1000 123456789 2000 18446744073709551615";
        let stats = ProcessStats::parse_stat(stat).expect("parses");
        let system = system();
        assert_eq!(stats.cpu_seconds, 300.0 / system.ticks_per_second);
        assert_eq!(stats.virtual_bytes, 123456789.0);
        assert_eq!(stats.resident_bytes, 2000.0 * system.page_size);
        assert_eq!(
            stats.start_time_seconds,
            system.boot_time + 1000.0 / system.ticks_per_second
        );
        assert_eq!(ProcessStats::parse_stat("12 (x) S 1 2"), None);
    }

    #[test]
    fn max_fds_is_the_soft_limit() {
        let limits = fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .unwrap();
        let soft = line["Max open files".len()..]
            .split_ascii_whitespace()
            .next()
            .unwrap();
        let expected = if soft == "unlimited" {
            f64::INFINITY
        } else {
            soft.parse().unwrap()
        };
        assert_eq!(max_fds(std::process::id()), Some(expected));
    }

    #[test]
    fn this_process_reads_like_prometheus_client_would() {
        let stats = ProcessStats::read(std::process::id()).expect("own /proc");
        assert!(stats.resident_bytes > 0.0 && stats.virtual_bytes >= stats.resident_bytes);
        assert!(stats.open_fds >= 3.0);
        assert!(stats.max_fds.is_some_and(|max| max >= stats.open_fds));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(stats.start_time_seconds <= now + 1.0 && stats.start_time_seconds > now - 3600.0);
    }

    #[test]
    fn label_text_escapes_values() {
        assert_eq!(label_text(&[("a", "x\"y"), ("b", "1")]), "a=\"x\\\"y\",b=\"1\"");
    }
}
