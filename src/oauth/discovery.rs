//! Authorization server metadata (RFC 8414 §2), computed once at start and again when the
//! skills' scopes change (`service::discovery`).
//!
//! Only what this server implements is listed: each endpoint, grant type or method joins
//! the document in the change that implements and tests it.

use serde_json::{Value, json};

use crate::endpoints::{self, AUTHORIZE, INTROSPECTION, JWKS, REGISTRATION, REVOCATION, TOKEN};
use crate::jose::jwks::VERIFY_ALGORITHMS;

/// Client authentication methods the token, introspection and revocation endpoints accept.
const AUTH_METHODS: &[&str] = &[
    "private_key_jwt",
    "client_secret_basic",
    "client_secret_post",
];

/// At the token endpoint, public clients (`none`, RFC 7591 §2) too: they use the code flow
/// with PKCE, and their refresh tokens are DPoP-bound when they use DPoP.
const TOKEN_AUTH_METHODS: &[&str] = &[
    "private_key_jwt",
    "client_secret_basic",
    "client_secret_post",
    "none",
];

/// Inputs of the metadata document.
#[derive(Debug, Clone)]
pub struct MetadataInput<'a> {
    /// Issuer identifier without trailing slash.
    pub issuer: &'a str,
    /// Signing algorithm of Patron's own tokens.
    pub signing_alg: &'a str,
    /// Allowed clock skew in seconds.
    pub clock_skew_secs: i64,
    /// Largest accepted JWT age in seconds.
    pub max_token_age_secs: i64,
    /// Whether `client_id`s may be metadata document URLs.
    pub client_id_documents: bool,
    /// Every scope some skill defines, sorted, each once.
    pub scopes: &'a [String],
}

/// The metadata document.
pub fn metadata(input: &MetadataInput<'_>) -> Value {
    let iss = input.issuer;
    json!({
        "issuer": iss,
        "jwks_uri": endpoints::url(iss, JWKS),
        "authorization_endpoint": endpoints::url(iss, AUTHORIZE),
        "registration_endpoint": endpoints::url(iss, REGISTRATION),
        "token_endpoint": endpoints::url(iss, TOKEN),
        "introspection_endpoint": endpoints::url(iss, INTROSPECTION),
        "revocation_endpoint": endpoints::url(iss, REVOCATION),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": input.client_id_documents,
        "scopes_supported": input.scopes,
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ],
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": VERIFY_ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "dpop_signing_alg_values_supported": VERIFY_ALGORITHMS,
        "service_documentation": format!("{iss}/"),
        // Patron's validation profile (not an RFC 8414 member): how Patron checks every JWT
        // it accepts, published so that skills can check Patron's tokens the same way.
        "patron_validation_profile": {
            "signing_alg": input.signing_alg,
            "accepted_algorithms": VERIFY_ALGORITHMS,
            "rejected_algorithms": ["none", "HS256", "HS384", "HS512"],
            "clock_skew_seconds": input.clock_skew_secs,
            "max_token_age_seconds": input.max_token_age_secs,
            "required_claims": ["iss", "aud", "exp", "iat", "jti"],
            "key_sources": "jwks_uri only; jku, x5u, x5c and jwk headers are rejected",
            "crit": "rejected",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_hang_off_the_issuer() {
        let m = metadata(&MetadataInput {
            issuer: "https://as.example",
            signing_alg: "ES256",
            clock_skew_secs: 60,
            max_token_age_secs: 3600,
            client_id_documents: false,
            scopes: &["files:read".into(), "mail:send".into()],
        });
        assert_eq!(m["issuer"], "https://as.example");
        assert_eq!(m["jwks_uri"], "https://as.example/jwks.json");
        assert_eq!(m["registration_endpoint"], "https://as.example/register");
        assert_eq!(m["patron_validation_profile"]["clock_skew_seconds"], 60);
        assert_eq!(m["token_endpoint"], "https://as.example/token");
        assert_eq!(m["introspection_endpoint"], "https://as.example/introspect");
        assert_eq!(m["revocation_endpoint"], "https://as.example/revoke");
        assert_eq!(m["authorization_endpoint"], "https://as.example/authorize");
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["scopes_supported"], json!(["files:read", "mail:send"]));
        assert_eq!(
            m["client_id_metadata_document_supported"], false,
            "off when disabled"
        );
    }
}
