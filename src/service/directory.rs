//! Cached views of clients (with their keys, grants and owner) and skills, so the token
//! endpoint makes no database round trip on the hot path.
//!
//! # Freshness
//!
//! An entry is reloaded when it is older than [`MAX_AGE_SECS`] (one second), so a change
//! made on another replica (suspension, a revoke-all, a new grant) takes effect everywhere
//! within about a second. Changes made through this replica invalidate the entry at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::clock::{self, UnixTime};
use crate::jose::jwks::PublicKeySet;
use crate::oauth::client_metadata::ClientMetadata;
use crate::oauth::ids::Audience;
use crate::store::models::clients::{self, ClientStatus};
use crate::store::models::skills::{self, SkillRow};
use crate::store::models::{grants, owners};
use crate::store::{Store, StoreError};

/// Oldest a cached entry may be before it is reloaded.
pub const MAX_AGE_SECS: f64 = 1.0;

/// Everything the token service needs to know about a client.
#[derive(Debug)]
pub struct ClientRecord {
    /// `client_id`.
    pub client_id: String,
    /// Lifecycle state.
    pub status: ClientStatus,
    /// Owner, once claimed.
    pub owner_id: Option<String>,
    /// Validated metadata.
    pub metadata: ClientMetadata,
    /// Keys registered by value (`jwks`), parsed once.
    pub keys: Option<Arc<PublicKeySet>>,
    /// Stored hash of the secret, for secret-based methods (see
    /// [`crate::crypto::StoredSecretHash`]).
    pub secret_hash: Option<String>,
    /// Granted skills: audience → scopes.
    pub grants: HashMap<String, Vec<String>>,
    /// Tokens issued at or before this instant are invalid (suspension, owner revoke-all).
    pub revoked_before: Option<UnixTime>,
}

impl ClientRecord {
    /// Whether a token issued at `iat` to this client has been revoked wholesale.
    pub fn revoked_at(&self, iat: UnixTime) -> bool {
        self.revoked_before.is_some_and(|t| iat <= t)
    }
}

struct Cached<T> {
    value: Option<Arc<T>>,
    loaded: f64,
}

/// All skills by stored audience, and by [`Audience::key`] where that names one skill.
#[derive(Default)]
pub struct SkillMap {
    by_audience: HashMap<String, Arc<SkillRow>>,
    by_key: HashMap<String, Arc<SkillRow>>,
}

impl SkillMap {
    fn new(all: Vec<SkillRow>) -> Self {
        let mut map = Self::default();
        let mut ambiguous = Vec::new();
        for s in all {
            let s = Arc::new(s);
            if let Some(prior) = map.by_key.insert(Audience::key(&s.audience), s.clone()) {
                // Two skills stored before audiences were canonical: only exact names
                // reach them.
                ambiguous.push(Audience::key(&prior.audience));
            }
            map.by_audience.insert(s.audience.clone(), s);
        }
        for k in ambiguous {
            map.by_key.remove(&k);
        }
        map
    }

    /// The skill stored under `audience`, else the one whose audience is a variant of it
    /// (`HTTPS://A.EXAMPLE` for `https://a.example/`). Exact names, what agents send,
    /// cost no parsing.
    pub fn get(&self, audience: &str) -> Option<Arc<SkillRow>> {
        self.by_audience
            .get(audience)
            .or_else(|| self.by_key.get(&Audience::key(audience)))
            .cloned()
    }
}

/// The caches.
#[derive(Default)]
pub struct Directory {
    clients: RwLock<HashMap<String, Cached<ClientRecord>>>,
    skills: RwLock<Option<Cached<SkillMap>>>,
}

fn load_client(
    conn: &mut crate::store::DbConnection,
    client_id: &str,
) -> Result<Option<ClientRecord>, StoreError> {
    let Some(row) = clients::find(conn, client_id)? else {
        return Ok(None);
    };
    if row.is_expired(clock::now()) {
        return Ok(None);
    }
    let metadata: ClientMetadata = row
        .metadata
        .parsed()
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("client {client_id} metadata")))?;
    let keys = match &metadata.jwks {
        Some(jwks) => Some(Arc::new(PublicKeySet::from_jwks(jwks).map_err(|e| {
            StoreError::Corrupt(format!("client {client_id} jwks: {e}"))
        })?)),
        None => None,
    };
    let grants = grants::for_client(conn, client_id)?
        .into_iter()
        .map(|g| {
            let scopes = g
                .scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            (g.audience, scopes)
        })
        .collect();
    let owner_revoked = match &row.owner_id {
        Some(o) => owners::find(conn, o)?.and_then(|o| o.tokens_revoked_before),
        None => None,
    };
    let revoked_before = match (row.tokens_revoked_before, owner_revoked) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(Some(ClientRecord {
        status: row.status,
        client_id: row.client_id,
        owner_id: row.owner_id,
        metadata,
        keys,
        secret_hash: row.client_secret_hash,
        grants,
        revoked_before,
    }))
}

impl Directory {
    /// The client, from the cache when fresh.
    pub async fn client(
        &self,
        store: &Store,
        client_id: &str,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        let now = clock::monotonic();
        if let Ok(map) = self.clients.read() {
            if let Some(c) = map.get(client_id) {
                if now - c.loaded < MAX_AGE_SECS {
                    return Ok(c.value.clone());
                }
            }
        }
        let id = client_id.to_owned();
        let loaded = store
            .read(move |c| load_client(c, &id))
            .await?
            .map(Arc::new);
        if let Ok(mut map) = self.clients.write() {
            if map.len() > 100_000 {
                map.retain(|_, c| now - c.loaded < MAX_AGE_SECS);
            }
            map.insert(
                client_id.to_owned(),
                Cached {
                    value: loaded.clone(),
                    loaded: now,
                },
            );
        }
        Ok(loaded)
    }

    /// Drops a client from the cache (after a change through this replica).
    pub fn forget_client(&self, client_id: &str) {
        if let Ok(mut map) = self.clients.write() {
            map.remove(client_id);
        }
    }

    /// Drops every cached client (after an owner-wide change).
    pub fn forget_all_clients(&self) {
        if let Ok(mut map) = self.clients.write() {
            map.clear();
        }
    }

    /// The skill with this audience, or with an audience it is a variant of (same
    /// [`Audience::key`]), from the cache when fresh.
    pub async fn skill(
        &self,
        store: &Store,
        audience: &str,
    ) -> Result<Option<Arc<SkillRow>>, StoreError> {
        Ok(self.skills(store).await?.get(audience))
    }

    /// Every skill, from the cache when fresh: for a check that runs where nothing can be
    /// awaited (inside a database write).
    pub async fn skills(&self, store: &Store) -> Result<Arc<SkillMap>, StoreError> {
        let now = clock::monotonic();
        if let Ok(guard) = self.skills.read() {
            if let Some(Cached {
                value: Some(map),
                loaded,
            }) = guard.as_ref()
            {
                if now - loaded < MAX_AGE_SECS {
                    return Ok(map.clone());
                }
            }
        }
        let all = store.read(skills::all).await?;
        let map = Arc::new(SkillMap::new(all));
        if let Ok(mut guard) = self.skills.write() {
            *guard = Some(Cached {
                value: Some(map.clone()),
                loaded: now,
            });
        }
        Ok(map)
    }

    /// Drops the skill cache (after a change through this replica).
    pub fn forget_skills(&self) {
        if let Ok(mut guard) = self.skills.write() {
            *guard = None;
        }
    }
}
