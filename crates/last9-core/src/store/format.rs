//! The on-disk format of the multi-process store, version 2.
//!
//! A file is a 64-byte header followed by records, each 8-byte aligned and starting with
//! `kind: u16, flags: u16, len: u32` (`len` counts the whole record, a multiple of 8). Numbers are
//! in the machine's byte order (the files never leave it); the header's byte-order mark catches a
//! file written elsewhere. Readers skip record kinds they do not know, so new kinds (a gauge of
//! in-flight requests, say) can be added without a new version.
//!
//! ```text
//! header   0 magic "L9MP" | 4 bom 0x01020304 | 8 version u16 | 10 header_len u16 | 12 kind u16
//!         16 used u64 (atomic: end of the published records) | 24 pid u32
//!         28 flags u32 (atomic; bit 0: some series of the process are not in the file) | 32..64 zero
//! LAYOUT   8 id u32 | 12 n_bounds u32 | 16 max_routes u32 | 20 max_domains u32 | 24 bounds f64 × n
//!          | native u32 (1: native buckets kept) | schema i32 | max_buckets u32 | zero u32
//!          | zero_threshold f64 (ms)
//! HISTOGRAM 8 layout u32 | 12 n_labels u16 | 14 labels_len u16 | 16 labels, zero-padded to 8
//!          | cells u64 × (n_bounds + 2): per-bucket counts with +Inf last, then the sum in ns
//!          | the native buckets' cells when the layout keeps them (`crate::model::native`: a
//!          fixed few; the one at `EXTENSION_AT` links to the series' first NATIVE record, or 0)
//!          | the latest exemplar's cells (`crate::model::exemplar`)
//! ABSORBED 8 name_len u32 | 12 name (archives only: a worker file already merged in)
//! NATIVE   8 owner u64 (offset of the cell that links to it) | 16 link u64 (to the next NATIVE
//!          record, or 0) | 24 slots u64 × n: native buckets of a series that spread past the
//!          slots before, appended when it first does (a small table, then a large one)
//! GAUGE    8 n_labels u16 | 10 labels_len u16 | 12 zero u32 | 16 labels, zero-padded to 8
//!          | value i64 (worker files only: a gauge is the state of a live process, so readers
//!          count it only while its writer holds its lock, and archives never keep it)
//! CLIENT   as HISTOGRAM: a series of `http_client_requests_duration_milliseconds` (lineage)
//! COUNTER  8 layout u32 | 12 n_labels u16 | 14 labels_len u16 | 16 labels, zero-padded to 8
//!          | value u64: a series of `http_requests_callers_total` (lineage); the layout gives
//!          the label caps the archive applies
//! REQUEST_BODY, RESPONSE_BODY  as HISTOGRAM: a series of `http_request_body_size_bytes` or
//!          `http_response_body_size_bytes` (`body_sizes` on; its layout's bounds are bytes)
//! ```
//!
//! A label is `name_len u8, name, value_len u16, value`; names and values are UTF-8 strings.
//! Writers publish a record by storing `used` (release) after writing it; the cells of a worker
//! file are then updated in place with atomic adds, and read with atomic loads.

use std::sync::atomic::AtomicU64;

use crate::model::body::Body;
use crate::model::exemplar::EXEMPLAR_CELLS;
use crate::model::native::NativeSpec;

pub const MAGIC: [u8; 4] = *b"L9MP";
pub const BOM: u32 = 0x0102_0304;
/// 2: native buckets in a fixed few cells plus a NATIVE record on demand (1 reserved them all).
pub const VERSION: u16 = 2;
pub const HEADER_LEN: usize = 64;
pub const USED_OFFSET: usize = 16;
pub const FLAGS_OFFSET: usize = 28;
/// In `flags`: the process keeps some series in its own memory only (its file could not take
/// them, e.g. the disk was full), so sums that include this file are partial.
pub const FLAG_PARTIAL: u32 = 1;

/// A live process's file.
pub const FILE_WORKER: u16 = 1;
/// The merged counts of dead processes.
pub const FILE_ARCHIVE: u16 = 2;

pub const RECORD_LAYOUT: u16 = 1;
pub const RECORD_HISTOGRAM: u16 = 2;
pub const RECORD_ABSORBED: u16 = 3;
pub const RECORD_GAUGE: u16 = 4;
pub const RECORD_NATIVE: u16 = 5;
pub const RECORD_CLIENT: u16 = 6;
pub const RECORD_COUNTER: u16 = 7;
pub const RECORD_REQUEST_BODY: u16 = 8;
pub const RECORD_RESPONSE_BODY: u16 = 9;

/// Label names are short identifiers; values were cut to 256 bytes by the interner.
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_VALUE_LEN: usize = u16::MAX as usize;
/// Same bound as [`crate::Buckets::new`].
pub const MAX_BOUNDS: usize = 256;

/// Rounds up to the record alignment.
pub const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// The header of a new file.
pub fn header(kind: u16, pid: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&BOM.to_ne_bytes());
    h[8..10].copy_from_slice(&VERSION.to_ne_bytes());
    h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_ne_bytes());
    h[12..14].copy_from_slice(&kind.to_ne_bytes());
    h[USED_OFFSET..USED_OFFSET + 8].copy_from_slice(&(HEADER_LEN as u64).to_ne_bytes());
    h[24..28].copy_from_slice(&pid.to_ne_bytes());
    h
}

fn record_start(out: &mut Vec<u8>, kind: u16, len: usize) {
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&(len as u32).to_ne_bytes());
}

fn pad8(out: &mut Vec<u8>) {
    out.resize(align8(out.len()), 0);
}

/// Bytes of a LAYOUT record after its bounds: the native buckets' shape.
const LAYOUT_NATIVE_LEN: usize = 24;

/// A LAYOUT record: the bucket bounds (ms), native buckets and label limits that histograms refer
/// to by `id`.
pub fn layout_record(
    out: &mut Vec<u8>,
    id: u32,
    bounds: &[f64],
    native: Option<&NativeSpec>,
    max_routes: u32,
    max_domains: u32,
) {
    let len = 24 + 8 * bounds.len() + LAYOUT_NATIVE_LEN;
    record_start(out, RECORD_LAYOUT, len);
    for v in [id, bounds.len() as u32, max_routes, max_domains] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    for b in bounds {
        out.extend_from_slice(&b.to_ne_bytes());
    }
    let (kept, schema, max_buckets, zero) = match native {
        Some(n) => (1u32, n.schema() as i32, n.max_buckets(), n.zero_threshold_ms()),
        None => (0, 0, 0, 0.0),
    };
    out.extend_from_slice(&kept.to_ne_bytes());
    out.extend_from_slice(&schema.to_ne_bytes());
    out.extend_from_slice(&max_buckets.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&zero.to_ne_bytes());
}

/// Cells of a HISTOGRAM record of a layout with `n_bounds` bounds and `native` buckets.
pub fn histogram_cells(n_bounds: usize, native: Option<&NativeSpec>) -> usize {
    n_bounds + 2 + native.map_or(0, NativeSpec::cells) + EXEMPLAR_CELLS
}

/// Encodes label pairs into the labels block of a HISTOGRAM record. Names longer than 255 bytes
/// and values longer than 65,535 bytes are cut (neither happens with the labels of this crate).
pub fn encode_labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> (u16, Vec<u8>) {
    let mut block = Vec::with_capacity(160);
    let mut n = 0u16;
    for (name, value) in pairs {
        let name = crate::values::labels::truncate(name, MAX_NAME_LEN);
        let value = crate::values::labels::truncate(value, MAX_VALUE_LEN);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(&(value.len() as u16).to_ne_bytes());
        block.extend_from_slice(value.as_bytes());
        n += 1;
    }
    (n, block)
}

/// The size of a HISTOGRAM record with `n_cells` cells and the offset of its cells within it.
pub fn histogram_record_len(labels_len: usize, n_cells: usize) -> (usize, usize) {
    let cells_at = align8(16 + labels_len);
    (cells_at + 8 * n_cells, cells_at)
}

/// The size of a GAUGE record and the offset of its value within it.
pub fn gauge_record_len(labels_len: usize) -> (usize, usize) {
    let value_at = align8(16 + labels_len);
    (value_at + 8, value_at)
}

/// A GAUGE record with the given value (zero for a new gauge).
pub fn gauge_record(out: &mut Vec<u8>, n_labels: u16, labels: &[u8], value: i64) {
    let (len, _) = gauge_record_len(labels.len());
    record_start(out, RECORD_GAUGE, len);
    out.extend_from_slice(&n_labels.to_ne_bytes());
    out.extend_from_slice(&(labels.len() as u16).to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(labels);
    pad8(out);
    out.extend_from_slice(&value.to_ne_bytes());
}

/// A HISTOGRAM record with the given cell values (zero for a new series).
pub fn histogram_record(out: &mut Vec<u8>, layout: u32, n_labels: u16, labels: &[u8], cells: &[u64]) {
    cells_record(out, RECORD_HISTOGRAM, layout, n_labels, labels, cells);
}

/// A CLIENT record (an outbound-call series; cells as in a HISTOGRAM record).
pub fn client_record(out: &mut Vec<u8>, layout: u32, n_labels: u16, labels: &[u8], cells: &[u64]) {
    cells_record(out, RECORD_CLIENT, layout, n_labels, labels, cells);
}

/// A REQUEST_BODY or RESPONSE_BODY record (a body-size series; cells as in a HISTOGRAM record).
pub fn body_record(out: &mut Vec<u8>, which: Body, layout: u32, n_labels: u16, labels: &[u8], cells: &[u64]) {
    let kind = match which {
        Body::Request => RECORD_REQUEST_BODY,
        Body::Response => RECORD_RESPONSE_BODY,
    };
    cells_record(out, kind, layout, n_labels, labels, cells);
}

/// A COUNTER record (a callers series) with the given value; its value is at
/// `histogram_record_len(labels.len(), 1).1`.
pub fn counter_record(out: &mut Vec<u8>, layout: u32, n_labels: u16, labels: &[u8], value: u64) {
    cells_record(out, RECORD_COUNTER, layout, n_labels, labels, &[value]);
}

fn cells_record(out: &mut Vec<u8>, kind: u16, layout: u32, n_labels: u16, labels: &[u8], cells: &[u64]) {
    let (len, _) = histogram_record_len(labels.len(), cells.len());
    record_start(out, kind, len);
    out.extend_from_slice(&layout.to_ne_bytes());
    out.extend_from_slice(&n_labels.to_ne_bytes());
    out.extend_from_slice(&(labels.len() as u16).to_ne_bytes());
    out.extend_from_slice(labels);
    pad8(out);
    for c in cells {
        out.extend_from_slice(&c.to_ne_bytes());
    }
}

/// The size of a NATIVE record of `n_slots` slots and the offset of its cells (the link, then
/// the slots) within it.
pub fn native_record_len(n_slots: usize) -> (usize, usize) {
    (24 + 8 * n_slots, 16)
}

/// A NATIVE record with the given cells (the link, then the slots; zero for a new one), linked
/// from the cell at offset `owner` of the same file.
pub fn native_record(out: &mut Vec<u8>, owner: usize, cells: &[u64]) {
    let (len, _) = native_record_len(cells.len() - 1);
    let slots = cells;
    record_start(out, RECORD_NATIVE, len);
    out.extend_from_slice(&(owner as u64).to_ne_bytes());
    for s in slots {
        out.extend_from_slice(&s.to_ne_bytes());
    }
}

/// An ABSORBED record: the file name of a worker file already merged into this archive.
pub fn absorbed_record(out: &mut Vec<u8>, name: &str) {
    let len = align8(12 + name.len());
    record_start(out, RECORD_ABSORBED, len);
    out.extend_from_slice(&(name.len() as u32).to_ne_bytes());
    out.extend_from_slice(name.as_bytes());
    pad8(out);
}

/// A bucket layout read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub id: u32,
    pub bounds: Vec<f64>,
    pub native: Option<NativeSpec>,
    pub max_routes: u32,
    pub max_domains: u32,
}

/// One record of a file, borrowed from its mapping.
pub enum Record<'a> {
    Layout(Layout),
    Histogram {
        layout: u32,
        n_labels: u16,
        labels: &'a [u8],
        /// [`histogram_cells`] cells, read with atomic loads (a live writer may be adding to them).
        cells: &'a [AtomicU64],
        /// The offset of `cells` in the file.
        cells_at: usize,
    },
    Absorbed(&'a str),
    /// An outbound-call series: the same shape as a histogram.
    Client {
        layout: u32,
        n_labels: u16,
        labels: &'a [u8],
        cells: &'a [AtomicU64],
        /// The offset of `cells` in the file.
        cells_at: usize,
    },
    /// A body-size series: the same shape as a histogram.
    Body {
        which: Body,
        layout: u32,
        n_labels: u16,
        labels: &'a [u8],
        cells: &'a [AtomicU64],
        /// The offset of `cells` in the file.
        cells_at: usize,
    },
    /// A callers series: one count, read with an atomic load.
    Counter {
        layout: u32,
        n_labels: u16,
        labels: &'a [u8],
        value: &'a AtomicU64,
    },
    Gauge {
        n_labels: u16,
        labels: &'a [u8],
        /// Two's complement `i64`, read with an atomic load.
        value: &'a AtomicU64,
    },
}

/// A mapped file, read-only from this side.
pub struct Region<'a> {
    bytes: &'a [u8],
}

impl<'a> Region<'a> {
    /// `bytes` must be 8-byte aligned (a mapping is page-aligned).
    ///
    /// # Safety
    ///
    /// The cells of published records may change under a concurrent writer (another process),
    /// which only ever does so through atomic operations; everything else this reader looks at
    /// is written once, before `used` publishes it.
    pub unsafe fn new(bytes: &'a [u8]) -> Region<'a> {
        Region { bytes }
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_ne_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.bytes[at..at + 4].try_into().unwrap())
    }

    fn used_cell(&self) -> &'a AtomicU64 {
        // SAFETY: the header is at least 64 bytes (checked by the caller), aligned, and `used`
        // is only ever accessed atomically.
        unsafe { AtomicU64::from_ptr(self.bytes.as_ptr().add(USED_OFFSET) as *mut u64) }
    }

    /// Checks the header; returns the file kind and the end of the published records.
    pub fn header(&self) -> Result<(u16, usize), String> {
        if self.bytes.len() < HEADER_LEN {
            return Err(format!(
                "truncated: {} bytes, shorter than the header",
                self.bytes.len()
            ));
        }
        if self.bytes[0..4] != MAGIC {
            return Err("not a last9 store file (bad magic)".into());
        }
        if self.u32_at(4) != BOM {
            return Err("written with another byte order".into());
        }
        let version = self.u16_at(8);
        if version != VERSION {
            return Err(format!("format version {version}, this reader knows {VERSION}"));
        }
        let header_len = self.u16_at(10) as usize;
        if header_len != HEADER_LEN {
            return Err(format!("header length {header_len}"));
        }
        let kind = self.u16_at(12);
        let used = self.used_cell().load(std::sync::atomic::Ordering::Acquire);
        if used < HEADER_LEN as u64 || used % 8 != 0 {
            return Err(format!("corrupt header: used = {used}"));
        }
        Ok((kind, used as usize))
    }

    /// The header's flags (zero for a file shorter than a header).
    pub fn flags(&self) -> u32 {
        if self.bytes.len() < HEADER_LEN {
            return 0;
        }
        // SAFETY: aligned header field inside the region, only ever accessed atomically.
        let cell = unsafe {
            std::sync::atomic::AtomicU32::from_ptr(self.bytes.as_ptr().add(FLAGS_OFFSET) as *mut u32)
        };
        cell.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The records up to `used`, or the first reason the file cannot be trusted.
    pub fn records(&self, used: usize) -> Result<Vec<Record<'a>>, String> {
        if used > self.bytes.len() {
            return Err(format!(
                "truncated: {} bytes, header says {used}",
                self.bytes.len()
            ));
        }
        let mut records = Vec::new();
        let mut at = HEADER_LEN;
        while at < used {
            if used - at < 8 {
                return Err(format!("truncated record at {at}"));
            }
            let kind = self.u16_at(at);
            let len = self.u32_at(at + 4) as usize;
            if len < 8 || len % 8 != 0 || len > used - at {
                return Err(format!("bad record length {len} at {at}"));
            }
            let body = &self.bytes[at..at + len];
            match kind {
                RECORD_LAYOUT => records.push(Record::Layout(self.layout(body, at)?)),
                RECORD_HISTOGRAM => records.push(self.histogram(body, at)?),
                RECORD_ABSORBED => records.push(self.absorbed(body, at)?),
                RECORD_GAUGE => records.push(self.gauge(body, at)?),
                RECORD_CLIENT => match self.histogram(body, at)? {
                    Record::Histogram {
                        layout,
                        n_labels,
                        labels,
                        cells,
                        cells_at,
                    } => records.push(Record::Client {
                        layout,
                        n_labels,
                        labels,
                        cells,
                        cells_at,
                    }),
                    _ => unreachable!("`histogram` reads a histogram"),
                },
                RECORD_COUNTER => records.push(self.counter(body, at)?),
                RECORD_REQUEST_BODY | RECORD_RESPONSE_BODY => match self.histogram(body, at)? {
                    Record::Histogram {
                        layout,
                        n_labels,
                        labels,
                        cells,
                        cells_at,
                    } => records.push(Record::Body {
                        which: if kind == RECORD_REQUEST_BODY {
                            Body::Request
                        } else {
                            Body::Response
                        },
                        layout,
                        n_labels,
                        labels,
                        cells,
                        cells_at,
                    }),
                    _ => unreachable!("`histogram` reads a histogram"),
                },
                // NATIVE records are found from their series (see `native_slots`).
                _ => {} // a kind from a later version of this format
            }
            at += len;
        }
        Ok(records)
    }

    fn layout(&self, body: &[u8], at: usize) -> Result<Layout, String> {
        let field = |i: usize| u32::from_ne_bytes(body[i..i + 4].try_into().unwrap());
        if body.len() < 24 {
            return Err(format!("short layout record at {at}"));
        }
        let n = field(12) as usize;
        if n > MAX_BOUNDS || body.len() != 24 + 8 * n + LAYOUT_NATIVE_LEN {
            return Err(format!("bad layout record at {at}"));
        }
        let tail = 24 + 8 * n;
        let native = match field(tail) {
            0 => None,
            1 => {
                let schema = field(tail + 4) as i32;
                let zero = f64::from_ne_bytes(body[tail + 16..tail + 24].try_into().unwrap());
                let spec = i8::try_from(schema)
                    .ok()
                    .and_then(|schema| NativeSpec::new(schema, zero, field(tail + 8)).ok());
                Some(spec.ok_or_else(|| format!("bad native buckets in layout record at {at}"))?)
            }
            _ => return Err(format!("bad layout record at {at}")),
        };
        let bounds: Vec<f64> = body[24..tail]
            .chunks_exact(8)
            .map(|c| f64::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("bad bucket bounds in layout record at {at}"));
        }
        Ok(Layout {
            id: field(8),
            bounds,
            native,
            max_routes: field(16),
            max_domains: field(20),
        })
    }

    fn histogram(&self, body: &'a [u8], at: usize) -> Result<Record<'a>, String> {
        if body.len() < 16 {
            return Err(format!("short histogram record at {at}"));
        }
        let layout = u32::from_ne_bytes(body[8..12].try_into().unwrap());
        let n_labels = u16::from_ne_bytes([body[12], body[13]]);
        let labels_len = u16::from_ne_bytes([body[14], body[15]]) as usize;
        let cells_at = align8(16 + labels_len);
        if cells_at >= body.len() || (body.len() - cells_at) < 24 {
            return Err(format!("bad histogram record at {at}"));
        }
        let labels = &body[16..16 + labels_len];
        if labels_iter(labels, n_labels).any(|l| l.is_err()) {
            return Err(format!("bad labels in histogram record at {at}"));
        }
        let n_cells = (body.len() - cells_at) / 8;
        // SAFETY: in bounds and 8-aligned (records and the mapping are); see `Region::new`.
        let cells =
            unsafe { std::slice::from_raw_parts(body.as_ptr().add(cells_at) as *const AtomicU64, n_cells) };
        Ok(Record::Histogram {
            layout,
            n_labels,
            labels,
            cells,
            cells_at: at + cells_at,
        })
    }

    /// The cells (link, then `n_slots` slots) of the NATIVE record at offset `at`, if there is
    /// one there, of that size, linked from the cell at `owner`; None for anything else (a
    /// record appended after this mapping was made, or a damaged file).
    pub fn native_slots(&self, at: u64, owner: usize, n_slots: usize) -> Option<&'a [AtomicU64]> {
        let at = usize::try_from(at).ok()?;
        let (len, slots_at) = native_record_len(n_slots);
        if at < HEADER_LEN || at % 8 != 0 || at.checked_add(len)? > self.bytes.len() {
            return None;
        }
        let fits = self.u16_at(at) == RECORD_NATIVE
            && self.u32_at(at + 4) as usize == len
            && u64::from_ne_bytes(self.bytes[at + 8..at + 16].try_into().unwrap()) == owner as u64;
        // SAFETY: in bounds and 8-aligned; see `Region::new`.
        fits.then(|| unsafe {
            std::slice::from_raw_parts(
                self.bytes.as_ptr().add(at + slots_at) as *const AtomicU64,
                n_slots + 1,
            )
        })
    }

    fn gauge(&self, body: &'a [u8], at: usize) -> Result<Record<'a>, String> {
        if body.len() < 24 {
            return Err(format!("short gauge record at {at}"));
        }
        let n_labels = u16::from_ne_bytes([body[8], body[9]]);
        let labels_len = u16::from_ne_bytes([body[10], body[11]]) as usize;
        let (len, value_at) = gauge_record_len(labels_len);
        if len != body.len() {
            return Err(format!("bad gauge record at {at}"));
        }
        let labels = &body[16..16 + labels_len];
        if labels_iter(labels, n_labels).any(|l| l.is_err()) {
            return Err(format!("bad labels in gauge record at {at}"));
        }
        // SAFETY: in bounds and 8-aligned (records and the mapping are); see `Region::new`.
        let value = unsafe { &*(body.as_ptr().add(value_at) as *const AtomicU64) };
        Ok(Record::Gauge {
            n_labels,
            labels,
            value,
        })
    }

    fn counter(&self, body: &'a [u8], at: usize) -> Result<Record<'a>, String> {
        if body.len() < 24 {
            return Err(format!("short counter record at {at}"));
        }
        let layout = u32::from_ne_bytes(body[8..12].try_into().unwrap());
        let n_labels = u16::from_ne_bytes([body[12], body[13]]);
        let labels_len = u16::from_ne_bytes([body[14], body[15]]) as usize;
        let (len, value_at) = histogram_record_len(labels_len, 1);
        if len != body.len() {
            return Err(format!("bad counter record at {at}"));
        }
        let labels = &body[16..16 + labels_len];
        if labels_iter(labels, n_labels).any(|l| l.is_err()) {
            return Err(format!("bad labels in counter record at {at}"));
        }
        // SAFETY: in bounds and 8-aligned (records and the mapping are); see `Region::new`.
        let value = unsafe { &*(body.as_ptr().add(value_at) as *const AtomicU64) };
        Ok(Record::Counter {
            layout,
            n_labels,
            labels,
            value,
        })
    }

    fn absorbed(&self, body: &'a [u8], at: usize) -> Result<Record<'a>, String> {
        let len = if body.len() >= 12 {
            u32::from_ne_bytes(body[8..12].try_into().unwrap()) as usize
        } else {
            usize::MAX
        };
        match body.get(12..12usize.saturating_add(len)).map(std::str::from_utf8) {
            Some(Ok(name)) if is_worker_file_name(name) => Ok(Record::Absorbed(name)),
            _ => Err(format!("bad absorbed record at {at}")),
        }
    }
}

/// Decodes a labels block into `(name, value)` pairs; yields one error and stops at malformed
/// bytes, and errs if the block holds more than `n` labels.
pub fn labels_iter(block: &[u8], n: u16) -> Labels<'_> {
    Labels {
        block,
        at: 0,
        left: n,
        done: false,
    }
}

pub struct Labels<'a> {
    block: &'a [u8],
    at: usize,
    left: u16,
    done: bool,
}

impl<'a> Labels<'a> {
    fn pair(&mut self) -> Option<(&'a str, &'a str)> {
        let block = self.block;
        let at = self.at;
        let name_len = *block.get(at)? as usize;
        let name = block.get(at + 1..at + 1 + name_len)?;
        let at = at + 1 + name_len;
        let value_len = u16::from_ne_bytes([*block.get(at)?, *block.get(at + 1)?]) as usize;
        let value = block.get(at + 2..at + 2 + value_len)?;
        self.at = at + 2 + value_len;
        let name = std::str::from_utf8(name).ok().filter(|n| is_label_name(n))?;
        Some((name, std::str::from_utf8(value).ok()?))
    }
}

impl<'a> Iterator for Labels<'a> {
    type Item = Result<(&'a str, &'a str), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            return (self.at != self.block.len()).then_some(Err(()));
        }
        self.left -= 1;
        match self.pair() {
            Some(pair) => Some(Ok(pair)),
            None => {
                self.done = true;
                Some(Err(()))
            }
        }
    }
}

fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Worker files are `w-<pid>-<nanoseconds>.db`.
pub fn is_worker_file_name(name: &str) -> bool {
    name.strip_prefix("w-")
        .and_then(|rest| rest.strip_suffix(".db"))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// A file image in an 8-aligned buffer.
    fn image(records: &[u8]) -> Vec<u64> {
        let mut bytes = header(FILE_WORKER, 7).to_vec();
        bytes.extend_from_slice(records);
        let used = bytes.len() as u64;
        bytes[USED_OFFSET..USED_OFFSET + 8].copy_from_slice(&used.to_ne_bytes());
        bytes
            .chunks(8)
            .map(|c| {
                let mut word = [0u8; 8];
                word[..c.len()].copy_from_slice(c);
                u64::from_ne_bytes(word)
            })
            .collect()
    }

    fn as_bytes(words: &[u64]) -> &[u8] {
        unsafe { std::slice::from_raw_parts(words.as_ptr() as *const u8, words.len() * 8) }
    }

    #[test]
    fn records_round_trip() {
        let mut recs = Vec::new();
        let spec = NativeSpec::new(2, 0.5, 10).unwrap();
        layout_record(&mut recs, 0, &[1.0, 2.5], Some(&spec), 500, 100);
        let (n, labels) = encode_labels([("per", "/a"), ("status", "200"), ("domain", "")]);
        histogram_record(&mut recs, 0, n, &labels, &[1, 2, 3, 42]);
        absorbed_record(&mut recs, "w-12-34.db");
        recs.extend_from_slice(&[42, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // unknown kind 42
        let words = image(&recs);
        let region = unsafe { Region::new(as_bytes(&words)) };
        let (kind, used) = region.header().unwrap();
        assert_eq!(kind, FILE_WORKER);
        let records = region.records(used).unwrap();
        assert_eq!(records.len(), 3);
        match &records[0] {
            Record::Layout(l) => {
                assert_eq!(l.bounds, vec![1.0, 2.5]);
                assert_eq!(l.native, Some(spec));
            }
            _ => panic!("layout first"),
        }
        match &records[1] {
            Record::Histogram {
                layout,
                n_labels,
                labels,
                cells,
                ..
            } => {
                assert_eq!(*layout, 0);
                let pairs: Vec<_> = labels_iter(labels, *n_labels).map(Result::unwrap).collect();
                assert_eq!(pairs, vec![("per", "/a"), ("status", "200"), ("domain", "")]);
                let values: Vec<u64> = cells.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                assert_eq!(values, vec![1, 2, 3, 42]);
            }
            _ => panic!("histogram second"),
        }
        assert!(matches!(records[2], Record::Absorbed("w-12-34.db")));
    }

    #[test]
    fn lineage_records_round_trip() {
        let mut recs = Vec::new();
        layout_record(&mut recs, 0, &[1.0], None, 5, 5);
        let (n, labels) = encode_labels([("per", "/a"), ("upstream", "api")]);
        client_record(&mut recs, 0, n, &labels, &[1, 2, 3]);
        let (n, labels) = encode_labels([("caller", "web"), ("status", "5xx")]);
        counter_record(&mut recs, 0, n, &labels, 7);
        let words = image(&recs);
        let region = unsafe { Region::new(as_bytes(&words)) };
        let (_, used) = region.header().unwrap();
        let records = region.records(used).unwrap();
        match &records[1] {
            Record::Client { layout: 0, cells, .. } => {
                let values: Vec<u64> = cells.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                assert_eq!(values, vec![1, 2, 3]);
            }
            _ => panic!("client second"),
        }
        match &records[2] {
            Record::Counter {
                layout: 0,
                n_labels,
                labels,
                value,
            } => {
                let pairs: Vec<_> = labels_iter(labels, *n_labels).map(Result::unwrap).collect();
                assert_eq!(pairs, vec![("caller", "web"), ("status", "5xx")]);
                assert_eq!(value.load(Ordering::Relaxed), 7);
            }
            _ => panic!("counter third"),
        }
    }

    #[test]
    fn a_native_record_is_found_only_from_its_own_series() {
        let mut recs = Vec::new();
        let (n, labels) = encode_labels([("per", "/a")]);
        histogram_record(&mut recs, 0, n, &labels, &[0; 4]);
        let owner = HEADER_LEN + 24; // the record's first cell
        let at = HEADER_LEN + recs.len();
        native_record(&mut recs, owner, &[0, 7, 8]);
        let words = image(&recs);
        let region = unsafe { Region::new(as_bytes(&words)) };
        let slots = region.native_slots(at as u64, owner, 2).unwrap();
        assert_eq!(slots[2].load(Ordering::Relaxed), 8);
        // Another owner, size or place, or an offset outside the file: nothing.
        assert!(region.native_slots(at as u64, owner + 8, 2).is_none());
        assert!(region.native_slots(at as u64, owner, 3).is_none());
        assert!(region.native_slots(HEADER_LEN as u64, owner, 2).is_none());
        assert!(region.native_slots(at as u64 + 4, owner, 2).is_none());
        assert!(region.native_slots(u64::MAX - 7, owner, 2).is_none());
        assert!(region.native_slots(8, owner, 2).is_none());
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let mut recs = Vec::new();
        layout_record(&mut recs, 0, &[1.0], None, 5, 5);
        let (n, labels) = encode_labels([("per", "/a")]);
        histogram_record(&mut recs, 0, n, &labels, &[1, 2, 3]);
        let good = image(&recs);
        let bytes = as_bytes(&good).to_vec();
        // Every truncation and every single-byte change is either read or refused, never a panic.
        for cut in 0..bytes.len() {
            let words: Vec<u64> = image_from(&bytes[..cut]);
            let region = unsafe { Region::new(&as_bytes(&words)[..cut]) };
            if let Ok((_, used)) = region.header() {
                let _ = region.records(used);
            }
        }
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] ^= flip;
                let words = image_from(&damaged);
                let region = unsafe { Region::new(as_bytes(&words)) };
                if let Ok((_, used)) = region.header() {
                    let _ = region.records(used);
                }
            }
        }
        let words = image_from(b"garbage, not a store file, at all!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        assert!(unsafe { Region::new(as_bytes(&words)) }.header().is_err());
    }

    fn image_from(bytes: &[u8]) -> Vec<u64> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr() as *mut u8, bytes.len());
        }
        words
    }

    #[test]
    fn worker_file_names() {
        assert!(is_worker_file_name("w-123-456.db"));
        assert!(!is_worker_file_name("w-.db"));
        assert!(!is_worker_file_name("archive.db"));
        assert!(!is_worker_file_name("w-1/../x.db"));
    }
}
