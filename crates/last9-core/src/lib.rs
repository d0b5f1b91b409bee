//! The engine of last9: RED metrics for web applications.
//!
//! - [`access`]: who may read the metrics (basic auth, bearer token);
//! - [`registry`]: recorders, their bounded label sets and their series;
//! - [`histogram`]: lock-free histograms and bucket layouts;
//! - [`labels`]: bounded interning of values that come from requests;
//! - [`normalize`]: route templates, raw paths, hosts and methods turned into label values;
//! - [`snapshot`]: a consistent copy of the series, taken once per scrape or push;
//! - [`exposition`]: Prometheus text and OpenMetrics rendering, content negotiation, gzip;
//! - [`server`]: the dedicated metrics HTTP server;
//! - [`remote_write`]: pushing snapshots with the Prometheus remote-write protocol;
//! - [`store`]: the multi-process store (pre-fork servers: gunicorn, uWSGI, uvicorn workers).
//!
//! This crate knows nothing of Python; the `last9-python` crate is its binding.

use std::fmt;

pub mod access;
pub mod exemplar;
pub mod exposition;
pub mod gauge;
pub mod histogram;
pub mod labels;
pub mod lineage;
pub mod native;
pub mod normalize;
pub mod registry;
pub mod remote_write;
pub mod server;
pub mod snapshot;
pub mod store;

pub use exposition::Format;
pub use histogram::Buckets;
pub use registry::{ConstLabels, Limits, Recorder, Registry, Request, RouteId, RouteTemplates};

/// What can go wrong when configuring metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bucket bounds that cannot make a histogram.
    InvalidBuckets(String),
    /// The same constant labels asked for with two bucket layouts.
    ConflictingBuckets(String),
    /// Remote-write settings that cannot work.
    InvalidRemoteWrite(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidBuckets(why) => write!(f, "invalid buckets: {why}"),
            Error::ConflictingBuckets(program) => write!(
                f,
                "program {program:?} already records with other buckets; \
                 one label set cannot have two bucket layouts"
            ),
            Error::InvalidRemoteWrite(why) => write!(f, "invalid remote write settings: {why}"),
        }
    }
}

impl std::error::Error for Error {}
