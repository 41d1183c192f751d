//! Revoked token ids. Revocations are committed to the database before the response, held
//! in memory for the hot path, and synchronised from the database every second so that a
//! revocation on one replica takes effect on all of them within about a second.
//!
//! Behind a small trait so that a shared store (Redis pub/sub) can replace the polling.
//!
//! An entry outlives its token's `exp` by the allowed clock skew: tokens verify until
//! `exp` + skew (RFC 7519 §4.1.4 leeway), so forgetting a revocation at `exp` would make the
//! revoked token good again for its last skew window.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::clock::UnixTime;

/// A set of revoked `jti`s.
pub trait RevocationSet: Send + Sync {
    /// Whether `jti` is revoked.
    fn is_revoked(&self, jti: &str) -> bool;
    /// Adds a revoked `jti` whose token expires at `expires_at`.
    fn insert(&self, jti: &str, expires_at: UnixTime);
    /// Forgets entries whose tokens no longer verify at `now` (past `exp` + skew).
    fn sweep(&self, now: UnixTime);
}

/// In-memory revocation set.
pub struct MemoryRevocationSet {
    map: RwLock<HashMap<String, UnixTime>>,
    skew_secs: i64,
}

impl MemoryRevocationSet {
    /// An empty set for tokens accepted until `exp` + `skew_secs`.
    pub fn new(skew_secs: i64) -> Self {
        Self {
            map: RwLock::default(),
            skew_secs,
        }
    }
}

impl RevocationSet for MemoryRevocationSet {
    fn is_revoked(&self, jti: &str) -> bool {
        // A poisoned lock fails closed.
        self.map.read().map(|m| m.contains_key(jti)).unwrap_or(true)
    }

    fn insert(&self, jti: &str, expires_at: UnixTime) {
        if let Ok(mut m) = self.map.write() {
            m.insert(jti.to_owned(), expires_at);
        }
    }

    fn sweep(&self, now: UnixTime) {
        if let Ok(mut m) = self.map.write() {
            let skew = self.skew_secs;
            m.retain(|_, exp| exp.saturating_add(skew) > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_ids_are_remembered_until_their_tokens_stop_verifying() {
        let s = MemoryRevocationSet::new(60);
        s.insert("j1", 100);
        assert!(s.is_revoked("j1"));
        assert!(!s.is_revoked("j2"));
        s.sweep(100);
        assert!(
            s.is_revoked("j1"),
            "the token still verifies within the skew"
        );
        s.sweep(159);
        assert!(s.is_revoked("j1"));
        s.sweep(160);
        assert!(!s.is_revoked("j1"));
    }
}
