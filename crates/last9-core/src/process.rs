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

/// A mutex that the fork handlers hold across `fork` and release in both processes.
///
/// A `parking_lot` mutex cannot be released safely in the child when a thread of the parent was
/// waiting for it at the fork: its unlock may hand the lock to that waiter, a thread the child
/// does not have, and the child's next `lock` then waits forever. The standard library's mutex
/// only clears its state and wakes nobody in the child, so the child is never stalled.
pub(crate) struct ForkMutex<T>(std::sync::Mutex<T>);

thread_local! {
    /// The guards the fork handler took before `fork`, in the order taken (the forking thread
    /// is the child's only thread, so the child finds them here too).
    static HELD_ACROSS_FORK: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl<T: 'static> ForkMutex<T> {
    pub(crate) const fn new(value: T) -> ForkMutex<T> {
        ForkMutex(std::sync::Mutex::new(value))
    }

    /// Locks it; a panic of another holder does not make the data unusable.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Locks it if no one holds it.
    pub(crate) fn try_lock(&self) -> Option<std::sync::MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// For a fork handler, before `fork`: takes the lock until [`release_after_fork`].
    pub(crate) fn hold_across_fork(&'static self) {
        let guard = self.lock();
        HELD_ACROSS_FORK.with(|held| held.borrow_mut().push(Box::new(guard)));
    }
}

/// For a fork handler, after `fork`, in the parent and in the child: releases what
/// [`ForkMutex::hold_across_fork`] took, last taken first.
pub(crate) fn release_after_fork() {
    HELD_ACROSS_FORK.with(|held| {
        let mut held = held.borrow_mut();
        while held.pop().is_some() {}
    });
}
