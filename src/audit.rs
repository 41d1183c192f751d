//! The audit log: events are queued in memory and written in batches by one thread, off
//! the request path.
//!
//! # Loss window
//!
//! An event is durable once its batch commits: at most `audit.flush_interval_ms` (default
//! 200 ms) after it was recorded, plus the time of one batch insert. A crash loses at most
//! the events of that window; a clean shutdown (SIGINT/SIGTERM) flushes everything. When the
//! queue holds `audit.queue_capacity` events (the database is down or too slow), new events
//! are dropped and counted in `patron_audit_events_dropped_total`, so a slow database
//! never blocks requests.
//!
//! # Export
//!
//! With `audit.export`, the writer thread also appends each committed event as one JSON
//! line to standard output or a file (for a SIEM), after its batch commits and off the
//! request path. Events hold no secrets or tokens, so neither do the lines.
//!
//! # Retention
//!
//! [`sweep_expired`] deletes events older than `audit.retention_days` in small batches,
//! each its own short transaction, so the writer and requests never wait long for it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::clock::{self, UnixTime};
use crate::config::{AuditConfig, AuditExport};
use crate::metrics::Metrics;
use crate::store::models::audit_events::{self, NewAuditEvent};
use crate::store::{ConnectionManager, DbConnection, Store, StoreError};

/// Outcome of an audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was refused.
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// An event being built. Never put a secret or a token in any field.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    inner: NewAuditEvent,
}

impl AuditEvent {
    /// A new event `event` (dotted name, e.g. `client.register`) with `outcome`, now.
    pub fn new(event: &'static str, outcome: Outcome) -> Self {
        Self::at(event, outcome, clock::now())
    }

    /// The same, at a given time.
    pub fn at(event: &'static str, outcome: Outcome, at: UnixTime) -> Self {
        Self {
            inner: NewAuditEvent {
                at,
                event: event.to_owned(),
                outcome: outcome.as_str().to_owned(),
                reason: None,
                client_id: None,
                owner_id: None,
                audience: None,
                jti: None,
                source_addr: None,
                request_id: None,
                detail: None,
            },
        }
    }

    /// Sets the reason code.
    pub fn reason(mut self, reason: &str) -> Self {
        self.inner.reason = Some(reason.to_owned());
        self
    }

    /// Sets the client.
    pub fn client(mut self, client_id: &str) -> Self {
        self.inner.client_id = Some(client_id.to_owned());
        self
    }

    /// Sets the owner.
    pub fn owner(mut self, owner_id: Option<&str>) -> Self {
        self.inner.owner_id = owner_id.map(str::to_owned);
        self
    }

    /// Sets the audience.
    pub fn audience(mut self, audience: &str) -> Self {
        self.inner.audience = Some(audience.to_owned());
        self
    }

    /// Sets the token id.
    pub fn jti(mut self, jti: &str) -> Self {
        self.inner.jti = Some(jti.to_owned());
        self
    }

    /// Sets the source address.
    pub fn source(mut self, addr: &str) -> Self {
        self.inner.source_addr = Some(addr.to_owned());
        self
    }

    /// Sets the request id.
    pub fn request(mut self, request_id: &str) -> Self {
        self.inner.request_id = Some(request_id.to_owned());
        self
    }

    /// Sets a free-text detail (never secrets).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.inner.detail = Some(detail.into());
        self
    }
}

/// The in-memory queue shared by request threads and the writer thread.
///
/// Producers only push under a short lock; they wake the writer only when a full batch is
/// waiting. Waking it for every event would cost a context switch per request, on the same
/// core as the requests.
struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
    flushed: Condvar,
}

#[derive(Default)]
struct QueueState {
    events: Vec<NewAuditEvent>,
    flush_requests: u64,
    flushes_done: u64,
    stopped: bool,
}

/// Handle to the audit writer.
#[derive(Clone)]
pub struct AuditLog {
    queue: Arc<Queue>,
    config: AuditConfig,
    metrics: Arc<Metrics>,
}

impl AuditLog {
    /// Starts the writer thread on its own connection.
    pub fn start(
        manager: ConnectionManager,
        config: AuditConfig,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let conn = manager.establish()?;
        let export = Exporter::open(config.export.as_ref())?;
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            flushed: Condvar::new(),
        });
        let (q, m, c) = (queue.clone(), metrics.clone(), config.clone());
        std::thread::Builder::new()
            .name("patron-audit".into())
            .spawn(move || writer_loop(manager, conn, q, c, m, export))?;
        Ok(Self {
            queue,
            config,
            metrics,
        })
    }

    /// Queues an event; never blocks on the database. A full queue drops the event and
    /// counts it.
    pub fn record(&self, event: AuditEvent) {
        let Ok(mut st) = self.queue.state.lock() else {
            self.metrics.audit_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if st.events.len() >= self.config.queue_capacity {
            drop(st);
            self.metrics.audit_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("audit queue full; event dropped");
            return;
        }
        st.events.push(event.inner);
        let full = st.events.len() >= self.config.batch_size;
        drop(st);
        self.metrics.audit_queued.fetch_add(1, Ordering::Relaxed);
        if full {
            self.queue.wake.notify_one();
        }
    }

    /// Writes everything queued so far and waits until it is committed (shutdown, tests).
    pub fn flush(&self, timeout: Duration) -> bool {
        let Ok(mut st) = self.queue.state.lock() else {
            return false;
        };
        st.flush_requests += 1;
        let wanted = st.flush_requests;
        self.queue.wake.notify_one();
        let deadline = Instant::now() + timeout;
        while st.flushes_done < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = match self.queue.flushed.wait_timeout(st, left) {
                Ok((guard, _)) => guard,
                Err(_) => return false,
            };
        }
        true
    }

    /// Flushes and stops the writer thread.
    pub fn stop(&self, timeout: Duration) -> bool {
        let ok = self.flush(timeout);
        if let Ok(mut st) = self.queue.state.lock() {
            st.stopped = true;
        }
        self.queue.wake.notify_one();
        ok
    }
}

/// Where committed events are streamed as JSON lines (`audit.export`).
enum Exporter {
    None,
    Stdout,
    File(std::io::BufWriter<std::fs::File>),
}

/// One exported event. The same fields as the table; none holds a secret.
#[derive(serde::Serialize)]
struct ExportLine<'a> {
    at: UnixTime,
    time: String,
    event: &'a str,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audience: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_addr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl<'a> From<&'a NewAuditEvent> for ExportLine<'a> {
    fn from(e: &'a NewAuditEvent) -> Self {
        Self {
            at: e.at,
            time: clock::rfc3339(e.at),
            event: &e.event,
            outcome: &e.outcome,
            reason: e.reason.as_deref(),
            client_id: e.client_id.as_deref(),
            owner_id: e.owner_id.as_deref(),
            audience: e.audience.as_deref(),
            jti: e.jti.as_deref(),
            source_addr: e.source_addr.as_deref(),
            request_id: e.request_id.as_deref(),
            detail: e.detail.as_deref(),
        }
    }
}

impl Exporter {
    /// Opens the export target; a file is created if missing and appended to.
    fn open(export: Option<&AuditExport>) -> anyhow::Result<Self> {
        Ok(match export {
            None => Self::None,
            Some(AuditExport::Stdout) => Self::Stdout,
            Some(AuditExport::File(path)) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open audit.export {}", path.display()))?;
                Self::File(std::io::BufWriter::new(file))
            }
        })
    }

    /// Writes one line per event and flushes. A failed write is logged, not retried: the
    /// events are in the database either way.
    fn write(&mut self, events: &[NewAuditEvent]) {
        let result = match self {
            Self::None => return,
            Self::Stdout => write_lines(&mut std::io::stdout().lock(), events),
            Self::File(f) => write_lines(f, events),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, events = events.len(), "audit export failed");
        }
    }
}

fn write_lines(out: &mut impl std::io::Write, events: &[NewAuditEvent]) -> std::io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut *out, &ExportLine::from(e))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// How many events one retention transaction deletes at most.
const SWEEP_BATCH: i64 = 500;

/// Deletes the events older than `retention_days` before `now`, batch by batch, pausing
/// between batches so that other writers go first. Returns how many were deleted.
pub async fn sweep_expired(
    store: &Store,
    retention_days: u64,
    now: UnixTime,
) -> Result<usize, StoreError> {
    let before = now.saturating_sub((retention_days as i64).saturating_mul(86_400));
    let mut deleted = 0;
    loop {
        let n = store
            .write(move |c| audit_events::delete_before(c, before, SWEEP_BATCH))
            .await?;
        deleted += n;
        if (n as i64) < SWEEP_BATCH {
            return Ok(deleted);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_batch(
    manager: &ConnectionManager,
    conn: &mut DbConnection,
    batch: &mut Vec<NewAuditEvent>,
    metrics: &Metrics,
    export: &mut Exporter,
) {
    if batch.is_empty() {
        return;
    }
    use diesel::Connection as _;
    for attempt in 0..3 {
        let result = conn.transaction(|c| audit_events::insert_batch(c, batch));
        match result {
            Ok(()) => {
                let n = batch.len() as u64;
                metrics.audit_written.fetch_add(n, Ordering::Relaxed);
                metrics.audit_queued.fetch_sub(n, Ordering::Relaxed);
                export.write(batch);
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, attempt, events = batch.len(), "audit batch write failed");
                if let Ok(fresh) = manager.establish() {
                    *conn = fresh;
                }
                std::thread::sleep(Duration::from_millis(100 << attempt));
            }
        }
    }
    // Keep the events for the next attempt unless the batch grows without bound.
    if batch.len() > 50_000 {
        let n = batch.len() as u64;
        metrics.audit_dropped.fetch_add(n, Ordering::Relaxed);
        metrics.audit_queued.fetch_sub(n, Ordering::Relaxed);
        batch.clear();
    }
}

fn writer_loop(
    manager: ConnectionManager,
    mut conn: DbConnection,
    queue: Arc<Queue>,
    config: AuditConfig,
    metrics: Arc<Metrics>,
    mut export: Exporter,
) {
    let interval = Duration::from_millis(config.flush_interval_ms);
    let mut batch: Vec<NewAuditEvent> = Vec::with_capacity(config.batch_size);
    loop {
        // Sleep until a batch is full, a flush is asked for, or the interval has passed.
        let (flush_target, stopped) = {
            let Ok(mut st) = queue.state.lock() else {
                return;
            };
            if st.events.len() < config.batch_size
                && st.flush_requests == st.flushes_done
                && !st.stopped
            {
                st = match queue.wake.wait_timeout(st, interval) {
                    Ok((guard, _)) => guard,
                    Err(_) => return,
                };
            }
            std::mem::swap(&mut batch, &mut st.events);
            (st.flush_requests, st.stopped)
        };
        write_batch(&manager, &mut conn, &mut batch, &metrics, &mut export);
        if let Ok(mut st) = queue.state.lock() {
            if st.flushes_done < flush_target {
                st.flushes_done = flush_target;
                queue.flushed.notify_all();
            }
        }
        if stopped {
            return;
        }
    }
}
