//! Small cryptographic helpers: random identifiers and secrets, SHA-256, constant-time
//! comparison, keyed hashing of generated client secrets, and argon2id for secrets a
//! person chooses (and for client secrets stored before keyed hashing).
//!
//! # Why generated secrets get a keyed hash, not a password hash
//!
//! A client secret is 256 random bits chosen by Patron. A password KDF such as argon2id
//! makes guessing a low-entropy secret expensive; against 2^256 candidates guessing is
//! hopeless anyway, so argon2id would only cost every registration and every check tens of
//! milliseconds, and hand an unauthenticated caller a cheap way to burn CPU with wrong
//! secrets. Patron stores HMAC-SHA-256 of the secret under a server key derived from the
//! key-encryption key ([`SecretHasher`]): a stolen database without that key yields neither
//! a working secret nor a way to test guesses offline, and a check costs microseconds.
//!
//! The stored form names its scheme: `hmac-sha256$<base64url MAC>` for keyed hashes, the
//! argon2 PHC string `$argon2id$…` for hashes stored before (see [`StoredSecretHash`]), so
//! both coexist while older rows are rehashed on their first successful check.

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// `n` random bytes from the operating system's CSPRNG (through `rand`'s thread RNG).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// A random token: `prefix` followed by base64url of 32 random bytes (256 bits).
pub fn random_token(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 43);
    s.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(random_bytes::<32>(), &mut s);
    s
}

/// A random identifier: `prefix` followed by base64url of 16 random bytes (128 bits).
pub fn random_id(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 22);
    s.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(random_bytes::<16>(), &mut s);
    s
}

/// A unique id that sorts by creation time: `prefix`, the milliseconds since the epoch in
/// 12 hex digits, then 96 random bits (base64url). Stored as a primary key, ids made one
/// after another land next to each other in the index instead of on a random page each, so
/// inserts stay cheap however many rows exist (bench/register_scale.sh). It reveals when it
/// was made, which the registration response states anyway (`client_id_issued_at`).
pub fn sortable_id(prefix: &str, now_millis: u64) -> String {
    let mut s = String::with_capacity(prefix.len() + 12 + 16);
    s.push_str(prefix);
    s.push_str(&format!("{:012x}", now_millis & 0xffff_ffff_ffff));
    URL_SAFE_NO_PAD.encode_string(random_bytes::<12>(), &mut s);
    s
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Hex-encoded SHA-256, as stored for high-entropy tokens (registration access tokens,
/// initial access tokens) and logged instead of a secret.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = sha256(data);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Constant-time equality of two byte strings (length may leak, content does not).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The stored-form prefix of a keyed client-secret hash.
pub const KEYED_HASH_PREFIX: &str = "hmac-sha256$";

/// What a stored client-secret hash is, judged by its self-describing prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredSecretHash<'a> {
    /// `hmac-sha256$…`: checked with [`SecretHasher::verify`].
    Keyed(&'a str),
    /// An argon2id PHC string (`$argon2id$…`), stored before keyed hashing: checked with
    /// [`verify_argon2id`] on the blocking pool, then replaced by a keyed hash.
    Argon2id(&'a str),
    /// Neither: matches no secret.
    Unknown,
}

impl<'a> StoredSecretHash<'a> {
    /// Classifies a stored hash by its prefix.
    pub fn classify(stored: &'a str) -> Self {
        if stored.starts_with(KEYED_HASH_PREFIX) {
            Self::Keyed(stored)
        } else if stored.starts_with("$argon2id$") {
            Self::Argon2id(stored)
        } else {
            Self::Unknown
        }
    }
}

/// Keyed hashing (HMAC-SHA-256) of generated client secrets under a server key. See the
/// module documentation for why this, and not argon2id, protects them at rest.
pub struct SecretHasher {
    /// HMAC state after absorbing the key, cloned for each secret.
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHasher([redacted])")
    }
}

impl SecretHasher {
    /// A hasher under `key`: 256 bits derived from the key-encryption key and kept only in
    /// memory, never beside the hashes.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            keyed: <Hmac<Sha256> as Mac>::new_from_slice(&key)
                .expect("HMAC takes a key of any length"),
        }
    }

    fn mac(&self, secret: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The stored form of `secret`: `hmac-sha256$` and the base64url MAC.
    pub fn hash(&self, secret: &str) -> String {
        let mut out = String::with_capacity(KEYED_HASH_PREFIX.len() + 43);
        out.push_str(KEYED_HASH_PREFIX);
        URL_SAFE_NO_PAD.encode_string(self.mac(secret), &mut out);
        out
    }

    /// Whether `secret` matches a keyed stored hash, compared in constant time. A hash of
    /// another scheme, or a malformed one, is a mismatch.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        let Some(encoded) = stored.strip_prefix(KEYED_HASH_PREFIX) else {
            return false;
        };
        let Ok(expected) = URL_SAFE_NO_PAD.decode(encoded) else {
            return false;
        };
        constant_time_eq(&self.mac(secret), &expected)
    }
}

/// Hashes a secret with argon2id (default parameters: 19 MiB, 2 passes) into a PHC string:
/// for secrets a person chooses, such as the admin token.
pub fn hash_argon2id(secret: &str) -> anyhow::Result<String> {
    let hash = argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `phc` is a well-formed argon2id PHC string.
pub fn is_argon2id_phc(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| h.algorithm.as_str() == "argon2id")
}

/// Checks a secret against an argon2id PHC string (tens of milliseconds: call it on the
/// blocking pool, through [`Argon2Pool`]). A malformed stored hash is a mismatch.
pub fn verify_argon2id(secret: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .is_ok()
}

/// Runs argon2id checks on the blocking pool, a few at a time (a
/// [`HashPool`](crate::hash_pool::HashPool)): each takes 19 MiB and tens of milliseconds, so
/// callers presenting wrong secrets must not be able to occupy every blocking thread or much
/// memory.
pub struct Argon2Pool {
    pool: crate::hash_pool::HashPool,
}

impl Argon2Pool {
    /// At most `size` concurrent checks (`limits.hash_concurrency`; 0: one per core).
    pub fn new(size: usize) -> Self {
        Self {
            pool: crate::hash_pool::HashPool::new(size),
        }
    }

    /// Whether `secret` matches the argon2id PHC string `phc`. The secret moves to the
    /// blocking thread uncopied; a failed task counts as a mismatch.
    pub async fn verify(&self, secret: Secret, phc: String) -> bool {
        self.pool
            .run(move || verify_argon2id(secret.expose(), &phc))
            .await
            .unwrap_or(false)
    }
}

impl Default for Argon2Pool {
    /// As many concurrent checks as there are cores.
    fn default() -> Self {
        Self::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_ids_sort_by_time_and_stay_unique() {
        let a = sortable_id("agt_", 1_700_000_000_000);
        let b = sortable_id("agt_", 1_700_000_000_001);
        let c = sortable_id("agt_", 1_700_000_000_001);
        assert!(a < b && a < c, "{a} {b}");
        assert_ne!(b, c);
        assert_eq!(a.len(), 4 + 12 + 16);
        assert!(a.starts_with("agt_018bcfe5680"), "{a}");
    }

    #[test]
    fn tokens_carry_their_prefix_and_256_bits() {
        let t = random_token("patron_cs_");
        assert!(t.starts_with("patron_cs_"));
        assert_eq!(t.len(), "patron_cs_".len() + 43);
        assert_ne!(random_token("x"), random_token("x"));
    }

    #[test]
    fn sha256_hex_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn keyed_hashes_verify_the_secret_and_nothing_else() {
        let hasher = SecretHasher::new([1; 32]);
        let secret = random_token("patron_cs_");
        let stored = hasher.hash(&secret);
        assert!(stored.starts_with("hmac-sha256$"), "{stored}");
        assert!(!stored.contains(&secret));
        assert_eq!(
            StoredSecretHash::classify(&stored),
            StoredSecretHash::Keyed(&stored)
        );
        assert!(hasher.verify(&secret, &stored));
        assert!(!hasher.verify("patron_cs_wrong", &stored));
        assert!(!hasher.verify(&secret, "hmac-sha256$!!!"));
        assert!(!hasher.verify(&secret, &stored[1..]));
        // Another server key: the stored hash is worthless.
        assert!(!SecretHasher::new([2; 32]).verify(&secret, &stored));
        assert_eq!(format!("{hasher:?}"), "SecretHasher([redacted])");
    }

    #[test]
    fn argon2id_hashes_are_recognised_and_verified() {
        let phc = hash_argon2id("a person's choice").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(is_argon2id_phc(&phc));
        assert!(!is_argon2id_phc(
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
        assert!(!is_argon2id_phc("plain"));
        assert_eq!(
            StoredSecretHash::classify(&phc),
            StoredSecretHash::Argon2id(&phc)
        );
        assert_eq!(
            StoredSecretHash::classify("md5$x"),
            StoredSecretHash::Unknown
        );
        assert!(verify_argon2id("a person's choice", &phc));
        assert!(!verify_argon2id("another", &phc));
        assert!(!verify_argon2id("a person's choice", "$argon2id$broken"));
    }
}
