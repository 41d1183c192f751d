//! The token service: agent and skill tokens, client authentication methods, token exchange
//! and delegation, introspection, revocation, suspension, and third-party interoperability.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    ACCESS_TOKEN_TYPE, ADMIN, Agent, AgentKey, OWNER, SKILL, TOKEN_EXCHANGE, TestServer,
    assert_oauth_error, claims_of, form, header_of, now, thumbprint_of,
};

const SKILL_B: &str = "https://skill-b.example/api";
const SKILL_C: &str = "https://skill-c.example/api";

/// A server with the admin API and one skill (`read write`, 120 s, DPoP optional).
fn server_with_skill() -> TestServer {
    let s = TestServer::with_admin();
    s.add_skill(SKILL, "read write", 120, false, None);
    s
}

fn access_token(r: &Value) -> String {
    r["access_token"].as_str().unwrap().to_owned()
}

/// Registers a client that authenticates with a secret (`method`) and approves it for
/// [`OWNER`] with `grants`; returns `(client_id, client_secret)`.
pub(crate) fn secret_client(s: &TestServer, method: &str, grants: Value) -> (String, String) {
    let metadata = json!({
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": method,
    });
    let r = s.register(&metadata);
    assert_eq!(r.status(), 201);
    let r: Value = r.json().unwrap();
    let id = r["client_id"].as_str().unwrap().to_owned();
    let secret = r["client_secret"].as_str().unwrap().to_owned();
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{id}/approve"),
        Some(json!({"owner": OWNER, "grants": grants})),
    );
    (id, secret)
}

#[test]
fn an_approved_agent_gets_an_agent_token() {
    let s = server_with_skill();
    let a = Agent::approved(&s, json!({SKILL: "read write"}));
    let r = a.token_ok(&s, &[("grant_type", "client_credentials")]);
    assert_eq!(r["token_type"], "DPoP");
    assert_eq!(r["expires_in"], 300, "default agent_ttl_secs");
    assert!(r.get("scope").is_none(), "an agent token has no scope: {r}");
    assert!(r.get("issued_token_type").is_none(), "{r}");
    let c = claims_of(&access_token(&r));
    assert_eq!(
        c["aud"],
        s.base.as_str(),
        "an agent token is for the issuer"
    );
    assert_eq!(c["sub"], a.client_id.as_str());
    assert_eq!(c["client_id"], a.client_id.as_str());
    assert!(c.get("scope").is_none(), "{c}");
    assert!(c.get("act").is_none(), "{c}");
    let ev = s.wait_for_audit(|e| e.event == "token.issue" && e.outcome == "success");
    assert_eq!(ev.jti.as_deref(), c["jti"].as_str());
    assert_eq!(ev.audience.as_deref(), Some(s.base.as_str()));
    assert_eq!(ev.client_id.as_deref(), Some(a.client_id.as_str()));
    assert_eq!(ev.owner_id.as_deref(), Some(OWNER));
}

#[test]
fn a_skill_token_carries_the_granted_scopes_or_a_requested_subset() {
    let s = server_with_skill();
    let a = Agent::approved(&s, json!({SKILL: "read write"}));
    let r = a.token_ok(
        &s,
        &[("grant_type", "client_credentials"), ("resource", SKILL)],
    );
    assert_eq!(r["scope"], "read write");
    assert_eq!(r["expires_in"], 120, "the skill's ttl_secs");
    let c = claims_of(&access_token(&r));
    assert_eq!(c["aud"], SKILL);
    assert_eq!(c["scope"], "read write");
    s.wait_for_audit(|e| {
        e.event == "token.issue"
            && e.outcome == "success"
            && e.jti.as_deref() == c["jti"].as_str()
            && e.audience.as_deref() == Some(SKILL)
    });

    let r = a.token_ok(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("resource", SKILL),
            ("scope", "read"),
        ],
    );
    assert_eq!(r["scope"], "read");
    assert_eq!(claims_of(&access_token(&r))["scope"], "read");
}

#[test]
fn access_tokens_follow_rfc_9068_and_are_bound_to_the_dpop_key() {
    let s = server_with_skill();
    let a = Agent::approved(&s, json!({SKILL: "read write"}));
    let before = now();
    let token = a.skill_token(&s, SKILL);
    let header = header_of(&token);
    assert_eq!(header["typ"], "at+jwt");
    let kid = header["kid"].as_str().expect("kid").to_owned();
    assert!(s.published_kids().contains(&kid), "kid {kid} is published");
    let c = claims_of(&token);
    for claim in [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "iat",
        "exp",
        "jti",
        "owner",
        "cnf",
    ] {
        assert!(c.get(claim).is_some(), "missing {claim}: {c}");
    }
    assert_eq!(c["iss"], s.base.as_str());
    assert_eq!(c["sub"], a.client_id.as_str());
    assert_eq!(c["client_id"], a.client_id.as_str());
    assert_eq!(c["owner"], OWNER);
    let iat = c["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= now(), "{c}");
    assert_eq!(c["exp"].as_i64().unwrap(), iat + 120);
    assert_eq!(c["cnf"]["jkt"], thumbprint_of(&a.dpop_key).as_str());
    assert!(c.get("patron_chain").is_none(), "{c}");
}

#[test]
fn client_secret_basic_and_client_secret_post_authenticate() {
    let s = server_with_skill();
    let (id, secret) = secret_client(&s, "client_secret_basic", json!({SKILL: "read"}));
    let r = s
        .http
        .post(s.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&form(&[
            ("grant_type", "client_credentials"),
            ("resource", SKILL),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    let c = claims_of(&access_token(&body));
    assert_eq!(c["sub"], id.as_str());
    assert!(c.get("cnf").is_none(), "not DPoP-bound: {c}");

    let (pid, psecret) = secret_client(&s, "client_secret_post", json!({SKILL: "read"}));
    let r = s
        .http
        .post(s.url("/token"))
        .form(&form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &pid),
            ("client_secret", &psecret),
        ]))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().unwrap();
    assert_eq!(claims_of(&access_token(&body))["sub"], pid.as_str());

    // A wrong secret: 401 invalid_client with a challenge.
    let r = s
        .http
        .post(s.url("/token"))
        .basic_auth(&id, Some("patron_cs_wrong"))
        .form(&form(&[("grant_type", "client_credentials")]))
        .send()
        .unwrap();
    assert!(
        r.headers().contains_key("www-authenticate"),
        "{:?}",
        r.headers()
    );
    assert_oauth_error(r, 401, "invalid_client");
    s.expect_refusal_audited("token.issue", "client_secret_invalid");

    // The registered method only: the basic client may not post its secret.
    let r = s
        .http
        .post(s.url("/token"))
        .form(&form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ]))
        .send()
        .unwrap();
    assert_oauth_error(r, 401, "invalid_client");
    s.expect_refusal_audited("token.issue", "auth_method_mismatch");
}

#[test]
fn request_rules_unknown_audience_missing_dpop_and_scope_without_resource() {
    let s = server_with_skill();
    s.add_skill(SKILL_B, "read", 60, true, None);
    let a = Agent::approved(&s, json!({SKILL: "read write"}));

    let r = a.token(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://nowhere.example/api"),
        ],
    );
    assert_oauth_error(r, 400, "invalid_target");
    s.expect_refusal_audited("token.issue", "audience_unknown");

    // The agent registered dpop_bound_access_tokens: no proof, no token.
    let r = a.send(&s, "/token", &[("grant_type", "client_credentials")], None);
    assert_oauth_error(r, 400, "invalid_dpop_proof");
    s.expect_refusal_audited("token.issue", "dpop_required");

    let r = a.token(
        &s,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    );
    assert_oauth_error(r, 400, "invalid_scope");
    s.expect_refusal_audited("token.issue", "scope_without_resource");

    // A skill that requires DPoP refuses a bearer-only client.
    let (id, secret) = secret_client(&s, "client_secret_basic", json!({SKILL_B: "read"}));
    let r = s
        .http
        .post(s.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&form(&[
            ("grant_type", "client_credentials"),
            ("resource", SKILL_B),
        ]))
        .send()
        .unwrap();
    assert_oauth_error(r, 400, "invalid_dpop_proof");
}

#[test]
fn the_agent_exchanges_its_own_token_for_a_skill_token() {
    let s = server_with_skill();
    let a = Agent::approved(&s, json!({SKILL: "read write"}));
    let subject = a.agent_token(&s);
    let sc = claims_of(&subject);
    let exchanged = a.exchange_ok(&s, &subject, SKILL);
    let c = claims_of(&exchanged);
    assert_eq!(c["sub"], a.client_id.as_str());
    assert_eq!(c["client_id"], a.client_id.as_str());
    assert_eq!(c["aud"], SKILL);
    assert_eq!(c["scope"], "read write");
    assert_eq!(c["cnf"]["jkt"], sc["cnf"]["jkt"], "same DPoP key");
    assert!(c["exp"].as_i64().unwrap() <= sc["exp"].as_i64().unwrap());
    assert!(c.get("act").is_none(), "the agent acts for itself: {c}");
    s.wait_for_audit(|e| {
        e.event == "token.issue"
            && e.outcome == "success"
            && e.jti.as_deref() == c["jti"].as_str()
            && e.audience.as_deref() == Some(SKILL)
    });

    // `audience` names the target as well as `resource`, and scopes narrow.
    let r = a.token_ok(
        &s,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", SKILL),
            ("scope", "read"),
        ],
    );
    assert_eq!(r["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(r["token_type"], "DPoP");
    assert_eq!(r["scope"], "read");
    assert_eq!(claims_of(&access_token(&r))["aud"], SKILL);
}

/// Skill A (a registered client) and skill B; the agent is granted both.
struct Delegation {
    s: TestServer,
    agent: Agent,
    skill_a: Agent,
}

fn delegation(env: &[(&str, &str)]) -> Delegation {
    let mut b = TestServer::builder().env("PATRON_ADMIN_TOKEN", ADMIN);
    for (k, v) in env {
        b = b.env(k, v);
    }
    let s = b.start();
    let skill_a = Agent::register(&s);
    skill_a.approve(&s, "github:7", json!({}));
    s.add_delegating_skill(SKILL, "read write", &skill_a.client_id, &[SKILL_B]);
    s.add_skill(SKILL_B, "read write", 120, false, None);
    let agent = Agent::approved(&s, json!({SKILL: "read write", SKILL_B: "read"}));
    Delegation { s, agent, skill_a }
}

#[test]
fn a_skill_client_delegates_to_another_skill_and_act_records_the_chain() {
    let Delegation { s, agent, skill_a } = delegation(&[]);
    // Skill B is a client too, and C is a third skill the agent was granted.
    let skill_b = Agent::register(&s);
    skill_b.approve(&s, "github:8", json!({}));
    s.add_delegating_skill(SKILL_B, "read write", &skill_b.client_id, &[SKILL_C]);
    s.add_skill(SKILL_C, "read", 120, false, None);
    agent.approve(&s, OWNER, json!({SKILL_C: "read"}));

    let for_a = agent.skill_token(&s, SKILL);
    let for_b = skill_a.exchange_ok(&s, &for_a, SKILL_B);
    let c = claims_of(&for_b);
    assert_eq!(
        c["sub"],
        agent.client_id.as_str(),
        "still the agent's token"
    );
    assert_eq!(c["aud"], SKILL_B);
    assert_eq!(c["client_id"], skill_a.client_id.as_str());
    assert_eq!(c["act"], json!({"sub": skill_a.client_id}));
    assert_eq!(c["scope"], "read", "only what the agent was granted for B");
    assert_eq!(c["owner"], OWNER);
    assert_eq!(c["cnf"]["jkt"], thumbprint_of(&skill_a.dpop_key).as_str());

    let for_c = skill_b.exchange_ok(&s, &for_b, SKILL_C);
    let c = claims_of(&for_c);
    assert_eq!(c["sub"], agent.client_id.as_str());
    assert_eq!(c["aud"], SKILL_C);
    assert_eq!(
        c["act"],
        json!({"sub": skill_b.client_id, "act": {"sub": skill_a.client_id}})
    );
}

#[test]
fn the_delegation_chain_depth_is_limited() {
    let Delegation { s, agent, skill_a } =
        delegation(&[("PATRON_TOKENS__MAX_EXCHANGE_DEPTH", "1")]);
    let skill_b = Agent::register(&s);
    skill_b.approve(&s, "github:8", json!({}));
    s.add_delegating_skill(SKILL_B, "read write", &skill_b.client_id, &[SKILL_C]);
    s.add_skill(SKILL_C, "read", 120, false, None);
    agent.approve(&s, OWNER, json!({SKILL_C: "read"}));

    let for_a = agent.skill_token(&s, SKILL);
    let for_b = skill_a.exchange_ok(&s, &for_a, SKILL_B);
    let r = skill_b.exchange(&s, &for_b, SKILL_C);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "chain_too_deep");
}

#[test]
fn a_delegate_exchanges_only_toward_audiences_its_skills_operator_allowed() {
    let s = TestServer::with_admin();
    let skill_a = Agent::register(&s);
    skill_a.approve(&s, "github:7", json!({}));
    // Skill A has a delegate client but, by default, no downstream audience.
    let created = s.add_skill(SKILL, "read", 120, false, Some(&skill_a.client_id));
    assert_eq!(created["delegate_audiences"], json!([]));
    s.add_skill(SKILL_B, "read", 120, false, None);
    s.add_skill(SKILL_C, "read", 120, false, None);
    let agent = Agent::approved(&s, json!({SKILL: "read", SKILL_B: "read", SKILL_C: "read"}));
    let for_a = agent.skill_token(&s, SKILL);
    // Tokens for B issued so far (audited issuances), once there are at least `n`.
    let issued_for_b = |n: usize| {
        s.wait_for_audit_count(n, |e| {
            e.event == "token.issue"
                && e.outcome == "success"
                && e.audience.as_deref() == Some(SKILL_B)
        })
    };

    let body = assert_oauth_error(skill_a.exchange(&s, &for_a, SKILL_B), 400, "invalid_target");
    assert_eq!(
        body,
        json!({
            "error": "invalid_target",
            "error_description": "this skill may not delegate to that resource",
        })
    );
    s.expect_refusal_audited("token.issue", "delegation_not_allowed");

    // Allowing another audience does not allow this one.
    s.add_delegating_skill(SKILL, "read", &skill_a.client_id, &[SKILL_C]);
    assert_oauth_error(skill_a.exchange(&s, &for_a, SKILL_B), 400, "invalid_target");
    s.expect_refusals_audited("token.issue", "delegation_not_allowed", 2);
    assert_eq!(issued_for_b(0), 0, "a refused delegation issues nothing");
    assert!(!skill_a.exchange_ok(&s, &for_a, SKILL_C).is_empty());

    // Once the operator lists it, the delegate may.
    let listed = s.add_delegating_skill(SKILL, "read", &skill_a.client_id, &[SKILL_C, SKILL_B]);
    assert_eq!(listed["delegate_audiences"], json!([SKILL_C, SKILL_B]));
    let for_b = skill_a.exchange_ok(&s, &for_a, SKILL_B);
    assert_eq!(claims_of(&for_b)["aud"], SKILL_B);
    assert_eq!(issued_for_b(1), 1);
    // The allow-list binds the delegate only: the agent still exchanges its own token.
    assert!(
        !agent
            .exchange_ok(&s, &agent.agent_token(&s), SKILL_B)
            .is_empty()
    );
}

#[test]
fn an_agent_exchanges_a_token_of_one_skill_for_another_skills_scopes() {
    let files = "https://files.example/api";
    let mail = "https://mail.example/api";
    let s = TestServer::with_admin();
    s.add_skill(files, "files:read files:write", 120, false, None);
    s.add_skill(mail, "mail:read mail:send", 120, false, None);
    let a = Agent::approved(
        &s,
        json!({files: "files:read files:write", mail: "mail:send"}),
    );
    let files_read = access_token(&a.token_ok(
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("resource", files),
            ("scope", "files:read"),
        ],
    ));

    // Into the mail skill: bounded by the mail grant, not by the names `files:read` holds.
    let exchange = |target: &str, scope: &str| {
        a.token(
            &s,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &files_read),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("resource", target),
                ("scope", scope),
            ],
        )
    };
    let r = exchange(mail, "mail:send");
    assert_eq!(r.status(), 200);
    let r: Value = r.json().unwrap();
    assert_eq!(r["scope"], "mail:send");
    let c = claims_of(&access_token(&r));
    assert_eq!(
        (c["aud"].as_str(), c["scope"].as_str()),
        (Some(mail), Some("mail:send"))
    );
    let mail_send = a.exchange_ok(&s, &files_read, mail);
    assert_eq!(
        claims_of(&mail_send)["scope"],
        "mail:send",
        "all of the mail grant"
    );
    // Never beyond the target's grant.
    assert_oauth_error(exchange(mail, "mail:read"), 400, "invalid_scope");
    s.expect_refusal_audited("token.issue", "scope_exceeds_grant");

    // Back into the files skill, the subject token's own scopes bound it again.
    assert_oauth_error(exchange(files, "files:write"), 400, "invalid_scope");
    s.expect_refusals_audited("token.issue", "scope_exceeds_grant", 2);
    let same = a.exchange_ok(&s, &files_read, files);
    assert_eq!(claims_of(&same)["scope"], "files:read");
}

#[test]
fn an_exchanged_token_never_outlives_its_subject() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .env("PATRON_TOKENS__AGENT_TTL_SECS", "60")
        .start();
    s.add_skill(SKILL, "read", 300, false, None);
    let a = Agent::approved(&s, json!({SKILL: "read"}));
    let subject = a.agent_token(&s);
    let sc = claims_of(&subject);
    let r = a.token_ok(
        &s,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("resource", SKILL),
        ],
    );
    let c = claims_of(&access_token(&r));
    let (exp, subject_exp) = (c["exp"].as_i64().unwrap(), sc["exp"].as_i64().unwrap());
    assert!(
        exp <= subject_exp,
        "exchanged exp {exp} > subject exp {subject_exp}"
    );
    assert_eq!(
        exp, subject_exp,
        "capped at the subject's expiry, not 300 s"
    );
    assert!(r["expires_in"].as_i64().unwrap() <= 60, "{r}");
}

#[test]
fn introspection_answers_parties_only() {
    let Delegation { s, agent, skill_a } = delegation(&[]);
    let token = agent.skill_token(&s, SKILL);
    let c = claims_of(&token);

    let info = agent.introspect(&s, &token);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["token_type"], "DPoP");
    for claim in [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "exp",
        "iat",
        "jti",
    ] {
        assert_eq!(info[claim], c[claim], "{claim}: {info}");
    }
    assert_eq!(info["cnf"]["jkt"], c["cnf"]["jkt"]);
    assert!(info.get("patron_chain").is_none(), "{info}");
    s.wait_for_audit(|e| {
        e.event == "token.introspect"
            && e.outcome == "success"
            && e.reason.is_none()
            && e.jti.as_deref() == c["jti"].as_str()
    });

    // The skill the token is for may introspect it.
    let info = skill_a.introspect(&s, &token);
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["aud"], SKILL);

    // Anybody else learns nothing.
    let stranger = Agent::approved(&s, json!({SKILL: "read"}));
    assert_eq!(stranger.introspect(&s, &token), json!({"active": false}));
    s.wait_for_audit(|e| {
        e.event == "token.introspect" && e.reason.as_deref() == Some("introspection_not_party")
    });
    // Unknown and garbage tokens are simply inactive.
    assert_eq!(
        agent.introspect(&s, "not-a-token"),
        json!({"active": false})
    );

    // A bearer token says so.
    let (id, secret) = secret_client(&s, "client_secret_basic", json!({SKILL: "read"}));
    let bearer: Value = s
        .http
        .post(s.url("/token"))
        .basic_auth(&id, Some(&secret))
        .form(&form(&[("grant_type", "client_credentials")]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let info: Value = s
        .http
        .post(s.url("/introspect"))
        .basic_auth(&id, Some(&secret))
        .form(&form(&[("token", &access_token(&bearer))]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["token_type"], "Bearer");

    // Introspection requires client authentication.
    let r = s
        .http
        .post(s.url("/introspect"))
        .form(&form(&[("token", &token)]))
        .send()
        .unwrap();
    assert_oauth_error(r, 401, "invalid_client");
}

#[test]
fn revocation_cascades_to_tokens_exchanged_from_the_revoked_one() {
    let Delegation { s, agent, skill_a } = delegation(&[]);
    let root = agent.agent_token(&s);
    let child = agent.exchange_ok(&s, &root, SKILL);
    let grandchild = skill_a.exchange_ok(&s, &child, SKILL_B);
    let unrelated = agent.skill_token(&s, SKILL);
    for t in [&root, &child, &grandchild] {
        assert_eq!(agent.introspect(&s, t)["active"], true);
    }

    agent.revoke(&s, &root);
    s.wait_for_audit(|e| {
        e.event == "token.revoke"
            && e.outcome == "success"
            && e.reason.is_none()
            && e.jti.as_deref() == claims_of(&root)["jti"].as_str()
    });
    for t in [&root, &child, &grandchild] {
        assert_eq!(agent.introspect(&s, t), json!({"active": false}));
    }
    assert_eq!(
        agent.introspect(&s, &unrelated)["active"],
        true,
        "only the revoked token's descendants go"
    );
    let r = agent.exchange(&s, &root, SKILL);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "token_revoked");

    // RFC 7009 §2.2: 200 whatever the token, and revoking twice is fine.
    agent.revoke(&s, &root);
    agent.revoke(&s, "not-a-token");
    // A stranger cannot revoke somebody else's token.
    let stranger = Agent::approved(&s, json!({}));
    stranger.revoke(&s, &unrelated);
    assert_eq!(agent.introspect(&s, &unrelated)["active"], true);
    s.wait_for_audit(|e| {
        e.event == "token.revoke" && e.reason.as_deref() == Some("revocation_not_party")
    });
}

#[test]
fn suspension_invalidates_issued_tokens_and_resume_restores_service() {
    let s = server_with_skill();
    let a = Agent::approved(&s, json!({SKILL: "read"}));
    let before = a.skill_token(&s, SKILL);
    assert_eq!(a.introspect(&s, &before)["active"], true);

    let out = s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", a.client_id),
        None,
    );
    assert_eq!(out["owner_status"], "suspended");
    s.wait_for_audit(|e| e.event == "agent.suspend" && e.outcome == "success");
    // A suspended client may not introspect at all (its token is checked inactive below,
    // once the agent is resumed).
    let r = a.send(&s, "/introspect", &[("token", &before)], None);
    assert_oauth_error(r, 401, "invalid_client");
    s.expect_refusal_audited("token.introspect", "client_suspended");
    let r = a.token(
        &s,
        &[("grant_type", "client_credentials"), ("resource", SKILL)],
    );
    assert_oauth_error(r, 400, "unauthorized_client");
    s.expect_refusal_audited("token.issue", "agent_suspended");

    let out = s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/resume", a.client_id),
        None,
    );
    assert_eq!(out["owner_status"], "active");
    // Revocation has whole-second granularity: a token issued in the suspension's second
    // counts as issued before it.
    std::thread::sleep(Duration::from_millis(1100));
    let after = a.skill_token(&s, SKILL);
    assert_eq!(a.introspect(&s, &after)["active"], true);
    assert_eq!(
        a.introspect(&s, &before),
        json!({"active": false}),
        "resuming does not revive old tokens"
    );
}

#[test]
fn an_owners_revoke_all_invalidates_every_token_of_their_agents() {
    let s = server_with_skill();
    let a = Agent::approved(&s, json!({SKILL: "read"}));
    let b = Agent::approved(&s, json!({SKILL: "read"}));
    let other = Agent::register(&s);
    other.approve(&s, "github:99", json!({SKILL: "read"}));
    let (ta, tb, tother) = (
        a.skill_token(&s, SKILL),
        b.agent_token(&s),
        other.skill_token(&s, SKILL),
    );

    let out = s.admin_ok("POST", &format!("/admin/owners/{OWNER}/revoke-all"), None);
    assert_eq!(out["owner"], OWNER);
    s.wait_for_audit(|e| e.event == "owner.revoke_all" && e.outcome == "success");
    assert_eq!(a.introspect(&s, &ta), json!({"active": false}));
    assert_eq!(b.introspect(&s, &tb), json!({"active": false}));
    assert_eq!(
        other.introspect(&s, &tother)["active"],
        true,
        "another owner's agents are untouched"
    );
    let r = a.exchange(&s, &tb, SKILL);
    assert_oauth_error(r, 400, "invalid_grant");

    // The agents themselves stay approved: new tokens (issued after that second) work.
    std::thread::sleep(Duration::from_millis(1100));
    let fresh = a.skill_token(&s, SKILL);
    assert_eq!(a.introspect(&s, &fresh)["active"], true);

    let r = s.admin("POST", "/admin/owners/github:123456/revoke-all", None);
    assert_oauth_error(r, 404, "invalid_request");
}

#[test]
fn a_pending_agent_gets_tokens_once_approved() {
    let s = server_with_skill();
    let a = Agent::register(&s);
    let r = a.token(&s, &[("grant_type", "client_credentials")]);
    assert_oauth_error(r, 400, "unauthorized_client");
    s.expect_refusal_audited("token.issue", "agent_pending");
    a.approve(&s, OWNER, json!({SKILL: "read"}));
    let token = a.skill_token(&s, SKILL);
    assert_eq!(claims_of(&token)["scope"], "read");
}

#[test]
fn the_oauth2_crate_gets_a_skill_token_with_client_secret_basic() {
    use openidconnect::core::{CoreClient, CoreTokenType};
    use openidconnect::{
        AuthType, ClientId, ClientSecret, IssuerUrl, JsonWebKeySet, OAuth2TokenResponse, Scope,
        TokenUrl,
    };

    let s = server_with_skill();
    let (id, secret) = secret_client(&s, "client_secret_basic", json!({SKILL: "read write"}));
    let client = CoreClient::new(
        ClientId::new(id.clone()),
        IssuerUrl::new(s.base.clone()).unwrap(),
        JsonWebKeySet::default(),
    )
    .set_client_secret(ClientSecret::new(secret))
    .set_token_uri(TokenUrl::new(s.url("/token")).unwrap())
    .set_auth_type(AuthType::BasicAuth);
    let http = openidconnect::reqwest::blocking::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .add_extra_param("resource", SKILL)
        .request(&http)
        .expect("client_credentials through the oauth2 crate");
    assert_eq!(*response.token_type(), CoreTokenType::Bearer);
    assert_eq!(
        response
            .scopes()
            .map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["read".to_owned()])
    );
    let expires = response.expires_in().expect("expires_in");
    assert!(expires <= Duration::from_secs(120) && expires > Duration::from_secs(100));
    let c = claims_of(response.access_token().secret());
    assert_eq!(c["aud"], SKILL);
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["scope"], "read");
}

const PYJWT_VERIFY: &str = r#"
import json, sys
import jwt
token, jwks, issuer, audience, jkt = sys.argv[1:6]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwt.PyJWKSet.from_json(jwks).keys if k.key_id == kid)
claims = jwt.decode(
    token,
    key.key,
    algorithms=["ES256", "ES384", "EdDSA", "RS256", "PS256"],
    audience=audience,
    issuer=issuer,
    options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
)
assert claims["cnf"]["jkt"] == jkt, f"cnf.jkt {claims['cnf']} != {jkt}"
print(json.dumps(claims))
"#;

fn pyjwt(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg("-c")
        .arg(PYJWT_VERIFY)
        .args(args)
        .output()
        .expect("run python3")
}

#[test]
fn pyjwt_verifies_a_dpop_bound_token_against_the_published_jwks() {
    let ok = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs python3 with PyJWT and cryptography: pip install pyjwt cryptography"
    );

    let s = server_with_skill();
    let a = Agent::approved(&s, json!({SKILL: "read"}));
    let token = a.skill_token(&s, SKILL);
    let jwks = s
        .http
        .get(s.url("/jwks.json"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let jkt = thumbprint_of(&a.dpop_key);

    let out = pyjwt(&[&token, &jwks, &s.base, SKILL, &jkt]);
    assert!(
        out.status.success(),
        "PyJWT refused the token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], a.client_id.as_str());

    // Negative controls: the verifier does check what it is asked to.
    let other_jkt = thumbprint_of(&AgentKey::generate());
    let (token, jwks, base) = (token.as_str(), jwks.as_str(), s.base.as_str());
    for args in [
        [token, jwks, base, SKILL_B, &jkt],
        [token, jwks, "https://evil.example", SKILL, &jkt],
        [token, jwks, base, SKILL, &other_jkt],
    ] {
        let out = pyjwt(&args);
        assert!(!out.status.success(), "PyJWT accepted {:?}", &args[2..]);
    }
}

#[test]
fn writes_do_not_fail_while_the_audit_log_commits_beside_them() {
    // Every audit event is committed at once (batch size 1), so the audit writer commits
    // continuously while revocations (which read, then insert) run on the main writer.
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .env("PATRON_AUDIT__BATCH_SIZE", "1")
        .start();
    s.add_skill(SKILL, "read", 120, false, None);
    let a = Agent::approved(&s, json!({SKILL: "read"}));
    let tokens: Vec<String> = (0..40).map(|_| a.agent_token(&s)).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let failures = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                a.introspect(&s, &tokens[0]);
            }
        });
        let mut failures = Vec::new();
        for t in &tokens {
            let r = a.send(&s, "/revoke", &[("token", t)], None);
            if r.status() != 200 {
                failures.push(format!("{} {}", r.status(), r.text().unwrap_or_default()));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of {} revocations failed: {:?}\n(SQLite: a deferred write transaction that \
         reads first cannot take the write lock once another connection has committed; \
         the writers must BEGIN IMMEDIATE)",
        failures.len(),
        tokens.len(),
        failures.first()
    );
}
