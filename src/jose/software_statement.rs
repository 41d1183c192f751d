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
    max_lifetime_secs: i64,
}

/// Why a statement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementError {
    /// Malformed, badly signed, expired or otherwise invalid (`invalid_software_statement`).
    Invalid(Reason),
    /// Valid-looking, but from a publisher this server does not trust
    /// (`unapproved_software_statement`).
    Unapproved,
    /// Valid for longer than the accepted lifetime (`exp` too far ahead): a leaked statement
    /// must stop working (`invalid_software_statement`).
    LifetimeTooLong,
}

impl TrustedPublishers {
    /// Builds the set from `(issuer, jwks)` pairs that configuration already validated,
    /// accepting statements that expire at most `max_lifetime_secs` from now.
    pub fn new(publishers: Vec<(String, PublicKeySet)>, max_lifetime_secs: i64) -> Self {
        Self {
            publishers,
            max_lifetime_secs,
        }
    }

    /// Whether any publisher is configured.
    pub fn is_empty(&self) -> bool {
        self.publishers.is_empty()
    }

    /// Verifies `statement` and returns its client-metadata claims. A statement must carry
    /// `exp` no further than the accepted lifetime ahead, and a `typ`, when present, must be
    /// `JWT` (another kind of JWT signed by the publisher is not a statement).
    pub fn verify(
        &self,
        statement: &str,
        skew: i64,
        now: UnixTime,
    ) -> Result<Map<String, Value>, StatementError> {
        let base = Expectations {
            skew,
            require_exp: true,
            ..Default::default()
        };
        let unverified = profile::decode(statement, &base).map_err(StatementError::Invalid)?;
        if let Some(typ) = unverified.unverified_typ() {
            if !(typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("application/jwt")) {
                return Err(StatementError::Invalid(Reason::TypMismatch));
            }
        }
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
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .ok_or(StatementError::Invalid(Reason::ExpMissing))?;
        if exp.saturating_sub(now) > self.max_lifetime_secs.saturating_add(skew) {
            return Err(StatementError::LifetimeTooLong);
        }
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
            TrustedPublishers::new(vec![("https://pub.example".into(), set)], 10_000),
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
    fn a_statement_without_exp_or_valid_too_long_or_of_another_type_is_invalid() {
        let (kp, p) = publishers();
        let statement = |header: Value, claims: Value| p.verify(&sign(&kp, header, claims), 0, 100);
        let iss = "https://pub.example";
        assert_eq!(
            statement(json!({"alg": "ES256"}), json!({"iss": iss})).unwrap_err(),
            StatementError::Invalid(Reason::ExpMissing)
        );
        assert_eq!(
            statement(json!({"alg": "ES256"}), json!({"iss": iss, "exp": 10_101})).unwrap_err(),
            StatementError::LifetimeTooLong
        );
        assert!(statement(json!({"alg": "ES256"}), json!({"iss": iss, "exp": 10_100})).is_ok());
        for typ in ["at+jwt", "dpop+jwt", "JOSE"] {
            assert_eq!(
                statement(
                    json!({"alg": "ES256", "typ": typ}),
                    json!({"iss": iss, "exp": 1000})
                )
                .unwrap_err(),
                StatementError::Invalid(Reason::TypMismatch),
                "{typ}"
            );
        }
        for typ in ["JWT", "jwt", "application/jwt"] {
            assert!(
                statement(
                    json!({"alg": "ES256", "typ": typ}),
                    json!({"iss": iss, "exp": 1000})
                )
                .is_ok(),
                "{typ}"
            );
        }
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
