//! Client secrets (RFC 6749 §2.3.1): issued by Patron (256 random bits, a recognisable
//! prefix), stored as a keyed hash ([`crate::crypto::SecretHasher`]) and checked in
//! microseconds.
//!
//! # Lazy migration from argon2id
//!
//! Secrets stored before keyed hashing are argon2id PHC strings. They keep working: the
//! first successful check runs argon2id once (on the blocking pool) and replaces the stored
//! hash with the keyed hash of the secret just proven right, in one conditional write that
//! leaves a secret changed meanwhile alone. From then on the client is checked like any
//! other. Wrong secrets against a not yet migrated hash still cost an argon2id run, bounded
//! by [`crate::crypto::Argon2Pool`].

use crate::crypto::{self, StoredSecretHash};
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::models::clients;

/// Prefix of client secrets (recognisable in secret scanners).
pub const CLIENT_SECRET_PREFIX: &str = "patron_cs_";

/// A new client secret and the form to store: `(secret, stored hash)`.
pub fn issue(state: &AppState) -> (String, String) {
    let secret = crypto::random_token(CLIENT_SECRET_PREFIX);
    let stored = state.secrets.hash(&secret);
    (secret, stored)
}

/// Whether `presented` is the secret of `client_id`, whose stored hash is `stored`. A
/// successful check against a legacy argon2id hash replaces it with the keyed hash (see the
/// module documentation); a failed replacement is logged and does not fail the check.
pub async fn verify(state: &AppState, client_id: &str, presented: Secret, stored: &str) -> bool {
    match StoredSecretHash::classify(stored) {
        StoredSecretHash::Keyed(keyed) => state.secrets.verify(presented.expose(), keyed),
        StoredSecretHash::Unknown => false,
        StoredSecretHash::Argon2id(phc) => {
            let rehashed = state.secrets.hash(presented.expose());
            if !state.argon2.verify(presented, phc.to_owned()).await {
                return false;
            }
            migrate(state, client_id, phc, rehashed).await;
            true
        }
    }
}

/// Replaces a legacy hash that a presented secret just matched.
async fn migrate(state: &AppState, client_id: &str, legacy: &str, rehashed: String) {
    let (cid, old) = (client_id.to_owned(), legacy.to_owned());
    let result = state
        .store
        .write(move |c| clients::replace_secret_hash(c, &cid, &old, &rehashed))
        .await;
    match result {
        Ok(replaced) => {
            // The directory caches the old hash; reload it so the next check is keyed.
            state.directory.forget_client(client_id);
            if replaced {
                tracing::info!(
                    client_id,
                    "replaced an argon2id client-secret hash with a keyed hash"
                );
            }
        }
        Err(e) => tracing::warn!(
            client_id,
            error = %e,
            "could not replace an argon2id client-secret hash; the next check will try again"
        ),
    }
}
