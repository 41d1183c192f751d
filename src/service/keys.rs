//! The signing-key service: creates the first key, rotates on demand and on schedule,
//! reloads keys written by other replicas, and keeps the current [`KeyRing`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::clock::UnixTime;
use crate::config::KeysConfig;
use crate::jose::keys::{self, KeyEncryptionKey, KeyError, KeyRing, Signer, StoredKey};
use crate::store::models::signing_keys::{self, SigningKeyRow};
use crate::store::{DbConnection, StoreError};

/// Errors of key management.
#[derive(Debug, thiserror::Error)]
pub enum KeyServiceError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key material failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

fn to_stored(r: SigningKeyRow) -> StoredKey {
    StoredKey {
        kid: r.kid,
        generation: r.generation,
        alg: r.alg,
        public_jwk: r.public_jwk,
        private_key_enc: r.private_key_enc,
        created_at: r.created_at,
        activate_at: r.activate_at,
    }
}

fn to_row(k: &StoredKey) -> SigningKeyRow {
    SigningKeyRow {
        kid: k.kid.clone(),
        generation: k.generation,
        alg: k.alg.clone(),
        public_jwk: k.public_jwk.clone(),
        private_key_enc: k.private_key_enc.clone(),
        created_at: k.created_at,
        activate_at: k.activate_at,
    }
}

/// Loads all stored keys.
pub fn load(conn: &mut DbConnection) -> Result<Vec<StoredKey>, StoreError> {
    Ok(signing_keys::all(conn)?
        .into_iter()
        .map(to_stored)
        .collect())
}

/// Adds a key of the next generation that activates at `activate_at`. Two replicas racing
/// collide on the generation's unique constraint; the loser gets [`StoreError::Conflict`].
pub fn add_key(
    conn: &mut DbConnection,
    config: &KeysConfig,
    kek: &KeyEncryptionKey,
    now: UnixTime,
    activate_at: UnixTime,
) -> Result<StoredKey, KeyServiceError> {
    let generation = load(conn)?.iter().map(|k| k.generation).max().unwrap_or(0) + 1;
    let key = keys::generate(config.algorithm, generation, now, activate_at, kek)?;
    signing_keys::insert(conn, &to_row(&key))?;
    Ok(key)
}

/// Holds the key ring and refreshes it.
pub struct KeyService {
    config: KeysConfig,
    overlap: i64,
    kek: KeyEncryptionKey,
    signers: Mutex<HashMap<String, Signer>>,
    ring: ArcSwap<KeyRing>,
}

impl KeyService {
    /// Loads keys (creating the first one if there is none) and builds the ring.
    pub fn open(
        conn: &mut DbConnection,
        config: KeysConfig,
        skew: i64,
        kek: KeyEncryptionKey,
        now: UnixTime,
    ) -> Result<Self, KeyServiceError> {
        let overlap = config.max_token_lifetime_secs.saturating_add(skew);
        let svc = Self {
            config,
            overlap,
            kek,
            signers: Mutex::new(HashMap::new()),
            ring: ArcSwap::from_pointee(KeyRing {
                current: None,
                jwks_json: Arc::from("{\"keys\":[]}"),
                public: Arc::default(),
                expired: Vec::new(),
            }),
        };
        let existing = load(conn)?;
        if existing.is_empty() {
            let key = add_key(conn, &svc.config, &svc.kek, now, now)?;
            tracing::info!(kid = %key.kid, alg = %key.alg, "generated the first signing key");
        }
        svc.refresh(conn, now)?;
        Ok(svc)
    }

    /// The ring in force.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.load_full()
    }

    /// Rebuilds the ring from the database at `now`, deleting keys past their overlap
    /// window and pre-publishing the next key when the current one is due for rotation.
    pub fn refresh(
        &self,
        conn: &mut DbConnection,
        now: UnixTime,
    ) -> Result<Arc<KeyRing>, KeyServiceError> {
        let mut stored = load(conn)?;
        // Scheduled rotation: pre-publish a successor `promote_delay` before the current key
        // reaches the rotation interval, unless one is already waiting.
        let has_next = stored.iter().any(|k| k.activate_at > now);
        let newest_active = stored
            .iter()
            .filter(|k| k.activate_at <= now)
            .max_by_key(|k| k.generation);
        if let Some(cur) = newest_active {
            let due = cur.activate_at + self.config.rotation_interval_secs
                - self.config.promote_delay_secs;
            if !has_next && now >= due {
                match add_key(
                    conn,
                    &self.config,
                    &self.kek,
                    now,
                    now + self.config.promote_delay_secs,
                ) {
                    Ok(k) => {
                        tracing::info!(kid = %k.kid, activate_at = k.activate_at, "scheduled rotation pre-published the next signing key");
                        stored.push(k);
                    }
                    Err(KeyServiceError::Store(StoreError::Conflict)) => {
                        // Another replica rotated at the same moment; read its key.
                        stored = load(conn)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let ring = {
            let mut cache = self
                .signers
                .lock()
                .map_err(|_| KeyError::Crypto("signer cache poisoned".into()))?;
            KeyRing::build(&stored, now, self.overlap, |k| {
                if let Some(s) = cache.get(&k.kid) {
                    return Ok(s.clone());
                }
                let s = keys::signer(k, &self.kek)?;
                cache.insert(k.kid.clone(), s.clone());
                Ok(s)
            })?
        };
        if !ring.expired.is_empty() {
            let n = signing_keys::delete(conn, &ring.expired)?;
            tracing::info!(
                deleted = n,
                "deleted signing keys past their overlap window"
            );
        }
        let ring = Arc::new(ring);
        self.ring.store(ring.clone());
        Ok(ring)
    }
}
