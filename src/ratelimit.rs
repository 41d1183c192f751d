//! Per-source-address token buckets for open registration (in memory, per replica).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::sweep::SweepSchedule;

/// Most addresses tracked at once (bounds memory).
const MAX_TRACKED: usize = 100_000;
/// Addresses tracked before full buckets are first swept.
const SWEEP_AT: usize = 4_096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: f64,
}

/// A token-bucket limiter keyed by IP address. `per_minute == 0` disables it.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

/// The buckets, swept of full ones on a [`SweepSchedule`].
#[derive(Debug)]
struct Buckets {
    map: HashMap<IpAddr, Bucket>,
    sweep: SweepSchedule,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` sustained and `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            rate_per_sec: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep: SweepSchedule::new(SWEEP_AT),
            }),
        }
    }

    /// Takes one token for `ip` at monotonic time `now` (seconds). On refusal returns the
    /// whole seconds until a token is available.
    pub fn check(&self, ip: IpAddr, now: f64) -> Result<(), u64> {
        if self.rate_per_sec <= 0.0 {
            return Ok(());
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock means a panic elsewhere; fail open rather than refuse all.
            return Ok(());
        };
        if buckets.sweep.due(buckets.map.len()) {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            buckets
                .map
                .retain(|_, b| b.tokens + (now - b.updated) * rate < burst);
            if buckets.map.len() >= MAX_TRACKED {
                // Memory stays bounded: so many active addresses at once (an address-spraying
                // client) reset every bucket, which briefly lets each address start afresh.
                buckets.map.clear();
            }
            let live = buckets.map.len();
            buckets.sweep.swept(live);
        }
        let b = buckets.map.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        b.tokens = (b.tokens + (now - b.updated) * self.rate_per_sec).min(self.burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.rate_per_sec;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let l = RateLimiter::new(60, 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(ip, 0.0).is_ok());
        }
        assert_eq!(l.check(ip, 0.0), Err(1));
        assert!(l.check(ip, 1.0).is_ok());
        // Another address has its own bucket.
        assert!(l.check("192.0.2.2".parse().unwrap(), 0.0).is_ok());
    }

    #[test]
    fn memory_stays_bounded_when_many_addresses_are_active() {
        let l = RateLimiter::new(1, 5);
        let mut most = 0;
        for i in 0..(3 * MAX_TRACKED as u32) {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(u128::from(i) << 64));
            assert!(
                l.check(ip, 0.0).is_ok(),
                "a new address starts with a full bucket"
            );
            most = most.max(l.buckets.lock().unwrap().map.len());
        }
        assert!(most < 2 * MAX_TRACKED, "{most} addresses tracked");
        // Below the bound, an active address keeps its bucket.
        let l = RateLimiter::new(1, 1);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(l.check(ip, 0.0).is_ok());
        for i in 0..(2 * SWEEP_AT as u32) {
            let _ = l.check(IpAddr::from(std::net::Ipv4Addr::from(i)), 0.0);
        }
        assert!(l.check(ip, 0.0).is_err(), "swept while still active");
    }

    #[test]
    fn zero_disables_the_limit() {
        let l = RateLimiter::new(0, 1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            assert!(l.check(ip, 0.0).is_ok());
        }
    }
}
