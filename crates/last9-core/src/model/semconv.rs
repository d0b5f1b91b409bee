//! Under which names the families are exposed: the seed's (`LAST9_SEMCONV=last9`, the default),
//! OpenTelemetry's stable HTTP semantic conventions as Prometheus names them (`otel`), or both
//! (`dup`, as OpenTelemetry's own `http/dup` migration switch).
//!
//! Both namings are renderings of the same cells: with `otel` or `dup` the recorders' buckets
//! also hold OpenTelemetry's advisory bounds ([`OTEL_BOUNDS_MS`]), so the seconds histogram is
//! read from the very counts the milliseconds one is, and `dup` costs no second observation.

use std::sync::atomic::{AtomicU8, Ordering};

/// OpenTelemetry's advisory bucket bounds of `http.server.request.duration`, in milliseconds
/// (0.005 s to 10 s).
pub const OTEL_BOUNDS_MS: [f64; 14] = [
    5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0,
];

/// Which names the families are exposed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Semconv {
    Last9 = 0,
    Otel = 1,
    Dup = 2,
}

static MODE: AtomicU8 = AtomicU8::new(Semconv::Last9 as u8);

impl Semconv {
    /// `last9`, `otel` or `dup`.
    pub fn parse(name: &str) -> Option<Semconv> {
        match name {
            "last9" => Some(Semconv::Last9),
            "otel" => Some(Semconv::Otel),
            "dup" => Some(Semconv::Dup),
            _ => None,
        }
    }

    /// Whether the seed's families are exposed.
    pub fn seed(self) -> bool {
        self != Semconv::Otel
    }

    /// Whether OpenTelemetry's families are exposed.
    pub fn otel(self) -> bool {
        self != Semconv::Last9
    }
}

/// Sets the naming of this process (every app of a process shares one exposition).
pub fn set(mode: Semconv) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// The naming of this process.
pub fn get() -> Semconv {
    match MODE.load(Ordering::Relaxed) {
        1 => Semconv::Otel,
        2 => Semconv::Dup,
        _ => Semconv::Last9,
    }
}
