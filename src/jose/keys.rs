//! Signing keys: generation, encryption at rest, and the key ring that says which key
//! signs and which keys are published.
//!
//! # Rotation without coordination
//!
//! A key's role follows from times stored with it, so every replica that reads the same
//! rows agrees without talking to the others:
//!
//! - **next**: `activate_at` is in the future. Published in the JWKS, signs nothing, so
//!   verifiers have fetched it before the first token it signs.
//! - **current**: the newest key whose `activate_at` has passed. Signs.
//! - **retiring**: an older activated key. Stops signing when its successor activates and
//!   stays published for `max_token_lifetime` (plus clock skew) after that, so every token
//!   it signed can still be verified until it expires.
//! - **expired**: a retiring key past that window; dropped from the JWKS and deleted.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::alg::ed::{EdCurve, EdKeyPair};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jws::JwsSigner;
use serde_json::{Map, Value, json};

use crate::clock::UnixTime;
use crate::crypto::random_bytes;
use crate::jose::jwks::thumbprint;

/// Algorithms Patron can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// ECDSA P-256 with SHA-256 (the default).
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
}

impl SigningAlgorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            "RS256" => Ok(Self::Rs256),
            other => Err(format!(
                "`{other}` is not a supported signing algorithm (ES256, EdDSA or RS256)"
            )),
        }
    }
}

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation or parsing failed in the crypto library.
    #[error("key operation failed: {0}")]
    Crypto(String),
    /// The stored ciphertext does not decrypt with this key-encryption key.
    #[error(
        "cannot decrypt signing key {kid}: the key-encryption key is not the one it was stored with"
    )]
    Decrypt {
        /// The key that failed.
        kid: String,
    },
    /// The key-encryption key file is unusable.
    #[error("key-encryption key file {path}: {message}")]
    KekFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The 256-bit key that encrypts private signing keys at rest (AES-256-GCM).
pub struct KeyEncryptionKey([u8; 32]);

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

impl KeyEncryptionKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads the key from `path` (base64 of 32 bytes). When `generate` is set and the file
    /// does not exist, writes a fresh random key there with mode 0600 and says so in the
    /// returned flag.
    pub fn load_file(path: &Path, generate: bool) -> Result<(Self, bool), KeyError> {
        let err = |message: String| KeyError::KekFile {
            path: path.to_path_buf(),
            message,
        };
        if !path.exists() && generate {
            let bytes = random_bytes::<32>();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(|e| err(e.to_string()))?;
            writeln!(file, "{}", STANDARD.encode(bytes)).map_err(|e| err(e.to_string()))?;
            return Ok((Self(bytes), true));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| err("does not hold base64".into()))?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| err(format!("holds {} bytes, 32 are required", bytes.len())))?;
        Ok((Self(bytes), false))
    }

    /// A 256-bit key for another purpose, derived so that it reveals nothing about this one
    /// (SHA-256 over a purpose label and the key).
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let mut input = Vec::with_capacity(purpose.len() + 40);
        input.extend_from_slice(b"patron-kek-derive:");
        input.extend_from_slice(purpose);
        input.extend_from_slice(&self.0);
        crate::crypto::sha256(&input)
    }

    /// Encrypts `plaintext`, binding it to `kid` as associated data.
    pub fn encrypt(&self, kid: &str, plaintext: &[u8]) -> Result<String, KeyError> {
        let iv = random_bytes::<12>();
        let mut tag = [0u8; 16];
        let ct = openssl::symm::encrypt_aead(
            openssl::symm::Cipher::aes_256_gcm(),
            &self.0,
            Some(&iv),
            kid.as_bytes(),
            plaintext,
            &mut tag,
        )
        .map_err(|e| KeyError::Crypto(e.to_string()))?;
        let mut out = Vec::with_capacity(12 + ct.len() + 16);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(STANDARD.encode(out))
    }

    /// Decrypts what [`encrypt`](Self::encrypt) produced for the same `kid`.
    pub fn decrypt(&self, kid: &str, stored: &str) -> Result<Vec<u8>, KeyError> {
        let fail = || KeyError::Decrypt {
            kid: kid.to_owned(),
        };
        let raw = STANDARD.decode(stored).map_err(|_| fail())?;
        if raw.len() < 12 + 16 {
            return Err(fail());
        }
        let (iv, rest) = raw.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        openssl::symm::decrypt_aead(
            openssl::symm::Cipher::aes_256_gcm(),
            &self.0,
            Some(iv),
            kid.as_bytes(),
            ct,
            tag,
        )
        .map_err(|_| fail())
    }
}

/// A signing key as stored: public JWK in clear, private key (PKCS#8 DER) encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id: the RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// Generation number (1, 2, …).
    pub generation: i64,
    /// JWS algorithm.
    pub alg: String,
    /// Public JWK as JSON, with `kid`, `use` and `alg`.
    pub public_jwk: String,
    /// Encrypted private key.
    pub private_key_enc: String,
    /// Creation (and publication) time.
    pub created_at: UnixTime,
    /// When it starts signing.
    pub activate_at: UnixTime,
}

/// Generates a key pair for `alg` and seals its private half.
pub fn generate(
    alg: SigningAlgorithm,
    generation: i64,
    now: UnixTime,
    activate_at: UnixTime,
    kek: &KeyEncryptionKey,
) -> Result<StoredKey, KeyError> {
    let crypto = |e: josekit::JoseError| KeyError::Crypto(e.to_string());
    let (public, private_der) = match alg {
        SigningAlgorithm::Es256 => {
            let kp = EcKeyPair::generate(EcCurve::P256).map_err(crypto)?;
            (kp.to_jwk_public_key(), kp.to_der_private_key())
        }
        SigningAlgorithm::EdDsa => {
            let kp = EdKeyPair::generate(EdCurve::Ed25519).map_err(crypto)?;
            (kp.to_jwk_public_key(), kp.to_der_private_key())
        }
        SigningAlgorithm::Rs256 => {
            let kp = RsaKeyPair::generate(2048).map_err(crypto)?;
            (kp.to_jwk_public_key(), kp.to_der_private_key())
        }
    };
    let mut public: Map<String, Value> = public.as_ref().clone();
    let kid = thumbprint(&public).map_err(KeyError::Crypto)?;
    public.insert("kid".into(), json!(kid));
    public.insert("use".into(), json!("sig"));
    public.insert("alg".into(), json!(alg.as_str()));
    let private_key_enc = kek.encrypt(&kid, &private_der)?;
    Ok(StoredKey {
        kid,
        generation,
        alg: alg.as_str().to_owned(),
        public_jwk: Value::Object(public).to_string(),
        private_key_enc,
        created_at: now,
        activate_at,
    })
}

/// A key's role at a given time (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Current,
    /// Published, no longer signing, until `until`.
    Retiring {
        /// End of publication.
        until: UnixTime,
    },
    /// Past its overlap window.
    Expired,
}

impl KeyRole {
    /// Short name for listings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Retiring { .. } => "retiring",
            Self::Expired => "expired",
        }
    }
}

/// Assigns a role to every key at `now`. `overlap` is how long a retired key stays
/// published (longest token lifetime plus clock skew). Keys come back in generation order.
pub fn roles(keys: &[StoredKey], now: UnixTime, overlap: i64) -> Vec<(&StoredKey, KeyRole)> {
    let mut sorted: Vec<&StoredKey> = keys.iter().collect();
    sorted.sort_by_key(|k| k.generation);
    let current = sorted.iter().rposition(|k| k.activate_at <= now);
    sorted
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let role = match current {
                _ if k.activate_at > now => KeyRole::Next,
                Some(c) if c == i => KeyRole::Current,
                _ => {
                    // Superseded when the next activated key took over.
                    let superseded_at = sorted[i + 1..]
                        .iter()
                        .map(|s| s.activate_at)
                        .filter(|t| *t <= now)
                        .min()
                        .unwrap_or(now);
                    let until = superseded_at.saturating_add(overlap);
                    if until > now {
                        KeyRole::Retiring { until }
                    } else {
                        KeyRole::Expired
                    }
                }
            };
            (*k, role)
        })
        .collect()
}

/// The active signer: key id, algorithm and the private key ready to sign.
#[derive(Clone)]
pub struct Signer {
    /// `kid` to put in JWS headers.
    pub kid: String,
    /// JWS algorithm name.
    pub alg: &'static str,
    /// The signer.
    pub signer: Arc<dyn JwsSigner>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Builds a signer from a stored key (decrypting its private half).
pub fn signer(key: &StoredKey, kek: &KeyEncryptionKey) -> Result<Signer, KeyError> {
    let der = kek.decrypt(&key.kid, &key.private_key_enc)?;
    let crypto = |e: josekit::JoseError| KeyError::Crypto(e.to_string());
    let alg: SigningAlgorithm = key.alg.parse().map_err(KeyError::Crypto)?;
    let signer: Arc<dyn JwsSigner> = match alg {
        SigningAlgorithm::Es256 => {
            Arc::new(josekit::jws::ES256.signer_from_der(&der).map_err(crypto)?)
        }
        SigningAlgorithm::EdDsa => {
            Arc::new(josekit::jws::EdDSA.signer_from_der(&der).map_err(crypto)?)
        }
        SigningAlgorithm::Rs256 => {
            Arc::new(josekit::jws::RS256.signer_from_der(&der).map_err(crypto)?)
        }
    };
    Ok(Signer {
        kid: key.kid.clone(),
        alg: alg.as_str(),
        signer,
    })
}

/// What the server needs from its keys at one moment: the signer and the JWKS document.
#[derive(Debug, Clone)]
pub struct KeyRing {
    /// The current signer, if any key has activated.
    pub current: Option<Signer>,
    /// The JWKS document (next, current and retiring keys), serialised once.
    pub jwks_json: Arc<str>,
    /// The same keys, parsed, for verifying tokens Patron issued.
    pub public: Arc<crate::jose::jwks::PublicKeySet>,
    /// Keys that are past their overlap window and may be deleted.
    pub expired: Vec<String>,
}

impl KeyRing {
    /// Computes the ring at `now`. `signers` supplies decrypted signers by `kid` (cached by
    /// the caller so that private keys are decrypted once).
    pub fn build(
        keys: &[StoredKey],
        now: UnixTime,
        overlap: i64,
        mut signer_for: impl FnMut(&StoredKey) -> Result<Signer, KeyError>,
    ) -> Result<Self, KeyError> {
        let mut published = Vec::new();
        let mut current = None;
        let mut expired = Vec::new();
        for (key, role) in roles(keys, now, overlap) {
            match role {
                KeyRole::Expired => {
                    expired.push(key.kid.clone());
                    continue;
                }
                KeyRole::Current => current = Some(signer_for(key)?),
                KeyRole::Next | KeyRole::Retiring { .. } => {}
            }
            let jwk: Value = serde_json::from_str(&key.public_jwk)
                .map_err(|e| KeyError::Crypto(format!("stored public key {}: {e}", key.kid)))?;
            published.push(jwk);
        }
        let doc = json!({ "keys": published });
        let public = if published_is_empty(&doc) {
            crate::jose::jwks::PublicKeySet::default()
        } else {
            crate::jose::jwks::PublicKeySet::from_own_jwks(&doc)
                .map_err(|e| KeyError::Crypto(format!("published keys: {e}")))?
        };
        Ok(Self {
            current,
            jwks_json: doc.to_string().into(),
            public: Arc::new(public),
            expired,
        })
    }
}

fn published_is_empty(doc: &Value) -> bool {
    doc["keys"].as_array().is_none_or(|k| k.is_empty())
}

/// Base64url without padding (re-exported for JWS assembly).
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> KeyEncryptionKey {
        KeyEncryptionKey::from_bytes([7u8; 32])
    }

    #[test]
    fn sealed_private_keys_open_only_with_the_same_kek_and_kid() {
        let k = kek();
        let sealed = k.encrypt("kid1", b"secret").unwrap();
        assert_eq!(k.decrypt("kid1", &sealed).unwrap(), b"secret");
        assert!(k.decrypt("kid2", &sealed).is_err());
        assert!(
            KeyEncryptionKey::from_bytes([8u8; 32])
                .decrypt("kid1", &sealed)
                .is_err()
        );
    }

    #[test]
    fn every_algorithm_generates_a_key_that_signs_and_verifies() {
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Rs256,
        ] {
            let stored = generate(alg, 1, 100, 100, &kek()).unwrap();
            let jwk: Value = serde_json::from_str(&stored.public_jwk).unwrap();
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["kid"], stored.kid.as_str());
            assert!(jwk.get("d").is_none(), "public JWK must not carry d");
            let s = signer(&stored, &kek()).unwrap();
            let sig = s.signer.sign(b"msg").unwrap();
            let jwk = josekit::jwk::Jwk::from_bytes(stored.public_jwk.as_bytes()).unwrap();
            let v = crate::jose::jwks::verifier(&jwk, alg.as_str()).unwrap();
            assert!(v.verify(b"msg", &sig).is_ok());
            assert!(v.verify(b"other", &sig).is_err());
        }
    }

    fn key(generation: i64, activate_at: i64) -> StoredKey {
        StoredKey {
            kid: format!("k{generation}"),
            generation,
            alg: "ES256".into(),
            public_jwk: "{}".into(),
            private_key_enc: String::new(),
            created_at: 0,
            activate_at,
        }
    }

    #[test]
    fn roles_follow_from_activation_times() {
        let keys = vec![key(1, 0), key(2, 100), key(3, 200)];
        let names = |now| {
            roles(&keys, now, 50)
                .into_iter()
                .map(|(k, r)| format!("{}:{}", k.kid, r.name()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(50), ["k1:current", "k2:next", "k3:next"]);
        assert_eq!(names(120), ["k1:retiring", "k2:current", "k3:next"]);
        assert_eq!(names(160), ["k1:expired", "k2:current", "k3:next"]);
        assert_eq!(names(210), ["k1:expired", "k2:retiring", "k3:current"]);
        assert_eq!(names(260), ["k1:expired", "k2:expired", "k3:current"]);
    }

    #[test]
    fn a_retiring_key_stays_published_until_its_tokens_expire() {
        let keys = vec![key(1, 0), key(2, 100)];
        let r = roles(&keys, 120, 50);
        assert_eq!(r[0].1, KeyRole::Retiring { until: 150 });
    }
}
