//! `private_key_jwt` client authentication: JWT client assertions (RFC 7523 §2.2, §3;
//! RFC 7521 §4.2; OpenID Connect Core §9).
//!
//! The client signs a short-lived JWT with a key from its registered `jwks` and sends it
//! as `client_assertion`. The generic rules (algorithm allow-list, no header-supplied keys,
//! signature, `iss`, `aud`, `exp`, `nbf`, `iat`, `jti`) are the shared profile's
//! ([`crate::jose::profile`]); this module adds what RFC 7523 §3 requires of client
//! authentication specifically: `sub` is the client, and the assertion is recent.
//!
//! # Lifetime and replay window
//!
//! Widely used clients sign assertions that live an hour (Authlib's `PrivateKeyJWT` sends
//! `exp = iat + 3600`), so `exp` alone cannot keep the replay cache small. Patron therefore
//! requires `iat` and accepts an assertion only while `iat` is at most `max_age_secs` old
//! (RFC 7523 §3 item 6 lets the server reject JWTs issued unreasonably far in the past). An
//! assertion is then usable for `min(exp, iat + max_age)` plus the clock skew, however far
//! away `exp` is, and its `jti` need be remembered only that long
//! ([`VerifiedAssertion::remember_until`]).
//!
//! Replay protection itself (RFC 7523 §3 item 7) needs state and is the caller's job.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::clock::UnixTime;
use crate::jose::compact;
use crate::jose::jwks::PublicKeySet;
use crate::jose::profile::{self, Expectations, MAX_JWT_BYTES, Reason};

/// What the token request requires of a client assertion.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRequirements<'a> {
    /// The client the request claims to be: both `iss` and `sub` must be this
    /// (RFC 7523 §3 items 1–2).
    pub client_id: &'a str,
    /// Acceptable `aud` values: the issuer identifier and the token endpoint URL
    /// (RFC 7523 §3 item 3).
    pub audiences: &'a [&'a str],
    /// The current time.
    pub now: UnixTime,
    /// Allowed clock difference, in seconds.
    pub skew_secs: i64,
    /// How far after `now` `exp` may be, in seconds: refuses assertions meant as
    /// long-lived credentials (RFC 7521 §4.2). It does not bound the replay window;
    /// `max_age_secs` does.
    pub max_lifetime_secs: i64,
    /// How old `iat` may be, in seconds (RFC 7523 §3 item 6): the window in which an
    /// assertion is accepted, and so how long its `jti` must be remembered.
    pub max_age_secs: i64,
}

/// An assertion that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The assertion's `jti`, for replay detection (RFC 7523 §3 item 7).
    pub jti: String,
    /// The assertion's `exp`.
    pub exp: UnixTime,
    /// Until when the caller must remember `jti`: the first instant at which this
    /// assertion would be refused anyway, as expired (`exp` + skew) or as too old
    /// (`iat` + max age + skew, plus one second since that instant itself is accepted).
    pub remember_until: UnixTime,
}

/// Why a client assertion was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionError {
    /// The shared JWT profile refused it.
    Jwt(Reason),
    /// `sub` is missing or is not the client (RFC 7523 §3 item 2).
    SubMismatch,
    /// `exp` is further in the future than the accepted lifetime.
    LifetimeTooLong,
    /// `aud` names more than one audience.
    AudienceNotSingle,
}

impl From<Reason> for AssertionError {
    fn from(reason: Reason) -> Self {
        Self::Jwt(reason)
    }
}

impl AssertionError {
    /// The audit reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Jwt(r) => r.as_str(),
            Self::SubMismatch => "assertion_sub_mismatch",
            Self::LifetimeTooLong => "assertion_lifetime_too_long",
            Self::AudienceNotSingle => "aud_not_single",
        }
    }

    /// A description safe to return to the client (`error_description` of
    /// `invalid_client`, RFC 6749 §5.2).
    pub fn description(self) -> &'static str {
        match self {
            Self::Jwt(r) => r.description(),
            Self::SubMismatch => "the client assertion's subject (sub) must be the client_id",
            Self::LifetimeTooLong => "the client assertion expires too far in the future (exp)",
            Self::AudienceNotSingle => {
                "the client assertion's audience (aud) must be one value: the issuer or the token endpoint"
            }
        }
    }
}

impl fmt::Display for AssertionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for AssertionError {}

/// The client an assertion claims to come from: its `sub`, or else its `iss`
/// (RFC 7523 §3 items 1–2), read WITHOUT verification. Only for finding the client whose
/// keys [`verify_assertion`] then checks it with; never trust it otherwise.
///
/// Deliberately lenient (no header checks): a client that sends, say, `alg: none` is
/// still found, so that [`verify_assertion`] reports the precise reason to the audit log.
pub fn unverified_client_id(assertion: &str) -> Option<String> {
    if assertion.len() > MAX_JWT_BYTES {
        return None;
    }
    let parts = compact::split(assertion)?;
    let bytes = URL_SAFE_NO_PAD.decode(parts.payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let non_empty = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    non_empty("sub")
        .or_else(|| non_empty("iss"))
        .map(str::to_owned)
}

/// Verifies a client assertion against the client's registered `keys` (RFC 7523 §3).
pub fn verify_assertion(
    assertion: &str,
    keys: &PublicKeySet,
    req: &AssertionRequirements<'_>,
) -> Result<VerifiedAssertion, AssertionError> {
    let expect = Expectations {
        // Client assertions have no registered `typ` (RFC 7523 predates RFC 8725 §3.11);
        // other JWT kinds are kept out by `aud`, `iss` and the client's own keys.
        typ: None,
        issuer: Some(req.client_id),
        audiences: req.audiences,
        require_exp: true,
        // `iat` bounds the replay window (see the module documentation), so it is required.
        require_iat: true,
        require_jti: true,
        max_age: Some(req.max_age_secs),
        skew: req.skew_secs,
    };
    let claims = profile::decode(assertion, &expect)?
        .verify(keys, &expect, req.now)?
        .0;
    if claims.get("sub").and_then(Value::as_str) != Some(req.client_id) {
        return Err(AssertionError::SubMismatch);
    }
    // One audience, not a list that merely includes this server (audience injection: an
    // assertion meant for several parties is replayable at each). A one-element list is
    // the same single value in array form (RFC 7519 §4.1.3).
    if claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|list| list.len() != 1)
    {
        return Err(AssertionError::AudienceNotSingle);
    }
    // The profile has checked that `exp` and `iat` are present and numeric; read them the
    // same way.
    let number = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    let exp = number("exp").ok_or(AssertionError::Jwt(Reason::ExpMissing))?;
    let iat = number("iat").ok_or(AssertionError::Jwt(Reason::IatMissing))?;
    // An assertion meant to live for days is a reusable credential, not a one-time proof.
    if exp.saturating_sub(req.now) > req.max_lifetime_secs.saturating_add(req.skew_secs) {
        return Err(AssertionError::LifetimeTooLong);
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .ok_or(AssertionError::Jwt(Reason::JtiMissing))?
        .to_owned();
    let remember_until = exp.saturating_add(req.skew_secs).min(
        iat.saturating_add(req.max_age_secs)
            .saturating_add(req.skew_secs)
            .saturating_add(1),
    );
    Ok(VerifiedAssertion {
        jti,
        exp,
        remember_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::profile::tests::sign;
    use josekit::jwk::KeyPair as _;
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use serde_json::{Map, json};

    const NOW: i64 = 50_000;
    const CLIENT: &str = "client-123";
    const ISSUER: &str = "https://as.example.com";
    const TOKEN_ENDPOINT: &str = "https://as.example.com/token";
    const AUDIENCES: &[&str] = &[ISSUER, TOKEN_ENDPOINT];

    fn setup() -> (EcKeyPair, PublicKeySet, Map<String, Value>) {
        let kp = EcKeyPair::generate(EcCurve::P256).unwrap();
        let mut jwk: Map<String, Value> = kp.to_jwk_public_key().as_ref().clone();
        jwk.insert("kid".into(), json!("client-key-1"));
        let set = PublicKeySet::from_jwks(&json!({ "keys": [jwk] })).unwrap();
        (kp, set, jwk)
    }

    fn header() -> Value {
        json!({"alg": "ES256", "kid": "client-key-1"})
    }

    fn claims() -> Value {
        json!({
            "iss": CLIENT,
            "sub": CLIENT,
            "aud": TOKEN_ENDPOINT,
            "exp": NOW + 60,
            "iat": NOW,
            "jti": "assertion-1",
        })
    }

    fn req() -> AssertionRequirements<'static> {
        AssertionRequirements {
            client_id: CLIENT,
            audiences: AUDIENCES,
            now: NOW,
            skew_secs: 5,
            max_lifetime_secs: 3600,
            max_age_secs: 300,
        }
    }

    fn verify_signed(header: Value, claims: Value) -> Result<VerifiedAssertion, AssertionError> {
        let (kp, keys, _) = setup();
        verify_assertion(&sign(&kp, header, claims), &keys, &req())
    }

    fn err_with_claims(claims: Value) -> AssertionError {
        verify_signed(header(), claims).unwrap_err()
    }

    fn unsigned(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}.AAAA",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn a_good_assertion_yields_its_jti_and_exp() {
        let verified = verify_signed(header(), claims()).unwrap();
        assert_eq!(
            verified,
            VerifiedAssertion {
                jti: "assertion-1".into(),
                exp: NOW + 60,
                // Expiry comes before the end of the iat window: exp + skew.
                remember_until: NOW + 65,
            }
        );
    }

    #[test]
    fn an_hour_long_assertion_is_accepted_and_remembered_only_for_the_iat_window() {
        // Authlib's default: exp = iat + 3600.
        let mut c = claims();
        c["exp"] = json!(NOW + 3600);
        let verified = verify_signed(header(), c).unwrap();
        assert_eq!(verified.exp, NOW + 3600);
        assert_eq!(verified.remember_until, NOW + 300 + 5 + 1);
        // The same assertion is refused as too old from that instant on, so forgetting its
        // jti then cannot let a replay through.
        let (kp, keys, _) = setup();
        let mut c = claims();
        c["exp"] = json!(NOW + 3600);
        let t = sign(&kp, header(), c);
        let at = |now| verify_assertion(&t, &keys, &AssertionRequirements { now, ..req() });
        assert!(at(verified.remember_until - 1).is_ok());
        assert_eq!(
            at(verified.remember_until).unwrap_err(),
            AssertionError::Jwt(Reason::IatTooOld)
        );
    }

    #[test]
    fn an_audience_list_that_merely_includes_this_server_is_refused() {
        for aud in [
            json!([ISSUER, "https://other.example"]),
            json!([TOKEN_ENDPOINT, ISSUER]),
        ] {
            let mut c = claims();
            c["aud"] = aud.clone();
            let err = verify_signed(header(), c).unwrap_err();
            assert_eq!(err, AssertionError::AudienceNotSingle, "{aud}");
            assert_eq!(err.reason(), "aud_not_single");
        }
    }

    #[test]
    fn the_issuer_is_an_accepted_audience_too() {
        let mut c = claims();
        c["aud"] = json!([ISSUER]);
        assert!(verify_signed(header(), c).is_ok());
    }

    #[test]
    fn an_assertion_without_iat_is_refused() {
        // Without iat the replay window would be as long as exp allows.
        let mut c = claims();
        c.as_object_mut().unwrap().remove("iat");
        let err = err_with_claims(c);
        assert_eq!(err, AssertionError::Jwt(Reason::IatMissing));
        assert_eq!(err.reason(), "iat_missing");
    }

    #[test]
    fn alg_none_is_refused() {
        let (_, keys, _) = setup();
        let t = unsigned(&json!({"alg": "none"}), &claims());
        assert_eq!(
            verify_assertion(&t, &keys, &req()).unwrap_err(),
            AssertionError::Jwt(Reason::AlgNotAllowed)
        );
    }

    #[test]
    fn hs256_is_refused_before_any_key_is_used() {
        // The classic confusion attack: an HMAC keyed with the client's public key. The
        // allow-list refuses it on `alg` alone, whatever the signature.
        let (_, keys, jwk) = setup();
        let mac_key = Value::Object(jwk).to_string();
        let t = format!(
            "{}.{}",
            unsigned(&json!({"alg": "HS256", "kid": "client-key-1"}), &claims())
                .rsplit_once('.')
                .unwrap()
                .0,
            URL_SAFE_NO_PAD.encode(crate::crypto::sha256(mac_key.as_bytes()))
        );
        let err = verify_assertion(&t, &keys, &req()).unwrap_err();
        assert_eq!(err, AssertionError::Jwt(Reason::AlgNotAllowed));
        assert_eq!(err.reason(), "alg_not_allowed");
    }

    #[test]
    fn an_unknown_kid_is_refused() {
        let err = verify_signed(json!({"alg": "ES256", "kid": "other"}), claims()).unwrap_err();
        assert_eq!(err, AssertionError::Jwt(Reason::KidUnknown));
        assert_eq!(err.reason(), "kid_unknown");
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let (_, keys, _) = setup();
        let other = EcKeyPair::generate(EcCurve::P256).unwrap();
        let t = sign(&other, header(), claims());
        assert_eq!(
            verify_assertion(&t, &keys, &req()).unwrap_err().reason(),
            "signature_invalid"
        );
    }

    #[test]
    fn key_carrying_headers_are_refused() {
        let (_, _, jwk) = setup();
        for (member, value) in [
            ("jku", json!("https://attacker.example/jwks")),
            ("x5u", json!("https://attacker.example/cert.pem")),
            ("x5c", json!(["MIIB"])),
            ("jwk", Value::Object(jwk)),
        ] {
            let mut h = header();
            h[member] = value;
            let err = verify_signed(h, claims()).unwrap_err();
            assert_eq!(
                err,
                AssertionError::Jwt(Reason::HeaderKeyNotAllowed),
                "{member}"
            );
            assert_eq!(err.reason(), "header_key_not_allowed");
        }
    }

    #[test]
    fn an_expired_assertion_is_refused() {
        let mut c = claims();
        c["exp"] = json!(NOW - 10);
        let err = err_with_claims(c);
        assert_eq!(err, AssertionError::Jwt(Reason::TokenExpired));
        assert_eq!(err.reason(), "token_expired");
    }

    #[test]
    fn an_assertion_without_exp_is_refused() {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(err_with_claims(c), AssertionError::Jwt(Reason::ExpMissing));
    }

    #[test]
    fn an_assertion_not_yet_valid_is_refused() {
        let mut c = claims();
        c["nbf"] = json!(NOW + 30);
        let err = err_with_claims(c);
        assert_eq!(err, AssertionError::Jwt(Reason::TokenNotYetValid));
        assert_eq!(err.reason(), "token_not_yet_valid");
    }

    #[test]
    fn an_assertion_issued_too_long_ago_is_refused() {
        let mut c = claims();
        c["iat"] = json!(NOW - 306);
        let err = err_with_claims(c);
        assert_eq!(err, AssertionError::Jwt(Reason::IatTooOld));
        assert_eq!(err.reason(), "iat_too_old");
    }

    #[test]
    fn a_wrong_issuer_is_refused() {
        let mut c = claims();
        c["iss"] = json!("client-999");
        let err = err_with_claims(c);
        assert_eq!(err, AssertionError::Jwt(Reason::IssMismatch));
        assert_eq!(err.reason(), "iss_mismatch");
    }

    #[test]
    fn a_wrong_audience_is_refused() {
        for aud in [
            json!("https://other.example.com/token"),
            json!([]),
            json!(null),
        ] {
            let mut c = claims();
            c["aud"] = aud.clone();
            let err = err_with_claims(c);
            assert_eq!(err, AssertionError::Jwt(Reason::AudMismatch), "{aud}");
            assert_eq!(err.reason(), "aud_mismatch");
        }
    }

    #[test]
    fn a_missing_jti_is_refused() {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("jti");
        let err = err_with_claims(c);
        assert_eq!(err, AssertionError::Jwt(Reason::JtiMissing));
        assert_eq!(err.reason(), "jti_missing");
    }

    #[test]
    fn a_sub_other_than_the_client_is_refused() {
        for sub in [json!("someone-else"), json!(null)] {
            let mut c = claims();
            c["sub"] = sub.clone();
            let err = err_with_claims(c);
            assert_eq!(err, AssertionError::SubMismatch, "{sub}");
            assert_eq!(err.reason(), "assertion_sub_mismatch");
        }
    }

    #[test]
    fn an_assertion_expiring_too_far_ahead_is_refused() {
        let mut c = claims();
        c["exp"] = json!(NOW + 3606);
        let err = err_with_claims(c);
        assert_eq!(err, AssertionError::LifetimeTooLong);
        assert_eq!(err.reason(), "assertion_lifetime_too_long");
        // Exactly at the limit (lifetime plus skew) is still fine.
        let mut c = claims();
        c["exp"] = json!(NOW + 3605);
        assert!(verify_signed(header(), c).is_ok());
    }

    #[test]
    fn descriptions_are_caller_safe_text() {
        assert_eq!(
            AssertionError::SubMismatch.to_string(),
            AssertionError::SubMismatch.description()
        );
        assert_eq!(
            AssertionError::Jwt(Reason::KidUnknown).description(),
            Reason::KidUnknown.description()
        );
        assert!(!AssertionError::LifetimeTooLong.description().is_empty());
    }

    #[test]
    fn unverified_client_id_prefers_sub_then_iss() {
        let h = json!({"alg": "none"});
        assert_eq!(
            unverified_client_id(&unsigned(&h, &claims())).as_deref(),
            Some(CLIENT)
        );
        let mut c = claims();
        c.as_object_mut().unwrap().remove("sub");
        c["iss"] = json!("from-iss");
        assert_eq!(
            unverified_client_id(&unsigned(&h, &c)).as_deref(),
            Some("from-iss")
        );
        c["sub"] = json!("");
        assert_eq!(
            unverified_client_id(&unsigned(&h, &c)).as_deref(),
            Some("from-iss")
        );
    }

    #[test]
    fn unverified_client_id_is_none_for_garbage() {
        for t in [
            "",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            "e30.W10.AAAA",
            "e30.e30.AAAA",
        ] {
            assert_eq!(unverified_client_id(t), None, "{t}");
        }
        let big = unsigned(
            &json!({"alg": "ES256"}),
            &json!({"sub": CLIENT, "pad": "x".repeat(MAX_JWT_BYTES)}),
        );
        assert_eq!(unverified_client_id(&big), None);
    }
}
