//! The attack catalogue: each test sends one forged, replayed or out-of-bounds request to
//! the token endpoint and checks the exact OAuth error (never a 5xx) and the reason code
//! the audit log records for it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::helpers::{
    ACCESS_TOKEN_TYPE, Agent, AgentKey, OWNER, SKILL, TOKEN_EXCHANGE, TestServer,
    assert_oauth_error, bare_public_jwk, claims_of, dpop_claims, dpop_proof_with, form, header_of,
    now,
};

const SKILL_B: &str = "https://skill-b.example/api";

/// A server with the admin API, skill [`SKILL`] (`read write`) and an agent granted `read`.
fn setup() -> (TestServer, Agent) {
    let s = TestServer::with_admin();
    s.add_skill(SKILL, "read write", 120, false, None);
    s.add_skill(SKILL_B, "read", 120, false, None);
    let a = Agent::approved(&s, json!({SKILL: "read"}));
    (s, a)
}

/// Asserts the error response and that the refusal was audited with `reason`.
fn refused(s: &TestServer, resp: Response, status: u16, code: &str, reason: &str) -> Value {
    let body = assert_oauth_error(resp, status, code);
    s.expect_refusal_audited("token.issue", reason);
    body
}

/// Asserts that `a` exchanging `subject` for [`SKILL`] is `invalid_grant`, audited with
/// `reason`.
fn exchange_refused(s: &TestServer, a: &Agent, subject: &str, reason: &str) {
    refused(
        s,
        a.exchange(s, subject, SKILL),
        400,
        "invalid_grant",
        reason,
    );
}

/// `POST /token` for an agent token with `assertion` and a valid DPoP proof.
fn with_assertion(s: &TestServer, a: &Agent, assertion: &str) -> Response {
    s.post_form(
        "/token",
        &Agent::form_with_assertion(assertion, &[("grant_type", "client_credentials")]),
        Some(&a.dpop_proof(&s.url("/token"))),
    )
}

/// An assertion of `a` with `claims` changed by `edit`, signed with its key as `k1`.
fn assertion_with(s: &TestServer, a: &Agent, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = a.assertion_claims(s);
    edit(&mut claims);
    a.key.sign(json!({"alg": "ES256", "kid": "k1"}), claims)
}

/// An agent-token request of `a` with a valid assertion and the DPoP proof `proof`.
fn with_proof(s: &TestServer, a: &Agent, proof: &str) -> Response {
    a.send(
        s,
        "/token",
        &[("grant_type", "client_credentials")],
        Some(proof),
    )
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

// ---- Client assertions -----------------------------------------------------------------

#[test]
fn an_unsigned_alg_none_assertion_is_refused() {
    let (s, a) = setup();
    let jwt = format!(
        "{}.{}.",
        b64(&json!({"alg": "none"})),
        b64(&a.assertion_claims(&s))
    );
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "alg_not_allowed",
    );
}

#[test]
fn an_hs256_assertion_keyed_with_the_clients_public_key_is_refused() {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;

    let (s, a) = setup();
    // The algorithm-confusion attack: anyone can compute an HMAC keyed with the client's
    // *public* JWK, so a verifier that lets the token pick HS256 would accept it.
    let public = a.key.public_jwk("k1").to_string();
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "k1"})),
        b64(&a.assertion_claims(&s))
    );
    let key = PKey::hmac(public.as_bytes()).unwrap();
    let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
    let mac = signer.sign_oneshot_to_vec(input.as_bytes()).unwrap();
    let jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac));
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "alg_not_allowed",
    );
}

#[test]
fn an_assertion_with_an_unknown_kid_is_refused() {
    let (s, a) = setup();
    let jwt = a
        .key
        .sign(json!({"alg": "ES256", "kid": "k2"}), a.assertion_claims(&s));
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "kid_unknown",
    );
}

#[test]
fn an_assertion_signed_by_another_key_under_the_clients_kid_is_refused() {
    let (s, a) = setup();
    let jwt =
        AgentKey::generate().sign(json!({"alg": "ES256", "kid": "k1"}), a.assertion_claims(&s));
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "signature_invalid",
    );
}

#[test]
fn assertion_headers_that_carry_or_point_to_keys_are_refused() {
    let (s, a) = setup();
    // An attacker's key, offered in every way a JWS header can offer one.
    let attacker = AgentKey::generate();
    let cases = [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!(["MIIBszCCAVmgAwIBAgIUY2VydGlmaWNhdGU="])),
        ("jwk", attacker.public_jwk("k1")),
    ];
    for (i, (member, value)) in cases.into_iter().enumerate() {
        let mut header = json!({"alg": "ES256", "kid": "k1"});
        header[member] = value;
        let jwt = attacker.sign(header, a.assertion_claims(&s));
        let r = with_assertion(&s, &a, &jwt);
        assert_oauth_error(r, 401, "invalid_client");
        s.expect_refusals_audited("token.issue", "header_key_not_allowed", i + 1);
    }
}

#[test]
fn an_expired_assertion_is_refused() {
    let (s, a) = setup();
    // Well beyond the default 60 s clock skew.
    let jwt = assertion_with(&s, &a, |c| {
        c["iat"] = json!(now() - 400);
        c["exp"] = json!(now() - 300);
    });
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "token_expired",
    );
}

#[test]
fn an_assertion_not_valid_yet_is_refused() {
    let (s, a) = setup();
    let jwt = assertion_with(&s, &a, |c| {
        c["nbf"] = json!(now() + 300);
        c["exp"] = json!(now() + 400);
    });
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "token_not_yet_valid",
    );
}

#[test]
fn an_assertion_issued_too_long_ago_is_refused() {
    let (s, a) = setup();
    // Older than assertion_max_lifetime_secs (600) plus skew (60), though not expired.
    let jwt = assertion_with(&s, &a, |c| c["iat"] = json!(now() - 700));
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "iat_too_old",
    );
}

#[test]
fn an_assertion_expiring_too_far_ahead_is_refused() {
    let (s, a) = setup();
    let jwt = assertion_with(&s, &a, |c| c["exp"] = json!(now() + 3600));
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "assertion_lifetime_too_long",
    );
}

#[test]
fn an_assertion_with_a_wrong_issuer_is_refused() {
    let (s, a) = setup();
    let other = Agent::approved(&s, json!({}));
    let jwt = assertion_with(&s, &a, |c| c["iss"] = json!(other.client_id));
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "iss_mismatch",
    );
}

#[test]
fn an_assertion_for_another_audience_is_refused() {
    let (s, a) = setup();
    let jwt = assertion_with(&s, &a, |c| {
        c["aud"] = json!("https://other-as.example/token");
    });
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "aud_mismatch",
    );
}

#[test]
fn an_assertion_without_jti_is_refused() {
    let (s, a) = setup();
    let jwt = assertion_with(&s, &a, |c| {
        c.as_object_mut().unwrap().remove("jti");
    });
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "jti_missing",
    );
}

#[test]
fn a_replayed_client_assertion_is_refused() {
    let (s, a) = setup();
    // Audience: the token endpoint URL this time (the issuer is the other accepted one).
    let jwt = assertion_with(&s, &a, |c| c["aud"] = json!(s.url("/token")));
    let first = with_assertion(&s, &a, &jwt);
    assert_eq!(first.status(), 200, "{:?}", first.text());
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "jti_replayed",
    );
}

#[test]
fn another_agents_assertion_does_not_authenticate_as_this_agent() {
    let (s, a) = setup();
    let mallory = Agent::approved(&s, json!({}));
    // Mallory signs an assertion claiming to be `a` with her own (registered) key.
    let jwt = mallory
        .key
        .sign(json!({"alg": "ES256", "kid": "k1"}), a.assertion_claims(&s));
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "signature_invalid",
    );
}

// ---- DPoP proofs -------------------------------------------------------------------------

#[test]
fn a_replayed_dpop_proof_is_refused() {
    let (s, a) = setup();
    let proof = a.dpop_proof(&s.url("/token"));
    let first = with_proof(&s, &a, &proof);
    assert_eq!(first.status(), 200, "{:?}", first.text());
    refused(
        &s,
        with_proof(&s, &a, &proof),
        400,
        "invalid_dpop_proof",
        "dpop_jti_replayed",
    );
}

#[test]
fn a_dpop_proof_for_another_method_is_refused() {
    let (s, a) = setup();
    let proof = dpop_proof_with(&a.dpop_key, dpop_claims("GET", &s.url("/token")));
    refused(
        &s,
        with_proof(&s, &a, &proof),
        400,
        "invalid_dpop_proof",
        "dpop_htm_mismatch",
    );
}

#[test]
fn a_dpop_proof_for_another_url_is_refused() {
    let (s, a) = setup();
    let proof = dpop_proof_with(&a.dpop_key, dpop_claims("POST", &s.url("/introspect")));
    refused(
        &s,
        with_proof(&s, &a, &proof),
        400,
        "invalid_dpop_proof",
        "dpop_htu_mismatch",
    );
}

#[test]
fn a_dpop_proof_carrying_a_private_key_is_refused() {
    let (s, a) = setup();
    let proof = a.dpop_key.sign(
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": a.dpop_key.private_jwk()}),
        dpop_claims("POST", &s.url("/token")),
    );
    refused(
        &s,
        with_proof(&s, &a, &proof),
        400,
        "invalid_dpop_proof",
        "dpop_jwk_private",
    );
}

#[test]
fn a_dpop_proof_not_signed_by_its_jwk_is_refused() {
    let (s, a) = setup();
    // Claims a.dpop_key (to get its thumbprint) but is signed by another key.
    let thief = AgentKey::generate();
    let proof = thief.sign(
        json!({"typ": "dpop+jwt", "alg": "ES256",
               "jwk": bare_public_jwk(&a.dpop_key)}),
        dpop_claims("POST", &s.url("/token")),
    );
    refused(
        &s,
        with_proof(&s, &a, &proof),
        400,
        "invalid_dpop_proof",
        "dpop_signature_invalid",
    );
}

#[test]
fn an_exchange_proved_with_a_key_other_than_the_subject_tokens_is_refused() {
    let (s, mut a) = setup();
    let subject = a.agent_token(&s);
    // A thief who stole the token (and even the client's assertion key) but not its DPoP
    // key.
    a.dpop_key = AgentKey::generate();
    refused(
        &s,
        a.exchange(&s, &subject, SKILL),
        400,
        "invalid_dpop_proof",
        "dpop_key_mismatch",
    );
}

// ---- Token exchange ----------------------------------------------------------------------

#[test]
fn exchanging_another_agents_token_is_refused() {
    let (s, victim) = setup();
    let token = victim.agent_token(&s);
    let mallory = Agent::approved(&s, json!({SKILL: "read"}));
    refused(
        &s,
        mallory.exchange(&s, &token, SKILL),
        400,
        "invalid_grant",
        "exchange_not_holder",
    );
}

#[test]
fn a_skill_client_cannot_exchange_a_token_issued_to_another_skill() {
    let s = TestServer::with_admin();
    let skill_a = Agent::register(&s);
    skill_a.approve(&s, "github:7", json!({}));
    let skill_b = Agent::register(&s);
    skill_b.approve(&s, "github:8", json!({}));
    s.add_skill(SKILL, "read", 120, false, Some(&skill_a.client_id));
    s.add_skill(SKILL_B, "read", 120, false, Some(&skill_b.client_id));
    let agent = Agent::approved(&s, json!({SKILL: "read", SKILL_B: "read"}));
    let for_a = agent.skill_token(&s, SKILL);
    // Skill B intercepted a token meant for skill A and tries to launder it.
    refused(
        &s,
        skill_b.exchange(&s, &for_a, SKILL_B),
        400,
        "invalid_grant",
        "exchange_not_holder",
    );
    // The rightful skill can.
    assert!(!skill_a.exchange_ok(&s, &for_a, SKILL_B).is_empty());
}

#[test]
fn scope_escalation_is_refused() {
    let (s, a) = setup();
    let r = a.token(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("resource", SKILL),
            ("scope", "read write"),
        ],
    );
    refused(&s, r, 400, "invalid_scope", "scope_exceeds_grant");

    // Through an exchange: a `read` token cannot become a `write` one even when the
    // grant would allow it.
    a.approve(&s, OWNER, json!({SKILL: "read write"}));
    let read_only = a.token_ok(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("resource", SKILL),
            ("scope", "read"),
        ],
    );
    let r = a.token(
        &s,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", read_only["access_token"].as_str().unwrap()),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("resource", SKILL),
            ("scope", "write"),
        ],
    );
    assert_oauth_error(r, 400, "invalid_scope");
    s.expect_refusals_audited("token.issue", "scope_exceeds_grant", 2);
}

#[test]
fn an_audience_not_granted_is_refused() {
    let (s, a) = setup();
    let r = a.token(
        &s,
        &[("grant_type", "client_credentials"), ("resource", SKILL_B)],
    );
    refused(&s, r, 400, "invalid_target", "grant_missing");
    // Nor through an exchange.
    let subject = a.agent_token(&s);
    assert_oauth_error(a.exchange(&s, &subject, SKILL_B), 400, "invalid_target");
    s.expect_refusals_audited("token.issue", "grant_missing", 2);
}

#[test]
fn exchanging_a_revoked_token_is_refused() {
    let (s, a) = setup();
    let subject = a.agent_token(&s);
    a.revoke(&s, &subject);
    exchange_refused(&s, &a, &subject, "token_revoked");
}

#[test]
fn a_subject_token_exchanged_before_is_refused_once_revoked_or_suspended() {
    // The server remembers a verified subject token; revocation and the agent's state must
    // still be checked on every use.
    let (s, a) = setup();
    let subject = a.agent_token(&s);
    assert_eq!(a.exchange(&s, &subject, SKILL).status(), 200);
    assert_eq!(a.exchange(&s, &subject, SKILL).status(), 200);
    a.revoke(&s, &subject);
    exchange_refused(&s, &a, &subject, "token_revoked");

    let subject = a.agent_token(&s);
    assert_eq!(a.exchange(&s, &subject, SKILL).status(), 200);
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", a.client_id),
        None,
    );
    assert_oauth_error(a.exchange(&s, &subject, SKILL), 400, "unauthorized_client");
    s.expect_refusals_audited("token.issue", "agent_suspended", 1);
}

#[test]
fn a_tampered_subject_token_is_refused() {
    let (s, a) = setup();
    let subject = a.skill_token(&s, SKILL);
    let mut claims = claims_of(&subject);
    claims["scope"] = json!("read write admin");
    let parts: Vec<&str> = subject.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    exchange_refused(&s, &a, &forged, "signature_invalid");
}

#[test]
fn a_subject_token_signed_by_an_unpublished_key_is_refused() {
    // The real scenario: a token signed by a signing key that was rotated out, retired and
    // then removed from /jwks.json. Reproducing it end to end would take
    // keys.max_token_lifetime_secs (the retired key stays published until every token it
    // signed has expired, at least 300 s here), far too slow for a test. What the server
    // sees is the same as for a forgery: an at+jwt whose `kid` it no longer publishes, so
    // that is what this test presents.
    let (s, a) = setup();
    let genuine = a.agent_token(&s);
    let header = header_of(&genuine);
    let removed = AgentKey::generate();
    let forged = removed.sign(
        json!({"alg": "ES256", "typ": "at+jwt", "kid": format!("{}-retired", header["kid"].as_str().unwrap())}),
        claims_of(&genuine),
    );
    exchange_refused(&s, &a, &forged, "kid_unknown");
    // Reusing the published kid does not help: the signature is checked with the real key.
    let forged = removed.sign(header, claims_of(&genuine));
    exchange_refused(&s, &a, &forged, "signature_invalid");
}

// ---- Agent state -------------------------------------------------------------------------

#[test]
fn a_suspended_agent_gets_no_token() {
    let (s, a) = setup();
    let subject = a.agent_token(&s);
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", a.client_id),
        None,
    );
    let r = a.token(
        &s,
        &[("grant_type", "client_credentials"), ("resource", SKILL)],
    );
    refused(&s, r, 400, "unauthorized_client", "agent_suspended");
    // Nor may it exchange a token it got before the suspension.
    let r = a.exchange(&s, &subject, SKILL);
    assert_oauth_error(r, 400, "unauthorized_client");
    s.expect_refusals_audited("token.issue", "agent_suspended", 2);
}

#[test]
fn a_pending_agent_gets_no_token() {
    let (s, _) = setup();
    let pending = Agent::register(&s);
    let r = pending.token(
        &s,
        &[("grant_type", "client_credentials"), ("resource", SKILL)],
    );
    refused(&s, r, 400, "unauthorized_client", "agent_pending");
}

#[test]
fn a_client_secret_guess_for_a_private_key_jwt_client_is_refused() {
    let (s, a) = setup();
    let r = s.post_form(
        "/token",
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &a.client_id),
            ("client_secret", "guess"),
        ]),
        None,
    );
    refused(&s, r, 401, "invalid_client", "auth_method_mismatch");
    // And no authentication at all is not "public client" access.
    let r = s.post_form(
        "/token",
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &a.client_id),
        ]),
        None,
    );
    assert_oauth_error(r, 401, "invalid_client");
    s.expect_refusals_audited("token.issue", "auth_method_mismatch", 2);
}

// ---- Revocation and delegation edges ----------------------------------------------------

/// Sleeps until the server's clock (the same as ours) reaches `t`.
fn sleep_until(t: i64) {
    while now() < t {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits for an introspection that answered inactive because of `reason`.
fn inactive_audited(s: &TestServer, reason: &str) {
    s.wait_for_audit(|r| r.event == "token.introspect" && r.reason.as_deref() == Some(reason));
}

#[test]
fn a_revoked_token_stays_revoked_in_its_last_clock_skew_window() {
    // Tokens verify until `exp` + the clock skew (60 s): the revocation must last as long,
    // across the revocation syncs (every second) that sweep what has expired.
    let s = TestServer::with_admin();
    s.add_skill(SKILL, "read", 1, false, None);
    s.add_skill(SKILL_B, "read", 120, false, None);
    let a = Agent::approved(&s, json!({SKILL: "read", SKILL_B: "read"}));
    let token = a.skill_token(&s, SKILL);
    a.revoke(&s, &token);
    sleep_until(claims_of(&token)["exp"].as_i64().unwrap() + 3);
    assert_eq!(a.introspect(&s, &token), json!({"active": false}));
    inactive_audited(&s, "token_revoked");
    refused(
        &s,
        a.exchange(&s, &token, SKILL_B),
        400,
        "invalid_grant",
        "token_revoked",
    );
}

#[test]
fn a_subject_token_past_its_exp_is_not_exchanged_for_a_token_born_expired() {
    let s = TestServer::with_admin();
    s.add_skill(SKILL, "read", 1, false, None);
    s.add_skill(SKILL_B, "read", 120, false, None);
    let a = Agent::approved(&s, json!({SKILL: "read", SKILL_B: "read"}));
    let subject = a.skill_token(&s, SKILL);
    sleep_until(claims_of(&subject)["exp"].as_i64().unwrap() + 1);
    // Still within the skew, so the subject token verifies; the new one would be expired.
    refused(
        &s,
        a.exchange(&s, &subject, SKILL_B),
        400,
        "invalid_grant",
        "subject_token_expired",
    );
}

/// A skill client `skill_a` (of [`SKILL`]) holding a token it exchanged, on the agent's
/// behalf, for [`SKILL_B`].
fn delegated() -> (TestServer, Agent, Agent, String) {
    let s = TestServer::with_admin();
    let skill_a = Agent::register(&s);
    skill_a.approve(&s, "github:7", json!({}));
    s.add_skill(SKILL, "read", 120, false, Some(&skill_a.client_id));
    s.add_skill(SKILL_B, "read", 120, false, None);
    let a = Agent::approved(&s, json!({SKILL: "read", SKILL_B: "read"}));
    let for_a = a.skill_token(&s, SKILL);
    let for_b = skill_a.exchange_ok(&s, &for_a, SKILL_B);
    assert_eq!(claims_of(&for_b)["client_id"], skill_a.client_id.as_str());
    assert_eq!(a.introspect(&s, &for_b)["active"], true);
    (s, a, skill_a, for_b)
}

#[test]
fn a_token_held_by_a_suspended_delegate_is_inactive_and_not_exchanged() {
    let (s, a, skill_a, for_b) = delegated();
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", skill_a.client_id),
        None,
    );
    assert_eq!(a.introspect(&s, &for_b), json!({"active": false}));
    inactive_audited(&s, "delegate_suspended");
    refused(
        &s,
        a.exchange(&s, &for_b, SKILL),
        400,
        "invalid_grant",
        "delegate_suspended",
    );
}

#[test]
fn a_token_held_by_a_delegate_whose_tokens_were_revoked_is_inactive_after_it_resumes() {
    // Suspension revokes every token issued to the delegate so far; resuming it does not
    // bring them back.
    let (s, a, skill_a, for_b) = delegated();
    for action in ["suspend", "resume"] {
        s.admin_ok(
            "POST",
            &format!("/admin/agents/{}/{action}", skill_a.client_id),
            None,
        );
    }
    assert_eq!(a.introspect(&s, &for_b), json!({"active": false}));
    inactive_audited(&s, "delegate_revoked");
}

#[test]
fn suspended_and_pending_clients_cannot_introspect_or_revoke() {
    let (s, a) = setup();
    let token = a.agent_token(&s);
    let pending = Agent::register(&s);
    for path in ["/introspect", "/revoke"] {
        let r = pending.send(&s, path, &[("token", &token)], None);
        assert_oauth_error(r, 401, "invalid_client");
    }
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", a.client_id),
        None,
    );
    for path in ["/introspect", "/revoke"] {
        let r = a.send(&s, path, &[("token", &token)], None);
        assert_oauth_error(r, 401, "invalid_client");
    }
    for event in ["token.introspect", "token.revoke"] {
        s.expect_refusal_audited(event, "client_pending");
        s.expect_refusal_audited(event, "client_suspended");
    }
    // Nothing was revoked: the refused revocation changed nothing.
    let mut c = s.db.connect();
    use diesel::prelude::*;
    let revoked: i64 = patron::store::schema::revoked_tokens::table
        .count()
        .get_result(&mut c)
        .unwrap();
    assert_eq!(revoked, 0);
}

#[test]
fn a_token_older_than_the_advertised_maximum_age_is_inactive() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", crate::helpers::ADMIN)
        .env("PATRON_VALIDATION__MAX_TOKEN_AGE_SECS", "1")
        .env("PATRON_VALIDATION__CLOCK_SKEW_SECS", "0")
        .start();
    let meta: Value = s
        .http
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        meta["patron_validation_profile"]["max_token_age_seconds"],
        1
    );
    s.add_skill(SKILL, "read", 120, false, None);
    let a = Agent::approved(&s, json!({SKILL: "read"}));
    let token = a.agent_token(&s);
    assert_eq!(a.introspect(&s, &token)["active"], true, "cached now");
    sleep_until(claims_of(&token)["iat"].as_i64().unwrap() + 3);
    assert_eq!(a.introspect(&s, &token), json!({"active": false}));
    inactive_audited(&s, "iat_too_old");
    refused(
        &s,
        a.exchange(&s, &token, SKILL),
        400,
        "invalid_grant",
        "iat_too_old",
    );
}

#[test]
fn an_assertion_whose_audience_list_merely_includes_the_issuer_is_refused() {
    let (s, a) = setup();
    let assertion = assertion_with(&s, &a, |c| {
        c["aud"] = json!([s.base, "https://other-server.example"]);
    });
    refused(
        &s,
        with_assertion(&s, &a, &assertion),
        401,
        "invalid_client",
        "aud_not_single",
    );
}

#[test]
fn the_token_endpoint_as_assertion_audience_is_refused_when_strict() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", crate::helpers::ADMIN)
        .env("PATRON_TOKENS__STRICT_ASSERTION_AUDIENCE", "true")
        .start();
    let a = Agent::approved(&s, json!({}));
    let to_endpoint = assertion_with(&s, &a, |c| c["aud"] = json!(s.url("/token")));
    refused(
        &s,
        with_assertion(&s, &a, &to_endpoint),
        401,
        "invalid_client",
        "aud_mismatch",
    );
    let to_issuer = assertion_with(&s, &a, |c| c["aud"] = json!(s.base));
    assert_eq!(with_assertion(&s, &a, &to_issuer).status(), 200);
}
