//! Enrollment tokens: RFC 7591 initial access tokens minted for an owner, with preset grants.

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::enrollment_tokens;
use crate::store::{DbConnection, StoreError};

/// A stored enrollment token (only its SHA-256 is kept).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = enrollment_tokens)]
pub struct EnrollmentTokenRow {
    /// Public id, safe to log and show.
    pub id: String,
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// The owner whose agents register with it.
    pub owner_id: String,
    /// Preset grants as JSON: `{"<audience>": "scope1 scope2", …}`.
    pub grants: String,
    /// Registrations it still allows.
    pub uses_left: i32,
    /// Expiry.
    pub expires_at: UnixTime,
    /// When minted.
    pub created_at: UnixTime,
}

/// An enrollment token to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = enrollment_tokens)]
pub struct NewEnrollmentToken<'a> {
    /// Public id.
    pub id: &'a str,
    /// SHA-256 (hex) of the token.
    pub token_hash: &'a str,
    /// Owner.
    pub owner_id: &'a str,
    /// Preset grants JSON.
    pub grants: &'a str,
    /// Allowed registrations.
    pub uses_left: i32,
    /// Expiry.
    pub expires_at: UnixTime,
    /// Now.
    pub created_at: UnixTime,
}

/// Inserts a token.
pub fn insert(conn: &mut DbConnection, new: &NewEnrollmentToken<'_>) -> Result<(), StoreError> {
    diesel::insert_into(enrollment_tokens::table)
        .values(new)
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Looks a token up by the SHA-256 of its value.
pub fn find_by_hash(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<EnrollmentTokenRow>, StoreError> {
    enrollment_tokens::table
        .filter(enrollment_tokens::token_hash.eq(token_hash))
        .select(EnrollmentTokenRow::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)
}

/// Uses the token once, if it is unexpired and has uses left. Returns whether it was used.
pub fn consume(conn: &mut DbConnection, id: &str, now: UnixTime) -> Result<bool, StoreError> {
    let n = diesel::update(
        enrollment_tokens::table
            .find(id)
            .filter(enrollment_tokens::uses_left.gt(0))
            .filter(enrollment_tokens::expires_at.gt(now)),
    )
    .set(enrollment_tokens::uses_left.eq(enrollment_tokens::uses_left - 1))
    .execute(conn)
    .map_err(StoreError::from_diesel)?;
    Ok(n == 1)
}
