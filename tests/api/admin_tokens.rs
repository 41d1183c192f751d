//! Revocation by `jti` through the admin API (`POST /admin/tokens/revoke`) and the
//! `patron admin token revoke` command.

use std::process::Command;

use diesel::prelude::*;
use patron::store::schema::revoked_tokens;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Agent, SKILL, TestServer, assert_oauth_error, claims_of, now};

/// `keys.max_token_lifetime_secs` plus `validation.clock_skew_secs` by default.
const LONGEST_LIFETIME_WITH_SKEW: i64 = 3600 + 60;

fn revoke_jti(s: &TestServer, body: Value) -> reqwest::blocking::Response {
    s.admin("POST", "/admin/tokens/revoke", Some(body))
}

/// The stored revocations: `(jti, expires_at, revoked_at)`.
fn revocations(s: &TestServer) -> Vec<(String, i64, i64)> {
    let mut c = s.db.connect();
    revoked_tokens::table
        .select((
            revoked_tokens::jti,
            revoked_tokens::expires_at,
            revoked_tokens::revoked_at,
        ))
        .load(&mut c)
        .unwrap()
}

#[test]
fn revoking_a_live_tokens_jti_stops_it_and_the_tokens_exchanged_from_it() {
    // Arrange: an agent token, and a skill token exchanged from it.
    let s = TestServer::with_admin();
    s.add_skill(SKILL, "read", 120, false, None);
    let agent = Agent::approved(&s, json!({SKILL: "read"}));
    let agent_token = agent.agent_token(&s);
    let exchanged = agent.exchange_ok(&s, &agent_token, SKILL);
    assert_eq!(agent.introspect(&s, &agent_token)["active"], true);
    assert_eq!(agent.introspect(&s, &exchanged)["active"], true);
    let jti = claims_of(&agent_token)["jti"].as_str().unwrap().to_owned();

    // Act
    let r = revoke_jti(&s, json!({ "jti": jti }));

    // Assert
    assert_eq!(r.status(), 200);
    let out: Value = r.json().unwrap();
    assert_eq!(out["jti"], jti.as_str());
    assert_eq!(agent.introspect(&s, &agent_token)["active"], false);
    assert_eq!(agent.introspect(&s, &exchanged)["active"], false);
    assert_oauth_error(
        agent.exchange(&s, &agent_token, SKILL),
        400,
        "invalid_grant",
    );
    s.expect_refusal_audited("token.issue", "token_revoked");
    s.wait_for_audit(|r| {
        r.event == "token.revoke" && r.outcome == "success" && r.jti.as_deref() == Some(&jti)
    });
    // Another token of the same agent is untouched.
    let other = agent.agent_token(&s);
    assert_eq!(agent.introspect(&s, &other)["active"], true);
}

#[test]
fn an_unknown_jti_is_recorded_until_the_longest_token_lifetime_has_passed() {
    let s = TestServer::with_admin();
    let before = now();

    let r = revoke_jti(&s, json!({"jti": "seen-only-in-an-audit-line"}));

    assert_eq!(r.status(), 200);
    let out: Value = r.json().unwrap();
    let rows = revocations(&s);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (jti, expires_at, revoked_at) = &rows[0];
    assert_eq!(jti, "seen-only-in-an-audit-line");
    assert!(*revoked_at >= before && *revoked_at <= now());
    assert_eq!(*expires_at, revoked_at + LONGEST_LIFETIME_WITH_SKEW);
    assert_eq!(out["revoked_until"], *expires_at);
    // Revoking it again is no error and keeps one row.
    assert_eq!(
        revoke_jti(&s, json!({"jti": "seen-only-in-an-audit-line"})).status(),
        200
    );
    assert_eq!(revocations(&s).len(), 1);
}

#[test]
fn malformed_jtis_are_refused_with_a_reason_and_change_nothing() {
    let s = TestServer::with_admin();
    for (body, reason) in [
        (json!({"jti": ""}), "jti_empty"),
        (json!({"jti": "a".repeat(129)}), "jti_too_long"),
        (json!({"jti": "a b"}), "jti_bad_character"),
        (json!({"jti": "a/../b"}), "jti_bad_character"),
    ] {
        let e = assert_oauth_error(revoke_jti(&s, body.clone()), 400, "invalid_request");
        assert!(
            e["error_description"].as_str().unwrap().contains("jti"),
            "{e}"
        );
        s.expect_refusal_audited("admin.token.revoke", reason);
        s.expect_refusal_audited("token.revoke", reason);
    }
    for body in [json!({}), json!({"jti": 7}), json!({"jti": "a", "more": 1})] {
        assert_oauth_error(revoke_jti(&s, body), 400, "invalid_request");
    }
    s.expect_refusals_audited("admin.token.revoke", "admin_body_invalid", 3);
    assert_eq!(revocations(&s), vec![]);
}

#[test]
fn the_cli_revokes_a_jti() {
    let s = TestServer::with_admin();
    let out = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args([
            "admin",
            "--server",
            &s.base,
            "token",
            "revoke",
            "jti-from-the-cli",
        ])
        .env_clear()
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["jti"], "jti-from-the-cli");
    assert_eq!(revocations(&s)[0].0, "jti-from-the-cli");

    let out = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(["admin", "--server", &s.base, "token", "revoke", "bad jti"])
        .env_clear()
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("400"));
}
