//! Software statements (RFC 7591 §2.3): signed JWTs from a publisher Patron trusts, whose
//! claims become client metadata and take precedence over the plain request members.

use serde_json::{Map, Value};

use crate::clock::UnixTime;
use crate::jose::jwks::PublicKeySet;
use crate::jose::profile::{self, Expectations, Reason};

/// JWT claims that describe the statement itself, not the client.
const STATEMENT_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Publishers whose statements are trusted, with their keys.
#[derive(Debug, Clone, Default)]
pub struct TrustedPublishers {
    publishers: Vec<(String, PublicKeySet)>,
}

/// Why a statement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementError {
    /// Malformed, badly signed, expired or otherwise invalid (`invalid_software_statement`).
    Invalid(Reason),
    /// Valid-looking, but from a publisher this server does not trust
    /// (`unapproved_software_statement`).
    Unapproved,
}

impl TrustedPublishers {
    /// Builds the set from `(issuer, jwks)` pairs that configuration already validated.
    pub fn new(publishers: Vec<(String, PublicKeySet)>) -> Self {
        Self { publishers }
    }

    /// Whether any publisher is configured.
    pub fn is_empty(&self) -> bool {
        self.publishers.is_empty()
    }

    /// Verifies `statement` and returns its client-metadata claims.
    pub fn verify(
        &self,
        statement: &str,
        skew: i64,
        now: UnixTime,
    ) -> Result<Map<String, Value>, StatementError> {
        let base = Expectations {
            skew,
            ..Default::default()
        };
        let unverified = profile::decode(statement, &base).map_err(StatementError::Invalid)?;
        let claimed_issuer = unverified
            .unverified_claims()
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(StatementError::Invalid(Reason::IssMismatch))?;
        let (issuer, keys) = self
            .publishers
            .iter()
            .find(|(iss, _)| iss == claimed_issuer)
            .ok_or(StatementError::Unapproved)?;
        let expect = Expectations {
            issuer: Some(issuer),
            ..base
        };
        let mut claims = unverified
            .verify(keys, &expect, now)
            .map_err(StatementError::Invalid)?
            .0;
        for c in STATEMENT_CLAIMS {
            claims.remove(*c);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::profile::tests::sign;
    use josekit::jwk::KeyPair as _;
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use serde_json::json;

    fn publishers() -> (EcKeyPair, TrustedPublishers) {
        let kp = EcKeyPair::generate(EcCurve::P256).unwrap();
        let jwk = kp.to_jwk_public_key().as_ref().clone();
        let set = PublicKeySet::from_jwks(&json!({ "keys": [jwk] })).unwrap();
        (
            kp,
            TrustedPublishers::new(vec![("https://pub.example".into(), set)]),
        )
    }

    #[test]
    fn a_trusted_statement_yields_its_metadata_claims() {
        let (kp, p) = publishers();
        let s = sign(
            &kp,
            json!({"alg": "ES256"}),
            json!({"iss": "https://pub.example", "software_id": "tool-1", "iat": 10, "exp": 1000}),
        );
        let claims = p.verify(&s, 0, 100).unwrap();
        assert_eq!(claims["software_id"], "tool-1");
        assert!(claims.get("iss").is_none());
    }

    #[test]
    fn an_unknown_publisher_is_unapproved() {
        let (kp, p) = publishers();
        let s = sign(
            &kp,
            json!({"alg": "ES256"}),
            json!({"iss": "https://other.example"}),
        );
        assert_eq!(
            p.verify(&s, 0, 100).unwrap_err(),
            StatementError::Unapproved
        );
    }

    #[test]
    fn tampered_and_expired_statements_are_invalid() {
        let (kp, p) = publishers();
        let s = sign(
            &kp,
            json!({"alg": "ES256"}),
            json!({"iss": "https://pub.example", "exp": 50}),
        );
        assert_eq!(
            p.verify(&s, 0, 100).unwrap_err(),
            StatementError::Invalid(Reason::TokenExpired)
        );
        let good = sign(
            &kp,
            json!({"alg": "ES256"}),
            json!({"iss": "https://pub.example"}),
        );
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"iss":"https://pub.example","software_id":"evil"}"#,
        );
        parts[1] = &forged;
        assert_eq!(
            p.verify(&parts.join("."), 0, 100).unwrap_err(),
            StatementError::Invalid(Reason::SignatureInvalid)
        );
    }
}
