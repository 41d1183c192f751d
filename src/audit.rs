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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
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
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            wake: Condvar::new(),
            flushed: Condvar::new(),
        });
        let (q, m) = (queue.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("patron-audit".into())
            .spawn(move || writer_loop(manager, conn, q, config, m))?;
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
    queue: Arc<Queue>,
    config: AuditConfig,
    metrics: Arc<Metrics>,
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
        write_batch(&manager, &mut conn, &mut batch, &metrics);
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
