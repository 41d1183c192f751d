//! Revoked token ids, kept until the token would have expired.

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::revoked_tokens;
use crate::store::{DbConnection, StoreError};

/// Records a revocation; revoking twice is not an error.
pub fn insert(
    conn: &mut DbConnection,
    jti: &str,
    client_id: Option<&str>,
    expires_at: UnixTime,
    now: UnixTime,
) -> Result<(), StoreError> {
    let exists = revoked_tokens::table
        .find(jti)
        .select(revoked_tokens::jti)
        .first::<String>(conn)
        .optional()
        .map_err(StoreError::from_diesel)?;
    if exists.is_some() {
        return Ok(());
    }
    diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::client_id.eq(client_id),
            revoked_tokens::expires_at.eq(expires_at),
            revoked_tokens::revoked_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Revocations recorded at or after `since` that have not expired: `(jti, expires_at)`.
pub fn since(
    conn: &mut DbConnection,
    since: UnixTime,
    now: UnixTime,
) -> Result<Vec<(String, UnixTime)>, StoreError> {
    revoked_tokens::table
        .filter(revoked_tokens::revoked_at.ge(since))
        .filter(revoked_tokens::expires_at.gt(now))
        .select((revoked_tokens::jti, revoked_tokens::expires_at))
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// Deletes revocations of tokens that have expired anyway.
pub fn purge_expired(conn: &mut DbConnection, now: UnixTime) -> Result<usize, StoreError> {
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.le(now)))
        .execute(conn)
        .map_err(StoreError::from_diesel)
}
