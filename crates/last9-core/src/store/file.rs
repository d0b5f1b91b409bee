//! Files of the store as this process sees them: its own worker file, mapped for writing, and
//! other processes' files, mapped read-only for a scrape.
//!
//! A worker file is locked (an `fcntl` write lock on the whole file) for as long as its process
//! lives. The kernel drops such a lock when the process dies, however it dies, and a forked child
//! does not inherit it, so "unlocked" reliably means "its writer is gone".

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{self, Region};
use super::guard::Guard;

/// Address space reserved for a worker file's mapping: the file grows inside it, so cells never
/// move. 256 MiB holds about 600,000 series; it is virtual memory, not memory used.
pub const RESERVE: usize = 256 << 20;
/// First size of a worker file; it doubles as needed.
const INITIAL_SIZE: usize = 64 << 10;

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An open file descriptor, closed on drop.
pub struct Fd(pub libc::c_int);

impl Fd {
    /// Opens a path of the store. Never follows a symlink, never waits on a FIFO or device, and
    /// creates files readable by this user only, whatever the umask.
    pub fn open(path: &Path, flags: libc::c_int) -> io::Result<Fd> {
        let path = cstr(path)?;
        let flags = flags | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        // SAFETY: a valid NUL-terminated path.
        let fd = check(unsafe { libc::open(path.as_ptr(), flags, 0o600) })?;
        Ok(Fd(fd))
    }

    /// Opens a file of the store for reading, if it is a regular file of this user that no one
    /// else can write: anything else in the directory is not ours to trust.
    pub fn open_ours(path: &Path) -> io::Result<Fd> {
        // Checked before opening too: opening a device may do something by itself.
        if !std::fs::symlink_metadata(path)?.file_type().is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        let fd = Fd::open(path, libc::O_RDONLY)?;
        let st = fd.stat()?;
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        if st.st_uid != uid || st.st_mode & 0o022 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "owned or writable by another user",
            ));
        }
        Ok(fd)
    }

    fn stat(&self) -> io::Result<libc::stat> {
        // SAFETY: fstat into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstat(self.0, &mut st) })?;
        Ok(st)
    }

    pub fn size(&self) -> io::Result<usize> {
        Ok(self.stat()?.st_size as usize)
    }

    /// Makes the first `len` bytes of the file real blocks, growing it if needed. With the
    /// space reserved, writing through a mapping can never meet a full disk (which the kernel
    /// answers with SIGBUS); here it is an ordinary error.
    fn reserve(&self, len: usize) -> io::Result<()> {
        // SAFETY: plain syscall on an owned fd; it returns the error number.
        match unsafe { libc::posix_fallocate(self.0, 0, len as libc::off_t) } {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    /// Takes an exclusive `fcntl` lock on the whole file, without waiting.
    fn lock_exclusive(&self) -> io::Result<()> {
        let mut lock = whole_file_lock(libc::F_WRLCK);
        check(unsafe { libc::fcntl(self.0, libc::F_SETLK, &mut lock) }).map(drop)
    }

    /// Whether another process holds an `fcntl` lock on the file.
    pub fn is_locked_by_another(&self) -> bool {
        let mut lock = whole_file_lock(libc::F_WRLCK);
        // SAFETY: F_GETLK fills in `lock`.
        let ret = unsafe { libc::fcntl(self.0, libc::F_GETLK, &mut lock) };
        // When in doubt, the file is treated as live: its counts stay in the view either way.
        ret < 0 || lock.l_type != libc::F_UNLCK as libc::c_short
    }

    /// `flock`: shared or exclusive, blocking or not. Released when the fd is closed.
    pub fn flock(&self, operation: libc::c_int) -> io::Result<()> {
        loop {
            // SAFETY: plain syscall on an owned fd.
            match check(unsafe { libc::flock(self.0, operation) }) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map(drop),
            }
        }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn whole_file_lock(kind: libc::c_int) -> libc::flock {
    // SAFETY: all-zero is a valid `flock` (start 0, length 0: the whole file).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock
}

/// A shared mapping of a file, unmapped (and its descriptor closed) on drop. It is guarded (see
/// [`Guard`]): should its file be cut under it, touching it does not kill the process.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    fd: Fd,
    guard: Option<Guard>,
}

// SAFETY: the mapping is plain memory; concurrent access goes through atomics.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    fn map(fd: Fd, len: usize, writable: bool) -> io::Result<Mapping> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping of `len` bytes of an open file.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd.0, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut mapping = Mapping {
            ptr: NonNull::new(ptr as *mut u8).expect("mmap does not return null"),
            len,
            fd,
            guard: None,
        };
        mapping.guard = Guard::new(ptr as *const u8, len, writable);
        if mapping.guard.is_none() {
            return Err(io::Error::other("too many store files mapped at once"));
        }
        Ok(mapping)
    }

    /// Whether a page of this mapping went missing because its file was cut under it.
    pub fn faulted(&self) -> bool {
        self.guard.as_ref().is_some_and(Guard::faulted)
    }

    /// Maps a whole file read-only, for a scrape. A live writer may grow its file between the
    /// size check and the mapping: then the file is mapped again, at its new size.
    pub fn open_read(path: &Path) -> io::Result<Mapping> {
        let mut tries = 0;
        loop {
            let fd = Fd::open_ours(path)?;
            let size = fd.size()?;
            if size < format::HEADER_LEN {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("truncated: {size} bytes, shorter than the header"),
                ));
            }
            let map = Mapping::map(fd, size, false)?;
            // SAFETY: the whole mapping is backed by the file.
            let grown = match unsafe { map.region(size) }.header() {
                Ok((_, used)) => used > size,
                Err(_) => false, // the caller reports it
            };
            tries += 1;
            if !grown || tries == 3 {
                return Ok(map);
            }
        }
    }

    pub fn fd(&self) -> &Fd {
        &self.fd
    }

    /// The first `len` bytes, which must all be backed by the file.
    ///
    /// # Safety
    ///
    /// See [`Region::new`]: `len` must not exceed the file's size.
    pub unsafe fn region(&self, len: usize) -> Region<'_> {
        Region::new(std::slice::from_raw_parts(self.ptr.as_ptr(), len.min(self.len)))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        self.guard = None; // unregistered before the range can be mapped again
                           // SAFETY: unmapping what `map` mapped; nothing refers to it any more (cells hold an Arc).
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// Why a series could not be given cells in the file.
#[derive(Debug)]
pub enum AppendError {
    /// The reserved address space is used up.
    Full,
    Io(io::Error),
}

/// This process's own file: created locked, grown inside one reserved mapping, appended to.
pub struct WorkerFile {
    /// Where the file is now: its temporary name until [`WorkerFile::publish`].
    path: PathBuf,
    /// Its `w-<pid>-<ns>.db` name, once published.
    name: String,
    published: bool,
    map: Arc<Mapping>,
    size: usize,
    used: usize,
    pid: u32,
}

impl WorkerFile {
    /// Creates `w-<pid>-<ns>.db` in `dir`. The file is locked and given its header under a
    /// temporary name first, so no reader or compactor ever sees it unlocked or half-made.
    pub fn create(dir: &Path, pid: u32) -> io::Result<WorkerFile> {
        let mut file = WorkerFile::create_unpublished(dir, pid)?;
        file.publish(dir)?;
        Ok(file)
    }

    /// Creates the file under its temporary name only (`.new-<pid>-<ns>`), which readers skip.
    pub fn create_unpublished(dir: &Path, pid: u32) -> io::Result<WorkerFile> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("w-{pid}-{nanos}.db");
        let temp = dir.join(format!(".new-{pid}-{nanos}"));
        let fd = Fd::open(&temp, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)?;
        let made = (|| {
            fd.lock_exclusive()?;
            fd.reserve(INITIAL_SIZE)?;
            let map = Mapping::map(fd, RESERVE, true)?;
            let header = format::header(format::FILE_WORKER, pid);
            // SAFETY: the first INITIAL_SIZE bytes are backed by the file.
            unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), map.ptr.as_ptr(), header.len()) };
            Ok(map)
        })();
        match made {
            Ok(map) => Ok(WorkerFile {
                path: temp,
                name,
                published: false,
                map: Arc::new(map),
                size: INITIAL_SIZE,
                used: format::HEADER_LEN,
                pid,
            }),
            Err(e) => {
                // A failure (a full disk, say) leaves nothing behind.
                let _ = std::fs::remove_file(&temp);
                Err(e)
            }
        }
    }

    /// Gives the file its `w-` name, where readers find it.
    pub fn publish(&mut self, dir: &Path) -> io::Result<()> {
        if !self.published {
            let path = dir.join(&self.name);
            if let Err(e) = std::fs::rename(&self.path, &path) {
                let _ = std::fs::remove_file(&self.path);
                return Err(e);
            }
            self.path = path;
            self.published = true;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's `w-` name (where it is, once published).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_published(&self) -> bool {
        self.published
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// Whether another process cut the file under us: some of its cells are gone.
    pub fn is_cut(&self) -> bool {
        self.map.faulted() || self.map.fd.size().is_ok_and(|size| size < self.size)
    }

    /// Marks the file as not holding every series of its process (see [`format::FLAG_PARTIAL`]).
    pub fn mark_partial(&self) {
        // SAFETY: aligned header field, only accessed atomically.
        let flags =
            unsafe { AtomicU32::from_ptr(self.map.ptr.as_ptr().add(format::FLAGS_OFFSET) as *mut u32) };
        flags.fetch_or(format::FLAG_PARTIAL, Ordering::Release);
    }

    /// The published part of the file, for this process's own scrape.
    pub fn region(&self) -> Region<'_> {
        // SAFETY: `used` bytes are backed by the file.
        unsafe { self.map.region(self.used) }
    }

    /// Appends a record and publishes it; returns its offset in the file.
    pub fn append(&mut self, record: &[u8]) -> Result<usize, AppendError> {
        debug_assert_eq!(record.len() % 8, 0);
        let end = self.used + record.len();
        if end > self.size {
            let mut size = self.size;
            while size < end {
                size *= 2;
            }
            if size > RESERVE {
                return Err(AppendError::Full);
            }
            // Blocks first, then writes: a full disk is an error here, never a SIGBUS later.
            self.map.fd.reserve(size).map_err(AppendError::Io)?;
            self.size = size;
        }
        let at = self.used;
        // SAFETY: `at..end` lies inside the file and the mapping, and nothing else writes there.
        unsafe {
            std::ptr::copy_nonoverlapping(record.as_ptr(), self.map.ptr.as_ptr().add(at), record.len())
        };
        self.used = end;
        self.used_cell().store(end as u64, Ordering::Release);
        Ok(at)
    }

    /// The cells (link, then `len` slots) of the NATIVE record that the cell `link` of this
    /// file links to: the one there is, or a new one. None when `link` is not in this file or
    /// the file cannot take the record (the series then keeps its counts, exactly, at a
    /// coarser schema).
    pub fn native_extension(&mut self, link: &AtomicU64, len: usize) -> Option<NonNull<AtomicU64>> {
        let owner_at = (link as *const AtomicU64 as usize).checked_sub(self.map.ptr.as_ptr() as usize)?;
        if owner_at >= self.used {
            return None;
        }
        let linked = link.load(Ordering::Acquire);
        if linked != 0 {
            let slots = self.region().native_slots(linked, owner_at, len)?;
            return Some(NonNull::from(&slots[0]));
        }
        let mut record = Vec::with_capacity(format::native_record_len(len).0);
        format::native_record(&mut record, owner_at, &vec![0; len + 1]);
        let at = self.append(&record).ok()?;
        link.store(at as u64, Ordering::Release);
        Some(self.cell_ptr(at + format::native_record_len(len).1))
    }

    fn used_cell(&self) -> &AtomicU64 {
        // SAFETY: aligned header field, only accessed atomically.
        unsafe { AtomicU64::from_ptr(self.map.ptr.as_ptr().add(format::USED_OFFSET) as *mut u64) }
    }

    /// The cell at byte offset `at` of the file, as a pointer that lives as long as the mapping.
    pub fn cell_ptr(&self, at: usize) -> NonNull<AtomicU64> {
        debug_assert!(at % 8 == 0 && at < self.used);
        // SAFETY: in bounds of the mapping.
        unsafe { NonNull::new_unchecked(self.map.ptr.as_ptr().add(at) as *mut AtomicU64) }
    }
}

/// An empty worker file, locked like a real one, for a process whose real file cannot be made
/// (the disk is full): readers cannot read it, so they know their sums miss a live process.
pub struct Stub {
    pub name: String,
    path: PathBuf,
    pid: u32,
    _fd: Fd,
}

impl Stub {
    pub fn create(dir: &Path, pid: u32) -> io::Result<Stub> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("w-{pid}-{nanos}.db");
        let temp = dir.join(format!(".new-{pid}-{nanos}"));
        let fd = Fd::open(&temp, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)?;
        let path = dir.join(&name);
        if let Err(e) = fd.lock_exclusive().and_then(|()| std::fs::rename(&temp, &path)) {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        Ok(Stub {
            name,
            path,
            pid,
            _fd: fd,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Deletes the stub (this process has a real file now).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `bytes` to `dir/name` atomically: a temporary file, then a rename.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        // Readable by this user only, whatever the umask (0600 can only lose bits to it).
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(bytes)?;
        std::fs::rename(&temp, dir.join(name))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}
