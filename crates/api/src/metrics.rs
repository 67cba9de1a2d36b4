//! Prometheus text-format metrics (exposition format 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Counters and gauges the server exposes at `/metrics`. Other parts of the server register
/// their own families through [`Metrics::counter_add`] and [`Metrics::gauge_set`].
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
    gauges: Mutex<BTreeMap<(String, String), i64>>,
    started: AtomicI64,
}

impl Metrics {
    pub fn api_request(&self, operation: &str, status: u16) {
        self.counter_add(
            "vc_api_requests_total",
            &format!("operation=\"{operation}\",status=\"{status}\""),
            1,
        );
    }

    /// Adds to counter `name` with the given label set (`key="value",…`).
    pub fn counter_add(&self, name: &str, labels: &str, n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name.to_string(), labels.to_string())).or_insert(0) += n;
        }
    }

    /// Records `value` in histogram `name` with upper bounds `buckets` (cumulative
    /// `_bucket{le=…}`, `_sum`, `_count`, as the exposition format wants).
    pub fn observe(&self, name: &str, buckets: &[f64], value: f64) {
        for b in buckets {
            if value <= *b {
                self.counter_add(&format!("{name}_bucket"), &format!("le=\"{b}\""), 1);
            }
        }
        self.counter_add(&format!("{name}_bucket"), "le=\"+Inf\"", 1);
        self.counter_add(&format!("{name}_count"), "", 1);
        self.counter_add(&format!("{name}_sum"), "", value.max(0.0).round() as u64);
    }

    pub fn gauge_set(&self, name: &str, labels: &str, v: i64) {
        if let Ok(mut g) = self.gauges.lock() {
            g.insert((name.to_string(), labels.to_string()), v);
        }
    }

    pub fn set_start_time(&self, unix_secs: i64) {
        self.started.store(unix_secs, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut last = String::new();
        if let Ok(c) = self.counters.lock() {
            for ((name, labels), v) in c.iter() {
                if *name != last {
                    let _ = writeln!(out, "# TYPE {name} counter");
                    last = name.clone();
                }
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        if let Ok(g) = self.gauges.lock() {
            for ((name, labels), v) in g.iter() {
                if *name != last {
                    let _ = writeln!(out, "# TYPE {name} gauge");
                    last = name.clone();
                }
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        let _ = writeln!(out, "# TYPE vc_start_time_seconds gauge");
        let _ = writeln!(
            out,
            "vc_start_time_seconds {}",
            self.started.load(Ordering::Relaxed)
        );
        out
    }
}
