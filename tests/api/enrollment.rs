//! Registration with an enrollment token (RFC 7591 initial access token) minted for an owner.

use std::process::Command;

use diesel::prelude::*;
use patron::store::schema::{clients, grants};
use serde_json::Value;

use crate::helpers::{AgentKey, TestServer, agent_metadata, assert_oauth_error};

fn mint(s: &TestServer, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(["enrollment", "create"])
        .args(args)
        .env_clear()
        .env("PATRON_DATABASE_URL", s.db.url())
        .current_dir(s.db.workdir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mint failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with("patron_iat_"))
        .unwrap_or_else(|| panic!("no token in: {stdout}"))
        .to_owned()
}

#[test]
fn an_enrollment_token_makes_the_agent_active_for_its_owner_with_preset_grants() {
    let s = TestServer::spawn();
    let token = mint(
        &s,
        &[
            "--owner",
            "github:4242",
            "--grant",
            "https://skill.example/mcp=read,write",
        ],
    );
    let key = AgentKey::generate();
    let resp = s
        .http
        .post(s.url("/register"))
        .bearer_auth(&token)
        .json(&agent_metadata(&key))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let r: Value = resp.json().unwrap();
    assert_eq!(r["owner_status"], "active");
    assert!(r.get("user_code").is_none());

    let mut c = s.db.connect();
    let owner: Option<String> = clients::table
        .select(clients::owner_id)
        .first(&mut c)
        .unwrap();
    assert_eq!(owner.as_deref(), Some("github:4242"));
    let g: Vec<(String, String)> = grants::table
        .select((grants::audience, grants::scopes))
        .load(&mut c)
        .unwrap();
    assert_eq!(
        g,
        vec![(
            "https://skill.example/mcp".to_owned(),
            "read write".to_owned()
        )]
    );
    let ev = s.wait_for_audit(|e| e.event == "client.register" && e.outcome == "success");
    assert_eq!(ev.owner_id.as_deref(), Some("github:4242"));

    // Single use by default.
    let resp = s
        .http
        .post(s.url("/register"))
        .bearer_auth(&token)
        .json(&agent_metadata(&key))
        .send()
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
    s.expect_refusal_audited("client.register", "enrollment_token_exhausted");
    assert_eq!(s.count_clients(), 1);
}

#[test]
fn unknown_and_expired_enrollment_tokens_are_refused() {
    let s = TestServer::spawn();
    let key = AgentKey::generate();
    let resp = s
        .http
        .post(s.url("/register"))
        .bearer_auth("patron_iat_bogus")
        .json(&agent_metadata(&key))
        .send()
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
    s.expect_refusal_audited("client.register", "enrollment_token_unknown");

    let token = mint(&s, &["--owner", "google:abc", "--ttl", "1"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let resp = s
        .http
        .post(s.url("/register"))
        .bearer_auth(&token)
        .json(&agent_metadata(&key))
        .send()
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
    s.expect_refusal_audited("client.register", "enrollment_token_expired");
    assert_eq!(s.count_clients(), 0);
}

#[test]
fn closed_registration_requires_an_enrollment_token() {
    let s = TestServer::builder()
        .env("PATRON_REGISTRATION__OPEN", "false")
        .start();
    let key = AgentKey::generate();
    assert_oauth_error(s.register(&agent_metadata(&key)), 401, "invalid_token");
    s.expect_refusal_audited("client.register", "initial_access_token_required");
    let token = mint(&s, &["--owner", "github:1", "--uses", "2"]);
    for _ in 0..2 {
        let resp = s
            .http
            .post(s.url("/register"))
            .bearer_auth(&token)
            .json(&agent_metadata(&key))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
}
