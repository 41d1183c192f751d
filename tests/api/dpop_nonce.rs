//! Server-issued DPoP nonces (RFC 9449 §8).

use serde_json::json;

use crate::helpers::{ADMIN, Agent, SKILL, TestServer, assert_oauth_error, dpop_proof_with, now};

#[test]
fn with_nonces_required_a_proof_without_the_servers_nonce_gets_use_dpop_nonce() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .env("PATRON_TOKENS__DPOP_REQUIRE_NONCE", "true")
        .start();
    s.add_skill(SKILL, "read", 300, false, None);
    let agent = Agent::approved(&s, json!({ SKILL: "read" }));

    // No nonce: refused with the nonce to use.
    let r = agent.token(&s, &[("grant_type", "client_credentials")]);
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_oauth_error(r, 400, "use_dpop_nonce");
    s.expect_refusal_audited("token.issue", "dpop_nonce_missing");

    // A made-up nonce: refused again.
    let claims = |n: &str| {
        json!({"htm": "POST", "htu": s.url("/token"), "iat": now(),
               "jti": patron::crypto::random_id(""), "nonce": n})
    };
    let proof = dpop_proof_with(&agent.dpop_key, claims("not-the-nonce"));
    let r = agent.send(
        &s,
        "/token",
        &[("grant_type", "client_credentials")],
        Some(&proof),
    );
    assert_oauth_error(r, 400, "use_dpop_nonce");
    s.expect_refusal_audited("token.issue", "dpop_nonce_invalid");

    // The server's nonce: accepted.
    let proof = dpop_proof_with(&agent.dpop_key, claims(&nonce));
    let r = agent.send(
        &s,
        "/token",
        &[("grant_type", "client_credentials")],
        Some(&proof),
    );
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["token_type"], "DPoP");
}
