//! Prometheus counters, kept as atomics and rendered as text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Registrations accepted.
    pub registrations_created: AtomicU64,
    /// Registrations refused.
    pub registrations_refused: AtomicU64,
    /// RFC 7592 reads, updates and deletes that succeeded.
    pub registrations_managed: AtomicU64,
    /// Audit events written to the database.
    pub audit_written: AtomicU64,
    /// Audit events dropped because the queue was full.
    pub audit_dropped: AtomicU64,
    /// Audit events waiting to be written.
    pub audit_queued: AtomicU64,
    /// Pending registrations purged after their claim window.
    pub pending_purged: AtomicU64,
    /// Responses by status class.
    pub responses_2xx: AtomicU64,
    /// 4xx responses.
    pub responses_4xx: AtomicU64,
    /// 5xx responses.
    pub responses_5xx: AtomicU64,
    /// Signing keys currently published.
    pub keys_published: AtomicU64,
}

impl Metrics {
    /// Counts one response by status code.
    pub fn count_response(&self, status: u16) {
        let c = match status {
            500.. => &self.responses_5xx,
            400.. => &self.responses_4xx,
            _ => &self.responses_2xx,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        metric(
            "patron_registrations_total",
            "counter",
            "Dynamic client registrations by outcome.",
            &[
                ("{outcome=\"success\"}", g(&self.registrations_created)),
                ("{outcome=\"failure\"}", g(&self.registrations_refused)),
            ],
        );
        metric(
            "patron_registration_management_total",
            "counter",
            "Successful RFC 7592 reads, updates and deletes.",
            &[("", g(&self.registrations_managed))],
        );
        metric(
            "patron_pending_registrations_purged_total",
            "counter",
            "Unclaimed registrations deleted after their claim window.",
            &[("", g(&self.pending_purged))],
        );
        metric(
            "patron_audit_events_written_total",
            "counter",
            "Audit events committed to the database.",
            &[("", g(&self.audit_written))],
        );
        metric(
            "patron_audit_events_dropped_total",
            "counter",
            "Audit events dropped because the queue was full.",
            &[("", g(&self.audit_dropped))],
        );
        metric(
            "patron_audit_queue_depth",
            "gauge",
            "Audit events waiting to be written.",
            &[("", g(&self.audit_queued))],
        );
        metric(
            "patron_http_responses_total",
            "counter",
            "HTTP responses by status class.",
            &[
                ("{class=\"2xx\"}", g(&self.responses_2xx)),
                ("{class=\"4xx\"}", g(&self.responses_4xx)),
                ("{class=\"5xx\"}", g(&self.responses_5xx)),
            ],
        );
        metric(
            "patron_signing_keys_published",
            "gauge",
            "Signing keys in the JWKS (next, current and retiring).",
            &[("", g(&self.keys_published))],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_reports_counters_in_prometheus_text() {
        let m = Metrics::default();
        m.registrations_created.fetch_add(3, Ordering::Relaxed);
        m.count_response(503);
        let text = m.render();
        assert!(text.contains("patron_registrations_total{outcome=\"success\"} 3\n"));
        assert!(text.contains("patron_http_responses_total{class=\"5xx\"} 1\n"));
        assert!(text.contains("# TYPE patron_audit_queue_depth gauge\n"));
    }
}
