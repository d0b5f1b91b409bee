//! Mappings of store files that cannot kill the process when their file shrinks.
//!
//! Touching a page of a shared mapping past the end of its file raises SIGBUS. Our own writes
//! never go past the end (space is reserved with `posix_fallocate` before it is mapped), but
//! another process of this user may truncate a file under us, and recording is one atomic add
//! into the mapping: checking the file's size on every request would cost a syscall per request.
//! So every mapping of a store file is registered here, and a SIGBUS inside one of them is
//! answered by putting a private zero page in place of the missing one: the faulting add or load
//! then completes on that page and the process carries on. The guard notes the fault, so the
//! owner can move its series to a new file (see `store::rehome`) and a reader can tell its view
//! of a file was cut. A SIGBUS anywhere else goes to the handler that was there before; one this
//! process raised itself is a handler installed after ours (Python's `faulthandler`) handing a
//! fault on, which is let through so the fault comes back to us.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

const SLOTS: usize = 64;

/// Guarded ranges: start (0 = free slot) and end of each mapping, whether it is writable, and
/// whether it has faulted. Atomics only: the signal handler reads them.
static STARTS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static ENDS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static WRITABLE: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
static FAULTED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// The SIGBUS disposition found when the handler was installed.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// A registered mapping; unregistered on drop (before the mapping goes away).
pub struct Guard {
    slot: usize,
}

impl Guard {
    /// Registers `len` bytes at `start`; None when every slot is taken.
    pub fn new(start: *const u8, len: usize, writable: bool) -> Option<Guard> {
        install();
        let start = start as usize;
        for slot in 0..SLOTS {
            if STARTS[slot].load(Ordering::Relaxed) != 0 {
                continue;
            }
            // Claim the slot with a marker no address can equal, fill it in, then publish.
            if STARTS[slot]
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            ENDS[slot].store(start + len, Ordering::Relaxed);
            WRITABLE[slot].store(writable, Ordering::Relaxed);
            FAULTED[slot].store(false, Ordering::Relaxed);
            STARTS[slot].store(start, Ordering::Release);
            return Some(Guard { slot });
        }
        None
    }

    /// Whether a page of this mapping went missing (its file was cut) since it was registered.
    pub fn faulted(&self) -> bool {
        FAULTED[self.slot].load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        STARTS[self.slot].store(0, Ordering::Release);
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sysconf and sigaction with valid arguments; PREVIOUS is written once, here,
        // before the handler that reads it can run.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut action.sa_mask);
            let previous = std::ptr::addr_of_mut!(PREVIOUS).cast::<libc::sigaction>();
            libc::sigaction(libc::SIGBUS, &action, previous);
        }
    });
}

extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; only atomics, mmap and sigaction are used here.
    unsafe {
        let addr = (*info).si_addr() as usize;
        let from_kernel = (*info).si_code > 0;
        if from_kernel {
            for slot in 0..SLOTS {
                let start = STARTS[slot].load(Ordering::Acquire);
                if start == 0
                    || start == usize::MAX
                    || addr < start
                    || addr >= ENDS[slot].load(Ordering::Relaxed)
                {
                    continue;
                }
                let page = addr & !(PAGE.load(Ordering::Relaxed) - 1);
                let prot = if WRITABLE[slot].load(Ordering::Relaxed) {
                    libc::PROT_READ | libc::PROT_WRITE
                } else {
                    libc::PROT_READ
                };
                let flags = libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
                let mapped = libc::mmap(
                    page as *mut libc::c_void,
                    PAGE.load(Ordering::Relaxed),
                    prot,
                    flags,
                    -1,
                    0,
                );
                if mapped != libc::MAP_FAILED {
                    FAULTED[slot].store(true, Ordering::Release);
                    return; // the faulting instruction runs again, on the zero page
                }
            }
        }
        if !from_kernel && (*info).si_pid() == libc::getpid() {
            // This process re-raised it: a handler installed after ours (Python's faulthandler)
            // met the fault first and hands it on this way. Returning lets the faulting access
            // run again, and this handler, now back in place, sees the fault itself.
            return;
        }
        // Not ours: what would have happened without us.
        let previous = &*std::ptr::addr_of!(PREVIOUS).cast::<libc::sigaction>();
        match previous.sa_sigaction {
            libc::SIG_IGN if !from_kernel => {}
            libc::SIG_DFL | libc::SIG_IGN => {
                libc::sigaction(libc::SIGBUS, previous, std::ptr::null_mut());
                if !from_kernel {
                    libc::raise(signal);
                } // a fault happens again on return, now with the default action
            }
            handler if previous.sa_flags & libc::SA_SIGINFO != 0 => {
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(handler);
                handler(signal, info, context);
            }
            handler => {
                let handler: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                handler(signal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A shared mapping whose file is cut under it: the add lands on a zero page instead of
    /// raising SIGBUS, and the guard says so.
    #[test]
    fn a_cut_file_does_not_kill_the_writer() {
        let path = std::env::temp_dir().join(format!("last9-guard-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(2 * 4096).unwrap();
        use std::os::fd::AsRawFd;
        let len = 2 * 4096;
        // SAFETY: a fresh shared mapping of an open file, unmapped below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        } as *mut u8;
        assert_ne!(ptr as *mut libc::c_void, libc::MAP_FAILED);
        let guard = Guard::new(ptr, len, true).unwrap();
        // SAFETY: aligned, inside the mapping.
        let cell = unsafe { AtomicU64::from_ptr(ptr.add(4096) as *mut u64) };
        cell.fetch_add(5, Ordering::Relaxed);
        assert!(!guard.faulted());
        file.set_len(0).unwrap();
        cell.fetch_add(1, Ordering::Relaxed);
        assert_eq!(cell.load(Ordering::Relaxed), 1, "counts go on from a zero page");
        assert!(guard.faulted());
        drop(guard);
        unsafe { libc::munmap(ptr.cast(), len) };
        std::fs::remove_file(&path).unwrap();
    }
}
