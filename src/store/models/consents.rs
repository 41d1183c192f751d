//! Consents: what one person allowed one client at the authorization endpoint, as the JSON
//! of an [`AuthorizedGrants`] (audience → scopes).
//!
//! [`AuthorizedGrants`]: crate::oauth::authorization::AuthorizedGrants

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::consents;
use crate::store::{DbConnection, StoreError};

/// A stored consent.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    /// The person.
    pub owner_id: String,
    /// The client they authorized.
    pub client_id: String,
    /// JSON object: audience → space-separated scopes.
    pub grants: String,
    /// First consent.
    pub created_at: UnixTime,
    /// Last widened.
    pub updated_at: UnixTime,
}

/// The consent of `owner_id` for `client_id`, if any.
pub fn find(
    conn: &mut DbConnection,
    owner_id: &str,
    client_id: &str,
) -> Result<Option<ConsentRow>, StoreError> {
    consents::table
        .find((owner_id, client_id))
        .select(ConsentRow::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)
}

/// Records (or replaces) a consent, keeping its first date.
pub fn upsert(
    conn: &mut DbConnection,
    owner_id: &str,
    client_id: &str,
    grants: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    let updated = diesel::update(consents::table.find((owner_id, client_id)))
        .set((consents::grants.eq(grants), consents::updated_at.eq(now)))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    if updated == 1 {
        return Ok(());
    }
    diesel::insert_into(consents::table)
        .values((
            consents::owner_id.eq(owner_id),
            consents::client_id.eq(client_id),
            consents::grants.eq(grants),
            consents::created_at.eq(now),
            consents::updated_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Every consent one person gave, newest first (at most `limit`).
pub fn for_owner(
    conn: &mut DbConnection,
    owner_id: &str,
    limit: i64,
) -> Result<Vec<ConsentRow>, StoreError> {
    consents::table
        .filter(consents::owner_id.eq(owner_id))
        .order(consents::updated_at.desc())
        .limit(limit)
        .select(ConsentRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// Deletes one consent; whether it existed.
pub fn delete(
    conn: &mut DbConnection,
    owner_id: &str,
    client_id: &str,
) -> Result<bool, StoreError> {
    diesel::delete(consents::table.find((owner_id, client_id)))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(StoreError::from_diesel)
}
