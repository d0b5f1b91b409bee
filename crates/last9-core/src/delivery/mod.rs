//! Delivery: getting encoded metrics out of the process.
//!
//! - [`server`]: the dedicated metrics HTTP server (hyper on a tokio thread);
//! - [`scrape`]: the handler that ties a registry to that server;
//! - [`live`]: the live RED page and the JSON it reads, from a bounded ring of snapshots;
//! - [`remote_write`]: pushing snapshots with the Prometheus remote-write protocol;
//! - [`access`]: who may read the metrics (basic auth, bearer token), checked by every endpoint.

pub mod access;
pub mod live;
pub mod remote_write;
pub mod scrape;
pub mod server;
