//! Label values: everything that turns what a request carries into a bounded label value.
//!
//! The bottom layer: it knows no series, no format, no file and no socket.

pub mod escape;
pub mod exclude;
pub mod labels;
pub mod normalize;
