//! The open connections of a metrics server, as its cap sees them: which to shed when a flood
//! of clients, slow readers or slow senders would starve the server or the app.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::MAX_HELD_RESPONSES;
#[cfg(doc)]
use super::MAX_RENDERS;

/// Where a connection is in its one exchange; what may be shed depends on it.
pub(super) const HEAD: u8 = 0;
pub(super) const RENDERING: u8 = 1;
pub(super) const SENDING: u8 = 2;

/// One open connection, as the cap sees it.
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) phase: AtomicU8,
    /// Signalled to close the connection early.
    pub(super) shed: Notify,
}

/// The open connections, oldest first (ids only grow).
pub(super) struct Connections {
    cap: usize,
    open: Mutex<(u64, BTreeMap<u64, Arc<Conn>>)>,
}

impl Connections {
    pub(super) fn new(cap: usize) -> Connections {
        Connections {
            cap,
            open: Mutex::new((0, BTreeMap::new())),
        }
    }

    /// Registers a new connection. At the cap, the oldest connection still waiting for its
    /// request head is shed to make room (else the oldest slow reader); `None` when every open
    /// connection is rendering, which only [`MAX_RENDERS`] plus waiting scrapes can be.
    /// Also says whether a connection was shed.
    pub(super) fn admit(&self) -> Option<(Arc<Conn>, bool)> {
        let mut guard = self.open.lock();
        let (next_id, open) = &mut *guard;
        let shed = open.len() >= self.cap;
        if shed {
            let victim = oldest_in(open, HEAD).or_else(|| oldest_in(open, SENDING))?;
            if let Some(conn) = open.remove(&victim) {
                conn.shed.notify_one();
            }
        }
        *next_id += 1;
        let conn = Arc::new(Conn {
            id: *next_id,
            phase: AtomicU8::new(HEAD),
            shed: Notify::new(),
        });
        open.insert(conn.id, Arc::clone(&conn));
        Some((conn, shed))
    }

    /// Marks `conn` as holding a rendered body; past [`MAX_HELD_RESPONSES`] the oldest other
    /// such connection (a slow reader) is shed.
    pub(super) fn sending(&self, conn: &Conn) {
        conn.phase.store(SENDING, Ordering::SeqCst);
        let mut guard = self.open.lock();
        let open = &mut guard.1;
        let held = open
            .values()
            .filter(|c| c.phase.load(Ordering::SeqCst) == SENDING)
            .count();
        if held > MAX_HELD_RESPONSES {
            if let Some(victim) = oldest_in(open, SENDING).filter(|&id| id != conn.id) {
                if let Some(shed) = open.remove(&victim) {
                    shed.shed.notify_one();
                }
            }
        }
    }

    pub(super) fn remove(&self, conn: &Conn) {
        self.open.lock().1.remove(&conn.id);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.open.lock().1.len()
    }
}

fn oldest_in(open: &BTreeMap<u64, Arc<Conn>>, phase: u8) -> Option<u64> {
    open.values()
        .find(|c| c.phase.load(Ordering::SeqCst) == phase)
        .map(|c| c.id)
}
