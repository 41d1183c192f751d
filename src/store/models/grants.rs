//! Grants: which skill audiences (and scopes) an owner allowed an agent.

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::grants;
use crate::store::{DbConnection, StoreError};

/// A stored grant.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = grants)]
pub struct GrantRow {
    /// The agent.
    pub client_id: String,
    /// The skill's audience URI.
    pub audience: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// When granted.
    pub created_at: UnixTime,
}

/// Inserts or replaces one grant.
pub fn upsert(
    conn: &mut DbConnection,
    client_id: &str,
    audience: &str,
    scopes: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    diesel::delete(grants::table.find((client_id, audience)))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    diesel::insert_into(grants::table)
        .values((
            grants::client_id.eq(client_id),
            grants::audience.eq(audience),
            grants::scopes.eq(scopes),
            grants::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Removes every grant of one agent.
/// The grants for one skill.
pub fn for_audience(conn: &mut DbConnection, audience: &str) -> Result<Vec<GrantRow>, StoreError> {
    grants::table
        .filter(grants::audience.eq(audience))
        .order(grants::client_id.asc())
        .select(GrantRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// Deletes one grant; whether it existed.
pub fn delete(
    conn: &mut DbConnection,
    client_id: &str,
    audience: &str,
) -> Result<bool, StoreError> {
    diesel::delete(grants::table.find((client_id, audience)))
        .execute(conn)
        .map(|n| n == 1)
        .map_err(StoreError::from_diesel)
}

pub fn delete_for_client(conn: &mut DbConnection, client_id: &str) -> Result<usize, StoreError> {
    diesel::delete(grants::table.filter(grants::client_id.eq(client_id)))
        .execute(conn)
        .map_err(StoreError::from_diesel)
}

/// All grants of one agent, by audience.
pub fn for_client(conn: &mut DbConnection, client_id: &str) -> Result<Vec<GrantRow>, StoreError> {
    grants::table
        .filter(grants::client_id.eq(client_id))
        .order(grants::audience.asc())
        .select(GrantRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)
}
