//! The admin API: disabled without a token, bearer-protected, optionally on its own listener.

use std::process::Command;

use patron::store::models::skills;
use serde_json::json;

use crate::helpers::{TestServer, assert_oauth_error};

const TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

fn skill() -> serde_json::Value {
    json!({"audience": "https://skill.example/api", "name": "Skill", "scopes": "read"})
}

#[test]
fn the_admin_api_is_absent_without_a_configured_token() {
    let s = TestServer::spawn();
    let r = s
        .http
        .post(s.url("/admin/skills"))
        .bearer_auth(TOKEN)
        .json(&skill())
        .send()
        .unwrap();
    assert_oauth_error(r, 404, "invalid_request");
}

#[test]
fn a_missing_or_wrong_admin_token_is_refused_and_audited() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", TOKEN)
        .start();
    let r = s
        .http
        .post(s.url("/admin/skills"))
        .json(&skill())
        .send()
        .unwrap();
    assert_oauth_error(r, 401, "invalid_token");
    let r = s
        .http
        .post(s.url("/admin/skills"))
        .bearer_auth("x".repeat(38))
        .json(&skill())
        .send()
        .unwrap();
    assert_oauth_error(r, 401, "invalid_token");
    s.expect_refusal_audited("admin.auth", "admin_token_invalid");
    let r = s
        .http
        .post(s.url("/admin/skills"))
        .bearer_auth(TOKEN)
        .json(&skill())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[test]
fn bad_admin_input_is_refused_with_a_reason() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", TOKEN)
        .start();
    let post = |path: &str, body: serde_json::Value| {
        s.http
            .post(s.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .unwrap()
    };
    assert_oauth_error(
        post(
            "/admin/skills",
            json!({"audience": "not a uri", "name": "x", "scopes": "a"}),
        ),
        400,
        "invalid_request",
    );
    assert_oauth_error(
        post(
            "/admin/skills",
            json!({"audience": "https://a.example", "name": "x", "scopes": "a", "ttl_secs": 999_999}),
        ),
        400,
        "invalid_request",
    );
    assert_oauth_error(
        post(
            "/admin/skills",
            json!({"audience": "https://a.example", "name": "x", "scopes": "a", "bogus": 1}),
        ),
        400,
        "invalid_request",
    );
    assert_oauth_error(
        post(
            "/admin/agents/agt_missing/approve",
            json!({"owner": "github:1"}),
        ),
        404,
        "invalid_request",
    );
    assert_oauth_error(
        post(
            "/admin/agents/agt_missing/approve",
            json!({"owner": "mallory"}),
        ),
        400,
        "invalid_request",
    );
    s.expect_refusal_audited("agent.approve", "owner_id_invalid");
    assert_oauth_error(
        post("/admin/owners/github:999/revoke-all", json!({})),
        404,
        "invalid_request",
    );
}

#[test]
fn with_its_own_listener_the_admin_api_answers_only_there() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", TOKEN)
        .env("PATRON_ADMIN__LISTEN", "127.0.0.1:0")
        .start();
    let admin = s
        .startup_line
        .split("admin API on ")
        .nth(1)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no admin address in: {}", s.startup_line))
        .to_owned();
    let r = s
        .http
        .post(s.url("/admin/skills"))
        .bearer_auth(TOKEN)
        .json(&skill())
        .send()
        .unwrap();
    assert_oauth_error(r, 404, "invalid_request");
    let r = s
        .http
        .post(format!("{admin}/admin/skills"))
        .bearer_auth(TOKEN)
        .json(&skill())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// The admin listener's base URL, from the startup line.
fn admin_base(s: &TestServer) -> String {
    s.startup_line
        .split("admin API on ")
        .nth(1)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no admin address in: {}", s.startup_line))
        .to_owned()
}

#[test]
fn every_admin_request_is_audited_with_its_action_target_and_listener() {
    // Arrange: the admin API on its own listener.
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", TOKEN)
        .env("PATRON_ADMIN__LISTEN", "127.0.0.1:0")
        .start();
    let admin = admin_base(&s);
    let post = |base: &str, path: &str, token: &str, body: serde_json::Value| {
        s.http
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap()
    };

    // Act and assert, one request at a time.
    // A success on the admin listener, with the body's target.
    assert_eq!(post(&admin, "/admin/skills", TOKEN, skill()).status(), 201);
    let ev = s.wait_for_audit(|r| r.event == "admin.skill.put");
    assert_eq!(ev.outcome, "success");
    assert_eq!(ev.audience.as_deref(), Some("https://skill.example/api"));
    assert_eq!(
        ev.detail.as_deref(),
        Some("admin.skill.put via admin listener")
    );
    // A listing (no target).
    let r = s
        .http
        .get(format!("{admin}/admin/skills"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let ev = s.wait_for_audit(|r| r.event == "admin.skill.list");
    assert_eq!(ev.outcome, "success");
    // An unknown agent.
    assert_oauth_error(
        post(
            &admin,
            "/admin/agents/agt_missing/suspend",
            TOKEN,
            json!({}),
        ),
        404,
        "invalid_request",
    );
    let ev = s.wait_for_audit(|r| r.event == "admin.agent.suspend");
    assert_eq!(ev.outcome, "failure");
    assert_eq!(ev.reason.as_deref(), Some("client_unknown"));
    assert_eq!(ev.client_id.as_deref(), Some("agt_missing"));
    assert_eq!(
        ev.detail.as_deref(),
        Some("admin.agent.suspend via admin listener")
    );
    // A bad body.
    assert_oauth_error(
        post(
            &admin,
            "/admin/agents/agt_x/approve",
            TOKEN,
            json!({"owner": "github:1", "extra": true}),
        ),
        400,
        "invalid_request",
    );
    let ev = s.wait_for_audit(|r| r.event == "admin.agent.approve");
    assert_eq!(ev.reason.as_deref(), Some("admin_body_invalid"));
    assert_eq!(ev.client_id.as_deref(), Some("agt_x"));
    // A wrong admin token names what it tried.
    assert_oauth_error(
        post(
            &admin,
            "/admin/owners/github:7/revoke-all",
            "wrong",
            json!({}),
        ),
        401,
        "invalid_token",
    );
    let ev = s.wait_for_audit(|r| r.event == "admin.auth");
    assert_eq!(ev.reason.as_deref(), Some("admin_token_invalid"));
    assert_eq!(ev.owner_id.as_deref(), Some("github:7"));
    assert_eq!(
        ev.detail.as_deref(),
        Some("admin.owner.revoke_all via admin listener")
    );
    // The right token on the public listener, where the admin API does not exist.
    assert_oauth_error(
        post(&s.base, "/admin/agents/agt_y/resume", TOKEN, json!({})),
        404,
        "invalid_request",
    );
    let ev = s.wait_for_audit(|r| {
        r.event == "admin.auth" && r.reason.as_deref() == Some("admin_api_disabled")
    });
    assert_eq!(ev.client_id.as_deref(), Some("agt_y"));
    assert_eq!(
        ev.detail.as_deref(),
        Some("admin.agent.resume via public listener")
    );
    // A path that is no admin action.
    assert_oauth_error(
        post(&admin, "/admin/nothing-here", TOKEN, json!({})),
        404,
        "invalid_request",
    );
    let ev = s.wait_for_audit(|r| r.event == "admin.unknown");
    assert_eq!(ev.reason.as_deref(), Some("admin_route_unknown"));
    assert_eq!(
        ev.detail.as_deref(),
        Some("/admin/nothing-here via admin listener, status 404")
    );
    // Every request above is one admin event.
    let n = s.wait_for_audit_count(7, |r| r.event.starts_with("admin."));
    assert_eq!(n, 7);
}

#[test]
fn a_skills_delegate_audiences_are_validated_listed_and_set_by_the_cli() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", TOKEN)
        .start();
    let put = |delegates: serde_json::Value| {
        let mut body = skill();
        body["delegate_audiences"] = delegates;
        s.http
            .post(s.url("/admin/skills"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .unwrap()
    };
    let many: Vec<String> = (0..21).map(|i| format!("https://s{i}.example/")).collect();
    for (delegates, reason) in [
        (json!(["mail.example"]), "skill_delegate_invalid"),
        (
            json!(["https://mail.example/a b"]),
            "skill_delegate_invalid",
        ),
        (json!(["https://mail.example/#x"]), "skill_delegate_invalid"),
        (json!(many), "skill_delegates_too_many"),
    ] {
        assert_oauth_error(put(delegates), 400, "invalid_request");
        s.expect_refusal_audited("skill.put", reason);
    }
    // A list, not a string.
    assert_oauth_error(put(json!("https://mail.example/")), 400, "invalid_request");
    let found = |aud: &str| skills::find(&mut s.db.connect(), aud).expect("read skill");
    assert_eq!(found("https://skill.example/api"), None, "nothing stored");

    // The CLI's repeatable --delegate-to sets the list; the API lists it.
    let out = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args([
            "admin",
            "skill",
            "add",
            "--audience",
            "https://skill.example/api",
        ])
        .args([
            "--name",
            "Skill",
            "--scopes",
            "read",
            "--grantable-by",
            "any",
        ])
        .args(["--delegate-to", "https://mail.example/api"])
        .args(["--delegate-to", "https://b.example/"])
        .env_clear()
        .env("PATRON_ADMIN_TOKEN", TOKEN)
        .env("PATRON_SERVER", &s.base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = found("https://skill.example/api").expect("skill stored");
    assert_eq!(
        stored.delegate_audiences,
        "https://mail.example/api https://b.example/"
    );
    let listed = s
        .http
        .get(s.url("/admin/skills"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap();
    assert_eq!(
        listed["skills"][0]["delegate_audiences"],
        json!(["https://mail.example/api", "https://b.example/"])
    );
    // Replacing the skill without the list clears it: the default allows no delegation.
    assert_eq!(put(json!([])).status(), 201);
    assert_eq!(
        found("https://skill.example/api")
            .unwrap()
            .delegate_audiences,
        ""
    );
}

#[test]
fn a_malformed_client_id_in_an_admin_path_is_refused_and_audited() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", TOKEN)
        .start();
    for action in ["suspend", "resume"] {
        let r = s
            .http
            .post(s.url(&format!("/admin/agents/bad%20id%3B/{action}")))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        let body = assert_oauth_error(r, 400, "invalid_request");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or_default()
                .contains("client_id"),
            "{body}"
        );
        s.expect_refusal_audited(&format!("admin.agent.{action}"), "client_id_invalid");
    }
}
