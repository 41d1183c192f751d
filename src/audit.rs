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

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::clock::{self, UnixTime};
use crate::config::AuditConfig;
use crate::metrics::Metrics;
use crate::store::models::audit_events::{self, NewAuditEvent};
use crate::store::{ConnectionManager, DbConnection};

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

enum Message {
    Event(Box<NewAuditEvent>),
    Flush(mpsc::Sender<()>),
}

/// Handle to the audit writer.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Message>,
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
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("patron-audit".into())
            .spawn(move || writer_loop(manager, conn, rx, config, m))?;
        Ok(Self { tx, metrics })
    }

    /// Queues an event; never blocks. A full queue drops the event and counts it.
    pub fn record(&self, event: AuditEvent) {
        match self.tx.try_send(Message::Event(Box::new(event.inner))) {
            Ok(()) => {
                self.metrics.audit_queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.audit_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("audit queue full or closed; event dropped");
            }
        }
    }

    /// Writes everything queued so far and waits until it is committed (shutdown, tests).
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Message::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }
}

fn write_batch(
    manager: &ConnectionManager,
    conn: &mut DbConnection,
    batch: &mut Vec<NewAuditEvent>,
    metrics: &Metrics,
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
    rx: mpsc::Receiver<Message>,
    config: AuditConfig,
    metrics: Arc<Metrics>,
) {
    let interval = Duration::from_millis(config.flush_interval_ms);
    let mut batch: Vec<NewAuditEvent> = Vec::with_capacity(config.batch_size);
    let mut deadline: Option<Instant> = None;
    loop {
        let wait = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Message::Event(e)) => {
                batch.push(*e);
                deadline.get_or_insert_with(|| Instant::now() + interval);
                if batch.len() >= config.batch_size {
                    write_batch(&manager, &mut conn, &mut batch, &metrics);
                    deadline = None;
                }
            }
            Ok(Message::Flush(ack)) => {
                write_batch(&manager, &mut conn, &mut batch, &metrics);
                deadline = None;
                let _ = ack.send(());
            }
            Err(RecvTimeoutError::Timeout) => {
                write_batch(&manager, &mut conn, &mut batch, &metrics);
                deadline = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                write_batch(&manager, &mut conn, &mut batch, &metrics);
                return;
            }
        }
    }
}
