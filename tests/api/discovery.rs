use serde_json::Value;

use crate::helpers::{TestServer, assert_oauth_error};

#[test]
fn both_discovery_paths_serve_the_same_metadata() {
    let s = TestServer::spawn();
    let a: Value = s.metadata();
    let b: Value = s
        .http
        .get(s.url("/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a["issuer"], s.base.as_str());
    assert_eq!(a["registration_endpoint"], s.url("/register"));
    assert_eq!(a["jwks_uri"], s.url("/jwks.json"));
}

#[test]
fn metadata_lists_the_implemented_endpoints_the_validation_profile_and_nothing_more() {
    let s = TestServer::spawn();
    let m: Value = s.metadata();
    let profile = &m["patron_validation_profile"];
    assert_eq!(profile["clock_skew_seconds"], 60);
    assert_eq!(profile["signing_alg"], "ES256");
    let algs: Vec<&str> = profile["accepted_algorithms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(algs.contains(&"ES256") && !algs.contains(&"none") && !algs.contains(&"HS256"));
    assert_eq!(m["token_endpoint"], s.url("/token"));
    assert_eq!(m["introspection_endpoint"], s.url("/introspect"));
    assert_eq!(m["revocation_endpoint"], s.url("/revoke"));
    let grants = m["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&serde_json::json!(
        "urn:ietf:params:oauth:grant-type:token-exchange"
    )));
    let methods = m["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&serde_json::json!("private_key_jwt")));
    assert!(
        methods.contains(&serde_json::json!("none")),
        "public clients use the code flow"
    );
    assert_eq!(m["authorization_endpoint"], s.url("/authorize"));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    for absent in [
        "device_authorization_endpoint",
        "userinfo_endpoint",
        "end_session_endpoint",
    ] {
        assert!(
            m.get(absent).is_none(),
            "{absent} is advertised but not implemented"
        );
    }
    let response_modes = m["response_modes_supported"].as_array().unwrap();
    assert_eq!(response_modes, &vec![serde_json::json!("query")]);
}

#[test]
fn scopes_supported_lists_the_skills_scopes_and_follows_changes() {
    let s = TestServer::with_admin();
    assert_eq!(s.metadata()["scopes_supported"], serde_json::json!([]));
    s.add_skill(
        "https://files.example",
        "files:read files:write",
        120,
        false,
        None,
    );
    s.add_skill("https://mail.example", "mail:send", 120, false, None);
    // At once on the replica that made the change.
    assert_eq!(
        s.metadata()["scopes_supported"],
        serde_json::json!(["files:read", "files:write", "mail:send"])
    );
    // A skill replaced with other scopes: the old ones go.
    s.add_skill("https://mail.example", "mail:read", 120, false, None);
    let m = s.metadata();
    assert_eq!(
        m["scopes_supported"],
        serde_json::json!(["files:read", "files:write", "mail:read"])
    );
    // Both discovery paths serve the refreshed document.
    let oidc: Value = s
        .http
        .get(s.url("/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(oidc, m);
}

#[test]
fn jwks_lists_the_signing_key_without_private_material() {
    let s = TestServer::spawn();
    let r = s.http.get(s.url("/jwks.json")).send().unwrap();
    assert_eq!(r.headers()["content-type"], "application/jwk-set+json");
    let jwks: Value = r.json().unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["crv"], "P-256");
    assert_eq!(k["alg"], "ES256");
    assert_eq!(k["use"], "sig");
    assert!(
        k["kid"].as_str().is_some_and(|kid| kid.len() == 43),
        "kid is the RFC 7638 thumbprint"
    );
    assert!(k.get("d").is_none());
}

#[test]
fn eddsa_and_rs256_keys_are_selectable() {
    for (alg, kty) in [("EdDSA", "OKP"), ("RS256", "RSA")] {
        let s = TestServer::builder()
            .env("PATRON_KEYS__ALGORITHM", alg)
            .start();
        let jwks: Value = s
            .http
            .get(s.url("/jwks.json"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(jwks["keys"][0]["alg"], alg);
        assert_eq!(jwks["keys"][0]["kty"], kty);
        assert!(jwks["keys"][0].get("d").is_none() && jwks["keys"][0].get("p").is_none());
    }
}

#[test]
fn unknown_paths_and_methods_get_json_errors() {
    let s = TestServer::spawn();
    assert_oauth_error(
        s.http.get(s.url("/nope")).send().unwrap(),
        404,
        "invalid_request",
    );
    assert_oauth_error(
        s.http.get(s.url("/register")).send().unwrap(),
        405,
        "invalid_request",
    );
    assert_oauth_error(
        s.http.post(s.url("/register/agt_x")).send().unwrap(),
        405,
        "invalid_request",
    );
}

#[test]
fn the_home_page_renders_with_a_strict_content_security_policy() {
    let s = TestServer::spawn();
    let r = s.http.get(s.url("/")).send().unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().unwrap();
    assert!(html.contains("Patron is running") && html.contains("Development mode"));
    let css = s.http.get(s.url("/static/css/patron.css")).send().unwrap();
    assert_eq!(css.headers()["content-type"], "text/css");
}
