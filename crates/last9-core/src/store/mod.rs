//! The multi-process store: exact metrics across the workers of a pre-fork server.
//!
//! In multi-process mode each process keeps the cells of the global registry's series in a file
//! of its own, mapped into memory, so recording stays one atomic add; a scrape, in any process,
//! sums every file of the directory by label set ([`merge`]). Files of dead processes are merged
//! into one archive, so neither disk use nor scrape time grows with worker restarts.
//!
//! How a process gets here, with no set-up: the Python side names the server's root process when
//! it sees a gunicorn, uWSGI or uvicorn worker ([`enable`]); and a fork after this crate is loaded
//! sends the child here on its next request (the parent, if it renders, follows at its next
//! scrape once a child has made the directory). A process that never forks and is no worker
//! stays in memory, exactly as before.
//!
//! - [`format`]: the versioned file format;
//! - [`file`]: mapping files, this process's own file, liveness locks;
//! - [`merge`]: the scrape-time merge and compaction;
//! - [`dir`]: where an instance keeps its files.

pub mod dir;
pub mod file;
pub mod format;
pub mod guard;
pub mod merge;
pub mod slots;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::process::ForkMutex;

use self::file::{AppendError, Mapping, Stub, WorkerFile};
use crate::model::body::Body;
use crate::model::gauge::Gauge;
use crate::model::histogram::{Buckets, Histogram};
use crate::model::native::{Extension, ExtensionPlace, NativeSpec, Pending};
use crate::model::registry::SharedCells;
use crate::model::registry::{Limits, Registry};
pub use crate::process::{epoch, pid};
use crate::process::{now_nanos, BORN_NANOS, EPOCH, FORKED, FORKING_PID, PARENT_PID, PID};
use crate::snapshot::{self, SharedSource, Snapshot};

struct State {
    /// Some in multi-process mode.
    dir: Option<PathBuf>,
    /// This process's file, made on its first series; dropped in a forked child.
    file: Option<WorkerFile>,
    /// The layouts written to `file`, by id.
    layouts: Vec<(Vec<f64>, Option<NativeSpec>, Limits)>,
    /// The epoch `dir` and `file` were brought up to.
    epoch: u64,
    full_warned: bool,
    /// Some series of this process are on the heap (its file could not take them), or its file
    /// was cut: they are moved to a new file as soon as one can be made.
    partial: bool,
    /// A new file, not yet published, that the next [`sync`] moves every series into.
    replacement: Option<WorkerFile>,
    /// The file being replaced, until the new one is published.
    retiring: Option<WorkerFile>,
    /// When a replacement was last tried (seconds since the epoch), to try at most once a second.
    last_try: u64,
    /// An empty file standing for this process while it has no real one, so that other
    /// processes' scrapes know their sums miss it.
    stub: Option<Stub>,
}

static STATE: ForkMutex<State> = ForkMutex::new(State {
    dir: None,
    file: None,
    layouts: Vec::new(),
    epoch: 1,
    full_warned: false,
    partial: false,
    replacement: None,
    retiring: None,
    last_try: 0,
    stub: None,
});

/// A pre-fork process could not enter multi-process mode: its scrapes show its own series only.
static UNSHARED: AtomicBool = AtomicBool::new(false);

/// Whether `name` is a worker file this process made (`w-<pid>-<ns>.db`, see
/// [`file::WorkerFile`]). Such a file is never opened again by this process: closing a second
/// descriptor of it would drop the process's lock, and others would take it for dead.
pub(crate) fn is_own_file(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("w-").and_then(|n| n.strip_suffix(".db")) else {
        return false;
    };
    let Some((file_pid, nanos)) = rest.split_once('-') else {
        return false;
    };
    let born = BORN_NANOS.load(Ordering::Relaxed);
    file_pid.parse() == Ok(pid()) && nanos.parse::<u64>().is_ok_and(|n| born != 0 && n >= born)
}

/// The shared directory, in multi-process mode.
pub fn shared_dir() -> Option<PathBuf> {
    STATE.lock().dir.clone()
}

/// Records that this process is one of several workers but could not share a directory with
/// them: its scrapes say so (`last9_store_degraded` 1) until it can.
pub fn mark_unshared() {
    UNSHARED.store(true, Ordering::Relaxed);
}

/// Enters multi-process mode for the global registry: `dir` as given (`LAST9_MULTIPROC_DIR`,
/// which must be a private directory of this user; see [`dir::checked_dir`]), else the instance
/// directory of the server whose root process is `root_pid` (this process when None). Series
/// recorded so far move into this process's file with their counts. Calling it again returns
/// the directory in use.
pub fn enable(dir: Option<&Path>, root_pid: Option<u32>) -> io::Result<PathBuf> {
    {
        let mut state = STATE.lock();
        if let Some(existing) = &state.dir {
            return Ok(existing.clone());
        }
        let dir = match dir {
            Some(dir) => dir::checked_dir(dir)?,
            None => match dir::instance_dir(root_pid.unwrap_or_else(pid)) {
                Ok(dir) => dir,
                Err(e) => {
                    mark_unshared();
                    return Err(e);
                }
            },
        };
        slots::claim_slot(&dir);
        state.dir = Some(dir);
        UNSHARED.store(false, Ordering::Relaxed);
        EPOCH.fetch_add(1, Ordering::SeqCst);
    }
    sync();
    Ok(shared_dir().expect("set above"))
}

/// Brings the store and the global registry's recorders up to the current epoch. In a forked
/// child this drops the parent's file and enters multi-process mode (the instance's root is the
/// parent, unless the parent already had a directory). When a replacement file is ready, every
/// series moves into it with its counts, and it takes the old file's place.
#[cold]
pub fn sync() {
    let epoch = EPOCH.load(Ordering::SeqCst);
    let mut replaced = false;
    {
        let mut state = STATE.lock();
        if state.epoch != epoch {
            let me = pid();
            if state.file.as_ref().is_some_and(|f| f.pid() != me) {
                // The parent's file: its mapping is shared, so writing to it would count twice.
                state.file = None;
                state.layouts.clear();
            }
            if state.replacement.as_ref().is_some_and(|f| f.pid() != me) {
                state.replacement = None;
                state.retiring = None;
            }
            if state.stub.as_ref().is_some_and(|s| s.pid() != me) {
                state.stub = None; // the parent's: closing our copy leaves its lock alone
            }
            let parent = PARENT_PID.load(Ordering::Relaxed);
            if state.dir.is_none() && parent != 0 {
                match dir::instance_dir(parent) {
                    Ok(dir) => state.dir = Some(dir),
                    Err(e) => {
                        mark_unshared();
                        merge::warn(&dir::runtime_base(), &format!("staying single-process: {e}"));
                    }
                }
            }
            if let Some(dir) = &state.dir {
                slots::claim_slot(dir); // a forked child takes a slot of its own
            }
            if let Some(new) = state.replacement.take() {
                state.retiring = state.file.replace(new);
                state.layouts.clear();
                state.partial = false;
                replaced = true;
            }
            state.epoch = epoch;
        }
    }
    for recorder in Registry::global().recorders() {
        recorder.rebind(epoch);
    }
    if replaced {
        publish_replacement();
    }
}

/// Makes a file to move every series of this process into, when its file does not hold them
/// all (some went on the heap, or it was cut); the move happens at the next [`sync`], which
/// this schedules. At most one try a second: while the disk stays full, each try fails at once.
fn plan_replacement(state: &mut State) {
    let cut = state
        .file
        .as_ref()
        .is_some_and(|f| f.pid() == pid() && f.is_cut());
    if cut && !state.partial {
        state.partial = true;
        let path = state
            .file
            .as_ref()
            .map(|f| f.path().to_path_buf())
            .unwrap_or_default();
        merge::notice(format!(
            "last9: {} was cut by another process: the counts it held are lost; moving this process's series to a new file",
            path.display()
        ));
    }
    if !state.partial || state.replacement.is_some() || state.retiring.is_some() {
        return;
    }
    let Some(dir) = state.dir.clone() else { return };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now == state.last_try {
        return;
    }
    state.last_try = now;
    match WorkerFile::create_unpublished(&dir, pid()) {
        Ok(file) => {
            state.replacement = Some(file);
            EPOCH.fetch_add(1, Ordering::SeqCst);
        }
        Err(e) => merge::notice(format!("last9: cannot make a new file in {}: {e}", dir.display())),
    }
}

/// Gives the file that now holds every series its `w-` name, and deletes the one it replaces.
fn publish_replacement() {
    let mut state = STATE.lock();
    let state = &mut *state;
    let (Some(dir), Some(file)) = (state.dir.clone(), state.file.as_mut()) else {
        return;
    };
    let old = state.retiring.as_ref().map(|f| f.path().to_path_buf());
    match merge::replace_file(&dir, file, old.as_deref()) {
        Ok(()) => {
            if let Some(stub) = state.stub.take() {
                stub.remove();
            }
        }
        Err(e) => {
            // Its series stay in this process's memory (the file is gone with the error).
            merge::warn(&dir, &format!("cannot publish this process's new file: {e}"));
            state.file = None;
            state.partial = true;
        }
    }
    state.retiring = None;
}

/// Makes this process's file when it has none yet (a forked child drops its parent's); false
/// when it cannot be made.
fn own_file(state: &mut State, dir: PathBuf) -> bool {
    let dir = &dir;
    let me = pid();
    if !matches!(&state.file, Some(f) if f.pid() == me) {
        state.layouts.clear();
        state.file = match WorkerFile::create(dir, me) {
            Ok(file) => {
                if let Some(stub) = state.stub.take() {
                    stub.remove();
                }
                // A new worker often replaces a dead one: fold the dead ones in now.
                let _ = merge::compact(dir);
                Some(file)
            }
            Err(e) => {
                merge::warn(dir, &format!("cannot make this process's file: {e}"));
                if state.stub.as_ref().is_none_or(|s| s.pid() != me) {
                    state.stub = Stub::create(dir, me).ok();
                }
                None
            }
        };
    }
    state.file.is_some()
}

/// Notes that a series of this process stays on the heap, warns once, and plans to move the
/// process's series to a new file once one can be made.
fn on_heap(state: &mut State, why: &str) {
    state.partial = true;
    if let Some(file) = state.file.as_ref().filter(|f| f.pid() == pid()) {
        file.mark_partial();
    }
    if !state.full_warned {
        state.full_warned = true;
        merge::notice(format!(
            "last9: new series stay in this process only, until its file can take them: {why}"
        ));
    }
    plan_replacement(state);
}

/// The kinds of series whose cells [`place`] puts in this process's file.
#[derive(Clone, Copy)]
enum Placed {
    /// `http_requests_duration_milliseconds`: a HISTOGRAM record.
    Duration,
    /// `http_client_requests_duration_milliseconds` (lineage): a CLIENT record.
    Client,
    /// `http_requests_callers_total` (lineage): a COUNTER record, one cell.
    Callers,
    /// A body-size histogram: a REQUEST_BODY or RESPONSE_BODY record.
    Body(Body),
}

type Keeper = Arc<dyn std::any::Any + Send + Sync>;

/// Appends the record of a new series of the global registry to this process's file, in
/// multi-process mode; returns where its cells are. None: the cells go on the heap (single
/// process, or the file cannot take them: the disk is full, the reserve is used up; then a
/// warning says so once, and the series move to a new file as soon as one can be made).
fn place(
    kind: Placed,
    buckets: &Buckets,
    limits: Limits,
    pairs: &[(&str, &str)],
) -> Option<(std::ptr::NonNull<std::sync::atomic::AtomicU64>, Keeper)> {
    let mut state = STATE.lock();
    let state = &mut *state;
    let dir = state.dir.as_ref()?;
    if !own_file(state, dir.clone()) {
        on_heap(state, "this process has no file");
        return None;
    }
    plan_replacement(state);
    let file = state.file.as_mut()?;
    let bounds = buckets.bounds_ms();
    let native = buckets.native().copied();
    let layout = match state
        .layouts
        .iter()
        .position(|(b, n, l)| b == bounds && *n == native && *l == limits)
    {
        Some(i) => Ok(i),
        None => {
            let mut record = Vec::new();
            let id = state.layouts.len() as u32;
            format::layout_record(
                &mut record,
                id,
                bounds,
                native.as_ref(),
                limits.max_routes as u32,
                limits.max_domains as u32,
            );
            file.append(&record).map(|_| {
                state.layouts.push((bounds.to_vec(), native, limits));
                id as usize
            })
        }
    };
    let (n_labels, labels) = format::encode_labels(pairs.iter().copied());
    let n_cells = match kind {
        Placed::Duration | Placed::Client | Placed::Body(_) => buckets.all_cells(),
        Placed::Callers => 1,
    };
    let mut record = Vec::with_capacity(64 + labels.len() + 8 * n_cells);
    let appended = layout.and_then(|layout| {
        let layout = layout as u32;
        match kind {
            Placed::Duration => {
                format::histogram_record(&mut record, layout, n_labels, &labels, &vec![0; n_cells])
            }
            Placed::Client => {
                format::client_record(&mut record, layout, n_labels, &labels, &vec![0; n_cells])
            }
            Placed::Callers => format::counter_record(&mut record, layout, n_labels, &labels, 0),
            Placed::Body(which) => {
                format::body_record(&mut record, which, layout, n_labels, &labels, &vec![0; n_cells])
            }
        }
        file.append(&record)
    });
    match appended {
        Ok(at) => {
            let (_, cells_at) = format::histogram_record_len(labels.len(), n_cells);
            let keeper: Keeper = file.mapping().clone();
            Some((file.cell_ptr(at + cells_at), keeper))
        }
        Err(err) => {
            on_heap(state, &append_error(err));
            None
        }
    }
}

/// Cells for a new series of the global registry in this process's file, in multi-process
/// mode (see [`place`]). None: the series goes on the heap, counted by this process's own
/// scrapes only. `kind` is any but [`Placed::Callers`].
fn histogram(kind: Placed, buckets: &Buckets, limits: Limits, pairs: &[(&str, &str)]) -> Option<Histogram> {
    let (ptr, keeper) = place(kind, buckets, limits, pairs)?;
    // SAFETY: the record's cells are in the mapping, aligned, and only used atomically.
    // Native buckets past the inline slots grow into NATIVE records of the same file.
    Some(unsafe { Histogram::in_place(buckets, ptr, keeper, Extension::in_place(&IN_FILE)) })
}

/// The cell of a new callers counter: in this process's file in multi-process mode, else on
/// the heap (see [`place`]).
fn counter(buckets: &Buckets, limits: Limits, pairs: &[(&str, &str)]) -> Gauge {
    match place(Placed::Callers, buckets, limits, pairs) {
        // SAFETY: the record's value is in the mapping, aligned, and only used atomically.
        Some((ptr, keeper)) => unsafe { Gauge::in_place(ptr, keeper) },
        None => Gauge::new(),
    }
}

/// Where the native buckets of this process's series grow past their inline slots: a NATIVE
/// record in the file that holds the series (see [`WorkerFile::native_extension`]).
struct InFile;

impl ExtensionPlace for InFile {
    fn allocate(
        &self,
        link: &std::sync::atomic::AtomicU64,
        len: usize,
    ) -> Option<std::ptr::NonNull<std::sync::atomic::AtomicU64>> {
        let mut state = STATE.lock();
        let file = state.file.as_mut().filter(|f| f.pid() == pid())?;
        file.native_extension(link, len)
    }
}

static IN_FILE: Pending = Pending::new(&InFile);

/// The cell of a new gauge of the global registry: in this process's file in multi-process
/// mode, else on the heap (same fallbacks as [`histogram`]).
pub(crate) fn gauge(pairs: &[(&str, &str)]) -> Gauge {
    let mut state = STATE.lock();
    let state = &mut *state;
    let Some(dir) = state.dir.as_ref() else {
        return Gauge::new();
    };
    if !own_file(state, dir.clone()) {
        on_heap(state, "this process has no file");
        return Gauge::new();
    }
    let Some(file) = state.file.as_mut() else {
        return Gauge::new();
    };
    let (n_labels, labels) = format::encode_labels(pairs.iter().copied());
    let mut record = Vec::with_capacity(32 + labels.len());
    format::gauge_record(&mut record, n_labels, &labels, 0);
    match file.append(&record) {
        Ok(at) => {
            let (_, value_at) = format::gauge_record_len(labels.len());
            let ptr = file.cell_ptr(at + value_at);
            let keeper: Arc<dyn std::any::Any + Send + Sync> = file.mapping().clone();
            // SAFETY: the record's value is in the mapping, aligned, and only used atomically.
            unsafe { Gauge::in_place(ptr, keeper) }
        }
        Err(e) => {
            on_heap(state, &append_error(e));
            Gauge::new()
        }
    }
}

fn append_error(err: AppendError) -> String {
    match err {
        AppendError::Full => "the file's reserve is used up".to_string(),
        AppendError::Io(e) => e.to_string(),
    }
}

/// Whether this process's scrapes are known to be partial, for `last9_store_degraded`: None
/// for a process that is not one of several workers.
pub fn degraded() -> Option<bool> {
    UNSHARED.load(Ordering::Relaxed).then_some(true)
}

/// The series of every process of the instance, summed by label set; None in single-process
/// mode.
pub fn snapshot() -> Option<Snapshot> {
    adopt_children();
    let replace = {
        let mut state = STATE.lock();
        if state.dir.is_some() {
            plan_replacement(&mut state);
        }
        state.epoch != EPOCH.load(Ordering::Relaxed)
    };
    if replace {
        sync();
    }
    let (dir, own_files, stub, partial) = {
        let state = STATE.lock();
        let dir = state.dir.clone()?;
        // This process's files are read through their mappings, never opened again (closing
        // another descriptor would drop its lock). The mappings outlive the lock; `used` is read
        // again by the merge.
        let own: Vec<(String, Arc<Mapping>)> = [state.file.as_ref(), state.retiring.as_ref()]
            .into_iter()
            .flatten()
            .filter(|f| f.pid() == pid() && f.is_published())
            .map(|f| (f.name().to_owned(), f.mapping().clone()))
            .collect();
        let stub = state
            .stub
            .as_ref()
            .filter(|s| s.pid() == pid())
            .map(|s| s.name.clone());
        (dir, own, stub, state.partial)
    };
    let mut own: Vec<merge::Own<'_>> = own_files
        .iter()
        .map(|(name, map)| merge::Own {
            name,
            // SAFETY: the header's `used` bounds what is read, and the file is at least that
            // long (were it cut, the mapping is guarded).
            region: Some(unsafe { map.region(map.len()) }),
        })
        .collect();
    own.extend(stub.as_deref().map(|name| merge::Own { name, region: None }));
    let collected = merge::collect(&dir, &own);
    let mut collected = match collected {
        Ok(collected) => collected,
        Err(e) => {
            merge::warn(&dir, &e.to_string());
            let mut snapshot = Snapshot::default();
            snapshot.store_degraded = Some(true);
            return Some(snapshot);
        }
    };
    if collected.dead > 0 {
        let _ = merge::compact(&dir);
    }
    collected.partial |= partial;
    let mut snapshot = collected.merged.snapshot();
    snapshot.store_degraded = Some(collected.partial);
    Some(snapshot)
}

/// A process that loaded this crate, then forked workers that made the instance directory,
/// joins them, so that its own scrapes (e.g. a pre-loading master serving the metrics port)
/// show every worker.
fn adopt_children() {
    if !FORKED.load(Ordering::Relaxed) || STATE.lock().dir.is_some() {
        return;
    }
    if dir::existing_instance_dir(pid()).is_some() {
        let _ = enable(None, None);
    }
}

/// What a higher layer must do in the child of a fork (the metrics server closes its inherited
/// listeners): set once, before [`install_fork_handlers`], and async-signal-safe.
static IN_FORK_CHILD: OnceLock<fn()> = OnceLock::new();

/// Sets the hook [`IN_FORK_CHILD`] runs in a forked child (the first caller's hook wins).
pub fn on_fork_in_child(hook: fn()) {
    let _ = IN_FORK_CHILD.set(hook);
}

/// The store as the global registry's home for cells: it places them in this process's file in
/// multi-process mode (see [`histogram`], [`gauge`], [`sync`]).
struct Store;

impl SharedCells for Store {
    fn sync(&self) {
        sync();
    }

    fn histogram(&self, buckets: &Buckets, limits: Limits, pairs: &[(&str, &str)]) -> Option<Histogram> {
        histogram(Placed::Duration, buckets, limits, pairs)
    }

    fn client_histogram(&self, buckets: &Buckets, limits: Limits, pairs: &[(&str, &str)]) -> Histogram {
        histogram(Placed::Client, buckets, limits, pairs).unwrap_or_else(|| Histogram::new(buckets))
    }

    fn counter(&self, buckets: &Buckets, limits: Limits, pairs: &[(&str, &str)]) -> Gauge {
        counter(buckets, limits, pairs)
    }

    fn body_histogram(
        &self,
        which: Body,
        buckets: &Buckets,
        limits: Limits,
        pairs: &[(&str, &str)],
    ) -> Histogram {
        histogram(Placed::Body(which), buckets, limits, pairs).unwrap_or_else(|| Histogram::new(buckets))
    }

    fn gauge(&self, pairs: &[(&str, &str)]) -> Gauge {
        gauge(pairs)
    }
}

impl Registry {
    /// The registry that middlewares use unless told otherwise. In multi-process mode its
    /// series live in the shared directory and a scrape sums all processes. Defined here, in
    /// the store layer, because the store is what makes it global: the model below knows
    /// nothing of files.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            install_fork_handlers();
            snapshot::install_shared_source(SharedSource {
                snapshot,
                degraded,
                runtime: || shared_dir().map(|dir| slots::shared_runtime(&dir)),
            });
            crate::runtime::install_gc_sink(slots::write_gc);
            Registry::with_shared_cells(&Store)
        })
    }
}

/// Installs the fork handlers (once per process). They keep the store's and the global
/// registry's locks consistent across a fork, and tell a child it is a new process.
pub fn install_fork_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        pid();
        // SAFETY: registering plain functions; they only take locks and store atomics.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child)) };
    });
}

extern "C" fn before_fork() {
    // Same order as everywhere else: recorder tables, the store, the directory's lock file.
    Registry::global().lock_for_fork();
    STATE.hold_across_fork();
    slots::lock_for_fork();
    merge::DIR_IO.hold_across_fork();
    FORKING_PID.store(pid(), Ordering::SeqCst);
}

extern "C" fn after_fork_parent() {
    FORKED.store(true, Ordering::SeqCst);
    crate::process::release_after_fork(); // the directory's lock, the slot, the store
                                          // SAFETY: locked by `before_fork` in this process.
    unsafe { Registry::global().unlock_after_fork() };
}

extern "C" fn after_fork_child() {
    // SAFETY: getpid is async-signal-safe.
    PID.store(unsafe { libc::getpid() } as u32, Ordering::SeqCst);
    // clock_gettime is async-signal-safe.
    BORN_NANOS.store(now_nanos(), Ordering::SeqCst);
    PARENT_PID.store(FORKING_PID.load(Ordering::SeqCst), Ordering::SeqCst);
    FORKED.store(false, Ordering::SeqCst);
    EPOCH.fetch_add(1, Ordering::SeqCst);
    if let Some(hook) = IN_FORK_CHILD.get() {
        hook();
    }
    crate::process::release_after_fork(); // the directory's lock, the slot, the store
                                          // SAFETY: locked by `before_fork` in the parent; the child has only this thread.
    unsafe { Registry::global().unlock_after_fork() };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::registry::{ConstLabels, Request};

    fn count(snapshot: &Snapshot, route: &str) -> u64 {
        snapshot
            .series()
            .iter()
            .filter(|s| s.labels.contains(&format!("per=\"{route}\"")))
            .map(|s| *snapshot.cumulative_counts(s).last().unwrap())
            .sum()
    }

    /// The whole life of a pre-fork server in one test (it is the only one to use the global
    /// registry): counts from before the switch carry over, forked workers are summed, and their
    /// files are archived once they are gone.
    #[test]
    fn forked_workers_are_summed_and_archived() {
        let dir = std::env::temp_dir().join(format!("last9-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let recorder = Registry::global()
            .recorder(
                ConstLabels {
                    program: "store-test".into(),
                    ..Default::default()
                },
                Buckets::new(&[1.0]).unwrap(),
                Limits::default(),
            )
            .unwrap();
        let route = recorder.route("/x");
        let observe = |n: usize| {
            for _ in 0..n {
                let request = Request {
                    route,
                    host: Some("h"),
                    method: "GET",
                    status: 200,
                    duration_ns: 1,
                };
                recorder.observe_with_body_sizes(&request, None, None, Some(100), Some(1000));
                // Lineage: an outbound call, and a caller answered with a 5xx.
                recorder.observe_client(Some(route), "api:80", "GET", "200", 1);
                recorder.count_caller(route, Some("web"), 503);
            }
        };
        let lineage = |snapshot: &Snapshot| {
            let client: u64 = snapshot
                .client_series()
                .iter()
                .map(|s| *snapshot.cumulative_counts(s).last().unwrap())
                .sum();
            let callers: Vec<String> = snapshot
                .callers()
                .iter()
                .map(|(labels, n)| format!("{labels} {n}"))
                .collect();
            (client, callers)
        };
        // (count, bytes) of each body-size family.
        let bodies = |snapshot: &Snapshot| {
            [Body::Request, Body::Response].map(|which| {
                let series = snapshot.body_series(which);
                assert_eq!(series.len(), 1, "one series per label set, summed over files");
                let count = *snapshot.cumulative_counts(&series[0]).last().unwrap();
                (count, series[0].sum_ns / 1_000_000)
            })
        };
        let callers = |n: u64| {
            vec![format!(
                "caller=\"web\",per=\"/x\",status=\"5xx\",hostname=\"\",program=\"store-test\",tenant=\"\",cluster=\"\" {n}"
            )]
        };
        observe(5); // in memory, single-process
        assert_eq!(enable(Some(&dir), None).unwrap(), dir);
        assert_eq!(count(&Snapshot::of(Registry::global()), "/x"), 5);
        assert_eq!(lineage(&Snapshot::of(Registry::global())), (5, callers(5)));
        for _ in 0..3 {
            // SAFETY: the child only records and exits.
            let child = unsafe { libc::fork() };
            if child == 0 {
                observe(10);
                recorder.enter("GET"); // killed mid-request: its gauge must not outlive it

                unsafe { libc::_exit(0) };
            }
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        }
        observe(1);
        recorder.enter("GET");
        let snapshot = Snapshot::of(Registry::global());
        assert_eq!(count(&snapshot, "/x"), 36);
        assert_eq!(lineage(&snapshot), (36, callers(36)), "lineage sums every worker");
        assert_eq!(
            bodies(&snapshot),
            [(36, 3600), (36, 36000)],
            "body sizes sum every worker"
        );
        let in_flight: i64 = snapshot.gauges().iter().map(|(_, v)| v).sum();
        assert_eq!(in_flight, 1, "only the live parent's request is in flight");
        // That scrape archived the three dead workers: the parent's file and the archive remain.
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        // Worker slots: the parent's, and one that the three children took in turn.
        let slot_files: Vec<String> = names.iter().filter(|n| n.starts_with("slot-")).cloned().collect();
        assert_eq!(slot_files, ["slot-0.run", "slot-1.run"]);
        names.retain(|n| !n.starts_with("slot-"));
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(names[0], merge::ARCHIVE);
        assert_eq!(count(&Snapshot::of(Registry::global()), "/x"), 36);
        assert_eq!(
            lineage(&Snapshot::of(Registry::global())),
            (36, callers(36)),
            "the archive keeps dead workers' lineage"
        );
        assert_eq!(
            bodies(&Snapshot::of(Registry::global())),
            [(36, 3600), (36, 36000)],
            "the archive keeps dead workers' body sizes"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
