//! The one JWT validation profile. Every JWT Patron accepts from outside goes through
//! [`decode`] and [`Unverified::verify`], which enforce, in this order:
//!
//! 1. compact JWS form, bounded size, base64url parts, JSON header and claims objects;
//! 2. `alg` in the allow-list ([`VERIFY_ALGORITHMS`]: never `none`, never HMAC);
//! 3. no `crit` (Patron understands no extensions, RFC 7515 §4.1.11);
//! 4. no key carried or pointed to by the header (`jku`, `x5u`, `x5c`, `jwk`): keys come only
//!    from sets Patron trusts, looked up by `kid` (RFC 8725 §3.10);
//! 5. `typ` when the caller expects one (RFC 8725 §3.11);
//! 6. the signature, with a key whose type fits `alg`;
//! 7. `iss`, `aud`, `exp`, `nbf`, `iat` (with maximum age), `jti`, allowing `skew` seconds.
//!
//! Each failure has its own [`Reason`], which goes to the audit log.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::jose::compact;
use crate::jose::jwks::{PublicKeySet, VERIFY_ALGORITHMS};

/// Largest JWT accepted, in bytes.
pub const MAX_JWT_BYTES: usize = 16 * 1024;

/// Header members that would let a token choose its own verification key.
const KEY_CARRYING_HEADERS: &[&str] = &["jku", "x5u", "x5c", "jwk"];

/// Why a JWT was rejected. The string forms are the audit reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not a well-formed compact JWS with JSON header and claims.
    Malformed,
    /// Larger than [`MAX_JWT_BYTES`].
    TooLarge,
    /// `alg` missing, `none`, HMAC or otherwise not allowed.
    AlgNotAllowed,
    /// A `crit` header is present.
    CritUnsupported,
    /// `jku`, `x5u`, `x5c` or `jwk` in the header.
    HeaderKeyNotAllowed,
    /// `typ` is not the expected one.
    TypMismatch,
    /// No trusted key has this `kid` (or no unique key fits when `kid` is absent).
    KidUnknown,
    /// The signature does not verify.
    SignatureInvalid,
    /// `iss` missing or not the expected issuer.
    IssMismatch,
    /// `aud` missing or not an expected audience.
    AudMismatch,
    /// `exp` has passed.
    TokenExpired,
    /// `exp` is required and missing (or not a number).
    ExpMissing,
    /// `nbf` is in the future.
    TokenNotYetValid,
    /// `iat` is older than the maximum age.
    IatTooOld,
    /// `iat` is in the future.
    IatInFuture,
    /// `iat` is required and missing.
    IatMissing,
    /// `jti` is required and missing.
    JtiMissing,
}

impl Reason {
    /// The audit reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "jwt_malformed",
            Self::TooLarge => "jwt_too_large",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::CritUnsupported => "crit_unsupported",
            Self::HeaderKeyNotAllowed => "header_key_not_allowed",
            Self::TypMismatch => "typ_mismatch",
            Self::KidUnknown => "kid_unknown",
            Self::SignatureInvalid => "signature_invalid",
            Self::IssMismatch => "iss_mismatch",
            Self::AudMismatch => "aud_mismatch",
            Self::TokenExpired => "token_expired",
            Self::ExpMissing => "exp_missing",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::IatTooOld => "iat_too_old",
            Self::IatInFuture => "iat_in_future",
            Self::IatMissing => "iat_missing",
            Self::JtiMissing => "jti_missing",
        }
    }

    /// A description safe to return to the presenter.
    pub fn description(self) -> &'static str {
        match self {
            Self::Malformed => "not a well-formed signed JWT",
            Self::TooLarge => "the JWT is too large",
            Self::AlgNotAllowed => "the JWT's signing algorithm is not accepted",
            Self::CritUnsupported => {
                "the JWT uses critical header extensions that are not supported"
            }
            Self::HeaderKeyNotAllowed => {
                "the JWT header must not carry or point to keys (jku, x5u, x5c, jwk)"
            }
            Self::TypMismatch => "the JWT has the wrong type (typ)",
            Self::KidUnknown => "the JWT is signed with an unknown key",
            Self::SignatureInvalid => "the JWT signature is invalid",
            Self::IssMismatch => "the JWT has the wrong issuer",
            Self::AudMismatch => "the JWT has the wrong audience",
            Self::TokenExpired => "the JWT has expired",
            Self::ExpMissing => "the JWT has no expiry (exp)",
            Self::TokenNotYetValid => "the JWT is not valid yet (nbf)",
            Self::IatTooOld => "the JWT was issued too long ago (iat)",
            Self::IatInFuture => "the JWT is issued in the future (iat)",
            Self::IatMissing => "the JWT has no issue time (iat)",
            Self::JtiMissing => "the JWT has no identifier (jti)",
        }
    }
}

/// What the caller requires of a JWT beyond the fixed rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expectations<'a> {
    /// Required `typ` (compared case-insensitively, `application/` prefix optional).
    pub typ: Option<&'a str>,
    /// Required `iss`.
    pub issuer: Option<&'a str>,
    /// `aud` must contain one of these.
    pub audiences: &'a [&'a str],
    /// Whether `exp` must be present.
    pub require_exp: bool,
    /// Whether `iat` must be present.
    pub require_iat: bool,
    /// Whether `jti` must be present.
    pub require_jti: bool,
    /// Largest accepted `now - iat`.
    pub max_age: Option<i64>,
    /// Allowed clock difference.
    pub skew: i64,
}

/// A JWT whose structure and header passed the profile but whose signature and claims are
/// not checked yet. Nothing in it may be trusted.
#[derive(Debug)]
pub struct Unverified<'a> {
    header: Map<String, Value>,
    unverified_claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Verified claims of a JWT that passed the whole profile.
#[derive(Debug, Clone)]
pub struct VerifiedClaims(pub Map<String, Value>);

fn decode_part(part: &str) -> Result<Map<String, Value>, Reason> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Reason::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Reason::Malformed),
    }
}

fn typ_matches(actual: &str, expected: &str) -> bool {
    let actual = actual.to_ascii_lowercase();
    let actual = actual.strip_prefix("application/").unwrap_or(&actual);
    actual == expected.to_ascii_lowercase()
}

/// Checks structure and header (steps 1–5 of the module documentation).
pub fn decode<'a>(token: &'a str, expect: &Expectations<'_>) -> Result<Unverified<'a>, Reason> {
    if token.len() > MAX_JWT_BYTES {
        return Err(Reason::TooLarge);
    }
    let parts = compact::split(token).ok_or(Reason::Malformed)?;
    let header = decode_part(parts.header)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Reason::AlgNotAllowed)?;
    if !VERIFY_ALGORITHMS.contains(&alg) {
        return Err(Reason::AlgNotAllowed);
    }
    if header.contains_key("crit") {
        return Err(Reason::CritUnsupported);
    }
    if KEY_CARRYING_HEADERS.iter().any(|k| header.contains_key(*k)) {
        return Err(Reason::HeaderKeyNotAllowed);
    }
    if let Some(expected) = expect.typ {
        match header.get("typ").and_then(Value::as_str) {
            Some(actual) if typ_matches(actual, expected) => {}
            _ => return Err(Reason::TypMismatch),
        }
    }
    let unverified_claims = decode_part(parts.payload)?;
    let signature = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| Reason::Malformed)?;
    if signature.is_empty() {
        return Err(Reason::Malformed);
    }
    Ok(Unverified {
        header,
        unverified_claims,
        signing_input: parts.signing_input,
        signature,
    })
}

impl Unverified<'_> {
    /// The header's `kid`, as claimed by the presenter.
    pub fn unverified_kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// The header's `typ`, as claimed by the presenter.
    pub fn unverified_typ(&self) -> Option<&str> {
        self.header.get("typ").and_then(Value::as_str)
    }

    /// The header's `alg`, as claimed by the presenter.
    pub fn unverified_alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// The claims, unverified: only for choosing which keys to verify with.
    pub fn unverified_claims(&self) -> &Map<String, Value> {
        &self.unverified_claims
    }

    /// Verifies the signature with `keys` and the claims against `expect` at `now`.
    pub fn verify(
        self,
        keys: &PublicKeySet,
        expect: &Expectations<'_>,
        now: UnixTime,
    ) -> Result<VerifiedClaims, Reason> {
        let alg = self.unverified_alg().ok_or(Reason::AlgNotAllowed)?;
        let key = keys
            .find(self.unverified_kid(), alg)
            .ok_or(Reason::KidUnknown)?;
        let v = key.verifier(alg).ok_or(Reason::SignatureInvalid)?;
        v.verify(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| Reason::SignatureInvalid)?;
        check_claims(&self.unverified_claims, expect, now)?;
        Ok(VerifiedClaims(self.unverified_claims))
    }
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Reason> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(Reason::Malformed),
    }
}

/// Checks registered claims (step 7 of the module documentation).
pub fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expectations<'_>,
    now: UnixTime,
) -> Result<(), Reason> {
    if let Some(iss) = expect.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(iss) {
            return Err(Reason::IssMismatch);
        }
    }
    if !expect.audiences.is_empty() {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => expect.audiences.contains(&a.as_str()),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| expect.audiences.contains(&a)),
            _ => false,
        };
        if !ok {
            return Err(Reason::AudMismatch);
        }
    }
    match number(claims, "exp").map_err(|_| Reason::ExpMissing)? {
        // RFC 7519 §4.1.4: not accepted on or after `exp` (plus the allowed skew).
        Some(exp) if now >= exp.saturating_add(expect.skew) => return Err(Reason::TokenExpired),
        None if expect.require_exp => return Err(Reason::ExpMissing),
        _ => {}
    }
    if let Some(nbf) = number(claims, "nbf")? {
        if nbf > now.saturating_add(expect.skew) {
            return Err(Reason::TokenNotYetValid);
        }
    }
    match number(claims, "iat").map_err(|_| Reason::IatMissing)? {
        Some(iat) => {
            if iat > now.saturating_add(expect.skew) {
                return Err(Reason::IatInFuture);
            }
            if let Some(max) = expect.max_age {
                if now.saturating_sub(iat) > max.saturating_add(expect.skew) {
                    return Err(Reason::IatTooOld);
                }
            }
        }
        None if expect.require_iat => return Err(Reason::IatMissing),
        None => {}
    }
    if expect.require_jti {
        match claims.get("jti").and_then(Value::as_str) {
            Some(j) if !j.is_empty() && j.len() <= 256 => {}
            _ => return Err(Reason::JtiMissing),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use josekit::jwk::KeyPair as _;
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use josekit::jws::JwsSigner as _;
    use serde_json::json;

    /// Signs `claims` with `header` using an ES256 key pair (test helper).
    pub(crate) fn sign(kp: &EcKeyPair, header: Value, claims: Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{h}.{c}");
        let signer = josekit::jws::ES256
            .signer_from_der(kp.to_der_private_key())
            .unwrap();
        let sig = signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn setup() -> (EcKeyPair, PublicKeySet) {
        let kp = EcKeyPair::generate(EcCurve::P256).unwrap();
        let mut jwk: Map<String, Value> = kp.to_jwk_public_key().as_ref().clone();
        jwk.insert("kid".into(), json!("k1"));
        let set = PublicKeySet::from_jwks(&json!({ "keys": [jwk] })).unwrap();
        (kp, set)
    }

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: Some("iss1"),
            audiences: &["aud1"],
            require_exp: true,
            require_iat: true,
            require_jti: true,
            max_age: Some(300),
            skew: 5,
            ..Default::default()
        }
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "iss1", "aud": "aud1", "exp": now + 60, "iat": now, "jti": "j1"})
    }

    fn run(token: &str, keys: &PublicKeySet, now: i64) -> Result<VerifiedClaims, Reason> {
        decode(token, &expect())?.verify(keys, &expect(), now)
    }

    #[test]
    fn a_good_token_passes() {
        let (kp, keys) = setup();
        let t = sign(&kp, json!({"alg": "ES256", "kid": "k1"}), claims(1000));
        assert_eq!(run(&t, &keys, 1000).unwrap().0["jti"], "j1");
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let (_, keys) = setup();
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let c = URL_SAFE_NO_PAD.encode(claims(1000).to_string());
        assert_eq!(
            run(&format!("{h}.{c}.AAAA"), &keys, 1000).unwrap_err(),
            Reason::AlgNotAllowed
        );
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#);
        assert_eq!(
            run(&format!("{h}.{c}.AAAA"), &keys, 1000).unwrap_err(),
            Reason::AlgNotAllowed
        );
    }

    #[test]
    fn key_carrying_headers_and_crit_are_refused() {
        let (kp, keys) = setup();
        for h in ["jku", "x5u", "x5c", "jwk"] {
            let t = sign(
                &kp,
                json!({"alg": "ES256", "kid": "k1", h: "x"}),
                claims(1000),
            );
            assert_eq!(
                run(&t, &keys, 1000).unwrap_err(),
                Reason::HeaderKeyNotAllowed,
                "{h}"
            );
        }
        let t = sign(
            &kp,
            json!({"alg": "ES256", "kid": "k1", "crit": ["b64"]}),
            claims(1000),
        );
        assert_eq!(run(&t, &keys, 1000).unwrap_err(), Reason::CritUnsupported);
    }

    #[test]
    fn unknown_kid_and_foreign_signatures_are_refused() {
        let (kp, keys) = setup();
        let t = sign(&kp, json!({"alg": "ES256", "kid": "nope"}), claims(1000));
        assert_eq!(run(&t, &keys, 1000).unwrap_err(), Reason::KidUnknown);
        let other = EcKeyPair::generate(EcCurve::P256).unwrap();
        let t = sign(&other, json!({"alg": "ES256", "kid": "k1"}), claims(1000));
        assert_eq!(run(&t, &keys, 1000).unwrap_err(), Reason::SignatureInvalid);
    }

    #[test]
    fn time_claims_are_enforced_with_skew() {
        let (kp, keys) = setup();
        let h = json!({"alg": "ES256", "kid": "k1"});
        let t = sign(&kp, h.clone(), claims(1000));
        assert_eq!(run(&t, &keys, 1066).unwrap_err(), Reason::TokenExpired);
        assert!(run(&t, &keys, 1064).is_ok());
        let mut c = claims(1000);
        c["nbf"] = json!(1100);
        assert_eq!(
            run(&sign(&kp, h.clone(), c), &keys, 1000).unwrap_err(),
            Reason::TokenNotYetValid
        );
        let mut c = claims(1000);
        c["iat"] = json!(600);
        c["exp"] = json!(2000);
        assert_eq!(
            run(&sign(&kp, h.clone(), c), &keys, 1000).unwrap_err(),
            Reason::IatTooOld
        );
        let mut c = claims(1000);
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            run(&sign(&kp, h, c), &keys, 1000).unwrap_err(),
            Reason::ExpMissing
        );
    }

    #[test]
    fn iss_aud_and_jti_are_enforced() {
        let (kp, keys) = setup();
        let h = json!({"alg": "ES256", "kid": "k1"});
        let mut c = claims(1000);
        c["iss"] = json!("evil");
        assert_eq!(
            run(&sign(&kp, h.clone(), c), &keys, 1000).unwrap_err(),
            Reason::IssMismatch
        );
        let mut c = claims(1000);
        c["aud"] = json!(["x", "y"]);
        assert_eq!(
            run(&sign(&kp, h.clone(), c), &keys, 1000).unwrap_err(),
            Reason::AudMismatch
        );
        let mut c = claims(1000);
        c["aud"] = json!(["x", "aud1"]);
        assert!(run(&sign(&kp, h.clone(), c), &keys, 1000).is_ok());
        let mut c = claims(1000);
        c.as_object_mut().unwrap().remove("jti");
        assert_eq!(
            run(&sign(&kp, h, c), &keys, 1000).unwrap_err(),
            Reason::JtiMissing
        );
    }

    #[test]
    fn typ_is_checked_when_expected() {
        let (kp, keys) = setup();
        let e = Expectations {
            typ: Some("dpop+jwt"),
            ..expect()
        };
        let t = sign(
            &kp,
            json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}),
            claims(1000),
        );
        assert_eq!(decode(&t, &e).unwrap_err(), Reason::TypMismatch);
        let t = sign(
            &kp,
            json!({"alg": "ES256", "kid": "k1", "typ": "application/DPoP+jwt"}),
            claims(1000),
        );
        assert!(decode(&t, &e).unwrap().verify(&keys, &e, 1000).is_ok());
    }

    #[test]
    fn garbage_is_malformed() {
        let (_, keys) = setup();
        for t in ["", "a.b", "a.b.c.d", "!!!.???.***", "e30.e30.AAAA"] {
            assert!(run(t, &keys, 0).is_err(), "{t}");
        }
        assert_eq!(
            run(&"a".repeat(MAX_JWT_BYTES + 1), &keys, 0).unwrap_err(),
            Reason::TooLarge
        );
    }
}
