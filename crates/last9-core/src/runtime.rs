//! Runtime metrics: what prometheus_client's default collectors export (`process_*`,
//! `python_gc_*`, `python_info`), read without the GIL, and under a pre-fork server one series
//! per live worker plus the master.
//!
//! - `process_*` come from `/proc/<pid>`: any process of the server can read its siblings', so
//!   the scraping worker reads every live worker's and the master's at scrape time.
//! - `python_gc_*` only the interpreter itself knows: each process counts its collections in
//!   memory (a `gc.callbacks` hook calls [`gc_collected`]) and, under a pre-fork server, copies
//!   them into its worker-slot file, where the scraping worker reads them.
//! - Worker slots ([`Slots`]): a worker takes the lowest free `slot-<k>.run` of the store's
//!   directory and holds an `fcntl` lock on it for its life, so the `worker` label is bounded by
//!   the most workers ever alive at once, not by how often they were restarted. The kernel drops
//!   the lock however the worker dies; the lock also tells the owner's pid.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::exposition::escape_label_value;
use crate::store::file::Fd;

/// Most worker slots a directory may hold; a claim past it goes without a slot.
pub const MAX_SLOTS: usize = 1024;
/// Label value of the server's root process.
pub const MASTER: &str = "master";

const MAGIC: u64 = u64::from_le_bytes(*b"L9SLOT01");
/// Slot record: magic, starts, exits counted, owner pid, then for each generation: collections,
/// objects collected, objects uncollectable. Little-endian u64s.
const WORDS: usize = 4 + GENERATIONS * 3;
const RECORD_LEN: usize = WORDS * 8;
const STARTS: usize = 1;
const EXITS: usize = 2;
const OWNER: usize = 3;
const GC: usize = 4;
pub const GENERATIONS: usize = 3;

/// This process's garbage-collector counters: `[collections, collected, uncollectable]` per
/// generation, as `gc.get_stats()` reports them.
static GC_COUNTS: [[AtomicU64; 3]; GENERATIONS] = [const { [const { AtomicU64::new(0) }; 3] }; GENERATIONS];

/// `python_info`'s and `last9_info`'s label text, set once by the binding.
static INFO: OnceLock<Info> = OnceLock::new();

/// This process's worker slot, when it holds one.
static SLOT: Mutex<Option<OwnSlot>> = Mutex::new(None);

/// Held across a fork (after the store's lock), so that the child finds it free and consistent.
pub(crate) fn lock_for_fork() {
    std::mem::forget(SLOT.lock());
}

/// # Safety
///
/// Only after [`lock_for_fork`], in the parent or the child of the fork.
pub(crate) unsafe fn unlock_after_fork() {
    SLOT.force_unlock();
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
    if let Some(slot) = SLOT.lock().as_ref() {
        slot.write_gc_all();
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
    // try_lock: a collection can start inside any allocation, also while this thread claims.
    if let Some(guard) = SLOT.try_lock() {
        if let Some(slot) = guard.as_ref() {
            slot.write_gc(generation);
        }
    }
}

fn own_gc() -> [[u64; 3]; GENERATIONS] {
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

/// This process's worker slot: its file, locked for the process's life.
struct OwnSlot {
    index: usize,
    dir: PathBuf,
    fd: Fd,
    pid: u32,
}

impl OwnSlot {
    fn write_word(&self, word: usize, value: u64) -> io::Result<()> {
        pwrite_all(&self.fd, &value.to_le_bytes(), word * 8)
    }

    fn write_gc(&self, generation: usize) {
        let cells = &GC_COUNTS[generation];
        let mut bytes = [0u8; 24];
        for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&cells[i].load(Ordering::Relaxed).to_le_bytes());
        }
        let _ = pwrite_all(&self.fd, &bytes, (GC + generation * 3) * 8);
    }

    fn write_gc_all(&self) {
        for generation in 0..GENERATIONS {
            self.write_gc(generation);
        }
    }
}

fn pwrite_all(fd: &Fd, bytes: &[u8], offset: usize) -> io::Result<()> {
    // SAFETY: writing from a valid buffer on an owned descriptor.
    let n = unsafe { libc::pwrite(fd.0, bytes.as_ptr().cast(), bytes.len(), offset as libc::off_t) };
    if n == bytes.len() as isize {
        Ok(())
    } else if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Err(io::Error::new(io::ErrorKind::WriteZero, "short write"))
    }
}

fn whole_file_lock() -> libc::flock {
    // SAFETY: all-zero is a valid `flock` (start 0, length 0: the whole file).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock
}

fn slot_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("slot-{index}.run"))
}

/// Takes a worker slot in `dir` for this process (once per process; a forked child takes its
/// own). Returns its index, or None when every slot up to [`MAX_SLOTS`] is taken or the
/// directory cannot be written.
pub fn claim_slot(dir: &Path) -> Option<usize> {
    let me = crate::store::pid();
    let mut own = SLOT.lock();
    if let Some(slot) = own.as_ref() {
        if slot.pid == me && slot.dir == dir {
            return Some(slot.index);
        }
        // The parent's slot, inherited by a fork: fcntl locks are not, and closing our copy of
        // the descriptor leaves the parent's lock alone.
    }
    *own = None;
    for index in 0..MAX_SLOTS {
        let path = slot_path(dir, index);
        let Ok(fd) = Fd::open(&path, libc::O_RDWR | libc::O_CREAT) else {
            return None;
        };
        let mut lock = whole_file_lock();
        // SAFETY: F_SETLK with a valid `flock`.
        if unsafe { libc::fcntl(fd.0, libc::F_SETLK, &mut lock) } < 0 {
            continue; // a live worker's
        }
        let record = read_record(fd.0).unwrap_or([0; WORDS]);
        let valid = record[0] == MAGIC;
        let (starts, exits) = if valid {
            (record[STARTS], record[EXITS])
        } else {
            (0, 0)
        };
        let slot = OwnSlot {
            index,
            dir: dir.to_path_buf(),
            fd,
            pid: me,
        };
        // In this order, so that a scrape in between never sees a count go backwards (see
        // `read_slot`): the previous owner's exit, the new owner, then its start.
        let written = slot
            .write_word(0, MAGIC)
            .and_then(|()| slot.write_word(EXITS, exits.max(starts)))
            .and_then(|()| slot.write_word(OWNER, u64::from(me)))
            .and_then(|()| slot.write_word(STARTS, starts.max(exits) + 1));
        if written.is_err() {
            return None;
        }
        slot.write_gc_all();
        *own = Some(slot);
        return Some(index);
    }
    None
}

/// This process's slot index, if it holds one.
pub fn own_slot() -> Option<usize> {
    let me = crate::store::pid();
    SLOT.lock()
        .as_ref()
        .filter(|slot| slot.pid == me)
        .map(|slot| slot.index)
}

fn read_record(fd: libc::c_int) -> Option<[u64; WORDS]> {
    let mut bytes = [0u8; RECORD_LEN];
    // SAFETY: reading into a valid buffer from an open descriptor.
    let n = unsafe { libc::pread(fd, bytes.as_mut_ptr().cast(), RECORD_LEN, 0) };
    if n != RECORD_LEN as isize {
        return None;
    }
    let mut words = [0u64; WORDS];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
    }
    Some(words)
}

/// One worker slot as a scrape sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotView {
    pub index: usize,
    /// The live owner's pid, None when the slot is free.
    pub pid: Option<u32>,
    pub starts: u64,
    pub exits: u64,
    pub gc: [[u64; 3]; GENERATIONS],
}

/// Reads another process's slot. Its owner is live when it holds the lock and the record names
/// it; a new owner is counted as started only once it has written its pid, and the previous
/// owner as exited from the moment it lost the lock, so neither count ever goes backwards.
fn read_slot(path: &Path, index: usize) -> Option<SlotView> {
    let fd = Fd::open_ours(path).ok()?;
    let record = read_record(fd.0)?;
    if record[0] != MAGIC {
        return None;
    }
    let mut lock = whole_file_lock();
    // SAFETY: F_GETLK fills in `lock`.
    let locked_by = if unsafe { libc::fcntl(fd.0, libc::F_GETLK, &mut lock) } == 0
        && lock.l_type != libc::F_UNLCK as libc::c_short
    {
        Some(lock.l_pid as u32)
    } else {
        None
    };
    let (starts, counted_exits) = (record[STARTS], record[EXITS].min(record[STARTS]));
    let pid = locked_by.filter(|&pid| u64::from(pid) == record[OWNER] && pid != 0);
    let exits = if pid.is_none() && starts > counted_exits {
        starts // the last owner is gone, and no new one has counted it yet
    } else {
        counted_exits
    };
    let mut gc = [[0u64; 3]; GENERATIONS];
    for (generation, cells) in gc.iter_mut().enumerate() {
        cells.copy_from_slice(&record[GC + generation * 3..GC + generation * 3 + 3]);
    }
    Some(SlotView {
        index,
        pid,
        starts,
        exits,
        gc,
    })
}

/// Every slot of `dir`: this process's from memory (opening its own file would drop its lock),
/// the others from their files.
pub fn slots(dir: &Path) -> Vec<SlotView> {
    let own = SLOT
        .lock()
        .as_ref()
        .filter(|slot| slot.pid == crate::store::pid() && slot.dir == dir)
        .map(|slot| (slot.index, slot.fd.0));
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut views = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| {
                n.strip_prefix("slot-")?
                    .strip_suffix(".run")?
                    .parse::<usize>()
                    .ok()
            })
            .filter(|&i| i < MAX_SLOTS)
        else {
            continue;
        };
        match own {
            Some((own_index, fd)) if own_index == index => {
                let Some(record) = read_record(fd) else { continue };
                views.push(SlotView {
                    index,
                    pid: Some(crate::store::pid()),
                    starts: record[STARTS],
                    exits: record[EXITS],
                    gc: own_gc(),
                });
            }
            _ => views.extend(read_slot(&entry.path(), index)),
        }
        if views.len() >= MAX_SLOTS {
            break;
        }
    }
    views.sort_by_key(|view| view.index);
    views
}

/// The root process of an instance directory named `<pid>-<start time>` (see
/// `store::dir::instance_name`), if it still runs.
pub fn master_of(dir: &Path) -> Option<u32> {
    let name = dir.file_name()?.to_str()?;
    let (pid, start) = name.split_once('-')?;
    let pid: u32 = pid.parse().ok()?;
    (crate::store::dir::start_time(pid)? == start.parse::<u64>().ok()?).then_some(pid)
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
        if let Some(stats) = ProcessStats::read(crate::store::pid()) {
            snapshot.push_process(&stats, "");
        }
        snapshot.push_gc(&own_gc(), "");
        snapshot.push_info();
        snapshot
    }

    /// Every live worker of a pre-fork server's directory and its master, labelled by slot.
    pub fn shared(dir: &Path) -> RuntimeSnapshot {
        let mut snapshot = RuntimeSnapshot::default();
        let slots = slots(dir);
        let master = master_of(dir).filter(|pid| !slots.iter().any(|slot| slot.pid == Some(*pid)));
        if let Some(stats) = master.and_then(ProcessStats::read) {
            snapshot.push_process(&stats, &format!("worker=\"{MASTER}\""));
        }
        let (mut starts, mut exits) = (0u64, 0u64);
        for slot in &slots {
            starts = starts.saturating_add(slot.starts);
            exits = exits.saturating_add(slot.exits);
            let Some(pid) = slot.pid else { continue };
            let label = format!("worker=\"{}\"", slot.index);
            if let Some(stats) = ProcessStats::read(pid) {
                snapshot.push_process(&stats, &label);
            }
            snapshot.push_gc(&slot.gc, &label);
        }
        snapshot.worker_starts.push(("".into(), starts as f64));
        snapshot.worker_exits.push(("".into(), exits as f64));
        snapshot.push_info();
        snapshot
    }

    fn push_process(&mut self, stats: &ProcessStats, label: &str) {
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

    fn push_gc(&mut self, gc: &[[u64; 3]; GENERATIONS], worker: &str) {
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

    fn push_info(&mut self) {
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

    /// The exposition text of these families (Prometheus text 0.0.4, or OpenMetrics without
    /// its closing `# EOF`), to be placed among the other families of a scrape.
    pub fn encode(&self, openmetrics: bool) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut float = ryu::Buffer::new();
        for family in self.families() {
            let suffix = if family.kind == Kind::Counter {
                "_total"
            } else {
                ""
            };
            // Text 0.0.4 names a counter's family with its samples' `_total`; OpenMetrics without.
            let family_name = if openmetrics {
                family.name.to_owned()
            } else {
                format!("{}{suffix}", family.name)
            };
            let kind = if family.kind == Kind::Counter {
                "counter"
            } else {
                "gauge"
            };
            let _ = write!(
                out,
                "# HELP {family_name} {}\n# TYPE {family_name} {kind}\n",
                family.help
            );
            for (labels, value) in family.samples {
                out.push_str(family.name);
                out.push_str(suffix);
                if !labels.is_empty() {
                    out.push('{');
                    out.push_str(labels);
                    out.push('}');
                }
                out.push(' ');
                out.push_str(crate::histogram::float_text(&mut float, *value, openmetrics));
                out.push('\n');
            }
        }
        out.into_bytes()
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
    fn a_slot_record_counts_starts_and_exits_without_going_backwards() {
        let dir = std::env::temp_dir().join(format!("last9-slot-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        let path = slot_path(&dir, 0);
        // A slot whose owner started twice and is gone: two starts, two exits, no pid.
        let mut record = [0u64; WORDS];
        record[0] = MAGIC;
        record[STARTS] = 2;
        record[EXITS] = 1;
        record[OWNER] = 1; // pid 1 holds no lock on it
        record[GC] = 7;
        let bytes: Vec<u8> = record.iter().flat_map(|w| w.to_le_bytes()).collect();
        fs::write(&path, &bytes).unwrap();
        let view = read_slot(&path, 0).expect("valid");
        assert_eq!(
            (view.pid, view.starts, view.exits, view.gc[0][0]),
            (None, 2, 2, 7)
        );
        // A damaged record is skipped, not trusted.
        fs::write(slot_path(&dir, 1), b"L9SLOT01 short").unwrap();
        assert_eq!(read_slot(&slot_path(&dir, 1), 1), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn families_encode_like_prometheus_client() {
        let mut snapshot = RuntimeSnapshot::default();
        snapshot.cpu_seconds.push(("worker=\"0\"".into(), 1.5));
        snapshot.open_fds.push(("worker=\"0\"".into(), 12.0));
        let text = String::from_utf8(snapshot.encode(false)).unwrap();
        assert_eq!(
            text,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total{worker=\"0\"} 1.5\n\
             # HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds{worker=\"0\"} 12\n"
        );
        let openmetrics = String::from_utf8(snapshot.encode(true)).unwrap();
        assert!(openmetrics.starts_with("# HELP process_cpu_seconds Total"));
        assert!(openmetrics
            .contains("# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total{worker=\"0\"} 1.5\n"));
        assert!(openmetrics.contains("process_open_fds{worker=\"0\"} 12.0\n"));
    }

    #[test]
    fn label_text_escapes_values() {
        assert_eq!(label_text(&[("a", "x\"y"), ("b", "1")]), "a=\"x\\\"y\",b=\"1\"");
    }
}
