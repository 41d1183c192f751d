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
        .args(["--name", "Skill", "--scopes", "read"])
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
