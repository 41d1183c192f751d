//! A replay cache in Redis, shared by every replica that points at the same server.
//!
//! Each identifier becomes one key, `<prefix>jti:<base64url SHA-256 of the identifier>`,
//! written with `SET key 1 NX EX <seconds>`: Redis answers `OK` to the first writer and nil
//! to every later one, atomically, and drops the key when the identifier's lifetime is over.
//! Hashing keeps keys short and free of client-chosen bytes whatever the `jti` holds. The
//! lifetime is sent relative (`EX`), so replicas' clocks need not agree with Redis's.
//!
//! A Redis error or a reply slower than `replay.redis_timeout_ms` is a
//! [`ReplayStoreError`]: the request is refused, never waved through.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::clock::UnixTime;
use crate::service::replay::{FirstUse, ReplayCache, ReplayStoreError};

/// The Redis-backed replay cache.
///
/// Each HTTP worker thread opens its own connection on first use: a connection's I/O task
/// then runs on the thread that sends the commands, instead of every command waking another
/// thread and back (which cost more than the round trip itself).
pub struct RedisReplayCache {
    id: usize,
    client: redis::Client,
    prefix: String,
    timeout: Duration,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's connection, tagged with the id of the cache it belongs to.
    static CONNECTION: RefCell<Option<(usize, ConnectionManager)>> = const { RefCell::new(None) };
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
    /// Connects to `url` (checked with a `PING`), giving up after `timeout`.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut conn = tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
            .map_err(|e| e.to_string())?;
        let pong: String = tokio::time::timeout(timeout, redis::cmd("PING").query_async(&mut conn))
            .await
            .map_err(|_| format!("no answer to PING within {} ms", timeout.as_millis()))?
            .map_err(|e| e.to_string())?;
        if pong != "PONG" {
            return Err(format!("unexpected answer to PING: {pong}"));
        }
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            client,
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    /// This thread's connection, opened on first use. The connection reconnects by itself
    /// after Redis restarts.
    async fn connection(&self) -> Result<ConnectionManager, ReplayStoreError> {
        let existing = CONNECTION.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|(id, _)| *id == self.id)
                .map(|(_, conn)| conn.clone())
        });
        if let Some(conn) = existing {
            return Ok(conn);
        }
        let conn = ConnectionManager::new(self.client.clone())
            .await
            .map_err(|e| ReplayStoreError(e.to_string()))?;
        CONNECTION.with(|c| *c.borrow_mut() = Some((self.id, conn.clone())));
        Ok(conn)
    }

    async fn set_once(&self, key: String, ttl: u64) -> Result<bool, ReplayStoreError> {
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(1).arg("NX").arg("EX").arg(ttl);
        let reply: Option<String> = cmd
            .query_async(&mut conn)
            .await
            .map_err(|e| ReplayStoreError(e.to_string()))?;
        Ok(reply.is_some())
    }
}

impl ReplayCache for RedisReplayCache {
    fn first_use<'a>(&'a self, key: &'a str, expires_at: UnixTime, now: UnixTime) -> FirstUse<'a> {
        Box::pin(async move {
            let set = self.set_once(redis_key(&self.prefix, key), ttl_secs(expires_at, now));
            tokio::time::timeout(self.timeout, set)
                .await
                .unwrap_or_else(|_| {
                    Err(ReplayStoreError(format!(
                        "no answer within {} ms",
                        self.timeout.as_millis()
                    )))
                })
        })
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
