//! Revoked token ids. Revocations are committed to the database before the response, held
//! in memory for the hot path, and synchronised from the database every second so that a
//! revocation on one replica takes effect on all of them within about a second.
//!
//! Behind a small trait so that a shared store (Redis pub/sub) can replace the polling.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::clock::UnixTime;

/// A set of revoked `jti`s.
pub trait RevocationSet: Send + Sync {
    /// Whether `jti` is revoked.
    fn is_revoked(&self, jti: &str) -> bool;
    /// Adds a revoked `jti` that can be forgotten after `expires_at`.
    fn insert(&self, jti: &str, expires_at: UnixTime);
    /// Forgets entries whose tokens have expired.
    fn sweep(&self, now: UnixTime);
}

/// In-memory revocation set.
#[derive(Default)]
pub struct MemoryRevocationSet {
    map: RwLock<HashMap<String, UnixTime>>,
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
            m.retain(|_, exp| *exp > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_ids_are_remembered_until_their_tokens_expire() {
        let s = MemoryRevocationSet::default();
        s.insert("j1", 100);
        assert!(s.is_revoked("j1"));
        assert!(!s.is_revoked("j2"));
        s.sweep(100);
        assert!(!s.is_revoked("j1"));
    }
}
