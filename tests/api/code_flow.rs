//! The authorization code flow (RFC 6749 §4.1 with PKCE, RFC 8707, RFC 9207) and refresh
//! tokens, end to end: a registered client, a person at the development login, the consent
//! page, the code exchange and the refresh grant, and every refusal the rules name.

use serde_json::json;

use crate::helpers::code_flow::{CodeClient, Pkce, REDIRECT, ok_json, redirect_params};
use crate::helpers::console::{Browser, console_builder};
use crate::helpers::{
    AgentKey, SKILL, TestServer, assert_oauth_error, claims_of, dpop_claims, dpop_proof_with,
    thumbprint_of,
};

const MAIL: &str = "https://mail.example/api";

fn server() -> TestServer {
    let s = console_builder().start();
    s.add_skill(SKILL, "files:read files:write", 120, false, None);
    s
}

/// A public client that alice approved for the files skill: the client, her browser, the
/// PKCE pair and the code.
fn alices_code(s: &TestServer) -> (CodeClient, Browser<'_>, Pkce, String) {
    let app = CodeClient::public(s);
    let alice = Browser::dev_login(s, "alice");
    let pkce = Pkce::new();
    let code = alice.authorize_code(&app.authorize_path(&[SKILL], &pkce, &[]), &[SKILL]);
    (app, alice, pkce, code)
}

/// An introspection by a confidential party to the token (the skill's own client).
fn skill_introspector(s: &TestServer) -> crate::helpers::Agent {
    let a = crate::helpers::Agent::approved(s, json!({}));
    s.put_skill(json!({
        "audience": SKILL, "name": "Files", "scopes": "files:read files:write",
        "ttl_secs": 120, "require_dpop": false, "client_id": a.client_id, "grantable_by": ["any"],
    }));
    a
}

#[test]
fn a_person_approves_a_new_agent_which_gets_person_tokens_and_refreshes_them() {
    let s = server();
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    let path = app.authorize_path(&[SKILL], &pkce, &[("scope", "files:read")]);

    let consent = alice.get(&path).expect(200);
    assert!(consent.contains("Code flow app"), "{}", consent.body);
    assert!(
        consent.contains("claims-agent"),
        "a new agent is claimed: {}",
        consent.body
    );
    assert!(consent.contains("files:read"));
    assert!(
        !consent.contains("files:write"),
        "only the requested scope is offered"
    );

    let code = alice.authorize_code(&path, &[SKILL]);
    assert_eq!(
        s.owner_of(&app.client_id).as_deref(),
        Some("dev:alice"),
        "approving claimed the agent"
    );

    let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "files:read");
    let claims = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "dev:alice", "RFC 9068: sub is the person");
    assert_eq!(claims["client_id"], app.client_id.as_str());
    assert_eq!(claims["aud"], SKILL);
    assert_eq!(claims["owner"], "dev:alice");
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();

    let again = app.refresh_ok(&s, &refresh, None);
    let rotated = again["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, refresh, "rotated on every use");
    assert_eq!(
        claims_of(again["access_token"].as_str().unwrap())["sub"],
        "dev:alice"
    );

    // The dashboard lists the app with a revoke button.
    let dash = alice.get("/console").expect(200);
    assert!(
        dash.contains("Apps you have authorized") && dash.contains(&app.client_id),
        "{}",
        dash.body
    );
    s.wait_for_audit(|e| {
        e.event == "consent.grant" && e.client_id.as_deref() == Some(app.client_id.as_str())
    });
}

#[test]
fn a_covering_consent_is_not_asked_again_and_a_wider_request_is() {
    let s = server();
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    alice.authorize_code(
        &app.authorize_path(&[SKILL], &pkce, &[("scope", "files:read")]),
        &[SKILL],
    );

    let second = alice.get(&app.authorize_path(&[SKILL], &pkce, &[("scope", "files:read")]));
    assert_eq!(second.status, 302, "no second consent: {}", second.body);
    let q = redirect_params(&second);
    assert!(q.contains_key("code") && q["iss"] == s.base, "{q:?}");

    let wider = alice.get(&app.authorize_path(&[SKILL], &pkce, &[]));
    assert_eq!(wider.status, 200, "files:write was never consented");
    assert!(wider.contains("consent-form"));
}

#[test]
fn pkce_is_required_and_plain_is_refused_by_redirect_with_iss() {
    let s = server();
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    for (extra, reason) in [
        (
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "pkce_missing",
        ),
        (vec![("code_challenge_method", "plain")], "pkce_plain"),
        (vec![("code_challenge_method", "")], "pkce_plain"),
    ] {
        let page = alice.get(&app.authorize_path(&[SKILL], &pkce, &extra));
        assert_eq!(page.status, 302, "{reason}: {}", page.body);
        let q = redirect_params(&page);
        assert_eq!(q["error"], "invalid_request", "{q:?}");
        assert!(!q["error_description"].is_empty());
        assert_eq!(q["state"], "xyz");
        assert_eq!(q["iss"], s.base);
        assert!(page.location.as_deref().unwrap().starts_with(REDIRECT));
        s.expect_refusal_audited("authorize", reason);
    }
}

#[test]
fn an_unregistered_redirect_uri_or_unknown_client_is_never_redirected_to() {
    let s = server();
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    let evil = alice.get(&app.authorize_path(
        &[SKILL],
        &pkce,
        &[("redirect_uri", "https://evil.example/cb")],
    ));
    assert_eq!(evil.status, 400, "{}", evil.body);
    assert!(
        evil.location.is_none(),
        "no redirect to an unregistered URI"
    );
    assert!(
        evil.contains("redirect_uri does not match"),
        "{}",
        evil.body
    );
    s.expect_refusal_audited("authorize", "redirect_uri_mismatch");

    let unknown = alice.get(&app.authorize_path(&[SKILL], &pkce, &[("client_id", "agt_nobody")]));
    assert_eq!(unknown.status, 400);
    assert!(unknown.location.is_none());
    s.expect_refusal_audited("authorize", "client_unknown");
}

#[test]
fn a_loopback_redirect_uri_may_use_any_port() {
    let s = server();
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    let port_uri = "http://127.0.0.1:49152/callback";
    let path = app.authorize_path(&[SKILL], &pkce, &[("redirect_uri", port_uri)]);
    let page = alice.consent(&path, "approve", &[SKILL]);
    assert!(
        page.location.as_deref().unwrap().starts_with(port_uri),
        "{:?}",
        page.location
    );
    let code = redirect_params(&page)["code"].clone();
    let tokens = ok_json(app.exchange(
        &s,
        &code,
        Some(&pkce.verifier),
        &[("redirect_uri", port_uri)],
        None,
    ));
    assert!(tokens["access_token"].is_string());
}

#[test]
fn the_code_is_bound_to_its_verifier_client_and_redirect_uri() {
    let s = server();
    let app = CodeClient::public(&s);
    let other = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    let code = alice.authorize_code(&app.authorize_path(&[SKILL], &pkce, &[]), &[SKILL]);
    // The other client is active too (alice approved it), so only the binding refuses.
    alice.authorize_code(&other.authorize_path(&[SKILL], &Pkce::new(), &[]), &[SKILL]);

    let wrong = Pkce::new();
    let r = app.exchange(&s, &code, Some(&wrong.verifier), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "pkce_mismatch");

    let r = other.exchange(&s, &code, Some(&pkce.verifier), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "code_client_mismatch");

    let r = app.exchange(
        &s,
        &code,
        Some(&pkce.verifier),
        &[("redirect_uri", "http://127.0.0.1/other")],
        None,
    );
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "code_redirect_mismatch");

    let r = app.exchange(&s, &code, None, &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "pkce_verifier_missing");

    // The code's id with another secret is no code at all.
    let (id, _) = code.split_once('.').unwrap();
    let forged = format!("{id}.{}", "A".repeat(43));
    let r = app.exchange(&s, &forged, Some(&pkce.verifier), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "code_unknown");

    // None of the refusals used the code up.
    app.exchange_ok(&s, &code, &pkce.verifier, &[]);
}

#[test]
fn a_reused_code_revokes_what_it_issued() {
    let s = server();
    let introspector = skill_introspector(&s);
    let (app, _alice, pkce, code) = alices_code(&s);
    let first = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
    let token = first["access_token"].as_str().unwrap();
    assert_eq!(introspector.introspect(&s, token)["active"], true);

    let r = app.exchange(&s, &code, Some(&pkce.verifier), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "code_reused");
    assert_eq!(
        introspector.introspect(&s, token)["active"],
        false,
        "the first token is revoked"
    );
    let r = app.refresh(&s, first["refresh_token"].as_str().unwrap(), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "refresh_revoked");
}

#[test]
fn a_reused_refresh_token_revokes_the_whole_family() {
    let s = server();
    let introspector = skill_introspector(&s);
    let (app, _alice, pkce, code) = alices_code(&s);
    let first = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
    let old = first["refresh_token"].as_str().unwrap();
    let second = app.refresh_ok(&s, old, None);
    let latest_access = second["access_token"].as_str().unwrap();
    assert_eq!(introspector.introspect(&s, latest_access)["active"], true);

    let r = app.refresh(&s, old, &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "refresh_reused");

    let r = app.refresh(&s, second["refresh_token"].as_str().unwrap(), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    assert_eq!(
        introspector.introspect(&s, latest_access)["active"],
        false,
        "the family's access tokens are revoked"
    );
}

#[test]
fn the_kill_switch_and_a_revoked_consent_end_refresh_tokens() {
    let s = server();
    let (app, alice, pkce, code) = alices_code(&s);
    let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[]);

    let done = alice.submit_from("/console", "/console/kill-switch", &[("confirm", "yes")]);
    assert!(done.status < 400, "{}", done.body);
    let r = app.refresh(&s, tokens["refresh_token"].as_str().unwrap(), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "refresh_revoked");

    // A fresh grant, then the consent is revoked from the dashboard.
    let pkce = Pkce::new();
    let path = app.authorize_path(&[SKILL], &pkce, &[]);
    let page = alice.get(&path);
    assert_eq!(page.status, 302, "the consent still covers the request");
    let code = redirect_params(&page)["code"].clone();
    let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
    alice
        .submit_from(
            "/console",
            "/console/consents/revoke",
            &[("client_id", &app.client_id)],
        )
        .expect(303);
    s.wait_for_audit(|e| e.event == "consent.revoke");
    let r = app.refresh(&s, tokens["refresh_token"].as_str().unwrap(), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    assert!(
        alice.get(&path).contains("consent-form"),
        "asked again after the revoke"
    );
}

#[test]
fn consent_is_limited_to_what_the_persons_policies_admit() {
    let s = server();
    s.put_skill(json!({
        "audience": MAIL, "name": "Mail", "scopes": "mail:send", "ttl_secs": 120,
        "require_dpop": false, "grantable_by": ["owner:dev:bob"],
    }));
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();

    // Only mail, which alice may not grant: refused at once.
    let page = alice.get(&app.authorize_path(&[MAIL], &pkce, &[]));
    assert_eq!(page.status, 302);
    let q = redirect_params(&page);
    assert_eq!(q["error"], "access_denied", "{q:?}");
    assert_eq!(q["iss"], s.base);
    s.expect_refusal_audited("authorize", "grant_not_permitted");

    // Files and mail: files is offered, mail listed as not grantable; a forged mail grant
    // in the form is not granted.
    let path = app.authorize_path(&[SKILL, MAIL], &pkce, &[]);
    let consent = alice.get(&path).expect(200);
    assert!(
        consent.contains(MAIL) && consent.contains("do not let you grant"),
        "{}",
        consent.body
    );
    let code = alice.authorize_code(&path, &[SKILL, MAIL]);
    let r = app.exchange(&s, &code, Some(&pkce.verifier), &[("resource", MAIL)], None);
    assert_oauth_error(r, 400, "invalid_target");
    s.expect_refusal_audited("token.issue", "resource_not_granted");
    let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[("resource", SKILL)]);
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["aud"],
        SKILL
    );
}

#[test]
fn the_person_may_deny_and_an_agent_of_someone_else_is_refused() {
    let s = server();
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    let page = alice.consent(&app.authorize_path(&[SKILL], &pkce, &[]), "deny", &[]);
    assert_eq!(redirect_params(&page)["error"], "access_denied");
    s.expect_refusal_audited("authorize", "consent_denied");
    assert_eq!(s.owner_of(&app.client_id), None, "denying claims nothing");

    alice.authorize_code(&app.authorize_path(&[SKILL], &pkce, &[]), &[SKILL]);
    let bob = Browser::dev_login(&s, "bob");
    let page = bob.get(&app.authorize_path(&[SKILL], &pkce, &[]));
    assert_eq!(redirect_params(&page)["error"], "access_denied");
    s.expect_refusal_audited("authorize", "agent_owned_by_other");
}

#[test]
fn an_anonymous_visitor_is_sent_to_login_and_back() {
    let s = server();
    let app = CodeClient::public(&s);
    let pkce = Pkce::new();
    let path = app.authorize_path(&[SKILL], &pkce, &[]);
    let page = Browser::anonymous(&s).get(&path);
    assert_eq!(page.status, 303);
    let to = page.location.unwrap();
    let login = url::Url::parse(&s.url(&to)).unwrap();
    let back: String = login
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(back, path, "the login returns to the authorization request");
}

#[test]
fn a_consent_post_needs_the_sessions_csrf_token() {
    let s = server();
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    let path = app.authorize_path(&[SKILL], &pkce, &[]);
    let page = alice.post(
        &path,
        &[("csrf", "forged"), ("action", "approve"), ("grant", SKILL)],
    );
    assert_eq!(page.status, 403);
    assert_eq!(s.owner_of(&app.client_id), None);
}

#[test]
fn unknown_resources_and_scopes_are_refused_with_their_codes() {
    let s = server();
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    let q =
        redirect_params(&alice.get(&app.authorize_path(&["https://nowhere.example/"], &pkce, &[])));
    assert_eq!(q["error"], "invalid_target", "{q:?}");
    let q = redirect_params(&alice.get(&app.authorize_path(&[], &pkce, &[])));
    assert_eq!(q["error"], "invalid_target", "{q:?}");
    let q =
        redirect_params(&alice.get(&app.authorize_path(&[SKILL], &pkce, &[("scope", "admin")])));
    assert_eq!(q["error"], "invalid_scope", "{q:?}");
    let q = redirect_params(&alice.get(&app.authorize_path(
        &[SKILL],
        &pkce,
        &[("response_type", "token")],
    )));
    assert_eq!(q["error"], "unsupported_response_type", "{q:?}");
    let cc = crate::helpers::Agent::register(&s);
    let path = format!(
        "/authorize?response_type=code&client_id={}&state=xyz&code_challenge={}&code_challenge_method=S256&resource={SKILL}",
        cc.client_id, pkce.challenge
    );
    let page = alice.get(&path);
    assert_eq!(
        page.status, 400,
        "a client with no redirect URI gets an error page: {}",
        page.body
    );
    assert!(page.location.is_none());
}

#[test]
fn a_public_clients_refresh_token_is_bound_to_its_dpop_key() {
    let s = server();
    let (app, _alice, pkce, code) = alices_code(&s);
    let key = AgentKey::generate();
    let token_url = s.url("/token");
    let proof = dpop_proof_with(&key, dpop_claims("POST", &token_url));
    let tokens = ok_json(app.exchange(&s, &code, Some(&pkce.verifier), &[], Some(&proof)));
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(
        claims_of(tokens["access_token"].as_str().unwrap())["cnf"]["jkt"],
        thumbprint_of(&key)
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let r = app.refresh(&s, refresh, &[], None);
    assert_oauth_error(r, 400, "invalid_dpop_proof");
    s.expect_refusal_audited("token.issue", "dpop_required");
    let other = dpop_proof_with(&AgentKey::generate(), dpop_claims("POST", &token_url));
    let r = app.refresh(&s, refresh, &[], Some(&other));
    assert_oauth_error(r, 400, "invalid_dpop_proof");
    let proof = dpop_proof_with(&key, dpop_claims("POST", &token_url));
    let again = app.refresh_ok(&s, refresh, Some(&proof));
    assert_eq!(again["token_type"], "DPoP");
}

#[test]
fn a_confidential_client_authenticates_its_code_exchange() {
    let s = server();
    let app = CodeClient::with(
        &s,
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
    );
    assert!(app.secret.is_some());
    let alice = Browser::dev_login(&s, "alice");
    let pkce = Pkce::new();
    let code = alice.authorize_code(&app.authorize_path(&[SKILL], &pkce, &[]), &[SKILL]);
    let bare = CodeClient {
        client_id: app.client_id.clone(),
        secret: None,
    };
    let r = bare.exchange(&s, &code, Some(&pkce.verifier), &[], None);
    assert_oauth_error(r, 401, "invalid_client");
    let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
    assert!(tokens["refresh_token"].is_string());
    // RFC 7009: the client revokes its refresh token, and the grant ends.
    let r = s
        .http
        .post(s.url("/revoke"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(&[("token", tokens["refresh_token"].as_str().unwrap())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app.refresh(&s, tokens["refresh_token"].as_str().unwrap(), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
}

#[test]
fn discovery_advertises_the_code_flow() {
    let s = server();
    let m: serde_json::Value = s.metadata();
    assert_eq!(m["authorization_endpoint"], s.url("/authorize"));
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    let grants = m["grant_types_supported"].as_array().unwrap();
    assert!(
        grants.contains(&json!("authorization_code")) && grants.contains(&json!("refresh_token"))
    );
    assert!(
        m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );
}

#[test]
fn a_suspended_agent_is_refused_at_the_authorization_and_token_endpoints() {
    let s = server();
    let (app, alice, pkce, code) = alices_code(&s);
    let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", app.client_id),
        None,
    );

    let q = redirect_params(&alice.get(&app.authorize_path(&[SKILL], &pkce, &[])));
    assert_eq!(q["error"], "unauthorized_client", "{q:?}");
    s.expect_refusal_audited("authorize", "agent_suspended");
    let r = app.refresh(&s, tokens["refresh_token"].as_str().unwrap(), &[], None);
    assert_oauth_error(r, 400, "unauthorized_client");
    s.expect_refusal_audited("token.issue", "agent_suspended");
}

#[test]
fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let s = server();
    let (app, _alice, pkce, code) = alices_code(&s);
    let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[("scope", "files:write")]);
    assert_eq!(
        tokens["scope"], "files:write",
        "a code exchange may narrow too"
    );
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let narrowed = ok_json(app.refresh(&s, refresh, &[("scope", "files:read")], None));
    assert_eq!(narrowed["scope"], "files:read");
    assert_eq!(
        claims_of(narrowed["access_token"].as_str().unwrap())["scope"],
        "files:read"
    );
    let r = app.refresh(
        &s,
        narrowed["refresh_token"].as_str().unwrap(),
        &[("scope", "files:admin")],
        None,
    );
    assert_oauth_error(r, 400, "invalid_scope");
    s.expect_refusal_audited("token.issue", "scope_exceeds_grant");
    // The refusal changed nothing: the same refresh token still works.
    let again = app.refresh_ok(&s, narrowed["refresh_token"].as_str().unwrap(), None);
    assert_eq!(again["scope"], "files:read files:write");
}

#[test]
fn a_refresh_token_unused_for_its_idle_lifetime_expires() {
    let s = console_builder()
        .env("PATRON_TOKENS__REFRESH_IDLE_SECS", "1")
        .start();
    s.add_skill(SKILL, "files:read files:write", 120, false, None);
    let (app, _alice, pkce, code) = alices_code(&s);
    let tokens = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
    // Its idle lifetime is one second (Unix seconds): two seconds later it has passed.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = app.refresh(&s, tokens["refresh_token"].as_str().unwrap(), &[], None);
    assert_oauth_error(r, 400, "invalid_grant");
    s.expect_refusal_audited("token.issue", "refresh_expired");
}
