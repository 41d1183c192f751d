//! Patron's access tokens: JWTs in the RFC 9068 profile, signed with the server's current
//! key and verified against its published keys.
//!
//! Besides the RFC 9068 §2.2 claims, a token carries the agent's `owner`, the DPoP key
//! binding (`cnf.jkt`, RFC 9449 §6.1), the RFC 8693 §4.1 actor chain (`act`) for tokens
//! obtained by token exchange, and `patron_chain`, the `jti`s of the tokens it was
//! exchanged from, so that revoking any ancestor revokes it too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::UnixTime;
use crate::crypto::random_id;
use crate::jose::jwks::PublicKeySet;
use crate::jose::keys::Signer;
use crate::jose::profile::{self, Expectations, Reason};

/// The media type of access tokens (RFC 9068 §2.1), which keeps other JWTs, such as ID
/// tokens or client assertions, from being accepted as access tokens (RFC 8725 §3.11).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Key confirmation of a sender-constrained token (RFC 7800 §3.1, RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 SHA-256 thumbprint of the DPoP key the token is bound to.
    pub jkt: String,
}

/// The claims of a Patron access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer identifier (RFC 9068 §2.2, RFC 7519 §4.1.1).
    pub iss: String,
    /// The subject: the agent or user the token acts for (RFC 9068 §2.2).
    pub sub: String,
    /// The resource the token is for (RFC 9068 §2.2, RFC 8707); callers check it.
    pub aud: String,
    /// The client the token was issued to (RFC 9068 §2.2, RFC 8693 §4.3).
    pub client_id: String,
    /// Space-separated granted scopes (RFC 9068 §2.2.3).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    /// Issue time (RFC 7519 §4.1.6).
    pub iat: UnixTime,
    /// Expiry (RFC 7519 §4.1.4).
    pub exp: UnixTime,
    /// Token identifier, for revocation and introspection (RFC 7519 §4.1.7).
    pub jti: String,
    /// The owner the agent is linked to (Patron-specific).
    pub owner: String,
    /// DPoP key binding, when the token is sender-constrained (RFC 9449 §6.1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<Confirmation>,
    /// The current actor, nested for delegation chains (RFC 8693 §4.1).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub act: Option<Value>,
    /// `jti`s of the tokens this one was exchanged from, root first, so that revoking any
    /// ancestor revokes it too (Patron-specific).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub patron_chain: Vec<String>,
}

impl AccessTokenClaims {
    /// The agent the token belongs to: `client_id` for a token a person approved (RFC 9068:
    /// `sub` is the person, who is also the `owner`), else `sub` (an agent token, or a
    /// delegated one whose `client_id` is the delegate).
    pub fn agent(&self) -> &str {
        if self.sub == self.owner {
            &self.client_id
        } else {
            &self.sub
        }
    }

    /// Whether a person approved this token (the authorization code flow): `sub` is them.
    pub fn for_person(&self) -> bool {
        self.sub == self.owner
    }
}

/// Why an access token could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum AccessTokenError {
    /// The header or claims could not be serialised.
    #[error("cannot serialise the access token: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The signing key failed.
    #[error("cannot sign the access token: {0}")]
    Sign(#[source] josekit::JoseError),
}

/// The JWS header of an access token (RFC 9068 §2.1, RFC 7515 §4.1).
#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'static str,
}

/// Appends the base64url (unpadded) encoding of `data` to `out`: the JWS is assembled in
/// one buffer instead of one string per part.
fn push_b64url(out: &mut String, data: &[u8]) {
    URL_SAFE_NO_PAD.encode_string(data, out);
}

/// Base64url length of `n` bytes without padding.
fn b64url_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// Signs `claims` as a compact JWS with the server's current key (RFC 9068 §2, RFC 7515
/// §7.1).
pub fn sign(signer: &Signer, claims: &AccessTokenClaims) -> Result<String, AccessTokenError> {
    let header = serde_json::to_vec(&Header {
        alg: signer.alg,
        kid: &signer.kid,
        typ: ACCESS_TOKEN_TYP,
    })?;
    let payload = serde_json::to_vec(claims)?;
    // Room for the signature too: 512 bytes covers RSA-4096, the largest Patron signs with
    // being RSA-2048 (256 bytes).
    let mut token =
        String::with_capacity(b64url_len(header.len()) + b64url_len(payload.len()) + 2 + 512);
    push_b64url(&mut token, &header);
    token.push('.');
    push_b64url(&mut token, &payload);
    let signature = signer
        .signer
        .sign(token.as_bytes())
        .map_err(AccessTokenError::Sign)?;
    token.push('.');
    push_b64url(&mut token, &signature);
    Ok(token)
}

/// Verifies an access token issued by `issuer` against the server's published `keys` and
/// returns its claims. Applies the shared profile with `typ` `at+jwt` and required `exp`,
/// `iat` and `jti` (RFC 9068 §4). The audience is not checked here: callers compare `aud`
/// with the resource they serve.
pub fn verify(
    token: &str,
    keys: &PublicKeySet,
    issuer: &str,
    now: UnixTime,
    skew_secs: i64,
) -> Result<AccessTokenClaims, Reason> {
    verify_keyed(token, keys, issuer, now, skew_secs, None).map(|(claims, _)| claims)
}

/// The key a token was verified with: its `kid` and `alg`, so that a cached verification
/// can be dropped once that key leaves the published set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWith {
    /// The header's `kid`.
    pub kid: Option<String>,
    /// The header's `alg`.
    pub alg: String,
}

/// [`verify`], also returning the key the token was verified with, and refusing a token
/// whose `iat` is more than `max_age_secs` (plus the skew) ago when given (the validation
/// profile's maximum token age).
pub fn verify_keyed(
    token: &str,
    keys: &PublicKeySet,
    issuer: &str,
    now: UnixTime,
    skew_secs: i64,
    max_age_secs: Option<i64>,
) -> Result<(AccessTokenClaims, VerifiedWith), Reason> {
    let expect = Expectations {
        typ: Some(ACCESS_TOKEN_TYP),
        issuer: Some(issuer),
        audiences: &[],
        require_exp: true,
        require_iat: true,
        require_jti: true,
        max_age: max_age_secs,
        skew: skew_secs,
    };
    let unverified = profile::decode(token, &expect)?;
    let with = VerifiedWith {
        kid: unverified.unverified_kid().map(str::to_owned),
        alg: unverified.unverified_alg().unwrap_or_default().to_owned(),
    };
    let claims = unverified.verify(keys, &expect, now)?.0;
    // A validly signed token of ours that does not fit the claim set can only come from
    // an incompatible version; treat it as malformed rather than trust part of it.
    let claims = serde_json::from_value(Value::Object(claims)).map_err(|_| Reason::Malformed)?;
    Ok((claims, with))
}

/// Whether verified claims are still within their lifetime at `now`: the one check of
/// [`verify`] whose answer changes as time passes (RFC 7519 §4.1.4, with the same skew).
pub fn still_unexpired(claims: &AccessTokenClaims, now: UnixTime, skew_secs: i64) -> bool {
    now < claims.exp.saturating_add(skew_secs)
}

/// Whether verified claims are still young enough at `now`: `now - iat` at most
/// `max_age_secs` plus the skew, as the profile's `iat` check requires.
pub fn still_young(
    claims: &AccessTokenClaims,
    now: UnixTime,
    skew_secs: i64,
    max_age_secs: i64,
) -> bool {
    now.saturating_sub(claims.iat) <= max_age_secs.saturating_add(skew_secs)
}

/// A fresh token identifier: 128 random bits, base64url (RFC 7519 §4.1.7 asks for a
/// negligible collision probability).
pub fn new_jti() -> String {
    random_id("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_of_a_token_is_its_client_when_a_person_approved_it() {
        let mut c = AccessTokenClaims {
            iss: "https://as".into(),
            sub: "agt_1".into(),
            aud: "https://skill/".into(),
            client_id: "agt_1".into(),
            scope: None,
            iat: 0,
            exp: 1,
            jti: "j".into(),
            owner: "dev:alice".into(),
            cnf: None,
            act: None,
            patron_chain: Vec::new(),
        };
        assert_eq!(c.agent(), "agt_1");
        assert!(!c.for_person());
        c.client_id = "agt_delegate".into();
        assert_eq!(c.agent(), "agt_1", "a delegated token's agent stays in sub");
        c.sub = "dev:alice".into();
        c.client_id = "agt_2".into();
        assert_eq!(
            c.agent(),
            "agt_2",
            "RFC 9068: sub is the person, client_id the agent"
        );
        assert!(c.for_person());
    }
    use crate::jose::keys::{KeyEncryptionKey, SigningAlgorithm, generate, signer};
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;
    const ISSUER: &str = "https://as.example.com";

    fn key(alg: SigningAlgorithm) -> (Signer, PublicKeySet) {
        let kek = KeyEncryptionKey::from_bytes([7; 32]);
        let stored = generate(alg, 1, NOW, NOW, &kek).unwrap();
        let jwk: Value = serde_json::from_str(&stored.public_jwk).unwrap();
        let set = PublicKeySet::from_jwks(&json!({ "keys": [jwk] })).unwrap();
        (signer(&stored, &kek).unwrap(), set)
    }

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: ISSUER.into(),
            sub: "agent-1".into(),
            aud: "https://api.example.com".into(),
            client_id: "client-1".into(),
            scope: Some("read write".into()),
            iat: NOW,
            exp: NOW + 300,
            jti: new_jti(),
            owner: "owner-1".into(),
            cnf: Some(Confirmation {
                jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
            }),
            act: Some(json!({"sub": "agent-0", "act": {"sub": "agent-root"}})),
            patron_chain: vec!["root-jti".into(), "parent-jti".into()],
        }
    }

    /// Signs an arbitrary header and payload with the server key (test helper).
    fn sign_raw(signer: &Signer, header: &Value, payload: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let sig = signer.signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn tokens_round_trip_for_every_signing_algorithm() {
        for alg in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Rs256,
        ] {
            let (s, keys) = key(alg);
            let c = claims();
            let token = sign(&s, &c).unwrap();
            assert_eq!(verify(&token, &keys, ISSUER, NOW, 0).unwrap(), c, "{alg:?}");
        }
    }

    #[test]
    fn the_header_names_the_key_algorithm_and_type() {
        let (s, _) = key(SigningAlgorithm::Es256);
        let token = sign(&s, &claims()).unwrap();
        let header = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"alg": "ES256", "kid": s.kid, "typ": "at+jwt"})
        );
    }

    #[test]
    fn optional_claims_are_omitted_when_empty_and_still_round_trip() {
        let (s, keys) = key(SigningAlgorithm::Es256);
        let c = AccessTokenClaims {
            scope: None,
            cnf: None,
            act: None,
            patron_chain: Vec::new(),
            ..claims()
        };
        let token = sign(&s, &c).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        for absent in ["scope", "cnf", "act", "patron_chain"] {
            assert!(payload.get(absent).is_none(), "{absent}");
        }
        assert_eq!(verify(&token, &keys, ISSUER, NOW, 0).unwrap(), c);
    }

    #[test]
    fn a_wrong_issuer_is_refused() {
        let (s, keys) = key(SigningAlgorithm::Es256);
        let token = sign(&s, &claims()).unwrap();
        assert_eq!(
            verify(&token, &keys, "https://other.example.com", NOW, 0).unwrap_err(),
            Reason::IssMismatch
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let (s, keys) = key(SigningAlgorithm::Es256);
        let token = sign(&s, &claims()).unwrap();
        assert!(verify(&token, &keys, ISSUER, NOW + 304, 5).is_ok());
        assert_eq!(
            verify(&token, &keys, ISSUER, NOW + 305, 5).unwrap_err(),
            Reason::TokenExpired
        );
    }

    #[test]
    fn a_token_typed_jwt_is_refused() {
        let (s, keys) = key(SigningAlgorithm::Es256);
        let payload = serde_json::to_value(claims()).unwrap();
        for typ in [json!("JWT"), json!(null)] {
            let header = json!({"alg": "ES256", "kid": s.kid, "typ": typ});
            let token = sign_raw(&s, &header, &payload);
            assert_eq!(
                verify(&token, &keys, ISSUER, NOW, 0).unwrap_err(),
                Reason::TypMismatch,
                "{typ}"
            );
        }
        // The same key and payload with the right type pass, so `typ` alone decided.
        let header = json!({"alg": "ES256", "kid": s.kid, "typ": "at+jwt"});
        assert!(verify(&sign_raw(&s, &header, &payload), &keys, ISSUER, NOW, 0).is_ok());
    }

    #[test]
    fn a_token_signed_by_a_key_outside_the_set_is_refused() {
        let (s, _) = key(SigningAlgorithm::Es256);
        let (_, other_keys) = key(SigningAlgorithm::Es256);
        let token = sign(&s, &claims()).unwrap();
        assert_eq!(
            verify(&token, &other_keys, ISSUER, NOW, 0).unwrap_err(),
            Reason::KidUnknown
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let (s, keys) = key(SigningAlgorithm::Es256);
        let token = sign(&s, &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = AccessTokenClaims {
            scope: Some("admin".into()),
            ..claims()
        };
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&tampered, &keys, ISSUER, NOW, 0).unwrap_err(),
            Reason::SignatureInvalid
        );
    }

    #[test]
    fn a_signed_token_missing_patron_claims_is_malformed() {
        let (s, keys) = key(SigningAlgorithm::Es256);
        let mut payload = serde_json::to_value(claims()).unwrap();
        payload.as_object_mut().unwrap().remove("owner");
        let header = json!({"alg": "ES256", "kid": s.kid, "typ": "at+jwt"});
        assert_eq!(
            verify(&sign_raw(&s, &header, &payload), &keys, ISSUER, NOW, 0).unwrap_err(),
            Reason::Malformed
        );
    }

    #[test]
    fn tokens_without_iat_or_jti_are_refused() {
        let (s, keys) = key(SigningAlgorithm::Es256);
        let header = json!({"alg": "ES256", "kid": s.kid, "typ": "at+jwt"});
        for (claim, reason) in [("iat", Reason::IatMissing), ("jti", Reason::JtiMissing)] {
            let mut payload = serde_json::to_value(claims()).unwrap();
            payload.as_object_mut().unwrap().remove(claim);
            assert_eq!(
                verify(&sign_raw(&s, &header, &payload), &keys, ISSUER, NOW, 0).unwrap_err(),
                reason,
                "{claim}"
            );
        }
    }

    #[test]
    fn new_jti_is_128_random_bits_in_base64url() {
        let a = new_jti();
        assert_eq!(a.len(), 22);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 16);
        assert_ne!(a, new_jti());
    }

    #[test]
    fn the_base64url_length_estimate_is_exact() {
        for n in 0..10 {
            assert_eq!(
                b64url_len(n),
                URL_SAFE_NO_PAD.encode(vec![0u8; n]).len(),
                "{n}"
            );
        }
    }
}
