//! Console sessions (only the SHA-256 of the cookie value is stored) and pending upstream
//! logins (`state` values, single use).

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::{login_states, owners, sessions};
use crate::store::{DbConnection, StoreError};

/// A stored session.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    /// SHA-256 (hex) of the cookie value.
    pub id_hash: String,
    /// The logged-in owner.
    pub owner_id: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// Login time (absolute timeout).
    pub created_at: UnixTime,
    /// Last request (idle timeout).
    pub last_seen_at: UnixTime,
}

/// Inserts a session.
pub fn insert(conn: &mut DbConnection, row: &SessionRow) -> Result<(), StoreError> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id_hash.eq(&row.id_hash),
            sessions::owner_id.eq(&row.owner_id),
            sessions::csrf_token.eq(&row.csrf_token),
            sessions::created_at.eq(row.created_at),
            sessions::last_seen_at.eq(row.last_seen_at),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// The owner's name and e-mail address, loaded with their session for the page header.
#[derive(Debug, Clone, Queryable)]
pub struct SessionOwner {
    /// Display name.
    pub display_name: Option<String>,
    /// Verified e-mail address.
    pub email: Option<String>,
}

/// Looks a session up, with its owner's name and e-mail address in the same query.
pub fn find(
    conn: &mut DbConnection,
    id_hash: &str,
) -> Result<Option<(SessionRow, Option<SessionOwner>)>, StoreError> {
    sessions::table
        .find(id_hash)
        .left_join(owners::table)
        .select((
            SessionRow::as_select(),
            (owners::display_name, owners::email).nullable(),
        ))
        .first::<(SessionRow, Option<(Option<String>, Option<String>)>)>(conn)
        .optional()
        .map(|found| {
            found.map(|(row, owner)| {
                let owner = owner.map(|(display_name, email)| SessionOwner {
                    display_name,
                    email,
                });
                (row, owner)
            })
        })
        .map_err(StoreError::from_diesel)
}

/// Records activity.
pub fn touch(conn: &mut DbConnection, id_hash: &str, now: UnixTime) -> Result<(), StoreError> {
    diesel::update(sessions::table.find(id_hash))
        .set(sessions::last_seen_at.eq(now))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Ends a session.
pub fn delete(conn: &mut DbConnection, id_hash: &str) -> Result<(), StoreError> {
    diesel::delete(sessions::table.find(id_hash))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Stores a pending upstream login.
#[allow(clippy::too_many_arguments)]
pub fn insert_login_state(
    conn: &mut DbConnection,
    state_hash: &str,
    provider: &str,
    nonce: &str,
    pkce_verifier: &str,
    return_to: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    diesel::insert_into(login_states::table)
        .values((
            login_states::state_hash.eq(state_hash),
            login_states::provider.eq(provider),
            login_states::nonce.eq(nonce),
            login_states::pkce_verifier.eq(pkce_verifier),
            login_states::return_to.eq(return_to),
            login_states::created_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// A pending login: `(provider, nonce, pkce_verifier, return_to, created_at)`.
pub type LoginStateRow = (String, String, String, String, UnixTime);

/// Takes a pending login by its state (deleting it: a replayed `state` finds nothing).
/// Returns `(provider, nonce, pkce_verifier, return_to, created_at)`.
pub fn take_login_state(
    conn: &mut DbConnection,
    state_hash: &str,
) -> Result<Option<LoginStateRow>, StoreError> {
    let row = login_states::table
        .find(state_hash)
        .select((
            login_states::provider,
            login_states::nonce,
            login_states::pkce_verifier,
            login_states::return_to,
            login_states::created_at,
        ))
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)?;
    if row.is_some() {
        diesel::delete(login_states::table.find(state_hash))
            .execute(conn)
            .map_err(StoreError::from_diesel)?;
    }
    Ok(row)
}

/// Deletes pending logins older than `before` and sessions idle since before `idle_before`.
pub fn purge(
    conn: &mut DbConnection,
    before: UnixTime,
    idle_before: UnixTime,
) -> Result<usize, StoreError> {
    let a = diesel::delete(login_states::table.filter(login_states::created_at.lt(before)))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    let b = diesel::delete(sessions::table.filter(sessions::last_seen_at.lt(idle_before)))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    Ok(a + b)
}
