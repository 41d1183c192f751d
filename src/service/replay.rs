//! Single-use identifiers (client assertion and DPoP proof `jti`s): the first use wins,
//! every later use within the identifier's lifetime is a replay.
//!
//! Behind a small trait so that a shared store (Redis) can serve several replicas without
//! touching the callers; the in-memory implementation serves one node.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::UnixTime;

/// A replay cache.
pub trait ReplayCache: Send + Sync {
    /// Records `key` until `expires_at`; returns `false` if it was already recorded.
    fn first_use(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> bool;
}

const SHARDS: usize = 16;
/// Entries per shard before expired ones are swept.
const SWEEP_AT: usize = 4096;

/// In-memory replay cache, sharded to keep lock contention low.
pub struct MemoryReplayCache {
    shards: Vec<Mutex<HashMap<String, UnixTime>>>,
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap and good enough to spread random identifiers.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h as usize) % SHARDS
}

impl ReplayCache for MemoryReplayCache {
    fn first_use(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> bool {
        let Some(shard) = self.shards.get(shard_of(key)) else {
            return false;
        };
        // A poisoned lock fails closed: the request is treated as a replay.
        let Ok(mut map) = shard.lock() else {
            return false;
        };
        if map.len() >= SWEEP_AT {
            map.retain(|_, exp| *exp > now);
        }
        match map.get(key) {
            Some(exp) if *exp > now => false,
            _ => {
                map.insert(key.to_owned(), expires_at);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_use_within_the_lifetime_is_a_replay() {
        let c = MemoryReplayCache::default();
        assert!(c.first_use("a", 100, 10));
        assert!(!c.first_use("a", 100, 50));
        assert!(c.first_use("b", 100, 50));
        // After expiry the entry no longer blocks (the JWT itself is expired by then).
        assert!(c.first_use("a", 200, 150));
    }
}
