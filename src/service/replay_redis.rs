//! A replay cache in Redis, shared by every replica that points at the same server.
//!
//! Each identifier becomes one key, `<prefix>jti:<base64url SHA-256 of the identifier>`,
//! written with `SET key 1 NX EX <seconds>`: Redis answers `OK` to the first writer and nil
//! to every later one, atomically, and drops the key when the identifier's lifetime is over.
//! Hashing keeps keys short and free of client-chosen bytes whatever the `jti` holds. The
//! lifetime is sent relative (`EX`), so replicas' clocks need not agree with Redis's.
//!
//! A Redis error or a reply slower than `redis.timeout_ms` is a
//! [`ReplayStoreError`]: the request is refused, never waved through.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::clock::UnixTime;
use crate::service::redis_link::RedisLink;
use crate::service::replay::ReplayStoreError;

/// The Redis-backed replay cache.
pub struct RedisReplayCache {
    link: Arc<RedisLink>,
}

/// The Redis key for a replay-cache identifier.
pub fn redis_key(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(prefix.len() + 4 + 43);
    out.push_str(prefix);
    out.push_str("jti:");
    URL_SAFE_NO_PAD.encode_string(digest, &mut out);
    out
}

/// Seconds to keep an identifier that expires at `expires_at` (at least one).
pub fn ttl_secs(expires_at: UnixTime, now: UnixTime) -> u64 {
    u64::try_from(expires_at.saturating_sub(now))
        .unwrap_or(0)
        .max(1)
}

impl RedisReplayCache {
    /// A replay cache on `link`.
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self { link }
    }
}

impl RedisReplayCache {
    /// Records `key` until `expires_at`; `false` if it was already recorded.
    pub async fn first_use(
        &self,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, ReplayStoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(redis_key(self.link.prefix(), key))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs(expires_at, now));
        self.link
            .query::<Option<String>>(cmd)
            .await
            .map(|reply| reply.is_some())
            .map_err(ReplayStoreError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_fixed_length_digests() {
        let k = redis_key("patron:", "ca:client-1:jti-1");
        assert!(k.starts_with("patron:jti:"));
        assert_eq!(k.len(), "patron:jti:".len() + 43);
        assert_ne!(k, redis_key("patron:", "ca:client-1:jti-2"));
        assert_ne!(k, redis_key("other:", "ca:client-1:jti-1"));
        // Client-chosen bytes never reach the key.
        let odd = redis_key("p:", "dpop:x:\r\n*3 spaces and \u{0}");
        assert!(odd.bytes().all(|b| b.is_ascii_graphic()), "{odd}");
    }

    #[test]
    fn the_lifetime_is_relative_and_at_least_one_second() {
        assert_eq!(ttl_secs(1_060, 1_000), 60);
        assert_eq!(ttl_secs(1_000, 1_000), 1);
        assert_eq!(ttl_secs(900, 1_000), 1);
    }
}
