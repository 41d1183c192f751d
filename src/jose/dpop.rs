//! DPoP proof verification at the token endpoint (RFC 9449 §4.2, §4.3).
//!
//! A DPoP proof is a JWT that carries its own public key in the `jwk` header and is signed
//! with the matching private key; the server binds the issued token to that key's RFC 7638
//! thumbprint (`cnf.jkt`, RFC 9449 §6.1). This is the one place where Patron accepts a key
//! chosen by the presenter, so the shared profile in [`crate::jose::profile`] (which
//! refuses `jwk` headers, RFC 8725 §3.10) cannot be used as is. The checks here follow
//! RFC 9449 §4.3 and reuse the profile's building blocks: the same algorithm allow-list
//! ([`VERIFY_ALGORITHMS`]), the same public-key validation ([`PublicKeySet::from_jwks`])
//! and the same verifiers ([`crate::jose::jwks::verifier`]); the compact form is split by
//! [`crate::jose::compact::split`], as everywhere else.
//!
//! Replay protection (remembering `jti` for the proof's lifetime, RFC 9449 §11.1) needs
//! state and is the caller's job; [`VerifiedProof`] returns what it needs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::clock::UnixTime;
use crate::crypto::{constant_time_eq, sha256};
use crate::jose::compact;
use crate::jose::jwks::{PublicKeySet, VERIFY_ALGORITHMS};

/// Largest DPoP proof accepted, in bytes. Proofs are sent on every request in an HTTP
/// header; a legitimate one (an RSA-4096 `jwk` plus a few claims) stays well below this.
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// Longest accepted `jti`, in bytes: the caller stores it for replay detection, so its
/// size must be bounded (RFC 9449 §4.2 asks for enough entropy, not for length).
pub const MAX_JTI_BYTES: usize = 256;

/// The only `typ` a DPoP proof may carry (RFC 9449 §4.2, §4.3 step 4). Keeps other JWTs
/// (access tokens, client assertions) from being replayed as proofs (RFC 8725 §3.11).
const DPOP_TYP: &str = "dpop+jwt";

/// Header members that point to or carry certificates or key sets. Only `jwk` may convey
/// the proof key (RFC 9449 §4.2); anything else would make Patron fetch or trust a key
/// through a second channel.
const FORBIDDEN_KEY_HEADERS: &[&str] = &["jku", "x5u", "x5c"];

/// JWK members that carry private or symmetric key material (RFC 7518 §6.2.2, §6.3.2,
/// §6.4). RFC 9449 §4.3 step 7 requires the `jwk` header to hold a public key only.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Whether the proof must carry a server-provided nonce (RFC 9449 §8).
pub enum NonceCheck<'a> {
    /// The server did not ask for a nonce; a `nonce` claim, if present, is ignored.
    NotRequired,
    /// A `nonce` claim is required, and the closure says whether its value is one the
    /// server issued and still accepts.
    Required(&'a dyn Fn(&str) -> bool),
}

impl fmt::Debug for NonceCheck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRequired => f.write_str("NotRequired"),
            Self::Required(_) => f.write_str("Required(..)"),
        }
    }
}

/// What the request the proof came with requires of it (RFC 9449 §4.3).
#[derive(Debug)]
pub struct ProofRequirements<'a> {
    /// The request's HTTP method, e.g. `POST` (compared exactly: methods are
    /// case-sensitive, RFC 9110 §9.1).
    pub htm: &'a str,
    /// The endpoint URL as the server knows it, already passed through [`normalize_htu`].
    pub htu: &'a str,
    /// The current time.
    pub now: UnixTime,
    /// How old the proof's `iat` may be, in seconds (RFC 9449 §4.3 step 11).
    pub max_age_secs: i64,
    /// Allowed clock difference, in seconds, in both directions.
    pub skew_secs: i64,
    /// Whether a server nonce is required.
    pub nonce: NonceCheck<'a>,
    /// The access token the proof accompanies, if any: then its `ath` claim must be the
    /// base64url SHA-256 of this token (RFC 9449 §4.3 step 12).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 SHA-256 thumbprint of the proof key, base64url: the `cnf.jkt` to bind the
    /// token to (RFC 9449 §6.1).
    pub jkt: String,
    /// The proof's `jti`, for replay detection (RFC 9449 §11.1).
    pub jti: String,
    /// The proof's `iat`, so the caller can keep `jti` exactly as long as the proof could
    /// still be accepted.
    pub iat: UnixTime,
}

/// Why a DPoP proof was refused. Variants follow the order of the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopError {
    /// Too large, not a compact JWS of three base64url parts, or header or claims not a
    /// JSON object (RFC 9449 §4.3 steps 2–3).
    Malformed,
    /// `typ` is not `dpop+jwt` (RFC 9449 §4.3 step 4).
    TypMismatch,
    /// `alg` is missing, `none`, symmetric or otherwise not allowed (RFC 9449 §4.3 step 5).
    AlgNotAllowed,
    /// A `crit` header is present (RFC 7515 §4.1.11: Patron understands no extensions).
    CritUnsupported,
    /// `jku`, `x5u` or `x5c` in the header: the proof key must come from `jwk` alone.
    HeaderKeyNotAllowed,
    /// No `jwk` header (RFC 9449 §4.2).
    JwkMissing,
    /// The `jwk` header carries private or symmetric key material (RFC 9449 §4.3 step 7).
    JwkPrivate,
    /// The `jwk` header is not a supported public key usable with `alg`.
    JwkInvalid,
    /// The signature does not verify with the `jwk` header key (RFC 9449 §4.3 step 6).
    SignatureInvalid,
    /// `htm` is missing or not the request method (RFC 9449 §4.3 step 8).
    HtmMismatch,
    /// `htu` is missing or not the request URL (RFC 9449 §4.3 step 9).
    HtuMismatch,
    /// `iat` is missing or outside the accepted window (RFC 9449 §4.3 step 11).
    IatOutOfWindow,
    /// `jti` is missing, empty or too long (RFC 9449 §4.2).
    JtiMissing,
    /// The server requires a nonce and the proof has none (RFC 9449 §8).
    NonceMissing,
    /// The proof's nonce is not one the server accepts (RFC 9449 §4.3 step 10, §8).
    NonceInvalid,
    /// `ath` is missing or not the hash of the presented access token (RFC 9449 §4.3
    /// step 12).
    AthMismatch,
}

impl DpopError {
    /// The audit reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "dpop_malformed",
            Self::TypMismatch => "dpop_typ_mismatch",
            Self::AlgNotAllowed => "dpop_alg_not_allowed",
            Self::CritUnsupported => "dpop_crit_unsupported",
            Self::HeaderKeyNotAllowed => "dpop_header_key_not_allowed",
            Self::JwkMissing => "dpop_jwk_missing",
            Self::JwkPrivate => "dpop_jwk_private",
            Self::JwkInvalid => "dpop_jwk_invalid",
            Self::SignatureInvalid => "dpop_signature_invalid",
            Self::HtmMismatch => "dpop_htm_mismatch",
            Self::HtuMismatch => "dpop_htu_mismatch",
            Self::IatOutOfWindow => "dpop_iat_out_of_window",
            Self::JtiMissing => "dpop_jti_missing",
            Self::NonceMissing => "dpop_nonce_missing",
            Self::NonceInvalid => "dpop_nonce_invalid",
            Self::AthMismatch => "dpop_ath_mismatch",
        }
    }

    /// A description safe to return to the client (`error_description` of
    /// `invalid_dpop_proof` or `use_dpop_nonce`, RFC 9449 §5, §8).
    pub fn description(self) -> &'static str {
        match self {
            Self::Malformed => "the DPoP proof is not a well-formed signed JWT",
            Self::TypMismatch => "the DPoP proof must have typ dpop+jwt",
            Self::AlgNotAllowed => "the DPoP proof's signing algorithm is not accepted",
            Self::CritUnsupported => {
                "the DPoP proof uses critical header extensions that are not supported"
            }
            Self::HeaderKeyNotAllowed => {
                "the DPoP proof must carry its key in jwk, not jku, x5u or x5c"
            }
            Self::JwkMissing => "the DPoP proof has no jwk header",
            Self::JwkPrivate => "the DPoP proof's jwk header must not contain private key material",
            Self::JwkInvalid => {
                "the DPoP proof's jwk is not a supported public key for its algorithm"
            }
            Self::SignatureInvalid => "the DPoP proof's signature is invalid",
            Self::HtmMismatch => "the DPoP proof's htm does not match the request method",
            Self::HtuMismatch => "the DPoP proof's htu does not match the request URL",
            Self::IatOutOfWindow => "the DPoP proof's iat is missing, too old or in the future",
            Self::JtiMissing => "the DPoP proof has no valid jti",
            Self::NonceMissing => "a DPoP nonce is required",
            Self::NonceInvalid => "the DPoP nonce is invalid or expired",
            Self::AthMismatch => "the DPoP proof's ath does not match the access token",
        }
    }

    /// Whether the server should answer with `use_dpop_nonce` and a fresh `DPoP-Nonce`
    /// header instead of `invalid_dpop_proof` (RFC 9449 §8).
    pub fn is_nonce_error(self) -> bool {
        matches!(self, Self::NonceMissing | Self::NonceInvalid)
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for DpopError {}

/// Decodes one base64url part into a JSON object.
fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, DpopError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DpopError::Malformed),
    }
}

/// An integer claim; JSON numbers with a fraction are truncated, as in the shared profile.
fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.trunc() as i64)
    })
}

/// Checks the `jwk` header (RFC 9449 §4.3 step 7) and returns the one-key set built from
/// it. Public-key validation is the same as for registered client keys.
fn proof_key(header: &Map<String, Value>, alg: &str) -> Result<PublicKeySet, DpopError> {
    let jwk = match header.get("jwk") {
        None => return Err(DpopError::JwkMissing),
        Some(Value::Object(jwk)) => jwk,
        Some(_) => return Err(DpopError::JwkInvalid),
    };
    // Checked before general validation so that this dangerous mistake (a client sending
    // its private key) gets its own audit code.
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopError::JwkPrivate);
    }
    // A key that declares its algorithm or use may be used for nothing else
    // (RFC 7517 §4.2, §4.4; RFC 8725 §3.1).
    if let Some(key_alg) = jwk.get("alg") {
        if key_alg.as_str() != Some(alg) {
            return Err(DpopError::JwkInvalid);
        }
    }
    if let Some(key_use) = jwk.get("use") {
        if key_use.as_str() != Some("sig") {
            return Err(DpopError::JwkInvalid);
        }
    }
    if jwk.get("kty").and_then(Value::as_str) == Some("RSA") && !rsa_exponent_is_sound(jwk) {
        return Err(DpopError::JwkInvalid);
    }
    PublicKeySet::from_jwks(&json!({ "keys": [jwk] })).map_err(|_| DpopError::JwkInvalid)
}

/// Whether an RSA JWK's public exponent `e` is odd and greater than 1 (NIST SP 800-56B
/// §6.2.1 asks for more; this is the part that matters). With `e` = 1 a "signature" is
/// just the padded digest, so anyone could sign for the key, and OpenSSL does not refuse
/// such keys when verifying. Since the presenter chooses the DPoP key, it is checked here.
fn rsa_exponent_is_sound(jwk: &Map<String, Value>) -> bool {
    let Some(e) = jwk
        .get("e")
        .and_then(Value::as_str)
        .and_then(|e| URL_SAFE_NO_PAD.decode(e).ok())
    else {
        return false;
    };
    let significant: Vec<u8> = e.into_iter().skip_while(|b| *b == 0).collect();
    match significant.as_slice() {
        [] | [1] => false,
        [.., last] => last % 2 == 1,
    }
}

/// Verifies a DPoP proof received with a request (RFC 9449 §4.3), checking in the order of
/// the [`DpopError`] variants. Does not check `jti` replay, which needs state.
pub fn verify_proof(proof: &str, req: &ProofRequirements<'_>) -> Result<VerifiedProof, DpopError> {
    // Structure (RFC 9449 §4.3 steps 1–3). The size bound comes first so that nothing
    // below ever decodes a large attacker-chosen input.
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopError::Malformed);
    }
    let parts = compact::split(proof).ok_or(DpopError::Malformed)?;
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| DpopError::Malformed)
    };
    let header = json_object(&decode(parts.header)?)?;
    let claims_bytes = decode(parts.payload)?;
    let signature = decode(parts.signature)?;
    if signature.is_empty() {
        return Err(DpopError::Malformed);
    }

    // Header (RFC 9449 §4.3 steps 4–7).
    match header.get("typ").and_then(Value::as_str) {
        Some(typ) if typ.eq_ignore_ascii_case(DPOP_TYP) => {}
        _ => return Err(DpopError::TypMismatch),
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .filter(|a| VERIFY_ALGORITHMS.contains(a))
        .ok_or(DpopError::AlgNotAllowed)?;
    if header.contains_key("crit") {
        return Err(DpopError::CritUnsupported);
    }
    if FORBIDDEN_KEY_HEADERS
        .iter()
        .any(|k| header.contains_key(*k))
    {
        return Err(DpopError::HeaderKeyNotAllowed);
    }
    let set = proof_key(&header, alg)?;
    let key = set.keys().first().ok_or(DpopError::JwkInvalid)?;
    let v = key.verifier(alg).ok_or(DpopError::JwkInvalid)?;

    // Signature (RFC 9449 §4.3 step 6), before any claim is looked at.
    v.verify(parts.signing_input.as_bytes(), &signature)
        .map_err(|_| DpopError::SignatureInvalid)?;
    let claims = json_object(&claims_bytes)?;

    // Claims (RFC 9449 §4.3 steps 8–12).
    if claims.get("htm").and_then(Value::as_str) != Some(req.htm) {
        return Err(DpopError::HtmMismatch);
    }
    let htu = claims
        .get("htu")
        .and_then(Value::as_str)
        .and_then(normalize_htu);
    if htu.as_deref() != Some(req.htu) {
        return Err(DpopError::HtuMismatch);
    }
    let earliest = req
        .now
        .saturating_sub(req.max_age_secs)
        .saturating_sub(req.skew_secs);
    let latest = req.now.saturating_add(req.skew_secs);
    let iat = claims
        .get("iat")
        .and_then(number)
        .filter(|iat| (earliest..=latest).contains(iat))
        .ok_or(DpopError::IatOutOfWindow)?;
    let jti = match claims.get("jti").and_then(Value::as_str) {
        Some(j) if !j.is_empty() && j.len() <= MAX_JTI_BYTES => j.to_owned(),
        _ => return Err(DpopError::JtiMissing),
    };
    if let NonceCheck::Required(accept) = req.nonce {
        match claims.get("nonce").and_then(Value::as_str) {
            None | Some("") => return Err(DpopError::NonceMissing),
            Some(nonce) if !accept(nonce) => return Err(DpopError::NonceInvalid),
            Some(_) => {}
        }
    }
    if let Some(token) = req.access_token {
        let expected = URL_SAFE_NO_PAD.encode(sha256(token.as_bytes()));
        match claims.get("ath").and_then(Value::as_str) {
            Some(ath) if constant_time_eq(ath.as_bytes(), expected.as_bytes()) => {}
            _ => return Err(DpopError::AthMismatch),
        }
    }
    Ok(VerifiedProof {
        jkt: key.thumbprint.clone(),
        jti,
        iat,
    })
}

/// Whether `b` is an RFC 3986 §2.3 unreserved character.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalises the percent-encodings of a path (RFC 3986 §6.2.2.1, §6.2.2.2): encoded
/// unreserved characters are decoded, the hex digits of the others are uppercased.
fn normalize_percent_encoding(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(hi), Some(lo)) => char::from(*hi)
                .to_digit(16)
                .zip(char::from(*lo).to_digit(16))
                .and_then(|(hi, lo)| u8::try_from(hi * 16 + lo).ok()),
            _ => None,
        };
        match decoded {
            Some(b) if is_unreserved(b) => {
                out.push(char::from(b));
                i += 3;
            }
            Some(b) => {
                out.push_str(&format!("%{b:02X}"));
                i += 3;
            }
            None => {
                // `url` has already percent-encoded everything non-ASCII, so every byte
                // here is one ASCII character.
                out.push(char::from(bytes[i]));
                i += 1;
            }
        }
    }
    out
}

/// Normalises an `htu` value, or the server's own endpoint URL, for comparison
/// (RFC 9449 §4.3 step 9): syntax- and scheme-based normalisation (RFC 3986 §6.2.2,
/// §6.2.3) with the query and fragment removed. Only `http` and `https` URLs are
/// accepted; `None` means the value is not one.
///
/// Scheme and host are lowercased, a default port is dropped, dot segments are removed,
/// an empty path becomes `/`, and percent-encoded unreserved characters are decoded.
pub fn normalize_htu(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return None;
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    let path = normalize_percent_encoding(parsed.path());
    parsed.set_path(&path);
    Some(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jwks::thumbprint;
    use josekit::jwk::KeyPair as _;
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use josekit::jwk::alg::ed::{EdCurve, EdKeyPair};
    use josekit::jwk::alg::rsa::RsaKeyPair;
    use josekit::jws::JwsSigner;

    const NOW: i64 = 10_000;
    const HTU: &str = "https://as.example.com/token";

    /// A proof key: signer plus public JWK.
    struct ProofKey {
        signer: Box<dyn JwsSigner>,
        public: Map<String, Value>,
        alg: &'static str,
    }

    fn ec_key() -> ProofKey {
        let kp = EcKeyPair::generate(EcCurve::P256).unwrap();
        ProofKey {
            signer: Box::new(
                josekit::jws::ES256
                    .signer_from_der(kp.to_der_private_key())
                    .unwrap(),
            ),
            public: kp.to_jwk_public_key().as_ref().clone(),
            alg: "ES256",
        }
    }

    fn ed_key() -> ProofKey {
        let kp = EdKeyPair::generate(EdCurve::Ed25519).unwrap();
        ProofKey {
            signer: Box::new(
                josekit::jws::EdDSA
                    .signer_from_der(kp.to_der_private_key())
                    .unwrap(),
            ),
            public: kp.to_jwk_public_key().as_ref().clone(),
            alg: "EdDSA",
        }
    }

    fn rsa_key() -> ProofKey {
        let kp = RsaKeyPair::generate(2048).unwrap();
        ProofKey {
            signer: Box::new(
                josekit::jws::RS256
                    .signer_from_der(kp.to_der_private_key())
                    .unwrap(),
            ),
            public: kp.to_jwk_public_key().as_ref().clone(),
            alg: "RS256",
        }
    }

    /// Signs arbitrary header and claims (test helper: no validation at all).
    fn sign_raw(signer: &dyn JwsSigner, header: &Value, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{h}.{c}");
        let sig = signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn header(key: &ProofKey) -> Value {
        json!({"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public})
    }

    fn claims() -> Value {
        json!({"htm": "POST", "htu": HTU, "iat": NOW, "jti": "proof-1"})
    }

    fn sign(key: &ProofKey, header: Value, claims: Value) -> String {
        sign_raw(key.signer.as_ref(), &header, &claims)
    }

    fn req() -> ProofRequirements<'static> {
        ProofRequirements {
            htm: "POST",
            htu: HTU,
            now: NOW,
            max_age_secs: 60,
            skew_secs: 5,
            nonce: NonceCheck::NotRequired,
            access_token: None,
        }
    }

    fn err_with_header(key: &ProofKey, header: Value) -> DpopError {
        verify_proof(&sign(key, header, claims()), &req()).unwrap_err()
    }

    fn err_with_claims(claims: Value, req: &ProofRequirements<'_>) -> DpopError {
        let key = ec_key();
        verify_proof(&sign(&key, header(&key), claims), req).unwrap_err()
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn a_good_es256_proof_yields_the_key_thumbprint_jti_and_iat() {
        let key = ec_key();
        let proof = sign(&key, header(&key), claims());
        let verified = verify_proof(&proof, &req()).unwrap();
        assert_eq!(verified.jkt, thumbprint(&key.public).unwrap());
        assert_eq!(verified.jti, "proof-1");
        assert_eq!(verified.iat, NOW);
    }

    #[test]
    fn eddsa_and_rsa_proofs_are_accepted() {
        for key in [ed_key(), rsa_key()] {
            let proof = sign(&key, header(&key), claims());
            let verified = verify_proof(&proof, &req()).unwrap();
            assert_eq!(
                verified.jkt,
                thumbprint(&key.public).unwrap(),
                "{}",
                key.alg
            );
        }
    }

    #[test]
    fn the_thumbprint_ignores_optional_jwk_members() {
        let key = ec_key();
        let mut jwk = key.public.clone();
        jwk.insert("kid".into(), json!("client-chosen"));
        jwk.insert("use".into(), json!("sig"));
        jwk.insert("alg".into(), json!("ES256"));
        let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let verified = verify_proof(&sign(&key, h, claims()), &req()).unwrap();
        assert_eq!(verified.jkt, thumbprint(&key.public).unwrap());
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let key = ec_key();
        let good = sign(&key, header(&key), claims());
        let (input, _) = good.rsplit_once('.').unwrap();
        let (h, c) = input.split_once('.').unwrap();
        let cases = [
            String::new(),
            "a.b".to_owned(),
            format!("{good}.x"),
            "!!!.???.***".to_owned(),
            format!("{}.{c}.AAAA", b64("[1]")),
            format!("{}.{c}.AAAA", b64("not json")),
            format!("{input}."),
            format!("{h}.{c}.%%%"),
            format!("{h}.***.AAAA"),
        ];
        for proof in &cases {
            assert_eq!(
                verify_proof(proof, &req()).unwrap_err(),
                DpopError::Malformed,
                "{proof}"
            );
        }
    }

    #[test]
    fn claims_that_are_not_an_object_are_malformed() {
        let key = ec_key();
        let proof = sign(&key, header(&key), json!(["not", "an", "object"]));
        assert_eq!(
            verify_proof(&proof, &req()).unwrap_err(),
            DpopError::Malformed
        );
    }

    #[test]
    fn an_oversized_proof_is_malformed() {
        let key = ec_key();
        let mut c = claims();
        c["padding"] = json!("x".repeat(MAX_PROOF_BYTES));
        let proof = sign(&key, header(&key), c);
        assert_eq!(
            verify_proof(&proof, &req()).unwrap_err(),
            DpopError::Malformed
        );
    }

    #[test]
    fn a_wrong_or_missing_typ_is_refused() {
        let key = ec_key();
        for typ in [json!("JWT"), json!("at+jwt"), json!(null), json!(1)] {
            let mut h = header(&key);
            h["typ"] = typ.clone();
            assert_eq!(err_with_header(&key, h), DpopError::TypMismatch, "{typ}");
        }
        let mut h = header(&key);
        h.as_object_mut().unwrap().remove("typ");
        assert_eq!(err_with_header(&key, h), DpopError::TypMismatch);
    }

    #[test]
    fn typ_is_compared_case_insensitively() {
        let key = ec_key();
        let mut h = header(&key);
        h["typ"] = json!("DPoP+JWT");
        assert!(verify_proof(&sign(&key, h, claims()), &req()).is_ok());
    }

    #[test]
    fn alg_none_hmac_and_unknown_algorithms_are_refused() {
        let key = ec_key();
        for alg in [json!("none"), json!("HS256"), json!("ES512"), json!(null)] {
            let mut h = header(&key);
            h["alg"] = alg.clone();
            assert_eq!(err_with_header(&key, h), DpopError::AlgNotAllowed, "{alg}");
        }
        // An unsigned proof is refused on its algorithm, before its (empty) signature
        // could matter.
        let unsigned = format!(
            "{}.{}.AAAA",
            b64(&json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.public}).to_string()),
            b64(&claims().to_string())
        );
        assert_eq!(
            verify_proof(&unsigned, &req()).unwrap_err(),
            DpopError::AlgNotAllowed
        );
    }

    #[test]
    fn a_crit_header_is_refused() {
        let key = ec_key();
        let mut h = header(&key);
        h["crit"] = json!(["exp"]);
        assert_eq!(err_with_header(&key, h), DpopError::CritUnsupported);
    }

    #[test]
    fn jku_x5u_and_x5c_headers_are_refused() {
        let key = ec_key();
        for member in ["jku", "x5u", "x5c"] {
            let mut h = header(&key);
            h[member] = json!("https://attacker.example/keys");
            assert_eq!(
                err_with_header(&key, h),
                DpopError::HeaderKeyNotAllowed,
                "{member}"
            );
        }
    }

    #[test]
    fn a_proof_without_jwk_is_refused() {
        let key = ec_key();
        let mut h = header(&key);
        h.as_object_mut().unwrap().remove("jwk");
        h["kid"] = json!("k1");
        assert_eq!(err_with_header(&key, h), DpopError::JwkMissing);
    }

    #[test]
    fn a_jwk_with_private_or_symmetric_material_is_refused() {
        let kp = EcKeyPair::generate(EcCurve::P256).unwrap();
        let key = ProofKey {
            signer: Box::new(
                josekit::jws::ES256
                    .signer_from_der(kp.to_der_private_key())
                    .unwrap(),
            ),
            public: kp.to_jwk_private_key().as_ref().clone(),
            alg: "ES256",
        };
        assert_eq!(err_with_header(&key, header(&key)), DpopError::JwkPrivate);
        let mut h = header(&key);
        h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(err_with_header(&key, h), DpopError::JwkPrivate);
    }

    #[test]
    fn an_invalid_or_unsuitable_jwk_is_refused() {
        let key = ec_key();
        let mut p384 = key.public.clone();
        p384.insert("crv".into(), json!("P-384"));
        let mut wrong_alg = key.public.clone();
        wrong_alg.insert("alg".into(), json!("ES384"));
        let mut enc = key.public.clone();
        enc.insert("use".into(), json!("enc"));
        let cases = [
            json!("not an object"),
            json!({"kty": "EC"}),
            json!({"kty": "XYZ", "x": "AAAA"}),
            Value::Object(p384),
            Value::Object(wrong_alg),
            Value::Object(enc),
        ];
        for jwk in cases {
            let mut h = header(&key);
            h["jwk"] = jwk.clone();
            assert_eq!(err_with_header(&key, h), DpopError::JwkInvalid, "{jwk}");
        }
        // A point that is not on the curve passes the size checks but cannot verify.
        let mut off_curve = key.public.clone();
        off_curve.insert("y".into(), json!(URL_SAFE_NO_PAD.encode([1u8; 32])));
        let mut h = header(&key);
        h["jwk"] = Value::Object(off_curve);
        assert_eq!(err_with_header(&key, h), DpopError::JwkInvalid);
        // A P-256 key cannot verify an RS256 signature.
        let mut h = header(&key);
        h["alg"] = json!("RS256");
        assert_eq!(err_with_header(&key, h), DpopError::JwkInvalid);
    }

    #[test]
    fn a_short_rsa_jwk_is_refused() {
        // josekit will not sign with RSA-1024, but the key is refused before the
        // signature is looked at, so any signer will do.
        let short = RsaKeyPair::generate(1024).unwrap();
        let h =
            json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": short.to_jwk_public_key().as_ref()});
        assert_eq!(err_with_header(&ec_key(), h), DpopError::JwkInvalid);
    }

    #[test]
    fn an_rsa_jwk_with_a_weak_exponent_is_refused() {
        // With e = 1 the PKCS #1 v1.5 encoding of the digest is itself a valid signature,
        // so whoever sees the public key could make proofs for it.
        let key = rsa_key();
        for e in ["AQ", "AAE", "Ag", "AAEAAA", "", "!!"] {
            let mut jwk = key.public.clone();
            jwk.insert("e".into(), json!(e));
            let mut h = header(&key);
            h["jwk"] = Value::Object(jwk);
            assert_eq!(err_with_header(&key, h), DpopError::JwkInvalid, "e={e}");
        }
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let key = ec_key();
        let other = ec_key();
        let proof = sign_raw(other.signer.as_ref(), &header(&key), &claims());
        assert_eq!(
            verify_proof(&proof, &req()).unwrap_err(),
            DpopError::SignatureInvalid
        );
    }

    #[test]
    fn tampered_claims_are_refused() {
        let key = ec_key();
        let proof = sign(&key, header(&key), claims());
        let mut parts: Vec<&str> = proof.split('.').collect();
        let mut c = claims();
        c["htu"] = json!("https://elsewhere.example.com/token");
        let forged = b64(&c.to_string());
        parts[1] = &forged;
        assert_eq!(
            verify_proof(&parts.join("."), &req()).unwrap_err(),
            DpopError::SignatureInvalid
        );
    }

    #[test]
    fn a_wrong_or_missing_htm_is_refused() {
        for htm in [json!("GET"), json!("post"), json!(null)] {
            let mut c = claims();
            c["htm"] = htm.clone();
            assert_eq!(err_with_claims(c, &req()), DpopError::HtmMismatch, "{htm}");
        }
    }

    #[test]
    fn a_wrong_or_missing_htu_is_refused() {
        for htu in [
            json!("https://as.example.com/authorize"),
            json!("https://other.example.com/token"),
            json!("http://as.example.com/token"),
            json!("https://as.example.com:8443/token"),
            json!("https://as.example.com/token/"),
            json!("not a url"),
            json!(null),
        ] {
            let mut c = claims();
            c["htu"] = htu.clone();
            assert_eq!(err_with_claims(c, &req()), DpopError::HtuMismatch, "{htu}");
        }
    }

    #[test]
    fn htu_is_compared_after_normalisation() {
        let key = ec_key();
        for htu in [
            "HTTPS://AS.Example.COM:443/token",
            "https://as.example.com/token?x=1",
            "https://as.example.com/token#frag",
            "https://as.example.com/%74oken",
            "https://as.example.com/a/../token",
        ] {
            let mut c = claims();
            c["htu"] = json!(htu);
            assert!(
                verify_proof(&sign(&key, header(&key), c), &req()).is_ok(),
                "{htu}"
            );
        }
    }

    #[test]
    fn iat_outside_the_window_or_missing_is_refused() {
        // Window: [NOW - 60 - 5, NOW + 5].
        for iat in [
            json!(NOW - 66),
            json!(NOW + 6),
            json!(null),
            json!("10000"),
            json!(i64::MIN),
        ] {
            let mut c = claims();
            c["iat"] = iat.clone();
            assert_eq!(
                err_with_claims(c, &req()),
                DpopError::IatOutOfWindow,
                "{iat}"
            );
        }
    }

    #[test]
    fn iat_at_the_edges_of_the_window_is_accepted() {
        let key = ec_key();
        for iat in [NOW - 65, NOW + 5] {
            let mut c = claims();
            c["iat"] = json!(iat);
            let verified = verify_proof(&sign(&key, header(&key), c), &req()).unwrap();
            assert_eq!(verified.iat, iat);
        }
    }

    #[test]
    fn a_missing_empty_or_oversized_jti_is_refused() {
        for jti in [
            json!(null),
            json!(""),
            json!(42),
            json!("j".repeat(MAX_JTI_BYTES + 1)),
        ] {
            let mut c = claims();
            c["jti"] = jti.clone();
            assert_eq!(err_with_claims(c, &req()), DpopError::JtiMissing, "{jti}");
        }
    }

    #[test]
    fn a_required_nonce_must_be_present_and_accepted() {
        let accept = |n: &str| n == "server-nonce";
        let r = ProofRequirements {
            nonce: NonceCheck::Required(&accept),
            ..req()
        };
        let err = err_with_claims(claims(), &r);
        assert_eq!(err, DpopError::NonceMissing);
        assert!(err.is_nonce_error());
        let mut c = claims();
        c["nonce"] = json!("stale-nonce");
        let err = err_with_claims(c, &r);
        assert_eq!(err, DpopError::NonceInvalid);
        assert!(err.is_nonce_error());
        let key = ec_key();
        let mut c = claims();
        c["nonce"] = json!("server-nonce");
        assert!(verify_proof(&sign(&key, header(&key), c), &r).is_ok());
    }

    #[test]
    fn a_nonce_is_ignored_when_not_required() {
        let key = ec_key();
        let mut c = claims();
        c["nonce"] = json!("anything");
        assert!(verify_proof(&sign(&key, header(&key), c), &req()).is_ok());
    }

    #[test]
    fn ath_must_hash_the_presented_access_token() {
        let token = "at-value";
        let r = ProofRequirements {
            access_token: Some(token),
            ..req()
        };
        assert_eq!(err_with_claims(claims(), &r), DpopError::AthMismatch);
        let mut c = claims();
        c["ath"] = json!(URL_SAFE_NO_PAD.encode(sha256(b"another-token")));
        assert_eq!(err_with_claims(c, &r), DpopError::AthMismatch);
        let key = ec_key();
        let mut c = claims();
        c["ath"] = json!(URL_SAFE_NO_PAD.encode(sha256(token.as_bytes())));
        assert!(verify_proof(&sign(&key, header(&key), c), &r).is_ok());
    }

    #[test]
    fn reason_codes_are_distinct_and_only_nonce_errors_ask_for_a_nonce() {
        let all = [
            DpopError::Malformed,
            DpopError::TypMismatch,
            DpopError::AlgNotAllowed,
            DpopError::CritUnsupported,
            DpopError::HeaderKeyNotAllowed,
            DpopError::JwkMissing,
            DpopError::JwkPrivate,
            DpopError::JwkInvalid,
            DpopError::SignatureInvalid,
            DpopError::HtmMismatch,
            DpopError::HtuMismatch,
            DpopError::IatOutOfWindow,
            DpopError::JtiMissing,
            DpopError::NonceMissing,
            DpopError::NonceInvalid,
            DpopError::AthMismatch,
        ];
        let mut codes: Vec<&str> = all.iter().map(|e| e.reason()).collect();
        assert!(codes.iter().all(|c| c.starts_with("dpop_")));
        assert!(all.iter().all(|e| !e.description().is_empty()));
        assert_eq!(all.iter().filter(|e| e.is_nonce_error()).count(), 2);
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(
            DpopError::JwkPrivate.to_string(),
            DpopError::JwkPrivate.description()
        );
    }

    #[test]
    fn normalize_htu_applies_rfc_3986_normalisation() {
        let cases = [
            (
                "HTTPS://Server.Example.COM:443/Token",
                "https://server.example.com/Token",
            ),
            ("http://a.example:80", "http://a.example/"),
            ("http://a.example:8080/x?y#z", "http://a.example:8080/x"),
            (
                "https://a.example/%7euser/%2f",
                "https://a.example/~user/%2F",
            ),
            ("https://a.example/./b/../c", "https://a.example/c"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_htu(input).as_deref(), Some(expected), "{input}");
        }
    }

    #[test]
    fn normalize_htu_refuses_non_http_urls_and_garbage() {
        for input in [
            "",
            "token",
            "/token",
            "ftp://a.example/x",
            "urn:x:y",
            "https://",
        ] {
            assert_eq!(normalize_htu(input), None, "{input}");
        }
    }
}
