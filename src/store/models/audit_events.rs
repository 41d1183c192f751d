//! Audit events, written in batches by the audit writer.

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::audit_events;
use crate::store::{DbConnection, StoreError};

/// A stored audit event.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    /// Sequence number.
    pub id: i64,
    /// When it happened.
    pub at: UnixTime,
    /// What was attempted (`client.register`, …).
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Precise reason code for a failure.
    pub reason: Option<String>,
    /// The client concerned.
    pub client_id: Option<String>,
    /// The owner concerned.
    pub owner_id: Option<String>,
    /// The audience concerned.
    pub audience: Option<String>,
    /// The token concerned.
    pub jti: Option<String>,
    /// Source address of the request.
    pub source_addr: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Extra detail (never secrets).
    pub detail: Option<String>,
}

/// An audit event to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent {
    /// When it happened.
    pub at: UnixTime,
    /// What was attempted.
    pub event: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Reason code.
    pub reason: Option<String>,
    /// Client.
    pub client_id: Option<String>,
    /// Owner.
    pub owner_id: Option<String>,
    /// Audience.
    pub audience: Option<String>,
    /// Token id.
    pub jti: Option<String>,
    /// Source address.
    pub source_addr: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Extra detail.
    pub detail: Option<String>,
}

/// Inserts a batch of events in one statement per chunk.
pub fn insert_batch(conn: &mut DbConnection, events: &[NewAuditEvent]) -> Result<(), StoreError> {
    // Keep each statement well under SQLite's bound-parameter limit (11 columns per row).
    // Multi-row INSERT is backend-specific in diesel, so dispatch on the concrete connection.
    for chunk in events.chunks(500) {
        let query = diesel::insert_into(audit_events::table).values(chunk);
        match conn {
            DbConnection::Sqlite(c) => query.execute(c),
            DbConnection::Postgres(c) => query.execute(c),
        }
        .map_err(StoreError::from_diesel)?;
    }
    Ok(())
}

/// `(at, outcome)` of token issuance attempts by one client since `since` (for charts).
pub fn token_outcomes_since(
    conn: &mut DbConnection,
    client_id: &str,
    since: UnixTime,
) -> Result<Vec<(UnixTime, String)>, StoreError> {
    audit_events::table
        .filter(audit_events::client_id.eq(client_id))
        .filter(audit_events::event.eq("token.issue"))
        .filter(audit_events::at.ge(since))
        .select((audit_events::at, audit_events::outcome))
        .limit(100_000)
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// One page of the events about one client, newest first: those with an id below
/// `before` (the oldest id of the previous page), or the newest when `before` is `None`.
pub fn page_for_client(
    conn: &mut DbConnection,
    client_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEventRow>, StoreError> {
    let mut query = audit_events::table
        .filter(audit_events::client_id.eq(client_id))
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(audit_events::id.lt(before));
    }
    query
        .order(audit_events::id.desc())
        .limit(limit)
        .select(AuditEventRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// Deletes at most `limit` of the oldest events from before `before`; returns how many.
/// Small batches keep each transaction short, so other writers wait milliseconds at most.
pub fn delete_before(
    conn: &mut DbConnection,
    before: UnixTime,
    limit: i64,
) -> Result<usize, StoreError> {
    let oldest: Vec<i64> = audit_events::table
        .filter(audit_events::at.lt(before))
        .order(audit_events::at.asc())
        .limit(limit)
        .select(audit_events::id)
        .load(conn)
        .map_err(StoreError::from_diesel)?;
    if oldest.is_empty() {
        return Ok(0);
    }
    diesel::delete(audit_events::table.filter(audit_events::id.eq_any(&oldest)))
        .execute(conn)
        .map_err(StoreError::from_diesel)
}
