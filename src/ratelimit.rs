//! Token-bucket limits, in memory and per replica: per source address (open registration,
//! RFC 7592 updates, user-code lookups, login starts), per console session, global, and the
//! [`AuthFailureThrottle`] on failed client authentication.
//!
//! Buckets live in sharded maps (one short lock per check, no global lock) bounded at
//! [`MAX_TRACKED`] keys: full buckets are swept on a [`SweepSchedule`], and when a map is
//! still full the least recently used buckets make room. No burst of new keys resets the
//! buckets of others. IPv6 addresses are counted by their /64 ([`address_key`]): one
//! customer usually holds a whole /64, so rotating through it does not escape a limit.

use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use crate::lru::Lru;
use crate::sweep::SweepSchedule;

/// Most keys a limiter tracks at once (bounds memory).
pub const MAX_TRACKED: usize = 100_000;
/// Shards per limiter: concurrent checks of different keys rarely share a lock.
const SHARDS: usize = 16;
/// Keys per shard before full buckets are first swept.
const SWEEP_AT: usize = 256;

/// The key an address is limited by: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: f64,
}

#[derive(Debug)]
struct Shard<K> {
    buckets: Lru<K, Bucket>,
    sweep: SweepSchedule,
}

/// A token-bucket limiter keyed by `K`. `per_minute == 0` disables it.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate_per_sec: f64,
    burst: f64,
    shards: Box<[Mutex<Shard<K>>]>,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter allowing `per_minute` sustained and `burst` at once per key.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            rate_per_sec: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: Lru::new(MAX_TRACKED / SHARDS),
                        sweep: SweepSchedule::new(SWEEP_AT),
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<Shard<K>> {
        let h = self.hasher.hash_one(key);
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// Tokens in `b` at `now`.
    fn refilled(&self, b: &Bucket, now: f64) -> f64 {
        (b.tokens + (now - b.updated).max(0.0) * self.rate_per_sec).min(self.burst)
    }

    /// Whole seconds until a bucket holding `tokens` has one.
    fn wait(&self, tokens: f64) -> u64 {
        ((1.0 - tokens) / self.rate_per_sec).ceil().max(1.0) as u64
    }

    /// Runs `f` on the refilled bucket of `key` (created full), under its shard's lock.
    fn with_bucket<R>(&self, key: K, now: f64, f: impl FnOnce(&mut Bucket) -> R) -> Option<R> {
        // A poisoned lock means a panic elsewhere; callers fail open rather than refuse all.
        let mut shard = self.shard(&key).lock().ok()?;
        let shard = &mut *shard;
        if shard.sweep.due(shard.buckets.len()) {
            // A full bucket is the same as none.
            shard
                .buckets
                .retain(|_, b| self.refilled(b, now) < self.burst);
            let live = shard.buckets.len();
            shard.sweep.swept(live);
        }
        if let Some(b) = shard.buckets.get_mut(&key) {
            b.tokens = self.refilled(b, now);
            b.updated = now;
            return Some(f(b));
        }
        let mut b = Bucket {
            tokens: self.burst,
            updated: now,
        };
        let out = f(&mut b);
        // Evicts the least recently used bucket when the shard is full.
        shard.buckets.insert(key, b, 1);
        Some(out)
    }

    /// Takes one token for `key` at monotonic time `now` (seconds). On refusal returns the
    /// whole seconds until a token is available.
    pub fn check(&self, key: K, now: f64) -> Result<(), u64> {
        if self.rate_per_sec <= 0.0 {
            return Ok(());
        }
        self.with_bucket(key, now, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                Ok(())
            } else {
                Err(self.wait(b.tokens))
            }
        })
        .unwrap_or(Ok(()))
    }

    /// Whether `key` has a token at `now`, without taking it or tracking the key: a key
    /// never charged costs one map lookup.
    pub fn peek(&self, key: &K, now: f64) -> Result<(), u64> {
        if self.rate_per_sec <= 0.0 {
            return Ok(());
        }
        let Ok(shard) = self.shard(key).lock() else {
            return Ok(());
        };
        match shard.buckets.peek(key).map(|b| self.refilled(b, now)) {
            Some(tokens) if tokens < 1.0 => Err(self.wait(tokens)),
            _ => Ok(()),
        }
    }

    /// Takes one token from `key` if it has any (for events counted after the fact).
    pub fn charge(&self, key: K, now: f64) {
        if self.rate_per_sec <= 0.0 {
            return;
        }
        self.with_bucket(key, now, |b| b.tokens = (b.tokens - 1.0).max(0.0));
    }
}

/// A limiter keyed by source address ([`address_key`]). `per_minute == 0` disables it.
#[derive(Debug)]
pub struct RateLimiter(KeyedLimiter<IpAddr>);

impl RateLimiter {
    /// A limiter allowing `per_minute` sustained and `burst` at once per address.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self(KeyedLimiter::new(per_minute, burst))
    }

    /// Takes one token for `ip` at monotonic time `now` (seconds). On refusal returns the
    /// whole seconds until a token is available.
    pub fn check(&self, ip: IpAddr, now: f64) -> Result<(), u64> {
        self.0.check(address_key(ip), now)
    }
}

/// Settings of an [`AuthFailureThrottle`]: failures per minute and burst, per client and
/// address, and per address over all clients.
#[derive(Debug, Clone, Copy)]
pub struct AuthFailureLimits {
    /// Failures of one client from one address, per minute.
    pub per_client_per_minute: u32,
    /// Burst of the per-client-and-address bucket.
    pub per_client_burst: u32,
    /// Failures from one address (any clients), per minute.
    pub per_address_per_minute: u32,
    /// Burst of the per-address bucket.
    pub per_address_burst: u32,
}

/// Throttles failed client authentication (wrong secret, bad assertion) so that guesses
/// cannot buy unbounded hashing: each failure takes a token from the bucket of the
/// (client, address) pair and from the address's bucket; an attempt finding either empty
/// is refused before any credential is checked. Only the attacker's own address is
/// throttled: the same client from another address is not, so a third party cannot lock a
/// client out. Successful attempts take nothing.
#[derive(Debug)]
pub struct AuthFailureThrottle {
    per_client: KeyedLimiter<u64>,
    per_address: KeyedLimiter<IpAddr>,
    keyer: RandomState,
}

/// One authentication attempt admitted by an [`AuthFailureThrottle`]: counted as a
/// failure when dropped unless [`succeeded`](Self::succeeded) was called.
#[must_use = "drop the attempt on failure, call succeeded() on success"]
pub struct AuthAttempt<'a> {
    throttle: &'a AuthFailureThrottle,
    client_key: u64,
    address: IpAddr,
    now: f64,
    succeeded: bool,
}

impl AuthAttempt<'_> {
    /// The credentials were right: nothing is counted.
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for AuthAttempt<'_> {
    fn drop(&mut self) {
        if !self.succeeded {
            let t = self.throttle;
            t.per_client.charge(self.client_key, self.now);
            t.per_address.charge(self.address, self.now);
        }
    }
}

impl AuthFailureThrottle {
    /// A throttle with these limits.
    pub fn new(limits: AuthFailureLimits) -> Self {
        Self {
            per_client: KeyedLimiter::new(limits.per_client_per_minute, limits.per_client_burst),
            per_address: KeyedLimiter::new(limits.per_address_per_minute, limits.per_address_burst),
            keyer: RandomState::new(),
        }
    }

    /// Admits an authentication attempt by `client_id` from `source` at monotonic `now`,
    /// or refuses it with the seconds to wait. Costs two map lookups and no allocation.
    pub fn attempt(
        &self,
        client_id: &str,
        source: IpAddr,
        now: f64,
    ) -> Result<AuthAttempt<'_>, u64> {
        let address = address_key(source);
        // A keyed 64-bit digest: no allocation, and collisions cannot be aimed.
        let client_key = self.keyer.hash_one((client_id, address));
        self.per_address.peek(&address, now)?;
        self.per_client.peek(&client_key, now)?;
        Ok(AuthAttempt {
            throttle: self,
            client_key,
            address,
            now,
            succeeded: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let l = RateLimiter::new(60, 3);
        for _ in 0..3 {
            assert!(l.check(ip("192.0.2.1"), 0.0).is_ok());
        }
        assert_eq!(l.check(ip("192.0.2.1"), 0.0), Err(1));
        assert!(l.check(ip("192.0.2.1"), 1.0).is_ok());
        // Another address has its own bucket.
        assert!(l.check(ip("192.0.2.2"), 0.0).is_ok());
    }

    #[test]
    fn ipv6_addresses_share_the_bucket_of_their_64() {
        let l = RateLimiter::new(1, 2);
        assert!(l.check(ip("2001:db8:1:2::1"), 0.0).is_ok());
        assert!(l.check(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 0.0).is_ok());
        assert!(l.check(ip("2001:db8:1:2:abcd::9"), 0.0).is_err());
        // The next /64 is another customer.
        assert!(l.check(ip("2001:db8:1:3::1"), 0.0).is_ok());
        // An IPv4-mapped address is its IPv4 address.
        assert!(l.check(ip("192.0.2.7"), 0.0).is_ok());
        assert!(l.check(ip("::ffff:192.0.2.7"), 0.0).is_ok());
        assert!(l.check(ip("192.0.2.7"), 0.0).is_err());
        assert_eq!(address_key(ip("2001:db8::1:2:3:4")), ip("2001:db8::"));
    }

    #[test]
    fn a_flood_of_new_addresses_evicts_the_least_recently_used_not_everyone() {
        let l = RateLimiter::new(1, 1);
        let victim = ip("192.0.2.9");
        assert!(l.check(victim, 0.0).is_ok());
        let mut most = 0;
        for i in 0..(3 * MAX_TRACKED as u32) {
            let a = IpAddr::from(Ipv6Addr::from(u128::from(i) << 64));
            assert!(l.check(a, 1.0).is_ok(), "a new address starts full");
            // The attacked address keeps being refused: it is recently used.
            if i % 1000 == 0 {
                assert!(l.check(victim, 1.0).is_err(), "bucket reset after {i}");
            }
            if i % 10_000 == 0 {
                let tracked: usize =
                    l.0.shards
                        .iter()
                        .map(|s| s.lock().unwrap().buckets.len())
                        .sum();
                most = most.max(tracked);
            }
        }
        assert!(most <= MAX_TRACKED, "{most} addresses tracked");
    }

    #[test]
    fn zero_disables_the_limit() {
        let l = RateLimiter::new(0, 1);
        for _ in 0..100 {
            assert!(l.check(ip("192.0.2.1"), 0.0).is_ok());
        }
    }

    fn throttle() -> AuthFailureThrottle {
        AuthFailureThrottle::new(AuthFailureLimits {
            per_client_per_minute: 6,
            per_client_burst: 3,
            per_address_per_minute: 60,
            per_address_burst: 5,
        })
    }

    #[test]
    fn failures_throttle_the_client_at_that_address_only() {
        let t = throttle();
        let attacker = ip("198.51.100.1");
        for _ in 0..3 {
            drop(t.attempt("agt_a", attacker, 0.0).unwrap());
        }
        assert_eq!(t.attempt("agt_a", attacker, 0.0).err(), Some(10));
        // The client itself, elsewhere, is not locked out.
        t.attempt("agt_a", ip("203.0.113.5"), 0.0)
            .unwrap()
            .succeeded();
        // Refilled after the wait.
        assert!(t.attempt("agt_a", attacker, 10.0).is_ok());
    }

    #[test]
    fn failures_across_clients_throttle_the_address() {
        let t = throttle();
        let attacker = ip("2001:db8:9::1");
        for i in 0..5 {
            drop(t.attempt(&format!("agt_{i}"), attacker, 0.0).unwrap());
        }
        // Another client, another address in the same /64: still the same address.
        assert!(t.attempt("agt_new", ip("2001:db8:9::2"), 0.0).is_err());
        assert!(t.attempt("agt_new", ip("2001:db8:a::1"), 0.0).is_ok());
    }

    #[test]
    fn successes_are_never_counted() {
        let t = throttle();
        let a = ip("198.51.100.2");
        for _ in 0..100 {
            t.attempt("agt_a", a, 0.0).unwrap().succeeded();
        }
        let tracked: usize = t
            .per_client
            .shards
            .iter()
            .map(|s| s.lock().unwrap().buckets.len())
            .sum();
        assert_eq!(tracked, 0, "successes leave nothing behind");
    }
}
