//! Public key sets: checking the keys a client registers, looking keys up by `kid`, and
//! RFC 7638 thumbprints.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::JwsVerifier;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::crypto::sha256;

/// Most keys accepted in one set.
pub const MAX_KEYS: usize = 10;

/// Members that carry private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The JWS algorithms Patron verifies. Never `none`, never HMAC: every key Patron trusts is
/// asymmetric, so a symmetric algorithm could only be an attack (RFC 8725 §2.1, §3.1).
pub const VERIFY_ALGORITHMS: &[&str] = &["ES256", "ES384", "EdDSA", "RS256", "PS256"];

/// One public key of a set, ready to verify.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// `kid`, if the key has one.
    pub kid: Option<String>,
    /// The JWK as given.
    pub jwk: Jwk,
    /// RFC 7638 SHA-256 thumbprint (base64url).
    pub thumbprint: String,
}

/// A validated set of public keys.
#[derive(Debug, Clone, Default)]
pub struct PublicKeySet {
    keys: Vec<PublicKey>,
}

fn field<'a>(key: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match key.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(format!("member `{name}` must be a non-empty string")),
        None => Err(format!("member `{name}` is missing")),
    }
}

fn b64(key: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(field(key, name)?)
        .map_err(|_| format!("member `{name}` is not base64url"))
}

/// Checks one public JWK: supported type and curve, size, no private material.
fn check_key(key: &Map<String, Value>) -> Result<(), String> {
    for m in PRIVATE_MEMBERS {
        if key.contains_key(*m) {
            return Err(format!(
                "keys must be public: member `{m}` carries private or symmetric key material"
            ));
        }
    }
    let kty = field(key, "kty")?;
    match kty {
        "EC" => {
            let crv = field(key, "crv")?;
            let len = match crv {
                "P-256" => 32,
                "P-384" => 48,
                other => {
                    return Err(format!(
                        "unsupported EC curve `{other}` (use P-256 or P-384)"
                    ));
                }
            };
            if b64(key, "x")?.len() != len || b64(key, "y")?.len() != len {
                return Err(format!(
                    "EC key coordinates have the wrong length for {crv}"
                ));
            }
        }
        "OKP" => {
            let crv = field(key, "crv")?;
            if crv != "Ed25519" {
                return Err(format!("unsupported OKP curve `{crv}` (use Ed25519)"));
            }
            if b64(key, "x")?.len() != 32 {
                return Err("Ed25519 key has the wrong length".into());
            }
        }
        "RSA" => {
            let n = b64(key, "n")?;
            let leading_zeros = n.iter().take_while(|b| **b == 0).count();
            let significant = &n[leading_zeros..];
            let bits = significant
                .first()
                .map(|b| (significant.len() - 1) * 8 + (8 - b.leading_zeros() as usize))
                .unwrap_or(0);
            if bits < 2048 {
                return Err(format!(
                    "RSA key has {bits} bits; at least 2048 are required"
                ));
            }
            if bits > 8192 {
                return Err(format!(
                    "RSA key has {bits} bits; at most 8192 are accepted"
                ));
            }
            // A public exponent of 1 (or any even one) makes "signatures" trivially
            // forgeable; OpenSSL would still verify with it.
            let e = b64(key, "e")?;
            let odd = e.last().is_some_and(|b| b & 1 == 1);
            let above_one =
                e.iter().rev().skip(1).any(|b| *b != 0) || e.last().is_some_and(|b| *b > 1);
            if !odd || !above_one || e.len() > 8 {
                return Err("RSA public exponent must be odd and greater than 1".into());
            }
        }
        other => {
            return Err(format!(
                "unsupported key type `{other}` (use EC, OKP or RSA)"
            ));
        }
    }
    if let Some(u) = key.get("use") {
        if u.as_str() != Some("sig") {
            return Err("member `use` must be `sig`: these keys only verify signatures".into());
        }
    }
    if let Some(alg) = key.get("alg") {
        match alg.as_str() {
            Some(a) if VERIFY_ALGORITHMS.contains(&a) => {}
            _ => return Err("member `alg` names an algorithm Patron does not accept".into()),
        }
    }
    Ok(())
}

/// RFC 7638 §3 thumbprint of a public JWK: SHA-256 over the required members in
/// lexicographic order, base64url-encoded.
pub fn thumbprint(key: &Map<String, Value>) -> Result<String, String> {
    let kty = field(key, "kty")?;
    let members: &[&str] = match kty {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        other => return Err(format!("unsupported key type `{other}`")),
    };
    let mut canonical = String::from("{");
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        let v = field(key, m)?;
        // Members are base64url or fixed names: JSON string escaping is not needed, but
        // serde_json keeps this correct for any value.
        canonical.push_str(&format!("\"{m}\":{}", Value::String(v.to_owned())));
    }
    canonical.push('}');
    Ok(URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes())))
}

/// Validates a client's `jwks` metadata value (RFC 7591 §2): a JWK Set of 1 to
/// [`MAX_KEYS`] public keys of supported types, with distinct `kid`s.
pub fn validate_client_jwks(value: &Value) -> Result<(), String> {
    PublicKeySet::from_jwks(value).map(|_| ())
}

impl PublicKeySet {
    /// Parses and validates a JWK Set of at most [`MAX_KEYS`] keys.
    pub fn from_jwks(value: &Value) -> Result<Self, String> {
        Self::parse(value, MAX_KEYS)
    }

    /// Parses Patron's own published keys, which may number more than a client's.
    pub fn from_own_jwks(value: &Value) -> Result<Self, String> {
        Self::parse(value, 1000)
    }

    fn parse(value: &Value, max_keys: usize) -> Result<Self, String> {
        let keys = value
            .as_object()
            .and_then(|o| o.get("keys"))
            .and_then(Value::as_array)
            .ok_or_else(|| "must be a JWK Set: an object with a `keys` array".to_owned())?;
        if keys.is_empty() {
            return Err("the key set is empty".into());
        }
        if keys.len() > max_keys {
            return Err(format!("at most {max_keys} keys are accepted"));
        }
        let mut out = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let obj = k
                .as_object()
                .ok_or_else(|| format!("key {i} is not a JSON object"))?;
            check_key(obj).map_err(|e| format!("key {i}: {e}"))?;
            let kid = match obj.get("kid") {
                None => None,
                Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => Some(s.clone()),
                Some(_) => {
                    return Err(format!(
                        "key {i}: `kid` must be a string of 1 to 200 characters"
                    ));
                }
            };
            if let Some(kid) = &kid {
                if out
                    .iter()
                    .any(|p: &PublicKey| p.kid.as_deref() == Some(kid))
                {
                    return Err(format!("key {i}: `kid` {kid:?} is used twice"));
                }
            }
            let jwk = Jwk::from_map(obj.clone()).map_err(|e| format!("key {i}: {e}"))?;
            let thumbprint = thumbprint(obj).map_err(|e| format!("key {i}: {e}"))?;
            out.push(PublicKey {
                kid,
                jwk,
                thumbprint,
            });
        }
        Ok(Self { keys: out })
    }

    /// The keys' RFC 7638 thumbprints, sorted, without repeats and space-separated: one
    /// value for one set of keys, whatever their order, `kid`s or other members.
    pub fn thumbprints(&self) -> String {
        let mut prints: Vec<&str> = self.keys.iter().map(|k| k.thumbprint.as_str()).collect();
        prints.sort_unstable();
        prints.dedup();
        prints.join(" ")
    }

    /// The keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Finds the key for a JWS header's `kid` (untrusted input) and `alg`. Without a `kid`,
    /// a set with exactly one key that suits `alg` yields that key.
    pub fn find(&self, unverified_kid: Option<&str>, alg: &str) -> Option<&PublicKey> {
        match unverified_kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut suitable = self.keys.iter().filter(|k| key_suits(&k.jwk, alg));
                let first = suitable.next();
                if suitable.next().is_some() {
                    None
                } else {
                    first
                }
            }
        }
    }
}

/// Whether a JWK's type and curve fit a JWS algorithm.
pub fn key_suits(jwk: &Jwk, alg: &str) -> bool {
    matches!(
        (alg, jwk.key_type(), jwk.curve()),
        ("ES256", "EC", Some("P-256"))
            | ("ES384", "EC", Some("P-384"))
            | ("EdDSA", "OKP", Some("Ed25519"))
            | ("RS256" | "PS256", "RSA", _)
    )
}

/// Verifiers already built, by key thumbprint and algorithm. Building one decodes the key
/// through OpenSSL, which costs more than the signature check itself; the thumbprint names
/// the key material exactly (RFC 7638), so a verifier can be shared by every set holding the
/// same key. Bounded: cleared when full.
type VerifierCache = Mutex<HashMap<(String, &'static str), Arc<dyn JwsVerifier>>>;

static VERIFIERS: OnceLock<VerifierCache> = OnceLock::new();

/// Most cached verifiers before the cache starts over.
const MAX_CACHED_VERIFIERS: usize = 50_000;

impl PublicKey {
    /// A verifier for `alg` with this key, built once and then shared (see
    /// [`VerifierCache`]). `None` when the algorithm is not allowed or does not fit the key.
    pub fn verifier(&self, alg: &str) -> Option<Arc<dyn JwsVerifier>> {
        let alg: &'static str = VERIFY_ALGORITHMS.iter().copied().find(|a| *a == alg)?;
        if !key_suits(&self.jwk, alg) || self.jwk.algorithm().is_some_and(|a| a != alg) {
            return None;
        }
        let cache = VERIFIERS.get_or_init(|| Mutex::new(HashMap::new()));
        let key = (self.thumbprint.clone(), alg);
        if let Ok(map) = cache.lock() {
            if let Some(v) = map.get(&key) {
                return Some(v.clone());
            }
        }
        let built: Arc<dyn JwsVerifier> = Arc::from(verifier(&self.jwk, alg)?);
        if let Ok(mut map) = cache.lock() {
            if map.len() >= MAX_CACHED_VERIFIERS {
                map.clear();
            }
            map.insert(key, built.clone());
        }
        Some(built)
    }
}

/// A verifier for `alg` from a public JWK, or `None` if the algorithm is not allowed or
/// does not fit the key.
pub fn verifier(jwk: &Jwk, alg: &str) -> Option<Box<dyn JwsVerifier>> {
    // A key that names its algorithm is used with that algorithm only.
    if !key_suits(jwk, alg) || jwk.algorithm().is_some_and(|a| a != alg) {
        return None;
    }
    let v: Box<dyn JwsVerifier> = match alg {
        "ES256" => Box::new(josekit::jws::ES256.verifier_from_jwk(jwk).ok()?),
        "ES384" => Box::new(josekit::jws::ES384.verifier_from_jwk(jwk).ok()?),
        "EdDSA" => Box::new(josekit::jws::EdDSA.verifier_from_jwk(jwk).ok()?),
        "RS256" => Box::new(josekit::jws::RS256.verifier_from_jwk(jwk).ok()?),
        "PS256" => Box::new(josekit::jws::PS256.verifier_from_jwk(jwk).ok()?),
        _ => return None,
    };
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::KeyPair;
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use josekit::jwk::alg::rsa::RsaKeyPair;
    use serde_json::json;

    fn ec_public() -> Value {
        let kp = EcKeyPair::generate(EcCurve::P256).unwrap();
        Value::Object(kp.to_jwk_public_key().as_ref().clone())
    }

    #[test]
    fn a_public_p256_key_is_accepted() {
        let set = json!({"keys": [ec_public()]});
        let parsed = PublicKeySet::from_jwks(&set).unwrap();
        assert_eq!(parsed.keys().len(), 1);
        assert!(parsed.find(None, "ES256").is_some());
        assert!(parsed.find(None, "RS256").is_none());
    }

    #[test]
    fn private_key_material_is_refused() {
        let kp = EcKeyPair::generate(EcCurve::P256).unwrap();
        let private: Map<String, Value> = kp.to_jwk_private_key().as_ref().clone();
        let err = PublicKeySet::from_jwks(&json!({"keys": [private]})).unwrap_err();
        assert!(err.contains("private"), "{err}");
    }

    #[test]
    fn a_symmetric_key_is_refused() {
        let err =
            PublicKeySet::from_jwks(&json!({"keys": [{"kty": "oct", "k": "AAAA"}]})).unwrap_err();
        assert!(err.contains("`k`"), "{err}");
    }

    #[test]
    fn rsa_under_2048_bits_is_refused() {
        let kp = RsaKeyPair::generate(1024).unwrap();
        let public: Map<String, Value> = kp.to_jwk_public_key().as_ref().clone();
        let err = PublicKeySet::from_jwks(&json!({"keys": [public]})).unwrap_err();
        assert!(err.contains("1024 bits"), "{err}");
        let kp = RsaKeyPair::generate(2048).unwrap();
        let public: Map<String, Value> = kp.to_jwk_public_key().as_ref().clone();
        assert!(PublicKeySet::from_jwks(&json!({"keys": [public]})).is_ok());
    }

    #[test]
    fn unsupported_types_and_curves_are_refused() {
        let mut k = ec_public();
        k["crv"] = json!("P-521");
        assert!(
            PublicKeySet::from_jwks(&json!({"keys": [k]}))
                .unwrap_err()
                .contains("P-521")
        );
        let err = PublicKeySet::from_jwks(&json!({"keys": [{"kty": "XYZ"}]})).unwrap_err();
        assert!(err.contains("XYZ"), "{err}");
    }

    #[test]
    fn a_key_sets_thumbprints_ignore_order_and_kids() {
        let (a, b) = (ec_public(), ec_public());
        let mut a_kid = a.clone();
        a_kid["kid"] = json!("k1");
        let ab = PublicKeySet::from_jwks(&json!({"keys": [a, b.clone()]})).unwrap();
        let ba = PublicKeySet::from_jwks(&json!({"keys": [b.clone(), a_kid]})).unwrap();
        assert_eq!(ab.thumbprints(), ba.thumbprints());
        assert_eq!(ab.thumbprints().split(' ').count(), 2);
        let only_b = PublicKeySet::from_jwks(&json!({"keys": [b]})).unwrap();
        assert_ne!(ab.thumbprints(), only_b.thumbprints());
        assert_eq!(only_b.thumbprints(), only_b.keys()[0].thumbprint);
    }

    #[test]
    fn duplicate_kids_and_empty_sets_are_refused() {
        let mut a = ec_public();
        a["kid"] = json!("k");
        let mut b = ec_public();
        b["kid"] = json!("k");
        assert!(PublicKeySet::from_jwks(&json!({"keys": [a, b]})).is_err());
        assert!(PublicKeySet::from_jwks(&json!({"keys": []})).is_err());
        assert!(PublicKeySet::from_jwks(&json!([1])).is_err());
    }

    #[test]
    fn rsa_keys_with_a_degenerate_exponent_are_refused() {
        let kp = RsaKeyPair::generate(2048).unwrap();
        let mut public: Map<String, Value> = kp.to_jwk_public_key().as_ref().clone();
        for e in ["AQ", "Ag", "AAE"] {
            public.insert("e".into(), json!(e));
            let err = PublicKeySet::from_jwks(&json!({"keys": [public.clone()]})).unwrap_err();
            assert!(err.contains("exponent"), "{e}: {err}");
        }
    }

    #[test]
    fn a_key_is_used_only_with_the_algorithm_it_names() {
        let kp = RsaKeyPair::generate(2048).unwrap();
        let mut public: Map<String, Value> = kp.to_jwk_public_key().as_ref().clone();
        public.insert("alg".into(), json!("PS256"));
        let jwk = Jwk::from_map(public).unwrap();
        assert!(verifier(&jwk, "RS256").is_none());
        assert!(verifier(&jwk, "PS256").is_some());
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let key = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(key.as_object().unwrap()).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
