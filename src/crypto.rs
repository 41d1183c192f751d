//! Small cryptographic helpers: random identifiers and secrets, SHA-256, constant-time
//! comparison, and argon2id hashing of client secrets with a fast verification path.
//!
//! # Client secrets without argon2 on every request
//!
//! Client secrets are 256-bit random strings, stored as argon2id hashes so that a stolen
//! database does not hand out working credentials. Running argon2id (tens of
//! milliseconds by design) on every token request would cap the token endpoint at a few
//! dozen requests per second per core, so verification goes through a
//! [`SecretVerifier`]: after one successful argon2id check, it remembers the secret's
//! SHA-256 digest for that client in memory and checks later requests with one SHA-256
//! and a constant-time comparison. SHA-256 is a sound verifier for a 256-bit random
//! secret (brute force is infeasible); argon2id protects the copy at rest. The digest is
//! primed at registration (the server holds the plaintext then) and dropped whenever the
//! client's secret changes or the client is deleted. Each remembered digest is bound to the
//! stored argon2id hash it was checked against, so a secret replaced through another
//! replica stops working here as soon as this replica sees the new hash. A wrong secret
//! never enters the cache, so failed attempts always pay the argon2id price.

use std::collections::HashMap;
use std::sync::RwLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

/// Hashes a client secret with argon2id (default parameters: 19 MiB, 2 passes).
pub fn hash_secret(secret: &str) -> anyhow::Result<String> {
    let hash = argon2::Argon2::default()
        .hash_password(secret.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// Checks a secret against an argon2id PHC string. A malformed stored hash is a mismatch.
pub fn verify_secret_slow(secret: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .is_ok()
}

/// Verifies client secrets, paying for argon2id once per client and process.
/// See the module documentation for why this is safe.
#[derive(Default)]
pub struct SecretVerifier {
    verified: RwLock<HashMap<String, Known>>,
}

/// A secret known to be right: its SHA-256 digest, and the stored hash it matched.
struct Known {
    secret: [u8; 32],
    phc: Box<str>,
}

impl Known {
    fn matches(&self, digest: &[u8; 32], phc: &str) -> bool {
        // The stored hash is not secret; the digest comparison is constant-time.
        &*self.phc == phc && constant_time_eq(&self.secret, digest)
    }
}

impl SecretVerifier {
    /// Remembers a secret that is known to be right (at registration), with its stored
    /// argon2id hash.
    pub fn prime(&self, client_id: &str, secret: &str, phc: &str) {
        if let Ok(mut map) = self.verified.write() {
            map.insert(
                client_id.to_owned(),
                Known {
                    secret: sha256(secret.as_bytes()),
                    phc: phc.into(),
                },
            );
        }
    }

    /// Forgets a client's secret (secret changed, client deleted).
    pub fn forget(&self, client_id: &str) {
        if let Ok(mut map) = self.verified.write() {
            map.remove(client_id);
        }
    }

    /// The fast path alone: whether `secret` matches a digest remembered for the client
    /// and its current stored hash `phc`. `false` means "not known", not "wrong": fall back
    /// to [`verify`](Self::verify).
    pub fn verify_fast(&self, client_id: &str, secret: &str, phc: &str) -> bool {
        let digest = sha256(secret.as_bytes());
        self.verified
            .read()
            .ok()
            .and_then(|map| map.get(client_id).map(|known| known.matches(&digest, phc)))
            .unwrap_or(false)
    }

    /// Whether `secret` is the client's secret, given its stored argon2id hash.
    /// Returns `(matches, used_fast_path)`.
    pub fn verify(&self, client_id: &str, secret: &str, phc: &str) -> (bool, bool) {
        let digest = sha256(secret.as_bytes());
        if let Ok(map) = self.verified.read() {
            if let Some(known) = map.get(client_id) {
                if known.matches(&digest, phc) {
                    return (true, true);
                }
            }
        }
        let ok = verify_secret_slow(secret, phc);
        if ok {
            if let Ok(mut map) = self.verified.write() {
                map.insert(
                    client_id.to_owned(),
                    Known {
                        secret: digest,
                        phc: phc.into(),
                    },
                );
            }
        }
        (ok, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn secret_verifier_uses_argon2_once_then_the_fast_path() {
        let secret = random_token("patron_cs_");
        let phc = hash_secret(&secret).unwrap();
        assert!(phc.starts_with("$argon2id$"));
        let v = SecretVerifier::default();
        assert_eq!(v.verify("c1", &secret, &phc), (true, false));
        assert_eq!(v.verify("c1", &secret, &phc), (true, true));
        // A wrong secret never takes the fast path and never enters the cache.
        assert_eq!(v.verify("c1", "wrong", &phc), (false, false));
        assert_eq!(v.verify("c1", &secret, &phc), (true, true));
        v.forget("c1");
        assert_eq!(v.verify("c1", &secret, &phc), (true, false));
    }

    #[test]
    fn primed_secrets_skip_argon2() {
        let v = SecretVerifier::default();
        v.prime("c2", "s3cret", "not-a-phc");
        assert_eq!(v.verify("c2", "s3cret", "not-a-phc"), (true, true));
        assert!(v.verify_fast("c2", "s3cret", "not-a-phc"));
        assert_eq!(v.verify("c2", "other", "not-a-phc"), (false, false));
    }

    #[test]
    fn a_remembered_secret_stops_working_once_the_stored_hash_changes() {
        // Another replica replaced the secret: this replica's cache still holds the old
        // one, but the directory now hands over the new hash.
        let old = random_token("patron_cs_");
        let new = random_token("patron_cs_");
        let (old_phc, new_phc) = (hash_secret(&old).unwrap(), hash_secret(&new).unwrap());
        let v = SecretVerifier::default();
        assert_eq!(v.verify("c3", &old, &old_phc), (true, false));
        assert!(v.verify_fast("c3", &old, &old_phc));
        assert!(!v.verify_fast("c3", &old, &new_phc));
        assert_eq!(v.verify("c3", &old, &new_phc), (false, false));
        assert_eq!(v.verify("c3", &new, &new_phc), (true, false));
        assert_eq!(v.verify("c3", &new, &new_phc), (true, true));
    }
}
