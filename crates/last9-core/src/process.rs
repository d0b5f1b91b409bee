//! This process: its pid (cached, kept right across forks) and the fork epoch.
//!
//! The fork handlers that update these live in the store layer ([`crate::store`]); every layer
//! may read them.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bumped whenever the place of the global registry's cells changes: entering multi-process
/// mode, and in the child of every fork. Recorders compare it on each request (one load).
pub(crate) static EPOCH: AtomicU64 = AtomicU64::new(1);
/// This process's pid, refreshed in the child of a fork (`getpid` is a syscall).
pub(crate) static PID: AtomicU32 = AtomicU32::new(0);
/// In the parent, while forking: its pid, which the child keeps as the root of its instance.
pub(crate) static FORKING_PID: AtomicU32 = AtomicU32::new(0);
/// In a child: the pid of the process it was forked from (0 when not forked since loading).
pub(crate) static PARENT_PID: AtomicU32 = AtomicU32::new(0);
/// When this process began (wall clock, ns): a worker file named with this process's pid and a
/// later time is this process's own, whatever the state of its bookkeeping.
pub(crate) static BORN_NANOS: AtomicU64 = AtomicU64::new(0);
/// This process forked at least once (it may have children writing to its instance directory).
pub(crate) static FORKED: AtomicBool = AtomicBool::new(false);

/// The current epoch; see `store::sync`.
#[inline]
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}

/// This process's pid (cached; kept right across forks by the fork handler).
pub fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            let _ = BORN_NANOS.compare_exchange(0, now_nanos(), Ordering::Relaxed, Ordering::Relaxed);
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
