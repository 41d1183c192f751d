//! The attack catalogue: each test sends one forged, replayed or out-of-bounds request to
//! the token endpoint and checks the exact OAuth error (never a 5xx) and the reason code
//! the audit log records for it; the last section floods the endpoints that cost the
//! server CPU or memory (failed client authentication, `jwks_uri` fetches, user-code
//! lookups) and checks that the limits hold.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::blocking::Response;
use serde_json::{Value, json};

use crate::helpers::{
    ACCESS_TOKEN_TYPE, Agent, AgentKey, OWNER, SKILL, TOKEN_EXCHANGE, TestServer,
    assert_oauth_error, bare_public_jwk, claims_of, dpop_claims, dpop_proof_with, form, header_of,
    now, unique,
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
    // Older than tokens.assertion_max_age_secs (300) plus skew (60), though not expired.
    let jwt = assertion_with(&s, &a, |c| c["iat"] = json!(now() - 400));
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "iat_too_old",
    );
}

#[test]
fn an_assertion_without_iat_is_refused() {
    // iat bounds how long the assertion is acceptable, and so how long its jti is kept.
    let (s, a) = setup();
    let jwt = assertion_with(&s, &a, |c| {
        c.as_object_mut().unwrap().remove("iat");
    });
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "iat_missing",
    );
}

#[test]
fn an_hour_long_assertion_is_accepted_once() {
    // Authlib's default lifetime (exp = iat + 3600).
    let (s, a) = setup();
    let jwt = assertion_with(&s, &a, |c| c["exp"] = json!(now() + 3600));
    let r = with_assertion(&s, &a, &jwt);
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    refused(
        &s,
        with_assertion(&s, &a, &jwt),
        401,
        "invalid_client",
        "jti_replayed",
    );
}

#[test]
fn an_assertion_expiring_too_far_ahead_is_refused() {
    let (s, a) = setup();
    // Beyond tokens.assertion_max_lifetime_secs (3600) plus skew (60).
    let jwt = assertion_with(&s, &a, |c| c["exp"] = json!(now() + 3600 + 120));
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
    s.add_delegating_skill(SKILL, "read", &skill_a.client_id, &[SKILL_B]);
    s.add_delegating_skill(SKILL_B, "read", &skill_b.client_id, &[SKILL_B]);
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

// ---- Unauthenticated CPU and memory sinks ------------------------------------------------

/// Failed-authentication limits small enough to reach in a test: per client and address a
/// burst of 2, per address a burst of 4, both refilling at one a minute; 127.0.0.1 is a
/// trusted proxy, so `X-Forwarded-For` picks the source address.
fn throttled_server() -> TestServer {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", crate::helpers::ADMIN)
        .env("PATRON_REGISTRATION__TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .env("PATRON_LIMITS__CLIENT_AUTH_FAILURES_PER_MINUTE", "1")
        .env("PATRON_LIMITS__CLIENT_AUTH_FAILURE_BURST", "2")
        .env("PATRON_LIMITS__ADDRESS_AUTH_FAILURES_PER_MINUTE", "1")
        .env("PATRON_LIMITS__ADDRESS_AUTH_FAILURE_BURST", "4")
        .start();
    s.add_skill(SKILL, "read write", 120, false, None);
    s
}

/// `POST path` with HTTP Basic credentials from source address `from`.
fn basic_from(s: &TestServer, path: &str, from: &str, id: &str, secret: &str) -> Response {
    s.http
        .post(s.url(path))
        .header("X-Forwarded-For", from)
        .basic_auth(id, Some(secret))
        .form(&form(&[
            ("grant_type", "client_credentials"),
            ("token", "not-a-token"),
        ]))
        .send()
        .unwrap()
}

/// Asserts a 429 `temporarily_unavailable` with a `Retry-After`.
fn assert_throttled(resp: Response) {
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(retry.is_some_and(|r| r >= 1), "Retry-After: {retry:?}");
    assert_oauth_error(resp, 429, "temporarily_unavailable");
}

#[test]
fn wrong_client_secrets_are_throttled_per_client_and_address_without_locking_the_client_out() {
    let s = throttled_server();
    let (id, secret) =
        crate::tokens::secret_client(&s, "client_secret_basic", json!({SKILL: "read"}));
    let attacker = "198.51.100.7";
    for path in ["/token", "/introspect", "/revoke"] {
        // Each endpoint counts toward the same (client, address) budget.
        let resp = basic_from(&s, path, attacker, &id, "patron_cs_wrong");
        if path == "/revoke" {
            assert_throttled(resp);
        } else {
            assert_oauth_error(resp, 401, "invalid_client");
        }
    }
    s.expect_refusals_audited("token.issue", "client_secret_invalid", 1);
    s.expect_refusals_audited("token.introspect", "client_secret_invalid", 1);
    s.expect_refusal_audited("token.revoke", "client_auth_throttled");
    // Over the limit even the right secret is refused from there, before it is checked…
    assert_throttled(basic_from(&s, "/token", attacker, &id, &secret));
    assert_throttled(basic_from(&s, "/introspect", attacker, &id, &secret));
    s.expect_refusal_audited("token.issue", "client_auth_throttled");
    s.expect_refusal_audited("token.introspect", "client_auth_throttled");
    // …but the client itself, from its own address, is not locked out.
    let ok = basic_from(&s, "/token", "203.0.113.20", &id, &secret);
    assert_eq!(ok.status(), 200);
}

#[test]
fn failed_authentications_across_clients_throttle_the_address_and_its_64() {
    let s = throttled_server();
    let clients: Vec<_> = (0..3)
        .map(|_| crate::tokens::secret_client(&s, "client_secret_basic", json!({SKILL: "read"})))
        .collect();
    // Four failures (the address burst) spread over clients and over one IPv6 /64…
    for (i, (id, _)) in clients.iter().take(2).enumerate() {
        for j in 0..2 {
            let from = format!("2001:db8:77:1::{:x}", 1 + i * 2 + j);
            let resp = basic_from(&s, "/introspect", &from, id, "patron_cs_wrong");
            assert_oauth_error(resp, 401, "invalid_client");
        }
    }
    // …and a third client from yet another address of that /64 is refused unchecked.
    let (id, secret) = &clients[2];
    assert_throttled(basic_from(&s, "/token", "2001:db8:77:1::99", id, secret));
    // Another /64 is another customer.
    assert_eq!(
        basic_from(&s, "/token", "2001:db8:77:2::1", id, secret).status(),
        200
    );
}

#[test]
fn bad_client_assertions_are_throttled_and_a_good_one_elsewhere_still_works() {
    let s = throttled_server();
    let a = Agent::approved(&s, json!({SKILL: "read"}));
    let stranger = AgentKey::generate();
    let forged =
        |s: &TestServer| stranger.sign(json!({"alg": "ES256", "kid": "k1"}), a.assertion_claims(s));
    for _ in 0..2 {
        refused(
            &s,
            with_assertion(&s, &a, &forged(&s)),
            401,
            "invalid_client",
            "signature_invalid",
        );
    }
    // The agent's own valid assertion from the throttled address: refused unchecked.
    let resp = with_assertion(&s, &a, &a.assertion(&s));
    assert_throttled(resp);
    s.expect_refusal_audited("token.issue", "client_auth_throttled");
    // The same agent from another address is not locked out.
    let resp = s
        .http
        .post(s.url("/token"))
        .header("X-Forwarded-For", "203.0.113.30")
        .header("DPoP", a.dpop_proof(&s.url("/token")))
        .form(&Agent::form_with_assertion(
            &a.assertion(&s),
            &[("grant_type", "client_credentials")],
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A pending registration with a secret, and its configuration URI and access token.
fn secret_registration(s: &TestServer) -> (Value, String, String) {
    let r = s.register_ok(&json!({
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
    }));
    let uri = r["registration_client_uri"].as_str().unwrap().to_owned();
    let rat = r["registration_access_token"].as_str().unwrap().to_owned();
    (r, uri, rat)
}

#[test]
fn wrong_client_secrets_in_rfc7592_updates_are_throttled() {
    let s = throttled_server();
    let (r, uri, rat) = secret_registration(&s);
    let body = |secret: &Value| {
        json!({
            "client_id": r["client_id"],
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": secret,
        })
    };
    let put = |secret: &Value| {
        s.http
            .put(&uri)
            .bearer_auth(&rat)
            .json(&body(secret))
            .send()
            .unwrap()
    };
    for _ in 0..2 {
        assert_oauth_error(
            put(&json!("patron_cs_wrong")),
            400,
            "invalid_client_metadata",
        );
    }
    s.expect_refusals_audited("client.update", "client_secret_mismatch", 2);
    assert_throttled(put(&r["client_secret"]));
    s.expect_refusal_audited("client.update", "client_auth_throttled");
}

#[test]
fn rfc7592_updates_are_rate_limited_per_address_like_registration() {
    let s = TestServer::builder()
        .env("PATRON_REGISTRATION__RATE_LIMIT_PER_MINUTE", "1")
        .env("PATRON_REGISTRATION__RATE_LIMIT_BURST", "3")
        .start();
    let (r, uri, rat) = secret_registration(&s);
    let put = || {
        s.http
            .put(&uri)
            .bearer_auth(&rat)
            .json(&json!({
                "client_id": r["client_id"],
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "client_secret_basic",
                "client_name": unique(),
            }))
            .send()
            .unwrap()
    };
    // The registration took one token of the burst of three.
    for _ in 0..2 {
        assert_eq!(put().status(), 200);
    }
    assert_throttled(put());
    s.expect_refusal_audited("client.update", "registration_update_rate_limited");
}

#[test]
fn registrations_rotating_through_one_ipv6_64_share_one_limit() {
    let s = TestServer::builder()
        .env("PATRON_REGISTRATION__TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .env("PATRON_REGISTRATION__RATE_LIMIT_PER_MINUTE", "1")
        .env("PATRON_REGISTRATION__RATE_LIMIT_BURST", "2")
        .start();
    let register_from = |from: &str| {
        s.http
            .post(s.url("/register"))
            .header("X-Forwarded-For", from)
            .json(&crate::helpers::agent_metadata(&AgentKey::generate()))
            .send()
            .unwrap()
    };
    assert_eq!(register_from("2001:db8:5:6::1").status(), 201);
    assert_eq!(register_from("2001:db8:5:6:ffff::2").status(), 201);
    assert_throttled(register_from("2001:db8:5:6:abcd:1234::3"));
    s.expect_refusal_audited("client.register", "registration_rate_limited");
    assert_eq!(register_from("2001:db8:5:7::1").status(), 201);
    assert_eq!(s.count_clients(), 3);
}

#[test]
fn a_jwks_uri_document_that_failed_validation_is_not_cached() {
    let files = crate::helpers::https::https_files();
    let key = AgentKey::generate();
    let path = files.dir.path().join("keys.json");
    std::fs::write(&path, json!({"keys": [key.private_jwk()]}).to_string()).unwrap();
    let s = TestServer::builder()
        .env("PATRON_OUTBOUND__ALLOW_HOSTS", "[\"localhost\"]")
        .env(
            "PATRON_OUTBOUND__CA_FILE",
            files.dir.path().join("cert.pem").to_str().unwrap(),
        )
        .start();
    let uri = format!("https://localhost:{}/keys.json", files.port);
    assert_oauth_error(
        s.register(&crate::jwks_uri::with_jwks_uri(&uri)),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "jwks_uri_invalid_keys");
    // Fixed at the source: the next registration fetches again (within cache_secs).
    std::fs::write(&path, json!({"keys": [key.public_jwk("k1")]}).to_string()).unwrap();
    let r = s.register_ok(&crate::jwks_uri::with_jwks_uri(&uri));
    assert_eq!(r["jwks_uri"], uri.as_str());
}

#[test]
fn jwks_uri_fetches_ignore_proxy_environment_variables() {
    // A "proxy" that counts the connections it is offered.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://127.0.0.1:{port}");
    let s = TestServer::builder()
        .env("HTTPS_PROXY", &proxy_url)
        .env("https_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("NO_PROXY", "")
        .env("no_proxy", "")
        .start();
    // A public name that does not resolve: without a proxy, the fetch fails at DNS.
    let resp = s.register(&crate::jwks_uri::with_jwks_uri(
        "https://jwks.patron-test.invalid/jwks.json",
    ));
    assert_oauth_error(resp, 400, "invalid_client_metadata");
    s.expect_refusal_audited("client.register", "jwks_uri_fetch_failed");
    assert!(
        proxy.accept().is_err(),
        "the fetch went through the proxy, around the address guard"
    );
}

/// A console server with the global cap on failed user-code lookups at a burst of
/// `global_burst`, and 127.0.0.1 as a trusted proxy.
fn claim_server(global_burst: &str) -> TestServer {
    let s = crate::helpers::console::console_builder()
        .env("PATRON_REGISTRATION__TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .env("PATRON_LIMITS__CLAIM_LOOKUP_FAILURES_PER_MINUTE", "1")
        .env("PATRON_LIMITS__CLAIM_LOOKUP_FAILURE_BURST", global_burst)
        .start();
    s.add_skill(SKILL, "read write", 120, false, None);
    s
}

/// The claim page for `code`, as the session `cookie` from address `from` sees it.
fn claim_lookup(s: &TestServer, cookie: &str, from: &str, code: &str) -> String {
    s.http
        .get(s.url(&format!("/claim?user_code={code}")))
        .header("Cookie", format!("patron_session={cookie}"))
        .header("X-Forwarded-For", from)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// A pending agent's user code.
fn pending_code(s: &TestServer) -> String {
    s.register_ok(&crate::helpers::agent_metadata(&AgentKey::generate()))["user_code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn user_code_guesses_from_one_session_over_many_addresses_are_limited() {
    let s = claim_server("1000");
    let code = pending_code(&s);
    let alice = crate::helpers::console::Browser::dev_login(&s, "alice");
    let cookie = alice.session().unwrap().to_owned();
    // Every guess from a fresh address: only the session ties them together.
    let limited = (0..15)
        .map(|i| claim_lookup(&s, &cookie, &format!("198.51.100.{}", 10 + i), "BBBB-BBBB"))
        .filter(|page| page.contains("Too many attempts"))
        .count();
    assert!(limited >= 4, "only {limited} of 15 guesses were limited");
    let page = claim_lookup(&s, &cookie, "203.0.113.99", &code);
    assert!(page.contains("Too many attempts"), "{page}");
    s.expect_refusal_audited("agent.claim_lookup", "claim_rate_limited_session");
}

#[test]
fn failed_user_code_lookups_are_capped_globally() {
    let s = claim_server("3");
    let code = pending_code(&s);
    let alice = crate::helpers::console::Browser::dev_login(&s, "alice");
    let bob = crate::helpers::console::Browser::dev_login(&s, "bob");
    let (a, b) = (alice.session().unwrap(), bob.session().unwrap());
    // Three failures from two sessions and three addresses spend the global budget…
    for (cookie, from) in [
        (a, "198.51.100.1"),
        (a, "198.51.100.2"),
        (b, "198.51.100.3"),
    ] {
        let page = claim_lookup(&s, cookie, from, "BBBB-BBBB");
        assert!(page.contains("No pending agent has this code"), "{page}");
    }
    // …so a fourth session and address finds nothing, not even the right code.
    let carol = crate::helpers::console::Browser::dev_login(&s, "carol");
    let page = claim_lookup(&s, carol.session().unwrap(), "203.0.113.4", &code);
    assert!(page.contains("Too many attempts"), "{page}");
    s.expect_refusal_audited("agent.claim_lookup", "claim_rate_limited_global");
    // Right codes never spent the budget: a success before the cap would not have counted.
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
    s.add_delegating_skill(SKILL, "read", &skill_a.client_id, &[SKILL_B]);
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
    let meta: Value = s.metadata();
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
