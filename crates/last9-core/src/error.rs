//! The one error type of the crate: settings that cannot work.

use std::fmt;

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
