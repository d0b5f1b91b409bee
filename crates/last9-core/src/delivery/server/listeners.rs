//! The listening sockets of this process's metrics servers, closed in the child of a fork so
//! a worker never keeps its parent's port, and the connection cap.

use std::sync::atomic::{AtomicI32, Ordering};

use super::CONNECTION_CAP;

/// Listening sockets of this process, closed in a forked child: the child has no server thread,
/// and a copy of the socket kept open there would leave scrapes hanging after the owner dies.
static LISTENERS: [AtomicI32; 8] = [const { AtomicI32::new(-1) }; 8];

/// Registers a listening socket for closing in forked children.
pub(super) fn register_listener(fd: i32) {
    for slot in &LISTENERS {
        if slot
            .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

pub(super) fn unregister_listener(fd: i32) {
    if fd < 0 {
        return;
    }
    for slot in &LISTENERS {
        let _ = slot.compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Closes the listening sockets inherited from the parent. Called in the child of a fork, where
/// only async-signal-safe work is allowed.
pub(crate) fn close_inherited_listeners() {
    for slot in &LISTENERS {
        let fd = slot.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: the descriptor was the parent's listener; nothing else in the child uses it.
            unsafe { libc::close(fd) };
        }
    }
}

/// The connection cap: [`CONNECTION_CAP`], or a quarter of the descriptors this process may open
/// if that is less, so a flood of clients never starves the app itself of descriptors.
pub fn max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (soft / 4).clamp(16, CONNECTION_CAP)
}
