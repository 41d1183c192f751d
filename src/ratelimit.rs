//! Per-source-address token buckets for open registration (in memory, per replica).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Most addresses tracked before full buckets are evicted.
const MAX_TRACKED: usize = 100_000;

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
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` sustained and `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            rate_per_sec: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
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
        if buckets.len() >= MAX_TRACKED {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            buckets.retain(|_, b| b.tokens + (now - b.updated) * rate < burst);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
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
    fn zero_disables_the_limit() {
        let l = RateLimiter::new(0, 1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..100 {
            assert!(l.check(ip, 0.0).is_ok());
        }
    }
}
