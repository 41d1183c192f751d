//! Single-use identifiers (client assertion and DPoP proof `jti`s): the first use wins,
//! every later use within the identifier's lifetime is a replay.
//!
//! One small interface, [`ReplayCache::first_use`], whatever the store, so that a shared
//! store serves several replicas without touching the callers: [`MemoryReplayCache`]
//! protects one process, [`RedisReplayCache`] every replica that shares a Redis server.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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
            Self::Memory(m) => m.record(key, expires_at, now),
            Self::Redis(r) => r.first_use(key, expires_at, now).await,
        }
    }
}

const SHARDS: usize = 16;
/// Entries per shard before expired ones are swept.
const SWEEP_AT: usize = 4096;
/// Most entries per shard: 7/8 of 2^19, the most a table of 2^19 slots holds before it
/// would double, so the whole cache never exceeds 16 × 2^19 slots of 25 bytes (about
/// 200 MiB) and about 7.3 million identifiers. A shard that is still full after a sweep
/// refuses new identifiers ([`ReplayStoreError`]) rather than forget live ones, which would
/// let replays through. At the benchmark's 5,000 grants per second about 2.7 million are
/// live (`BENCHMARKS.md`); beyond that rate, keep them in Redis (`redis.url`).
pub const MAX_ENTRIES_PER_SHARD: usize = (1 << 19) / 8 * 7;

/// The remembered form of an identifier: the first 16 bytes of its SHA-256, so every entry
/// has the same small size whatever the client chose for its `jti` (collisions need 2^64
/// identifiers).
type Digest16 = [u8; 16];

fn digest(key: &str) -> Digest16 {
    use sha2::{Digest as _, Sha256};
    let full = Sha256::digest(key.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Hashes a [`Digest16`] by taking its first eight bytes: it is already uniformly random,
/// and an attacker cannot steer it without breaking SHA-256.
#[derive(Default, Clone, Copy)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its bytes in one call (arrays write no length prefix).
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

type DigestMap = HashMap<Digest16, UnixTime, BuildHasherDefault<DigestHasher>>;

/// In-memory replay cache, sharded to keep lock contention low, bounded to
/// [`MAX_ENTRIES_PER_SHARD`] live entries per shard.
pub struct MemoryReplayCache {
    shards: Vec<Mutex<Shard>>,
    max_per_shard: usize,
}

/// One shard: identifier digests with their expiry, swept of expired entries on a
/// [`SweepSchedule`] (a shard full of live entries is not swept on every insert).
struct Shard {
    map: DigestMap,
    sweep: SweepSchedule,
}

impl Shard {
    fn new() -> Self {
        Self {
            map: DigestMap::default(),
            sweep: SweepSchedule::new(SWEEP_AT),
        }
    }

    fn sweep_now(&mut self, now: UnixTime) {
        self.map.retain(|_, exp| *exp > now);
        self.sweep.swept(self.map.len());
    }

    fn sweep_if_due(&mut self, now: UnixTime) {
        if self.sweep.due(self.map.len()) {
            self.sweep_now(now);
        }
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES_PER_SHARD)
    }
}

impl MemoryReplayCache {
    /// A cache that holds at most `max_per_shard` live entries in each of its shards.
    fn with_capacity(max_per_shard: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
            max_per_shard,
        }
    }

    /// Records `key` until `expires_at`; `Ok(false)` if it was already recorded, an error
    /// if its shard is full of live entries.
    pub fn record(
        &self,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, ReplayStoreError> {
        let d = digest(key);
        let index = usize::from(d[15]) % SHARDS;
        let Some(shard) = self.shards.get(index) else {
            return Ok(false);
        };
        // A poisoned lock fails closed: the request is treated as a replay.
        let Ok(mut shard) = shard.lock() else {
            return Ok(false);
        };
        shard.sweep_if_due(now);
        match shard.map.get_mut(&d) {
            Some(exp) if *exp > now => Ok(false),
            Some(exp) => {
                *exp = expires_at;
                Ok(true)
            }
            None => {
                if shard.map.len() >= self.max_per_shard {
                    shard.sweep_now(now);
                    if shard.map.len() >= self.max_per_shard {
                        return Err(ReplayStoreError(
                            "the in-memory replay cache is full (use redis.url for more)".into(),
                        ));
                    }
                }
                shard.map.insert(d, expires_at);
                Ok(true)
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
        assert!(c.record("a", 100, 10).unwrap());
        assert!(!c.record("a", 100, 50).unwrap());
        assert!(c.record("b", 100, 50).unwrap());
        // After expiry the entry no longer blocks (the JWT itself is expired by then).
        assert!(c.record("a", 200, 150).unwrap());
    }

    #[test]
    fn a_shard_full_of_live_entries_is_not_swept_on_every_insert() {
        let mut shard = Shard::new();
        for i in 0..SWEEP_AT {
            shard.map.insert(digest(&format!("k{i}")), 1_000);
        }
        shard.sweep_if_due(10);
        // Nothing expired: the next sweep waits until the shard has doubled.
        assert_eq!(shard.map.len(), SWEEP_AT);
        assert!(!shard.sweep.due(2 * SWEEP_AT - 1));
        shard.map.insert(digest("late"), 20);
        shard.sweep_if_due(500);
        assert_eq!(
            shard.map.len(),
            SWEEP_AT + 1,
            "below the threshold: no sweep"
        );
        // Once everything has expired, a due sweep empties the shard and the threshold
        // falls back to the floor.
        for i in 0..SWEEP_AT {
            shard.map.insert(digest(&format!("m{i}")), 20);
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
            assert!(c.record(&format!("j{i}"), 1_000, 10).unwrap());
        }
        for i in (0..n).step_by(97) {
            assert!(
                !c.record(&format!("j{i}"), 1_000, 11).unwrap(),
                "j{i} replayed"
            );
        }
    }

    #[test]
    fn a_full_cache_refuses_new_identifiers_until_entries_expire() {
        let c = MemoryReplayCache::with_capacity(8);
        let mut accepted = Vec::new();
        let mut i = 0;
        // Fill every shard with live entries.
        while accepted.len() < SHARDS * 8 {
            let key = format!("f{i}");
            i += 1;
            // A shard already full refuses; the others keep filling.
            if let Ok(true) = c.record(&key, 1_000, 10) {
                accepted.push(key);
            }
        }
        let err = (0..1_000)
            .map(|j| c.record(&format!("g{j}"), 1_000, 10))
            .find_map(Result::err);
        assert!(err.is_some(), "a full shard must refuse, not evict");
        // Live entries were kept: still replays.
        assert!(accepted.iter().all(|k| !c.record(k, 1_000, 11).unwrap()));
        // Once they expire, the space is reused.
        assert!(c.record("g-late", 2_000, 1_000).unwrap());
    }

    #[test]
    fn entries_are_fixed_size_whatever_the_identifier() {
        assert_eq!(std::mem::size_of::<(Digest16, UnixTime)>(), 24);
        assert_ne!(digest("ca:a:1"), digest("ca:a:2"));
    }
}
