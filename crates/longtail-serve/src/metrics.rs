//! Prometheus metrics in the text exposition format: a few counters, gauges and histograms
//! kept in one registry per server (so tests can run several servers in one process).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Cumulative counts per bucket bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (c, &b) in self.counts.iter_mut().zip(bounds) {
            if v <= b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// The service's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    latency: Mutex<BTreeMap<(String, u16), Histogram>>,
    batch_size: Mutex<Histogram>,
    failures: Mutex<BTreeMap<String, u64>>,
    events_committed: AtomicI64,
    queue_size: AtomicI64,
    commits: AtomicI64,
    reloads: AtomicI64,
}

impl Metrics {
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        let mut m = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((route.to_string(), status))
            .or_default()
            .observe(&LATENCY_BUCKETS, seconds);
    }

    pub fn observe_batch(&self, rows: usize) {
        self.batch_size
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&BATCH_BUCKETS, rows as f64);
    }

    pub fn failure(&self, kind: &str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.to_string())
            .or_default() += 1;
    }

    pub fn events_committed(&self, n: usize) {
        self.events_committed.fetch_add(n as i64, Ordering::Relaxed);
    }

    pub fn commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reload(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    pub fn queue_add(&self, delta: i64) {
        self.queue_size.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP longtail_request_duration_seconds Request latency by route and status.\n# TYPE longtail_request_duration_seconds histogram\n");
        for ((route, status), h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let labels = format!("route=\"{route}\",status=\"{status}\"");
            h.render(
                &mut out,
                "longtail_request_duration_seconds",
                &labels,
                &LATENCY_BUCKETS,
            );
        }
        out.push_str("# HELP longtail_batch_size Rows per model forward pass.\n# TYPE longtail_batch_size histogram\n");
        self.batch_size
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .render(&mut out, "longtail_batch_size", "", &BATCH_BUCKETS);
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: i64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "longtail_queue_size",
            "Requests waiting for the model thread.",
            "gauge",
            self.queue_size.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "longtail_events_committed_total",
            "Feedback events durably committed (new, not duplicates).",
            "counter",
            self.events_committed.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "longtail_store_commits_total",
            "Group commits of the store's writer.",
            "counter",
            self.commits.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "longtail_reloads_total",
            "Successful model reloads.",
            "counter",
            self.reloads.load(Ordering::Relaxed),
        );
        out.push_str("# HELP longtail_failures_total Failed requests by kind.\n# TYPE longtail_failures_total counter\n");
        for (kind, n) in self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(out, "longtail_failures_total{{kind=\"{kind}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_counters() {
        let m = Metrics::default();
        m.observe_request("/v1/recommend", 200, 0.003);
        m.observe_request("/v1/recommend", 200, 0.2);
        m.observe_batch(3);
        m.failure("overloaded");
        m.events_committed(2);
        let text = m.render();
        assert!(text.contains(
            "longtail_request_duration_seconds_bucket{route=\"/v1/recommend\",status=\"200\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "longtail_request_duration_seconds_bucket{route=\"/v1/recommend\",status=\"200\",le=\"0.25\"} 2"
        ));
        assert!(text.contains(
            "longtail_request_duration_seconds_count{route=\"/v1/recommend\",status=\"200\"} 2"
        ));
        assert!(text.contains("longtail_batch_size_bucket{le=\"4\"} 1"));
        assert!(text.contains("longtail_failures_total{kind=\"overloaded\"} 1"));
        assert!(text.contains("longtail_events_committed_total 2"));
    }
}
