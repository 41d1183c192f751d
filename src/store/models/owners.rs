//! Owners: humans identified by an upstream identity (`github:<id>`, `google:<sub>`, …).

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::owners;
use crate::store::{DbConnection, StoreError};

/// A stored owner.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = owners)]
pub struct OwnerRow {
    /// Stable id, e.g. `github:12345`.
    pub id: String,
    /// Verified e-mail address.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// First seen.
    pub created_at: UnixTime,
    /// Tokens of all this owner's agents issued before this instant are invalid.
    pub tokens_revoked_before: Option<UnixTime>,
}

/// Looks an owner up.
pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<OwnerRow>, StoreError> {
    owners::table
        .find(id)
        .select(OwnerRow::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)
}

/// Creates the owner record if it does not exist yet.
pub fn ensure(conn: &mut DbConnection, id: &str, now: UnixTime) -> Result<(), StoreError> {
    if find(conn, id)?.is_some() {
        return Ok(());
    }
    diesel::insert_into(owners::table)
        .values((owners::id.eq(id), owners::created_at.eq(now)))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Invalidates every token of every agent of this owner issued up to `at`.
pub fn revoke_all(conn: &mut DbConnection, id: &str, at: UnixTime) -> Result<bool, StoreError> {
    let n = diesel::update(owners::table.find(id))
        .set(owners::tokens_revoked_before.eq(at))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    Ok(n == 1)
}

/// Creates the owner or refreshes their e-mail address and name after a login.
pub fn upsert_login(
    conn: &mut DbConnection,
    id: &str,
    email: &str,
    name: Option<&str>,
    now: UnixTime,
) -> Result<(), StoreError> {
    ensure(conn, id, now)?;
    diesel::update(owners::table.find(id))
        .set((owners::email.eq(email), owners::display_name.eq(name)))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}
