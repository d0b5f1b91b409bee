//! Reading a store directory: the merge done at scrape time, and compaction of dead workers'
//! files into one archive.
//!
//! Readers hold a shared `flock` on `<dir>/.lock` while they list and read; compaction holds it
//! exclusively while it replaces `archive.db` and deletes the files it absorbed. The archive also
//! names the files it absorbed, so a compactor killed between the rename and the deletes never
//! makes a reader count a dead worker twice.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ahash::{AHashMap, AHashSet};

use super::file::{write_atomically, Fd, Mapping, WorkerFile};
use super::format::{self, labels_iter, Layout, Record, Region};
use std::sync::Arc;

use crate::model::body::Body;
use crate::model::exemplar::{latest_per_bucket, Exemplar, ExemplarCells, EXEMPLAR_CELLS};
use crate::model::histogram::Buckets;
use crate::model::lineage::{OVERFLOW_VALUE, UNKNOWN_CALLER};
use crate::model::native::{
    Extension, NativeBuckets, NativeCells, NativeSpec, Overflow, EXTENSION_AT, SMALL_EXTENSION_SLOTS,
};
use crate::model::registry::{DOMAIN_OVERFLOW, ROUTE_OVERFLOW};
use crate::snapshot::Snapshot;
use crate::values::escape::escape_label_value;

pub const ARCHIVE: &str = "archive.db";

/// Held while this process has the directory's lock file open. The fork handler takes it too:
/// a child must not inherit an open lock file, whose `flock` it would then share forever.
pub(crate) static DIR_IO: crate::process::ForkMutex<()> = crate::process::ForkMutex::new(());
const LOCK: &str = ".lock";
/// Temporary files of workers that died while creating them are removed after this long.
const STALE_TEMP_SECS: u64 = 60;

/// Warns once per file and reason, on stderr: a scrape may run on a thread without Python.
pub fn warn(path: &Path, why: &str) {
    notice(format!("last9: skipping {}: {why}", path.display()));
}

/// Prints `message` on stderr, once per distinct message.
pub fn notice(message: String) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashSet::new);
    if seen.len() < 1000 && seen.insert(message.clone()) {
        eprintln!("{message}");
    }
}

struct MergedLayout {
    bounds: Vec<f64>,
    native: Option<NativeSpec>,
    max_routes: u32,
    max_domains: u32,
    buckets: Arc<Buckets>,
    /// Labels block → index in `Merged::series`, per [`Family`].
    index: [AHashMap<Box<[u8]>, usize>; 4],
    /// The values admitted under the caps, per program (each recorder has caps of its own).
    caps: AHashMap<Box<str>, Admitted>,
}

/// Distinct values of the capped labels, tracked only when caps are applied.
#[derive(Default)]
struct Admitted {
    routes: AHashSet<Box<str>>,
    domains: AHashSet<Box<str>>,
    /// Lineage's `upstream` and `caller`, capped like `domain`.
    upstreams: AHashSet<Box<str>>,
    callers: AHashSet<Box<str>>,
}

impl Admitted {
    /// Admits `value` of label `name` under the caps `(max_routes, max_domains)`: None when it
    /// stays (a label without a cap, a value already in, or room left), else the overflow value
    /// it becomes.
    fn admit(&mut self, caps: (u32, u32), name: &str, value: &str) -> Option<&'static str> {
        let (max_routes, max_domains) = caps;
        let (seen, cap, overflow) = match name {
            "per" => (&mut self.routes, max_routes, ROUTE_OVERFLOW),
            "domain" => (&mut self.domains, max_domains, DOMAIN_OVERFLOW),
            // Lineage's own caps (see `model::lineage`): upstreams and callers.
            "upstream" => (&mut self.upstreams, max_domains, OVERFLOW_VALUE),
            "caller" => (&mut self.callers, max_domains, OVERFLOW_VALUE),
            _ => return None,
        };
        let exempt = name == "caller" && value == UNKNOWN_CALLER;
        if value == overflow || exempt || seen.contains(value) {
            None
        } else if seen.len() < cap as usize {
            seen.insert(value.into());
            None
        } else {
            Some(overflow)
        }
    }
}

/// Which histogram family a merged series belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    /// `http_requests_duration_milliseconds` (HISTOGRAM records).
    Duration = 0,
    /// `http_client_requests_duration_milliseconds` (CLIENT records).
    Client = 1,
    /// `http_request_body_size_bytes` (REQUEST_BODY records).
    RequestBody = 2,
    /// `http_response_body_size_bytes` (RESPONSE_BODY records).
    ResponseBody = 3,
}

impl Family {
    fn body(which: Body) -> Family {
        match which {
            Body::Request => Family::RequestBody,
            Body::Response => Family::ResponseBody,
        }
    }
}

/// A series of the callers counter, summed over files.
struct MergedCounter {
    layout: usize,
    n_labels: u16,
    labels: Box<[u8]>,
    value: u64,
}

struct MergedSeries {
    family: Family,
    layout: usize,
    n_labels: u16,
    labels: Box<[u8]>,
    /// Per-bucket counts, `+Inf`, then the sum in nanoseconds.
    cells: Vec<u64>,
    /// The native buckets, summed at the coarsest schema among the files.
    native: Option<NativeBuckets>,
    /// The latest exemplar of each file, with its classic bucket.
    exemplars: Vec<(usize, Exemplar)>,
}

/// Series summed by label set over any number of files.
#[derive(Default)]
pub struct Merged {
    layouts: Vec<MergedLayout>,
    series: Vec<MergedSeries>,
    /// Apply the label caps of each layout: in the archive, whose dead workers add up, and in a
    /// scrape, whose live workers each admitted up to the caps (see [`collect`]).
    capped: bool,
    /// Gauges of live processes, summed by labels block (never archived).
    gauge_index: AHashMap<Box<[u8]>, usize>,
    gauges: Vec<(u16, Box<[u8]>, i64)>,
    /// Callers counters, summed by labels block (live and dead processes, like histograms).
    counter_index: AHashMap<Box<[u8]>, usize>,
    counters: Vec<MergedCounter>,
}

impl Merged {
    pub fn new() -> Merged {
        Merged::default()
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    fn layout_index(&mut self, layout: &Layout) -> usize {
        if let Some(i) = self
            .layouts
            .iter()
            .position(|l| l.bounds == layout.bounds && l.native == layout.native)
        {
            return i;
        }
        let classic = if layout.bounds.is_empty() {
            Buckets::none()
        } else {
            Buckets::new(&layout.bounds).expect("bounds were validated when read")
        };
        self.layouts.push(MergedLayout {
            bounds: layout.bounds.clone(),
            native: layout.native,
            max_routes: layout.max_routes,
            max_domains: layout.max_domains,
            buckets: Arc::new(classic.with_native(layout.native)),
            index: Default::default(),
            caps: AHashMap::new(),
        });
        self.layouts.len() - 1
    }

    /// Adds every histogram of a file, and its gauges when `live` (the state of a dead process
    /// is gone with it). The whole file is checked first, so a damaged file adds nothing.
    /// Returns the worker files an archive says it absorbed.
    pub fn add_file<'a>(&mut self, region: &Region<'a>, live: bool) -> Result<Vec<&'a str>, String> {
        let (_, used) = region.header()?;
        let records = region.records(used)?;
        let mut file_layouts: AHashMap<u32, usize> = AHashMap::new();
        let mut checked_layouts: AHashMap<u32, usize> = AHashMap::new();
        for record in &records {
            match record {
                Record::Layout(l) => {
                    checked_layouts.insert(l.id, format::histogram_cells(l.bounds.len(), l.native.as_ref()));
                }
                Record::Histogram { layout, cells, .. }
                | Record::Client { layout, cells, .. }
                | Record::Body { layout, cells, .. } => match checked_layouts.get(layout) {
                    Some(&n) if cells.len() == n => {}
                    _ => return Err("a histogram whose layout is missing or does not fit".into()),
                },
                Record::Counter { layout, .. } if !checked_layouts.contains_key(layout) => {
                    return Err("a counter whose layout is missing".into());
                }
                Record::Absorbed(_) | Record::Gauge { .. } | Record::Counter { .. } => {}
            }
        }
        let mut absorbed = Vec::new();
        let mut values = Vec::with_capacity(64);
        for record in records {
            match record {
                Record::Layout(l) => {
                    let i = self.layout_index(&l);
                    file_layouts.insert(l.id, i);
                }
                Record::Histogram {
                    layout,
                    n_labels,
                    labels,
                    cells,
                    cells_at,
                } => self.add_cells(
                    Family::Duration,
                    region,
                    file_layouts[&layout],
                    (n_labels, labels),
                    (cells, cells_at),
                    &mut values,
                ),
                Record::Client {
                    layout,
                    n_labels,
                    labels,
                    cells,
                    cells_at,
                } => self.add_cells(
                    Family::Client,
                    region,
                    file_layouts[&layout],
                    (n_labels, labels),
                    (cells, cells_at),
                    &mut values,
                ),
                Record::Body {
                    which,
                    layout,
                    n_labels,
                    labels,
                    cells,
                    cells_at,
                } => self.add_cells(
                    Family::body(which),
                    region,
                    file_layouts[&layout],
                    (n_labels, labels),
                    (cells, cells_at),
                    &mut values,
                ),
                Record::Counter {
                    layout,
                    n_labels,
                    labels,
                    value,
                } => self.add_counter(
                    file_layouts[&layout],
                    n_labels,
                    labels,
                    value.load(Ordering::Relaxed),
                ),
                Record::Absorbed(name) => absorbed.push(name),
                Record::Gauge {
                    n_labels,
                    labels,
                    value,
                } if live => {
                    let value = value.load(Ordering::Relaxed) as i64;
                    match self.gauge_index.get(labels) {
                        Some(&i) => self.gauges[i].2 = self.gauges[i].2.wrapping_add(value),
                        None => {
                            self.gauge_index.insert(labels.into(), self.gauges.len());
                            self.gauges.push((n_labels, labels.into(), value));
                        }
                    }
                }
                Record::Gauge { .. } => {}
            }
        }
        Ok(absorbed)
    }

    /// Adds the cells of one HISTOGRAM or CLIENT record (checked to fit its layout).
    /// Adds a histogram-shaped record's cells (at `cells_at` in `region`, whose NATIVE records
    /// hold the native buckets past the inline slots) to the series of `family`.
    fn add_cells(
        &mut self,
        family: Family,
        region: &Region<'_>,
        layout: usize,
        (n_labels, labels): (u16, &[u8]),
        (cells, cells_at): (&[AtomicU64], usize),
        values: &mut Vec<u64>,
    ) {
        let classic = self.layouts[layout].bounds.len() + 2;
        values.clear();
        values.extend(cells[..classic].iter().map(|c| c.load(Ordering::Relaxed)));
        let native = self.layouts[layout].native.as_ref().map(|spec| {
            let own = &cells[classic..classic + spec.cells()];
            let link_at = cells_at + 8 * (classic + EXTENSION_AT);
            let tables = native_tables(region, &own[EXTENSION_AT], link_at, spec);
            NativeCells::new(spec, own, Overflow::Found(tables)).read()
        });
        let exemplar = ExemplarCells(&cells[cells.len() - EXEMPLAR_CELLS..]).read();
        self.add_series(family, layout, n_labels, labels, values, native, exemplar);
    }

    fn add_counter(&mut self, layout: usize, n_labels: u16, labels: &[u8], value: u64) {
        let folded;
        // A labels block already summed passed the caps as it is (see `add_series`).
        let labels = if self.capped && !self.counter_index.contains_key(labels) {
            folded = self.fold(layout, n_labels, labels);
            folded.as_deref().unwrap_or(labels)
        } else {
            labels
        };
        match self.counter_index.get(labels) {
            Some(&i) => self.counters[i].value = self.counters[i].value.wrapping_add(value),
            None => {
                self.counter_index.insert(labels.into(), self.counters.len());
                self.counters.push(MergedCounter {
                    layout,
                    n_labels,
                    labels: labels.into(),
                    value,
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_series(
        &mut self,
        family: Family,
        layout: usize,
        n_labels: u16,
        labels: &[u8],
        values: &[u64],
        native: Option<NativeBuckets>,
        exemplar: Option<(usize, Exemplar)>,
    ) {
        let folded;
        // A labels block already summed passed the caps as it is: its values were admitted, or
        // are overflow values. So the caps cost only each distinct series' first file.
        let seen = self.layouts[layout].index[family as usize].contains_key(labels);
        let labels = if self.capped && !seen {
            folded = self.fold(layout, n_labels, labels);
            folded.as_deref().unwrap_or(labels)
        } else {
            labels
        };
        let merged_layout = &mut self.layouts[layout];
        let index = &mut merged_layout.index[family as usize];
        match index.get(labels) {
            Some(&i) => {
                let series = &mut self.series[i];
                for (cell, v) in series.cells.iter_mut().zip(values) {
                    *cell = cell.wrapping_add(*v);
                }
                match (&mut series.native, native) {
                    (Some(sum), Some(more)) => sum.add(&more),
                    (sum @ None, more) => *sum = more,
                    _ => {}
                }
                series.exemplars.extend(exemplar);
            }
            None => {
                let labels: Box<[u8]> = labels.into();
                index.insert(labels.clone(), self.series.len());
                self.series.push(MergedSeries {
                    family,
                    layout,
                    n_labels,
                    labels,
                    cells: values.to_vec(),
                    native,
                    exemplars: exemplar.into_iter().collect(),
                });
            }
        }
    }

    /// Past a layout's caps, new `per` and `domain` values become the overflow values, so the
    /// archive stays bounded however many workers came and went. Returns the re-encoded labels
    /// when something changed.
    fn fold(&mut self, layout: usize, n_labels: u16, labels: &[u8]) -> Option<Vec<u8>> {
        let l = &mut self.layouts[layout];
        let caps = (l.max_routes, l.max_domains);
        let program = labels_iter(labels, n_labels)
            .map_while(Result::ok)
            .find(|(name, _)| *name == "program")
            .map_or("", |(_, value)| value);
        if !l.caps.contains_key(program) {
            l.caps.insert(program.into(), Admitted::default());
        }
        let admitted = l.caps.get_mut(program).expect("inserted above");
        // A first pass admits values and allocates nothing unless a label must change (the
        // common case, on every scrape); the second sees the same answers, since a value left
        // out found its set full and sets only grow.
        let mut changed = false;
        for pair in labels_iter(labels, n_labels) {
            let (name, value) = pair.ok()?;
            changed |= admitted.admit(caps, name, value).is_some();
        }
        if !changed {
            return None;
        }
        let pairs = labels_iter(labels, n_labels)
            .map_while(Result::ok)
            .map(|(name, value)| (name, admitted.admit(caps, name, value).unwrap_or(value)));
        Some(format::encode_labels(pairs).1)
    }

    /// The merged series, in the order they were first seen, with their label text escaped.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut text = String::with_capacity(256);
        for series in &self.series {
            let layout = &self.layouts[series.layout];
            label_text(&mut text, &series.labels, series.n_labels);
            let n = series.cells.len() - 1;
            let mut native = series.native.clone();
            if let (Some(native), Some(spec)) = (&mut native, &layout.native) {
                native.limit(spec.max_buckets());
            }
            let exemplars = latest_per_bucket(n, series.exemplars.iter().copied());
            let (labels, counts, sum_ns) = (
                text.as_str().into(),
                series.cells[..n].iter().copied(),
                series.cells[n],
            );
            match series.family {
                Family::Duration => {
                    snapshot.push_series(labels, layout.buckets.clone(), counts, sum_ns, native, exemplars)
                }
                Family::Client => snapshot.push_client_series(
                    labels,
                    layout.buckets.clone(),
                    counts,
                    sum_ns,
                    native,
                    exemplars,
                ),
                Family::RequestBody | Family::ResponseBody => snapshot.push_body_series(
                    if series.family == Family::RequestBody {
                        Body::Request
                    } else {
                        Body::Response
                    },
                    labels,
                    layout.buckets.clone(),
                    counts,
                    sum_ns,
                ),
            }
        }
        for counter in &self.counters {
            label_text(&mut text, &counter.labels, counter.n_labels);
            snapshot.push_caller(text.as_str().into(), counter.value);
        }
        for (n_labels, labels, value) in &self.gauges {
            label_text(&mut text, labels, *n_labels);
            snapshot.push_gauge(text.as_str().into(), *value);
        }
        snapshot
    }

    /// The archive file holding these series, naming the worker files it absorbed.
    fn to_archive(&self, absorbed: &[String]) -> Vec<u8> {
        let mut out = format::header(format::FILE_ARCHIVE, std::process::id()).to_vec();
        for (id, l) in self.layouts.iter().enumerate() {
            format::layout_record(
                &mut out,
                id as u32,
                &l.bounds,
                l.native.as_ref(),
                l.max_routes,
                l.max_domains,
            );
        }
        for s in &self.series {
            let (mut cells, tables) = archive_cells(s, self.layouts[s.layout].native.as_ref());
            let (len, cells_at) = format::histogram_record_len(s.labels.len(), cells.len());
            // Each NATIVE record follows the record whose cell links to it.
            let link = self.layouts[s.layout].bounds.len() + 2 + EXTENSION_AT;
            let mut link_at = out.len() + cells_at + 8 * link;
            let mut next_at = out.len() + len;
            if tables.iter().any(Option::is_some) {
                cells[link] = next_at as u64;
            }
            let (layout, labels) = (s.layout as u32, &s.labels);
            match s.family {
                Family::Duration => format::histogram_record(&mut out, layout, s.n_labels, labels, &cells),
                Family::Client => format::client_record(&mut out, layout, s.n_labels, labels, &cells),
                Family::RequestBody => {
                    format::body_record(&mut out, Body::Request, layout, s.n_labels, labels, &cells)
                }
                Family::ResponseBody => {
                    format::body_record(&mut out, Body::Response, layout, s.n_labels, labels, &cells)
                }
            }
            for (i, table) in tables.iter().enumerate() {
                let Some(slots) = table else { break };
                let mut record = vec![0u64; slots.len() + 1];
                record[1..].copy_from_slice(slots);
                let (record_len, record_cells) = format::native_record_len(slots.len());
                if tables.get(i + 1).is_some_and(Option::is_some) {
                    record[0] = (next_at + record_len) as u64;
                }
                format::native_record(&mut out, link_at, &record);
                link_at = next_at + record_cells;
                next_at += record_len;
            }
        }
        for c in &self.counters {
            format::counter_record(&mut out, c.layout as u32, c.n_labels, &c.labels, c.value);
        }
        for name in absorbed {
            format::absorbed_record(&mut out, name);
        }
        let used = out.len() as u64;
        out[format::USED_OFFSET..format::USED_OFFSET + 8].copy_from_slice(&used.to_ne_bytes());
        out
    }
}

/// The cells of a merged series as a HISTOGRAM record holds them: classic counts and sum, the
/// native buckets rebuilt in cells of `native`'s shape, the latest exemplar; and the slots of
/// its NATIVE record when the buckets need one.
fn archive_cells(series: &MergedSeries, native: Option<&NativeSpec>) -> (Vec<u64>, [Option<Vec<u64>>; 2]) {
    let n_native = native.map_or(0, NativeSpec::cells);
    let extra: Vec<std::sync::atomic::AtomicU64> = (0..n_native + EXEMPLAR_CELLS)
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect();
    let extension = Extension::default();
    if let (Some(spec), Some(buckets)) = (native, &series.native) {
        NativeCells::new(spec, &extra[..n_native], Overflow::Grows(&extension)).add(buckets);
    }
    let latest = series
        .exemplars
        .iter()
        .max_by(|a, b| a.1.timestamp.total_cmp(&b.1.timestamp));
    if let Some((bucket, exemplar)) = latest {
        ExemplarCells(&extra[n_native..]).put(*bucket, exemplar);
    }
    let mut cells = series.cells.clone();
    cells.extend(extra.iter().map(|c| c.load(Ordering::Relaxed)));
    let tables = extension
        .slots()
        .map(|table| table.map(|slots| slots.iter().map(|c| c.load(Ordering::Relaxed)).collect()));
    (cells, tables)
}

/// The slots of a series' NATIVE records in a file: the small table linked from `link` (at
/// offset `link_at`), and the large one linked from the small one's link cell.
fn native_tables<'a>(
    region: &Region<'a>,
    link: &AtomicU64,
    link_at: usize,
    spec: &NativeSpec,
) -> [Option<&'a [AtomicU64]>; 2] {
    let linked = |link: &AtomicU64, link_at: usize, len: usize| -> Option<(usize, &'a [AtomicU64])> {
        let at = link.load(Ordering::Acquire);
        let cells = region.native_slots(at, link_at, len)?;
        Some((at as usize + format::native_record_len(len).1, cells))
    };
    let small = linked(link, link_at, SMALL_EXTENSION_SLOTS);
    let large = small.and_then(|(at, cells)| linked(&cells[0], at, spec.extension_len()));
    [small.map(|(_, c)| &c[1..]), large.map(|(_, c)| &c[1..])]
}

/// The escaped label text (`a="1",b="2"`) of a labels block, into `text`.
fn label_text(text: &mut String, labels: &[u8], n_labels: u16) {
    text.clear();
    for (i, pair) in labels_iter(labels, n_labels).enumerate() {
        let Ok((name, value)) = pair else { break };
        if i > 0 {
            text.push(',');
        }
        text.push_str(name);
        text.push_str("=\"");
        escape_label_value(text, value);
        text.push('"');
    }
}

/// The lock file of a directory, opened (and made) for `flock`.
fn lock_file(dir: &Path) -> io::Result<Fd> {
    Fd::open(&dir.join(LOCK), libc::O_RDWR | libc::O_CREAT)
}

/// Worker file names in a directory, oldest first (by the birth time in `w-<pid>-<ns>.db`), so
/// merges are in a stable order and a scrape's caps admit the values of the longest-lived
/// workers first: a new worker never pushes a value out of the scrape.
fn worker_files(dir: &Path) -> io::Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| format::is_worker_file_name(n))
        .collect();
    let born = |name: &str| -> u64 {
        let stem = name.strip_suffix(".db").unwrap_or(name);
        stem.rsplit('-')
            .next()
            .and_then(|ns| ns.parse().ok())
            .unwrap_or(0)
    };
    names.sort_by(|a, b| born(a).cmp(&born(b)).then_with(|| a.cmp(b)));
    Ok(names)
}

/// What a scrape read.
pub struct Collected {
    pub merged: Merged,
    /// Worker files whose process is gone: compaction would shrink the directory.
    pub dead: usize,
    /// The sums are known to be partial: a file was skipped, or a live process says its file
    /// does not hold all its series.
    pub partial: bool,
}

/// A file of this process, read through its writable mapping rather than opened again (closing
/// another descriptor of it would drop this process's `fcntl` lock); None for a stub.
pub struct Own<'a> {
    pub name: &'a str,
    pub region: Option<Region<'a>>,
}

/// Sums the archive and every live or dead worker file of `dir`. Each worker caps its labels
/// on its own; the sum is capped again, the archive's values first and then the oldest
/// workers', so a scrape holds at most the configured caps however many workers there are.
pub fn collect(dir: &Path, own: &[Own<'_>]) -> io::Result<Collected> {
    let _io = DIR_IO.lock();
    let lock = lock_file(dir)?;
    lock.flock(libc::LOCK_SH)?;
    let mut merged = Merged {
        capped: true,
        ..Merged::default()
    };
    let mut partial = false;
    let mut absorbed: AHashSet<String> = AHashSet::new();
    let archive_path = dir.join(ARCHIVE);
    match Mapping::open_read(&archive_path) {
        Ok(map) => {
            // SAFETY: the mapping covers the file; archives are never written in place.
            let region = unsafe { map.region(map.len()) };
            match merged.add_file(&region, false) {
                Ok(names) => absorbed.extend(names.into_iter().map(String::from)),
                Err(why) => skip(&mut partial, &archive_path, &why),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => skip(&mut partial, &archive_path, &e.to_string()),
    }
    let mut dead = 0;
    for name in worker_files(dir)? {
        if absorbed.contains(&name) {
            continue;
        }
        if let Some(own) = own.iter().find(|o| o.name == name) {
            match &own.region {
                Some(region) => {
                    if let Err(why) = merged.add_file(region, true) {
                        skip(&mut partial, &dir.join(&name), &why);
                    }
                }
                None => partial = true,
            }
            continue;
        }
        if super::is_own_file(&name) {
            continue; // made by another thread of this process since `own` was taken
        }
        let path = dir.join(&name);
        let map = match Mapping::open_read(&path) {
            Ok(map) => map,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                skip(&mut partial, &path, &e.to_string());
                continue;
            }
        };
        // SAFETY: the mapping covers the file as it was when opened; `records` checks `used`.
        let region = unsafe { map.region(map.len()) };
        let live = map.fd().is_locked_by_another();
        if let Err(why) = merged.add_file(&region, live) {
            skip(&mut partial, &path, &why);
        }
        if live && region.flags() & format::FLAG_PARTIAL != 0 {
            partial = true;
        }
        if map.faulted() {
            skip(&mut partial, &path, "cut while it was read");
        }
        if !live {
            dead += 1;
        }
    }
    drop(lock);
    Ok(Collected {
        merged,
        dead,
        partial,
    })
}

/// Warns that a file was left out of a scrape, which makes its sums partial.
fn skip(partial: &mut bool, path: &Path, why: &str) {
    warn(path, why);
    *partial = true;
}

/// Publishes `new` (made under its temporary name) and deletes `old`, under the directory's
/// exclusive lock: a scrape counts one or the other, never both and never neither.
pub fn replace_file(dir: &Path, new: &mut WorkerFile, old: Option<&Path>) -> io::Result<()> {
    let _io = DIR_IO.lock();
    let lock = lock_file(dir)?;
    lock.flock(libc::LOCK_EX)?;
    new.publish(dir)?;
    if let Some(old) = old {
        let _ = fs::remove_file(old);
    }
    Ok(())
}

/// Merges the files of dead workers into the archive and deletes them (a dead worker's file that
/// cannot be read is deleted too, keeping the directory bounded). This process's own files are
/// never touched. Does nothing (returns false) when another process is compacting.
pub fn compact(dir: &Path) -> io::Result<bool> {
    let _io = DIR_IO.lock();
    let lock = lock_file(dir)?;
    match lock.flock(libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
        Err(e) => return Err(e),
    }
    let mut archive = Merged {
        capped: true,
        ..Merged::default()
    };
    let names = worker_files(dir)?;
    let present: AHashSet<&str> = names.iter().map(String::as_str).collect();
    // Files a previous compaction absorbed but did not get to delete.
    let mut absorbed: Vec<String> = Vec::new();
    let archive_path = dir.join(ARCHIVE);
    match Mapping::open_read(&archive_path) {
        Ok(map) => {
            // SAFETY: as in `collect`.
            let region = unsafe { map.region(map.len()) };
            match archive.add_file(&region, false) {
                Ok(names) => absorbed.extend(
                    names
                        .into_iter()
                        .filter(|n| present.contains(n))
                        .map(String::from),
                ),
                Err(why) => {
                    warn(&archive_path, &why);
                    let _ = fs::rename(&archive_path, dir.join("archive.db.corrupt"));
                    archive = Merged {
                        capped: true,
                        ..Merged::default()
                    };
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            // Not a file of ours (a symlink, a FIFO, another owner): set it aside, start afresh.
            warn(&archive_path, &e.to_string());
            let _ = fs::rename(&archive_path, dir.join("archive.db.corrupt"));
        }
    }
    let leftovers = absorbed.len();
    for name in &names {
        if super::is_own_file(name) || absorbed.contains(name) {
            continue;
        }
        let path = dir.join(name);
        match Fd::open_ours(&path) {
            Ok(fd) if !fd.is_locked_by_another() => {}
            _ => continue, // alive, gone, or not ours to delete
        }
        match Mapping::open_read(&path) {
            Ok(map) => {
                // SAFETY: its writer is gone, so nothing changes under us.
                let region = unsafe { map.region(map.len()) };
                if let Err(why) = archive.add_file(&region, false) {
                    // Readers skip it too; deleting it keeps the directory bounded.
                    warn(&path, &why);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {} // empty (a stub) or damaged: nothing to keep
        }
        absorbed.push(name.clone());
    }
    remove_stale_temporaries(dir);
    if absorbed.is_empty() {
        return Ok(false);
    }
    if absorbed.len() > leftovers {
        write_atomically(dir, ARCHIVE, &archive.to_archive(&absorbed))?;
    }
    for name in &absorbed {
        let _ = fs::remove_file(dir.join(name));
    }
    drop(lock);
    Ok(true)
}

/// Removes `.new-*` files of workers that died while creating their file, and archives that
/// compactors did not live to rename.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let archive_temp = name.starts_with(&format!(".{ARCHIVE}.")) && name.ends_with(".tmp");
        if !name.starts_with(".new-") && !archive_temp {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > STALE_TEMP_SECS);
        let path: PathBuf = entry.path();
        // Opened only when old: closing a descriptor of a file drops its owner's lock, should
        // that be this process.
        if old && Fd::open_ours(&path).is_ok_and(|fd| !fd.is_locked_by_another()) {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Format;
    use crate::encoding::{encode_families, Family};
    use crate::store::file::WorkerFile;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("last9-merge-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A worker file (of a process that is gone once it is dropped) with one series per route,
    /// each with `count` observations in the first bucket.
    fn worker(dir: &Path, routes: &[&str], count: u64) -> WorkerFile {
        let mut file = WorkerFile::create(dir, 4242).unwrap();
        let mut rec = Vec::new();
        format::layout_record(&mut rec, 0, &[1.0, 2.0], None, 3, 3);
        file.append(&rec).unwrap();
        for route in routes {
            let (n, labels) = format::encode_labels([("per", *route), ("status", "200")]);
            let mut rec = Vec::new();
            let mut cells = vec![count, 0, 0, count * 500_000];
            cells.resize(format::histogram_cells(2, None), 0);
            format::histogram_record(&mut rec, 0, n, &labels, &cells);
            file.append(&rec).unwrap();
        }
        file
    }

    fn render(merged: &Merged) -> String {
        let snapshot = merged.snapshot();
        let families = [Family::duration(&snapshot)];
        String::from_utf8(encode_families(&families, Format::Text)).unwrap()
    }

    fn counts(dir: &Path) -> Vec<(String, u64)> {
        let text = render(&collect(dir, &[]).unwrap().merged);
        let mut out: Vec<(String, u64)> = text
            .lines()
            .filter(|l| l.contains("_count{"))
            .map(|l| {
                let per = l.split("per=\"").nth(1).unwrap().split('"').next().unwrap();
                (per.to_string(), l.rsplit(' ').next().unwrap().parse().unwrap())
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn files_are_summed_by_label_set() {
        let dir = temp_dir("sum");
        drop(worker(&dir, &["/a", "/b"], 2));
        drop(worker(&dir, &["/b", "/c"], 3));
        assert_eq!(
            counts(&dir),
            vec![("/a".into(), 2), ("/b".into(), 5), ("/c".into(), 3)]
        );
        let text = render(&collect(&dir, &[]).unwrap().merged);
        assert!(text
            .contains("http_requests_duration_milliseconds_bucket{per=\"/b\",status=\"200\",le=\"1\"} 5\n"));
        assert!(text.contains("http_requests_duration_milliseconds_sum{per=\"/b\",status=\"200\"} 2.5\n"));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Extensions in a test's worker file.
    struct InTestFile(parking_lot::Mutex<Option<WorkerFile>>);

    impl crate::model::native::ExtensionPlace for InTestFile {
        fn allocate(
            &self,
            link: &std::sync::atomic::AtomicU64,
            len: usize,
        ) -> Option<std::ptr::NonNull<std::sync::atomic::AtomicU64>> {
            self.0.lock().as_mut()?.native_extension(link, len)
        }
    }

    /// A worker file whose one series `/n` keeps native buckets (schema 3, at most `max_buckets`)
    /// of `durations_ms`, and a traced exemplar of its last duration.
    fn native_worker(dir: &Path, max_buckets: u32, durations_ms: &[f64], trace: u8) -> WorkerFile {
        let spec = NativeSpec::new(3, 0.0, max_buckets).unwrap();
        let buckets = Buckets::new(&[1.0, 2.0]).unwrap().with_native(Some(spec));
        let mut file = WorkerFile::create(dir, 4242).unwrap();
        let mut rec = Vec::new();
        format::layout_record(&mut rec, 0, &[1.0, 2.0], Some(&spec), 3, 3);
        file.append(&rec).unwrap();
        let (n, labels) = format::encode_labels([("per", "/n")]);
        let cells = vec![0u64; buckets.all_cells()];
        let mut rec = Vec::new();
        format::histogram_record(&mut rec, 0, n, &labels, &cells);
        let at = file.append(&rec).unwrap();
        let (_, cells_at) = format::histogram_record_len(labels.len(), cells.len());
        let keeper: Arc<dyn std::any::Any + Send + Sync> = file.mapping().clone();
        let cells = file.cell_ptr(at + cells_at);
        let place: &'static InTestFile = Box::leak(Box::new(InTestFile(parking_lot::Mutex::new(Some(file)))));
        let pending = Box::leak(Box::new(crate::model::native::Pending::new(place)));
        let extension = crate::model::native::Extension::in_place(pending);
        // SAFETY: the record's cells, in the mapping kept alive by `keeper`.
        let histogram =
            unsafe { crate::model::histogram::Histogram::in_place(&buckets, cells, keeper, extension) };
        for ms in durations_ms {
            let ns = (ms * 1e6) as u64;
            let bucket = histogram.observe(&buckets, ns);
            histogram.keep_exemplar(bucket, [trace; 16], [trace; 8], ns);
        }
        let file = place.0.lock().take().unwrap();
        file
    }

    #[test]
    fn native_buckets_and_exemplars_merge_exactly_across_workers_and_the_archive() {
        let dir = temp_dir("native");
        // One worker within its bucket limit (schema 3); one past it (reduced to a coarser one).
        drop(native_worker(&dir, 4, &[1.5, 1.5, 3.0], 1));
        std::thread::sleep(std::time::Duration::from_millis(2));
        drop(native_worker(&dir, 4, &[0.01, 0.1, 1.0, 10.0, 100.0, 1000.0], 2));
        let check = |snapshot: &Snapshot| {
            assert_eq!(snapshot.len(), 1);
            let series = &snapshot.series()[0];
            let native = series.native.as_ref().unwrap();
            assert!(native.schema < 3, "mixed schemas reduce to the coarser");
            assert_eq!(native.count(), 9);
            assert_eq!(snapshot.cumulative_counts(series).last(), Some(&9));
            // The latest exemplar of each bucket: 3 ms (worker 1, +Inf) was overtaken there by
            // 1000 ms (worker 2, later).
            let inf = series.exemplars[2].unwrap();
            assert_eq!((inf.trace_id, inf.value_ms), ([2; 16], 1000.0));
        };
        let merged = collect(&dir, &[]).unwrap().merged;
        check(&merged.snapshot());
        let before = merged.snapshot().series()[0].native.clone();
        assert!(compact(&dir).unwrap());
        let after = collect(&dir, &[]).unwrap().merged.snapshot();
        check(&after);
        assert_eq!(
            after.series()[0].native,
            before,
            "the archive keeps native buckets"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wide_series_keep_their_native_records_across_workers_and_the_archive() {
        let dir = temp_dir("wide");
        // 0.5 ms to 2 s: about 96 buckets at schema 3, past the inline slots of a record.
        let wide: Vec<f64> = (0..1000).map(|i| 0.5 * 4000f64.powf(i as f64 / 999.0)).collect();
        drop(native_worker(&dir, 160, &wide, 1));
        std::thread::sleep(std::time::Duration::from_millis(2));
        drop(native_worker(&dir, 160, &wide[500..], 2));
        let spec = NativeSpec::new(3, 0.0, 160).unwrap();
        let buckets = Buckets::new(&[1.0, 2.0]).unwrap().with_native(Some(spec));
        let one = crate::model::histogram::Histogram::new(&buckets);
        for ms in wide.iter().chain(&wide[500..]) {
            one.observe(&buckets, (ms * 1e6) as u64);
        }
        let expected = one.native(&buckets).unwrap();
        assert_eq!(expected.schema, 3);
        assert!(expected.buckets.len() > crate::model::native::INLINE_SLOTS);
        let merged = collect(&dir, &[]).unwrap().merged.snapshot();
        assert_eq!(merged.series()[0].native.as_ref(), Some(&expected));
        assert!(compact(&dir).unwrap());
        let archived = collect(&dir, &[]).unwrap().merged.snapshot();
        assert_eq!(
            archived.series()[0].native.as_ref(),
            Some(&expected),
            "the archive keeps them"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn body_sizes_read_beside_native_records_across_workers_and_the_archive() {
        let dir = temp_dir("bodies");
        let wide: Vec<f64> = (0..1000).map(|i| 0.5 * 4000f64.powf(i as f64 / 999.0)).collect();
        let buckets = crate::model::body::body_buckets();
        for bytes in [100u64, 5000] {
            // A duration series with NATIVE records, then body-size series in a layout of their
            // own (byte bounds, no native buckets) after them.
            let mut file = native_worker(&dir, 160, &wide, 1);
            let mut rec = Vec::new();
            format::layout_record(&mut rec, 1, buckets.bounds_ms(), None, 3, 3);
            let (n, labels) = format::encode_labels([("per", "/n")]);
            for (which, size) in [(Body::Request, bytes), (Body::Response, 2 * bytes)] {
                let mut cells = vec![0u64; buckets.all_cells()];
                cells[buckets.index_of(size * 1_000_000)] = 1;
                cells[buckets.cells()] = size * 1_000_000;
                format::body_record(&mut rec, which, 1, n, &labels, &cells);
            }
            file.append(&rec).unwrap();
            drop(file);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let check = |snapshot: &Snapshot| {
            assert_eq!(snapshot.series()[0].native.as_ref().unwrap().count(), 2000);
            for (which, sum) in [(Body::Request, 5100), (Body::Response, 10200)] {
                let series = snapshot.body_series(which);
                assert_eq!(series.len(), 1);
                let cumulative = snapshot.cumulative_counts(&series[0]);
                // 100 B in `le="256"`, 200 B too; 5000 and 10000 B further up.
                assert_eq!((cumulative[1], cumulative.last()), (1, Some(&2)));
                assert_eq!(series[0].sum_ns, sum * 1_000_000);
            }
        };
        check(&collect(&dir, &[]).unwrap().merged.snapshot());
        assert!(compact(&dir).unwrap());
        check(&collect(&dir, &[]).unwrap().merged.snapshot());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_files_are_skipped_whole() {
        let dir = temp_dir("damaged");
        drop(worker(&dir, &["/a"], 1));
        let damaged = worker(&dir, &["/a", "/b"], 7);
        let path = damaged.path().to_path_buf();
        drop(damaged);
        // A record length pointing past the end.
        let mut bytes = fs::read(&path).unwrap();
        bytes[format::HEADER_LEN + 4] = 0xff;
        fs::write(&path, &bytes).unwrap();
        fs::write(dir.join("w-1-1.db"), b"L9MP").unwrap();
        fs::write(dir.join("w-1-2.db"), vec![0u8; 4096]).unwrap();
        assert_eq!(counts(&dir), vec![("/a".into(), 1)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compaction_keeps_totals_and_leaves_one_file() {
        let dir = temp_dir("compact");
        for i in 0..20u64 {
            drop(worker(&dir, &["/a", if i % 2 == 0 { "/b" } else { "/c" }], 1));
        }
        let before = counts(&dir);
        assert_eq!(collect(&dir, &[]).unwrap().dead, 20);
        assert!(compact(&dir).unwrap());
        assert_eq!(counts(&dir), before);
        assert_eq!(worker_files(&dir).unwrap(), Vec::<String>::new());
        // More workers come and go: still one archive.
        drop(worker(&dir, &["/a"], 5));
        assert!(compact(&dir).unwrap());
        assert_eq!(
            counts(&dir),
            vec![("/a".into(), 25), ("/b".into(), 10), ("/c".into(), 10)]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_archive_never_counts_a_file_it_absorbed_twice() {
        let dir = temp_dir("absorbed");
        let w = worker(&dir, &["/a"], 4);
        let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
        drop(w);
        // As if a compactor died after renaming the archive but before deleting the file.
        let copy = fs::read(dir.join(&name)).unwrap();
        assert!(compact(&dir).unwrap());
        fs::write(dir.join(&name), copy).unwrap();
        assert_eq!(counts(&dir), vec![("/a".into(), 4)]);
        // The next compaction deletes the leftover without adding it again.
        assert!(compact(&dir).unwrap());
        assert_eq!(worker_files(&dir).unwrap(), Vec::<String>::new());
        assert_eq!(counts(&dir), vec![("/a".into(), 4)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_archive_applies_the_label_caps() {
        let dir = temp_dir("caps");
        // Caps of 3 routes: each dead worker saw different hostile paths.
        for i in 0..10 {
            let routes: Vec<String> = (0..3).map(|j| format!("/x{i}-{j}")).collect();
            let routes: Vec<&str> = routes.iter().map(String::as_str).collect();
            drop(worker(&dir, &routes, 1));
            compact(&dir).unwrap();
        }
        let counts = counts(&dir);
        assert_eq!(counts.len(), 4, "{counts:?}");
        assert_eq!(counts.iter().map(|(_, c)| c).sum::<u64>(), 30);
        assert!(counts.contains(&(ROUTE_OVERFLOW.to_string(), 27)));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_scrape_applies_the_label_caps_across_workers() {
        let dir = temp_dir("scrape-caps");
        // Caps of 3 routes; four workers each admitted 3 routes of their own, the first two
        // share `/a`. A scrape holds 3 routes and `_other`, and every request.
        let routes = [
            ["/a", "/b", "/c"],
            ["/a", "/d", "/e"],
            ["/f", "/g", "/h"],
            ["/i", "/j", "/k"],
        ];
        for routes in routes {
            drop(worker(&dir, &routes, 1));
            std::thread::sleep(std::time::Duration::from_millis(2)); // distinct birth times
        }
        let counts = counts(&dir);
        assert_eq!(
            counts,
            vec![
                (ROUTE_OVERFLOW.to_string(), 8),
                ("/a".into(), 2),
                ("/b".into(), 1),
                ("/c".into(), 1),
            ],
            "the oldest worker's routes are kept"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_of_live_processes_are_not_compacted() {
        let dir = temp_dir("live");
        // A child process makes a file and holds it until told to go.
        let (mut ready, mut go) = ([0; 2], [0; 2]);
        unsafe {
            libc::pipe(ready.as_mut_ptr());
            libc::pipe(go.as_mut_ptr());
        }
        // Other tests run in threads of this process: the fork handlers keep their lock files
        // from being inherited mid-read, and the child closes their other files (worker files
        // it would otherwise keep alive) before making its own.
        crate::store::install_fork_handlers();
        let child = unsafe { libc::fork() };
        if child == 0 {
            for fd in 3..4096 {
                if fd != ready[1] && fd != go[0] {
                    unsafe { libc::close(fd) };
                }
            }
            let file = worker(&dir, &["/live"], 1);
            let mut byte = 0u8;
            unsafe {
                libc::write(ready[1], b"r".as_ptr().cast(), 1);
                libc::read(go[0], (&mut byte as *mut u8).cast(), 1);
            }
            drop(file);
            unsafe { libc::_exit(0) };
        }
        let mut byte = 0u8;
        unsafe { libc::read(ready[0], (&mut byte as *mut u8).cast(), 1) };
        drop(worker(&dir, &["/dead"], 1));
        assert_eq!(collect(&dir, &[]).unwrap().dead, 1);
        assert!(compact(&dir).unwrap());
        assert_eq!(worker_files(&dir).unwrap().len(), 1);
        assert_eq!(counts(&dir), vec![("/dead".into(), 1), ("/live".into(), 1)]);
        unsafe {
            libc::write(go[1], b"q".as_ptr().cast(), 1);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        assert_eq!(collect(&dir, &[]).unwrap().dead, 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A valid worker file image: a layout and `n` histograms.
    fn image(n: usize) -> Vec<u8> {
        let mut out = format::header(format::FILE_WORKER, 7).to_vec();
        format::layout_record(&mut out, 0, &[1.0, 2.0], None, 3, 3);
        for i in 0..n {
            let route = format!("/r{i}");
            let (k, labels) = format::encode_labels([("per", route.as_str()), ("status", "200")]);
            let mut cells = vec![1, 2, 3, 4];
            cells.resize(format::histogram_cells(2, None), 0);
            format::histogram_record(&mut out, 0, k, &labels, &cells);
        }
        format::gauge_record(&mut out, 0, &[], 1);
        format::absorbed_record(&mut out, "w-1-1.db");
        let used = out.len() as u64;
        out[format::USED_OFFSET..format::USED_OFFSET + 8].copy_from_slice(&used.to_ne_bytes());
        out
    }

    /// Reads `bytes` as a store file (8-byte aligned, as a mapping is) into a merge.
    fn read(bytes: &[u8]) -> Merged {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `words` has room for `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr().cast(), bytes.len()) };
        // SAFETY: aligned, and nothing else touches `words`.
        let region = unsafe { Region::new(std::slice::from_raw_parts(words.as_ptr().cast(), bytes.len())) };
        let mut merged = Merged::new();
        let _ = merged.add_file(&region, true);
        merged
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The fuzz target of the store format: any damage (flipped bytes, a cut, garbage) to a
        /// file is an error or a bounded result, never a panic; what it yields renders.
        #[test]
        fn damaged_files_never_panic_and_stay_bounded(
            n in 0usize..6,
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..8),
            cut in proptest::prelude::any::<usize>(),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            use_garbage in proptest::prelude::any::<bool>(),
        ) {
            let mut bytes = if use_garbage {
                let mut g = format::header(format::FILE_WORKER, 7).to_vec();
                g.extend_from_slice(&garbage);
                let used = (g.len() as u64) & !7;
                g[format::USED_OFFSET..format::USED_OFFSET + 8].copy_from_slice(&used.to_ne_bytes());
                g
            } else {
                image(n)
            };
            for (at, value) in flips {
                let len = bytes.len();
                bytes[at % len] ^= value;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let merged = read(&bytes);
            proptest::prop_assert!(merged.len() <= bytes.len() / 16);
            let text = render(&merged);
            proptest::prop_assert!(text.len() <= 64 * 1024);
        }
    }
}
