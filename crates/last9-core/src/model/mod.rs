//! The in-process model: histograms, gauges, recorders, the registry and lineage families.
//!
//! It knows no format, no file and no socket. Where a series' cells live (the heap, or a
//! shared file in multi-process mode) is decided by a [`registry::SharedCells`] that the
//! store layer hands to the global registry.

pub mod body;
pub(crate) mod cells;
pub mod exemplar;
pub mod gauge;
pub mod histogram;
pub mod lineage;
pub mod native;
pub mod registry;
pub mod semconv;
