//! The engine of last9: RED metrics for web applications.
//!
//! The crate is built in layers; each uses only the ones listed before it (a test,
//! `tests/layers.rs`, fails when a file reaches up). See `docs/architecture.md`.
//!
//! - [`error`], [`process`]: the crate's error type; this process's pid and fork epoch;
//! - [`values`]: label values: bounded interning, raw paths, hosts, methods, route templates;
//! - [`model`]: histograms, gauges, recorders, the registry, lineage (no format, no file, no socket);
//! - [`runtime`]: the runtime families (`process_*` from `/proc`, the GC's counts, info);
//! - [`snapshot`]: a consistent copy of the series, taken once per scrape or push;
//! - [`store`]: the multi-process store (pre-fork servers: gunicorn, uWSGI, uvicorn workers);
//! - [`encoding`]: Prometheus text, OpenMetrics and protobuf, content negotiation, gzip (no socket);
//! - [`delivery`]: the metrics HTTP server, the scrape handler, the live page, remote write,
//!   access control.
//!
//! This crate knows nothing of Python; the `last9-python` crate is its binding.

pub mod error;
pub mod process;

pub mod values;

pub mod model;

pub mod runtime;
pub mod snapshot;

pub mod store;

pub mod encoding;

pub mod delivery;

// The paths the binding uses.
pub use delivery::{access, live, remote_write, scrape, server};
pub use encoding as exposition;
pub use encoding::Format;
pub use error::Error;
pub use model::histogram::Buckets;
pub use model::registry::{ConstLabels, Limits, Recorder, Registry, Request, RouteId, RouteTemplates};
pub use model::{exemplar, gauge, histogram, lineage, native, registry};
pub use values::{exclude, labels, normalize};
