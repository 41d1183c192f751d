//! Single-use identifiers (client assertion and DPoP proof `jti`s): the first use wins,
//! every later use within the identifier's lifetime is a replay.
//!
//! One small interface, [`ReplayCache::first_use`], whatever the store, so that a shared
//! store serves several replicas without touching the callers: [`MemoryReplayCache`]
//! protects one process, [`RedisReplayCache`] every replica that shares a Redis server.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::UnixTime;
use crate::service::replay_redis::RedisReplayCache;
use crate::sweep::SweepSchedule;

/// The replay store could not answer (a shared store is down or slow). Callers refuse the
/// request: accepting it could accept a replay.
#[derive(Debug, thiserror::Error)]
#[error("the replay store is unavailable: {0}")]
pub struct ReplayStoreError(pub String);

/// The replay cache in force.
pub enum ReplayCache {
    /// In this process's memory.
    Memory(MemoryReplayCache),
    /// In Redis, shared by replicas.
    Redis(RedisReplayCache),
}

impl ReplayCache {
    /// Records `key` until `expires_at`; answers `false` if it was already recorded.
    pub async fn first_use(
        &self,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, ReplayStoreError> {
        match self {
            Self::Memory(m) => Ok(m.record(key, expires_at, now)),
            Self::Redis(r) => r.first_use(key, expires_at, now).await,
        }
    }
}

const SHARDS: usize = 16;
/// Entries per shard before expired ones are swept.
const SWEEP_AT: usize = 4096;

/// In-memory replay cache, sharded to keep lock contention low.
pub struct MemoryReplayCache {
    shards: Vec<Mutex<Shard>>,
}

/// One shard: identifiers with their expiry, swept of expired entries on a
/// [`SweepSchedule`] (a shard full of live entries is not swept on every insert).
struct Shard {
    map: HashMap<String, UnixTime>,
    sweep: SweepSchedule,
}

impl Shard {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            sweep: SweepSchedule::new(SWEEP_AT),
        }
    }

    fn sweep_if_due(&mut self, now: UnixTime) {
        if self.sweep.due(self.map.len()) {
            self.map.retain(|_, exp| *exp > now);
            self.sweep.swept(self.map.len());
        }
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
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

impl MemoryReplayCache {
    /// Records `key` until `expires_at`; `false` if it was already recorded.
    pub fn record(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> bool {
        let Some(shard) = self.shards.get(shard_of(key)) else {
            return false;
        };
        // A poisoned lock fails closed: the request is treated as a replay.
        let Ok(mut shard) = shard.lock() else {
            return false;
        };
        shard.sweep_if_due(now);
        match shard.map.get_mut(key) {
            Some(exp) if *exp > now => false,
            Some(exp) => {
                *exp = expires_at;
                true
            }
            None => {
                shard.map.insert(key.to_owned(), expires_at);
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
        assert!(c.record("a", 100, 10));
        assert!(!c.record("a", 100, 50));
        assert!(c.record("b", 100, 50));
        // After expiry the entry no longer blocks (the JWT itself is expired by then).
        assert!(c.record("a", 200, 150));
    }

    #[test]
    fn a_shard_full_of_live_entries_is_not_swept_on_every_insert() {
        let mut shard = Shard::new();
        for i in 0..SWEEP_AT {
            shard.map.insert(format!("k{i}"), 1_000);
        }
        shard.sweep_if_due(10);
        // Nothing expired: the next sweep waits until the shard has doubled.
        assert_eq!(shard.map.len(), SWEEP_AT);
        assert!(!shard.sweep.due(2 * SWEEP_AT - 1));
        shard.map.insert("late".into(), 20);
        shard.sweep_if_due(500);
        assert_eq!(
            shard.map.len(),
            SWEEP_AT + 1,
            "below the threshold: no sweep"
        );
        // Once everything has expired, a due sweep empties the shard and the threshold
        // falls back to the floor.
        for i in 0..SWEEP_AT {
            shard.map.insert(format!("m{i}"), 20);
        }
        shard.sweep_if_due(2_000);
        assert!(shard.map.is_empty());
        assert!(shard.sweep.due(SWEEP_AT));
    }

    #[test]
    fn many_live_entries_stay_single_use() {
        let c = MemoryReplayCache::default();
        let n = SHARDS * SWEEP_AT * 3;
        for i in 0..n {
            assert!(c.record(&format!("j{i}"), 1_000, 10));
        }
        for i in (0..n).step_by(97) {
            assert!(!c.record(&format!("j{i}"), 1_000, 11), "j{i} replayed");
        }
    }
}
