//! Authorization codes (RFC 6749 §4.1.2), stored by their id with the SHA-256 of their
//! secret ([`crate::oauth::split_token`]).

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::authorization_codes;
use crate::store::{DbConnection, StoreError};

/// A stored code.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, PartialEq, Eq)]
#[diesel(table_name = authorization_codes)]
pub struct CodeRow {
    /// The code's id (time-sortable).
    pub code_id: String,
    /// SHA-256 (hex) of the code's secret.
    pub secret_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The person who approved it.
    pub owner_id: String,
    /// The `redirect_uri` of the authorization request, when it named one.
    pub redirect_uri: Option<String>,
    /// The PKCE `code_challenge` (S256).
    pub code_challenge: String,
    /// JSON object: audience → space-separated scopes.
    pub grants: String,
    /// Issued.
    pub created_at: UnixTime,
    /// Unusable after.
    pub expires_at: UnixTime,
    /// When exchanged.
    pub used_at: Option<UnixTime>,
    /// The refresh family its exchange started.
    pub family_id: Option<String>,
}

/// Stores a new code.
pub fn insert(conn: &mut DbConnection, row: &CodeRow) -> Result<(), StoreError> {
    diesel::insert_into(authorization_codes::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// The code with this id, used or not.
pub fn find(conn: &mut DbConnection, code_id: &str) -> Result<Option<CodeRow>, StoreError> {
    authorization_codes::table
        .find(code_id)
        .select(CodeRow::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)
}

/// Marks the code used by the exchange that starts `family_id`; `false` if another
/// exchange already used it (of two concurrent exchanges exactly one wins).
pub fn mark_used(
    conn: &mut DbConnection,
    code_id: &str,
    family_id: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    diesel::update(
        authorization_codes::table
            .find(code_id)
            .filter(authorization_codes::used_at.is_null()),
    )
    .set((
        authorization_codes::used_at.eq(now),
        authorization_codes::family_id.eq(family_id),
    ))
    .execute(conn)
    .map(|n| n == 1)
    .map_err(StoreError::from_diesel)
}

/// Deletes the codes whose id sorts before `id_bound` (made before a moment since which
/// every code has expired: used ones are kept until then, so that a replay within their
/// lifetime is recognised). A range of the key, so no index is needed.
pub fn purge_before(conn: &mut DbConnection, id_bound: &str) -> Result<usize, StoreError> {
    diesel::delete(authorization_codes::table.filter(authorization_codes::code_id.lt(id_bound)))
        .execute(conn)
        .map_err(StoreError::from_diesel)
}
