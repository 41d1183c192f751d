//! Revoked token ids, kept until the token would stop verifying (`exp` + clock skew).

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

/// Revocations recorded at or after `since` of tokens expiring after `expired_before`
/// (now minus the clock skew: such tokens still verify): `(jti, expires_at)`.
pub fn since(
    conn: &mut DbConnection,
    since: UnixTime,
    expired_before: UnixTime,
) -> Result<Vec<(String, UnixTime)>, StoreError> {
    revoked_tokens::table
        .filter(revoked_tokens::revoked_at.ge(since))
        .filter(revoked_tokens::expires_at.gt(expired_before))
        .select((revoked_tokens::jti, revoked_tokens::expires_at))
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// Deletes revocations of tokens that expired at or before `expired_before` (pass now minus
/// the clock skew: a token verifies until `exp` + skew, so its revocation must last as long).
pub fn purge_expired(
    conn: &mut DbConnection,
    expired_before: UnixTime,
) -> Result<usize, StoreError> {
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.le(expired_before)))
        .execute(conn)
        .map_err(StoreError::from_diesel)
}
