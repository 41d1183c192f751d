//! A cache of Patron access tokens that passed [`access_token::verify`], keyed by the
//! SHA-256 digest of the token's compact form.
//!
//! The same token is presented again and again: an agent exchanges its agent token for
//! each skill it calls, and a skill introspects the token on every request it serves.
//! Signature verification is the expensive part of validating it (an ECDSA verification is
//! about 60 µs on one core; hashing the token is about 1 µs), so the first verification is
//! remembered until the token expires.
//!
//! A hit is equivalent to verifying again: equal digests mean the same bytes (SHA-256 is
//! collision resistant), and of the profile's checks only expiry and age change with time, so
//! a hit re-checks `exp` and the maximum age of `iat` (with the same skew) and that the key
//! the token was verified with is still published. Revocation and the agent's state are not part of this cache: callers
//! check them on every use. Failures are never cached.
//!
//! Memory is bounded: expired entries are swept on a [`SweepSchedule`] and, should more
//! than [`MAX_ENTRIES`] live tokens be cached at once, the cache starts afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::clock::UnixTime;
use crate::jose::access_token::{self, AccessTokenClaims, VerifiedWith};
use crate::jose::jwks::PublicKeySet;
use crate::jose::profile::Reason;
use crate::sweep::SweepSchedule;

/// Live tokens cached at most (about 1 KiB each).
pub const MAX_ENTRIES: usize = 16_384;
const SHARDS: usize = 8;
const SWEEP_AT: usize = 256;

struct Entry {
    claims: Arc<AccessTokenClaims>,
    with: VerifiedWith,
}

struct Shard {
    map: HashMap<[u8; 32], Entry>,
    sweep: SweepSchedule,
}

/// The cache (see the module documentation).
pub struct VerifiedTokens {
    shards: Vec<Mutex<Shard>>,
    skew_secs: i64,
    max_age_secs: i64,
}

impl VerifiedTokens {
    /// An empty cache for tokens verified with `skew_secs` of allowed clock skew and at
    /// most `max_age_secs` old (`now - iat`, the profile's maximum token age).
    pub fn new(skew_secs: i64, max_age_secs: i64) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        sweep: SweepSchedule::new(SWEEP_AT),
                    })
                })
                .collect(),
            skew_secs,
            max_age_secs,
        }
    }

    /// Verifies an access token issued by `issuer` against `keys` at `now`, as
    /// [`access_token::verify`] does, answering from the cache when it can.
    pub fn verify(
        &self,
        token: &str,
        keys: &PublicKeySet,
        issuer: &str,
        now: UnixTime,
    ) -> Result<Arc<AccessTokenClaims>, Reason> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let shard = &self.shards[usize::from(digest[0]) % SHARDS];
        if let Ok(guard) = shard.lock() {
            if let Some(e) = guard.map.get(&digest) {
                if !access_token::still_unexpired(&e.claims, now, self.skew_secs) {
                    return Err(Reason::TokenExpired);
                }
                if !access_token::still_young(&e.claims, now, self.skew_secs, self.max_age_secs) {
                    return Err(Reason::IatTooOld);
                }
                if keys.find(e.with.kid.as_deref(), &e.with.alg).is_some() {
                    return Ok(e.claims.clone());
                }
                // The key left the published set: verify again (and fail).
            }
        }
        let (claims, with) = access_token::verify_keyed(
            token,
            keys,
            issuer,
            now,
            self.skew_secs,
            Some(self.max_age_secs),
        )?;
        let claims = Arc::new(claims);
        if let Ok(mut guard) = shard.lock() {
            let skew = self.skew_secs;
            if guard.sweep.due(guard.map.len()) {
                guard
                    .map
                    .retain(|_, e| access_token::still_unexpired(&e.claims, now, skew));
                if guard.map.len() >= MAX_ENTRIES / SHARDS {
                    guard.map.clear();
                }
                let live = guard.map.len();
                guard.sweep.swept(live);
            }
            guard.map.insert(
                digest,
                Entry {
                    claims: claims.clone(),
                    with,
                },
            );
        }
        Ok(claims)
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.lock().ok().map(|g| g.map.len()))
            .sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::keys::{KeyEncryptionKey, SigningAlgorithm, generate, signer};

    fn key(generation: i64) -> (crate::jose::keys::Signer, PublicKeySet) {
        let kek = KeyEncryptionKey::from_bytes([7; 32]);
        let k = generate(SigningAlgorithm::Es256, generation, 0, 0, &kek).unwrap();
        let s = signer(&k, &kek).unwrap();
        let jwk: serde_json::Value = serde_json::from_str(&k.public_jwk).unwrap();
        let set = PublicKeySet::from_jwks(&serde_json::json!({ "keys": [jwk] })).unwrap();
        (s, set)
    }

    fn token(s: &crate::jose::keys::Signer, jti: &str, exp: UnixTime) -> String {
        access_token::sign(
            s,
            &AccessTokenClaims {
                iss: "https://as.example".into(),
                sub: "agent".into(),
                aud: "https://as.example".into(),
                client_id: "agent".into(),
                scope: None,
                iat: 1_000,
                exp,
                jti: jti.into(),
                owner: "github:1".into(),
                cnf: None,
                act: None,
                patron_chain: vec![],
            },
        )
        .unwrap()
    }

    #[test]
    fn a_hit_returns_the_same_claims_and_still_checks_expiry() {
        let (s, keys) = key(1);
        let cache = VerifiedTokens::new(5, 3600);
        let t = token(&s, "j1", 2_000);
        let first = cache
            .verify(&t, &keys, "https://as.example", 1_100)
            .unwrap();
        assert_eq!(cache.len(), 1);
        let again = cache
            .verify(&t, &keys, "https://as.example", 1_200)
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again), "answered from the cache");
        assert_eq!(
            cache
                .verify(&t, &keys, "https://as.example", 2_004)
                .unwrap()
                .jti,
            "j1",
            "within the skew"
        );
        assert_eq!(
            cache
                .verify(&t, &keys, "https://as.example", 2_005)
                .unwrap_err(),
            Reason::TokenExpired
        );
    }

    #[test]
    fn a_token_older_than_the_maximum_age_is_refused_fresh_and_from_the_cache() {
        let (s, keys) = key(1);
        // Issued at 1 000, expiring at 9 000, at most 100 s old (plus 5 s of skew).
        let t = token(&s, "j1", 9_000);
        let cache = VerifiedTokens::new(5, 100);
        cache
            .verify(&t, &keys, "https://as.example", 1_105)
            .unwrap();
        assert_eq!(
            cache
                .verify(&t, &keys, "https://as.example", 1_106)
                .unwrap_err(),
            Reason::IatTooOld,
            "a cache hit"
        );
        assert_eq!(
            VerifiedTokens::new(5, 100)
                .verify(&t, &keys, "https://as.example", 1_106)
                .unwrap_err(),
            Reason::IatTooOld,
            "a first verification"
        );
    }

    #[test]
    fn failures_are_not_cached_and_a_tampered_token_misses() {
        let (s, keys) = key(1);
        let cache = VerifiedTokens::new(5, 3600);
        let t = token(&s, "j1", 2_000);
        assert_eq!(
            cache
                .verify(&t, &keys, "https://other.example", 1_100)
                .unwrap_err(),
            Reason::IssMismatch
        );
        assert!(cache.is_empty());
        cache
            .verify(&t, &keys, "https://as.example", 1_100)
            .unwrap();
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(
            cache
                .verify(&tampered, &keys, "https://as.example", 1_100)
                .is_err()
        );
    }

    #[test]
    fn a_cached_token_is_refused_once_its_key_is_no_longer_published() {
        let (s, keys) = key(1);
        let (_, other_keys) = key(2);
        let cache = VerifiedTokens::new(5, 3600);
        let t = token(&s, "j1", 2_000);
        cache
            .verify(&t, &keys, "https://as.example", 1_100)
            .unwrap();
        assert_eq!(
            cache
                .verify(&t, &other_keys, "https://as.example", 1_100)
                .unwrap_err(),
            Reason::KidUnknown
        );
    }

    #[test]
    fn expired_entries_are_swept_and_the_size_is_bounded() {
        let (s, keys) = key(1);
        let cache = VerifiedTokens::new(0, 3600);
        let n = SHARDS * SWEEP_AT * 2;
        for i in 0..n {
            cache
                .verify(
                    &token(&s, &format!("a{i}"), 1_200),
                    &keys,
                    "https://as.example",
                    1_100,
                )
                .unwrap();
        }
        for i in 0..n {
            cache
                .verify(
                    &token(&s, &format!("b{i}"), 9_000),
                    &keys,
                    "https://as.example",
                    1_300,
                )
                .unwrap();
        }
        assert!(
            cache.len() <= n + SHARDS * SWEEP_AT,
            "{} cached",
            cache.len()
        );
        assert!(cache.len() <= MAX_ENTRIES);
    }
}
