//! The introspection response (RFC 7662 §2.2), serialised straight from the token's claims.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::jose::access_token::AccessTokenClaims;

/// What `POST /introspect` answers: `{"active": false}`, or the token's claims with
/// `active: true` and its `token_type`. Patron's internal `patron_chain` is never shown.
#[derive(Debug, Clone)]
pub struct Introspection(Option<Arc<AccessTokenClaims>>);

impl Introspection {
    /// The answer for a token that is not active, or that the caller may not see.
    pub fn inactive() -> Self {
        Self(None)
    }

    /// The answer for an active token.
    pub fn active(claims: Arc<AccessTokenClaims>) -> Self {
        Self(Some(claims))
    }
}

impl Serialize for Introspection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some(c) = &self.0 else {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("active", &false)?;
            return m.end();
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("active", &true)?;
        m.serialize_entry("iss", &c.iss)?;
        m.serialize_entry("sub", &c.sub)?;
        m.serialize_entry("aud", &c.aud)?;
        m.serialize_entry("client_id", &c.client_id)?;
        if let Some(scope) = &c.scope {
            m.serialize_entry("scope", scope)?;
        }
        m.serialize_entry("iat", &c.iat)?;
        m.serialize_entry("exp", &c.exp)?;
        m.serialize_entry("jti", &c.jti)?;
        m.serialize_entry("owner", &c.owner)?;
        if let Some(cnf) = &c.cnf {
            m.serialize_entry("cnf", cnf)?;
        }
        if let Some(act) = &c.act {
            m.serialize_entry("act", act)?;
        }
        let token_type = if c.cnf.is_some() { "DPoP" } else { "Bearer" };
        m.serialize_entry("token_type", token_type)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::access_token::Confirmation;
    use serde_json::{Value, json};

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "agent-1".into(),
            aud: "https://skill.example".into(),
            client_id: "agent-1".into(),
            scope: Some("read".into()),
            iat: 100,
            exp: 400,
            jti: "j2".into(),
            owner: "github:1".into(),
            cnf: Some(Confirmation {
                jkt: "thumb".into(),
            }),
            act: Some(json!({"sub": "skill-1"})),
            patron_chain: vec!["j1".into()],
        }
    }

    #[test]
    fn an_active_token_shows_its_claims_but_not_its_chain() {
        let v: Value = serde_json::to_value(Introspection::active(Arc::new(claims()))).unwrap();
        assert_eq!(
            v,
            json!({
                "active": true, "iss": "https://as.example", "sub": "agent-1",
                "aud": "https://skill.example", "client_id": "agent-1", "scope": "read",
                "iat": 100, "exp": 400, "jti": "j2", "owner": "github:1",
                "cnf": {"jkt": "thumb"}, "act": {"sub": "skill-1"}, "token_type": "DPoP"
            })
        );
    }

    #[test]
    fn a_bearer_token_without_optional_claims_omits_them() {
        let mut c = claims();
        c.cnf = None;
        c.act = None;
        c.scope = None;
        let v: Value = serde_json::to_value(Introspection::active(Arc::new(c))).unwrap();
        assert_eq!(v["token_type"], "Bearer");
        for absent in ["cnf", "act", "scope", "patron_chain"] {
            assert!(v.get(absent).is_none(), "{absent} shown");
        }
    }

    #[test]
    fn an_inactive_answer_says_only_that() {
        assert_eq!(
            serde_json::to_string(&Introspection::inactive()).unwrap(),
            r#"{"active":false}"#
        );
    }
}
