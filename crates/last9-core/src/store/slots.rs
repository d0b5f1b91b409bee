//! Worker slots: a bounded `worker` label for the runtime families of a pre-fork server.
//!
//! A worker takes the lowest free `slot-<k>.run` of the instance directory and holds an `fcntl`
//! lock on it for its life, so the label is bounded by the most workers ever alive at once, not
//! by how often they were restarted. The kernel drops the lock however the worker dies (a forked
//! child does not inherit it); the lock also tells the owner's pid. The slot's record holds the
//! counts of starts and exits and the owner's GC counters, which only the owner knows; its
//! `process_*` are read from `/proc` by whichever process scrapes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::process::ForkMutex;

use super::file::Fd;
use crate::runtime::{self, ProcessStats, RuntimeSnapshot, GENERATIONS};

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
/// This process's worker slot, when it holds one.
static SLOT: ForkMutex<Option<OwnSlot>> = ForkMutex::new(None);

/// Held across a fork (after the store's lock), so that the child finds it free and consistent.
pub(crate) fn lock_for_fork() {
    SLOT.hold_across_fork();
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
        let counts = runtime::own_gc()[generation];
        let mut bytes = [0u8; 24];
        for (chunk, count) in bytes.chunks_exact_mut(8).zip(counts) {
            chunk.copy_from_slice(&count.to_le_bytes());
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
    let me = crate::process::pid();
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
    let me = crate::process::pid();
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
        .filter(|slot| slot.pid == crate::process::pid() && slot.dir == dir)
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
                    pid: Some(crate::process::pid()),
                    starts: record[STARTS],
                    exits: record[EXITS],
                    gc: runtime::own_gc(),
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
    (super::dir::start_time(pid)? == start.parse::<u64>().ok()?).then_some(pid)
}

/// The GC sink the runtime calls after each collection (see `runtime::install_gc_sink`).
pub(crate) fn write_gc(generation: Option<usize>) {
    // try_lock: a collection can start inside any allocation, also while this thread claims.
    if let Some(guard) = SLOT.try_lock() {
        if let Some(slot) = guard.as_ref().filter(|slot| slot.pid == crate::process::pid()) {
            match generation {
                Some(generation) if generation < GENERATIONS => slot.write_gc(generation),
                Some(_) => {}
                None => slot.write_gc_all(),
            }
        }
    }
}

/// Every live worker of a pre-fork server's directory and its master, labelled by slot.
pub fn shared_runtime(dir: &Path) -> RuntimeSnapshot {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
