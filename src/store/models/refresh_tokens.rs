//! Refresh tokens (RFC 6749 §6) and their families: one family per code exchange, holding
//! every refresh token rotated from it. The access tokens issued in a family carry its id
//! in `patron_chain`, so revoking the family (a replayed refresh token or code, a revoked
//! consent, the owner's kill switch) records its id as revoked, which ends all of them.

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::models::revoked_tokens;
use crate::store::schema::{refresh_families, refresh_tokens};
use crate::store::{DbConnection, StoreError};

/// A stored family.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, PartialEq, Eq)]
#[diesel(table_name = refresh_families)]
pub struct FamilyRow {
    /// Identifier.
    pub family_id: String,
    /// The client.
    pub client_id: String,
    /// The person who consented.
    pub owner_id: String,
    /// JSON object: audience → space-separated scopes the code granted.
    pub grants: String,
    /// For public clients that used DPoP: the key every refresh must prove (RFC 9449 §5).
    pub dpop_jkt: Option<String>,
    /// Started.
    pub created_at: UnixTime,
    /// Absolute end: no refresh after this, however recently used.
    pub expires_at: UnixTime,
    /// When revoked.
    pub revoked_at: Option<UnixTime>,
    /// Why revoked.
    pub revoked_reason: Option<String>,
}

/// A stored refresh token.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshRow {
    /// The token's id (time-sortable).
    pub token_id: String,
    /// SHA-256 (hex) of the token's secret.
    pub secret_hash: String,
    /// Its family.
    pub family_id: String,
    /// Issued.
    pub created_at: UnixTime,
    /// Idle end: unusable after this.
    pub expires_at: UnixTime,
    /// When rotated (used).
    pub used_at: Option<UnixTime>,
}

/// Starts a family.
pub fn insert_family(conn: &mut DbConnection, row: &FamilyRow) -> Result<(), StoreError> {
    diesel::insert_into(refresh_families::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Stores a new refresh token of `family_id`.
pub fn insert_token(
    conn: &mut DbConnection,
    token_id: &str,
    secret_hash: &str,
    family_id: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> Result<(), StoreError> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_id.eq(token_id),
            refresh_tokens::secret_hash.eq(secret_hash),
            refresh_tokens::family_id.eq(family_id),
            refresh_tokens::created_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// A refresh token and its family.
pub fn find_token(
    conn: &mut DbConnection,
    token_id: &str,
) -> Result<Option<(RefreshRow, FamilyRow)>, StoreError> {
    refresh_tokens::table
        .inner_join(
            refresh_families::table.on(refresh_families::family_id.eq(refresh_tokens::family_id)),
        )
        .filter(refresh_tokens::token_id.eq(token_id))
        .select((RefreshRow::as_select(), FamilyRow::as_select()))
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)
}

/// Marks a refresh token used; `false` if it already was (of two concurrent refreshes
/// exactly one wins).
pub fn mark_used(
    conn: &mut DbConnection,
    token_id: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    diesel::update(
        refresh_tokens::table
            .find(token_id)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
    .map_err(StoreError::from_diesel)
}

/// Revokes the families `ids` and records their ids as revoked until `until` (when no
/// access token issued in them can still be valid); returns `(family_id, until)` for the
/// caller to tell the other replicas.
fn revoke_ids(
    conn: &mut DbConnection,
    ids: Vec<String>,
    reason: &str,
    now: UnixTime,
    until: UnixTime,
) -> Result<Vec<(String, UnixTime)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(refresh_families::table.filter(refresh_families::family_id.eq_any(&ids)))
        .set((
            refresh_families::revoked_at.eq(now),
            refresh_families::revoked_reason.eq(reason),
        ))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    for id in &ids {
        revoked_tokens::insert(conn, id, None, until, now)?;
    }
    Ok(ids.into_iter().map(|id| (id, until)).collect())
}

/// Which live families to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Families<'a> {
    /// One family (a replayed code or refresh token, a client's own revocation).
    Id(&'a str),
    /// One person's for one client (a revoked consent).
    Consent {
        /// The person.
        owner_id: &'a str,
        /// The client.
        client_id: &'a str,
    },
    /// Every one of one person (the kill switch).
    Owner(&'a str),
}

/// Revokes the live families `which` names.
pub fn revoke(
    conn: &mut DbConnection,
    which: Families<'_>,
    reason: &str,
    now: UnixTime,
    until: UnixTime,
) -> Result<Vec<(String, UnixTime)>, StoreError> {
    let live = refresh_families::table
        .filter(refresh_families::revoked_at.is_null())
        .select(refresh_families::family_id)
        .into_boxed();
    let query = match which {
        Families::Id(id) => live.filter(refresh_families::family_id.eq(id)),
        Families::Consent {
            owner_id,
            client_id,
        } => live
            .filter(refresh_families::owner_id.eq(owner_id))
            .filter(refresh_families::client_id.eq(client_id)),
        Families::Owner(owner_id) => live.filter(refresh_families::owner_id.eq(owner_id)),
    };
    let ids = query.load(conn).map_err(StoreError::from_diesel)?;
    revoke_ids(conn, ids, reason, now, until)
}

/// Deletes refresh tokens and families that expired before `before` (a used refresh token
/// is kept while it could still be presented, so that its reuse is recognised).
pub fn purge_expired(conn: &mut DbConnection, before: UnixTime) -> Result<usize, StoreError> {
    let tokens =
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.lt(before)))
            .execute(conn)
            .map_err(StoreError::from_diesel)?;
    let families =
        diesel::delete(refresh_families::table.filter(refresh_families::expires_at.lt(before)))
            .execute(conn)
            .map_err(StoreError::from_diesel)?;
    Ok(tokens + families)
}
