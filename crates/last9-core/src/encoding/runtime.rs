//! The runtime families (see `crate::runtime`), in the scrape's format.

use std::fmt::Write as _;

use crate::model::histogram::float_text;
use crate::runtime::{Kind, RuntimeSnapshot};

/// The exposition text of these families (Prometheus text 0.0.4, or OpenMetrics without
/// its closing `# EOF`), to be placed among the other families of a scrape.
pub fn encode(runtime: &RuntimeSnapshot, openmetrics: bool) -> Vec<u8> {
    let mut out = String::new();
    let mut float = ryu::Buffer::new();
    for family in runtime.families() {
        let suffix = if family.kind == Kind::Counter {
            "_total"
        } else {
            ""
        };
        // Text 0.0.4 names a counter's family with its samples' `_total`; OpenMetrics without.
        let family_name = if openmetrics {
            family.name.to_owned()
        } else {
            format!("{}{suffix}", family.name)
        };
        let kind = if family.kind == Kind::Counter {
            "counter"
        } else {
            "gauge"
        };
        let _ = write!(
            out,
            "# HELP {family_name} {}\n# TYPE {family_name} {kind}\n",
            family.help
        );
        for (labels, value) in family.samples {
            out.push_str(family.name);
            out.push_str(suffix);
            if !labels.is_empty() {
                out.push('{');
                out.push_str(labels);
                out.push('}');
            }
            out.push(' ');
            out.push_str(float_text(&mut float, *value, openmetrics));
            out.push('\n');
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_like_prometheus_client() {
        let mut snapshot = RuntimeSnapshot::default();
        snapshot.cpu_seconds.push(("worker=\"0\"".into(), 1.5));
        snapshot.open_fds.push(("worker=\"0\"".into(), 12.0));
        let text = String::from_utf8(encode(&snapshot, false)).unwrap();
        assert_eq!(
            text,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total{worker=\"0\"} 1.5\n\
             # HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\n\
             process_open_fds{worker=\"0\"} 12\n"
        );
        let openmetrics = String::from_utf8(encode(&snapshot, true)).unwrap();
        assert!(openmetrics.starts_with("# HELP process_cpu_seconds Total"));
        assert!(openmetrics
            .contains("# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total{worker=\"0\"} 1.5\n"));
        assert!(openmetrics.contains("process_open_fds{worker=\"0\"} 12.0\n"));
    }
}
