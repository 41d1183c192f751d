//! Paths of the protocol and API endpoints, in one place: the route tables, the discovery
//! document, response fields (`registration_client_uri`, `verification_uri`) and the checks
//! that compare a URL with the endpoint it was sent to (DPoP `htu`, client assertion `aud`)
//! all take them from here, so that they cannot drift apart.
//!
//! Patterns with `{client_id}` use the route syntax of the HTTP layer; the `*_url` helpers
//! build the absolute URLs that hang off the issuer (which has no trailing slash).

/// Authorization server metadata (RFC 8414 §3).
pub const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";
/// The same metadata at the OpenID Connect discovery path (OpenID Connect Discovery §4).
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
/// The JWKS document with Patron's signing keys.
pub const JWKS: &str = "/jwks.json";
/// Dynamic client registration (RFC 7591 §3).
pub const REGISTRATION: &str = "/register";
/// Client configuration endpoint (RFC 7592 §2), as a route pattern.
pub const CLIENT_CONFIGURATION: &str = "/register/{client_id}";
/// Authorization endpoint (RFC 6749 §3.1): `GET` asks, the consent form `POST`s back.
pub const AUTHORIZE: &str = "/authorize";
/// Token endpoint (RFC 6749 §3.2).
pub const TOKEN: &str = "/token";
/// Introspection endpoint (RFC 7662 §2).
pub const INTROSPECTION: &str = "/introspect";
/// Revocation endpoint (RFC 7009 §2).
pub const REVOCATION: &str = "/revoke";
/// Where an owner claims a pending agent with its user code (the `verification_uri`,
/// RFC 8628 §3.2).
pub const CLAIM: &str = "/claim";
/// Liveness probe.
pub const HEALTHZ: &str = "/healthz";
/// Readiness probe.
pub const READYZ: &str = "/readyz";
/// Prometheus metrics.
pub const METRICS: &str = "/metrics";

/// The admin API: a scope and the routes inside it (relative to [`admin::SCOPE`]).
pub mod admin {
    /// Scope of the admin API.
    pub const SCOPE: &str = "/admin";
    /// Skills: `POST` creates or replaces one, `GET` lists them.
    pub const SKILLS: &str = "/skills";
    /// Sets a skill's grant policy.
    pub const SKILL_POLICY: &str = "/skills/policy";
    /// Checks a skill's audience proof again (`POST {"audience": …}`).
    pub const SKILLS_CHECK: &str = "/skills/check";
    /// Approves a pending agent.
    pub const APPROVE_AGENT: &str = "/agents/{client_id}/approve";
    /// Suspends an agent.
    pub const SUSPEND_AGENT: &str = "/agents/{client_id}/suspend";
    /// Resumes a suspended agent.
    pub const RESUME_AGENT: &str = "/agents/{client_id}/resume";
    /// Revokes every grant and token of an owner.
    pub const REVOKE_OWNER: &str = "/owners/{owner_id}/revoke-all";
    /// Revokes one token by its `jti` (JSON body `{"jti": "…"}`).
    pub const REVOKE_TOKEN: &str = "/tokens/revoke";
}

/// The absolute URL of `path` (one of the constants above without a pattern) at `issuer`.
pub fn url(issuer: &str, path: &str) -> String {
    format!("{issuer}{path}")
}

/// The `registration_client_uri` of `client_id` (RFC 7592 §3).
pub fn client_configuration_url(issuer: &str, client_id: &str) -> String {
    format!("{issuer}{REGISTRATION}/{client_id}")
}

/// The `verification_uri_complete` for a displayed user code (RFC 8628 §3.3.1). User codes
/// are drawn from letters and a dash, so they need no encoding.
pub fn claim_url_with_code(issuer: &str, user_code: &str) -> String {
    format!("{issuer}{CLAIM}?user_code={user_code}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hang_off_the_issuer() {
        let iss = "https://as.example";
        assert_eq!(url(iss, TOKEN), "https://as.example/token");
        assert_eq!(
            client_configuration_url(iss, "agt_1"),
            "https://as.example/register/agt_1"
        );
        assert_eq!(
            claim_url_with_code(iss, "BCDF-GHJK"),
            "https://as.example/claim?user_code=BCDF-GHJK"
        );
    }

    #[test]
    fn the_configuration_pattern_extends_the_registration_path() {
        assert_eq!(
            CLIENT_CONFIGURATION,
            format!("{REGISTRATION}/{{client_id}}")
        );
    }
}
