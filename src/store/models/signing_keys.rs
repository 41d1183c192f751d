//! Signing keys: public JWK in clear, private key encrypted with the key-encryption key.

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::store::schema::signing_keys;
use crate::store::{DbConnection, StoreError};

/// A stored signing key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    /// Key id (`kid`).
    pub kid: String,
    /// Monotonic generation; unique, so two replicas cannot both add the same generation.
    pub generation: i64,
    /// JWS algorithm.
    pub alg: String,
    /// Public JWK (JSON).
    pub public_jwk: String,
    /// Encrypted private key (base64 of nonce ‖ ciphertext ‖ tag).
    pub private_key_enc: String,
    /// When created (and published).
    pub created_at: UnixTime,
    /// When it starts signing.
    pub activate_at: UnixTime,
}

/// Inserts a key; a taken generation is [`StoreError::Conflict`].
pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(signing_keys::table)
        .values((
            signing_keys::kid.eq(&row.kid),
            signing_keys::generation.eq(row.generation),
            signing_keys::alg.eq(&row.alg),
            signing_keys::public_jwk.eq(&row.public_jwk),
            signing_keys::private_key_enc.eq(&row.private_key_enc),
            signing_keys::created_at.eq(row.created_at),
            signing_keys::activate_at.eq(row.activate_at),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// All keys, oldest generation first.
pub fn all(conn: &mut DbConnection) -> Result<Vec<SigningKeyRow>, StoreError> {
    signing_keys::table
        .order(signing_keys::generation.asc())
        .select(SigningKeyRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)
}

/// Deletes keys by id (retired keys past their overlap window).
pub fn delete(conn: &mut DbConnection, kids: &[String]) -> Result<usize, StoreError> {
    if kids.is_empty() {
        return Ok(0);
    }
    diesel::delete(signing_keys::table.filter(signing_keys::kid.eq_any(kids)))
        .execute(conn)
        .map_err(StoreError::from_diesel)
}
