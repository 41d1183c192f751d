//! An agent that registers again with the same keys from the same address while its
//! earlier registration is still pending gets that registration back, with fresh
//! credentials, instead of a second row.

use serde_json::{Value, json};

use crate::helpers::console::{Browser, console_builder};
use crate::helpers::{AgentKey, OWNER, SKILL, TestServer, agent_metadata, assert_oauth_error};

/// `GET /register/{client_id}` with `token`.
fn read_registration(s: &TestServer, client_id: &str, token: &str) -> reqwest::blocking::Response {
    s.http
        .get(s.url(&format!("/register/{client_id}")))
        .bearer_auth(token)
        .send()
        .unwrap()
}

fn field(v: &Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
        .to_owned()
}

/// `POST /register` of `body` as if from `address` (through a trusted proxy).
fn register_from(s: &TestServer, address: &str, body: &Value) -> Value {
    let r = s
        .http
        .post(s.url("/register"))
        .header("x-forwarded-for", address)
        .json(body)
        .send()
        .unwrap();
    let status = r.status();
    let v: Value = r.json().unwrap();
    assert_eq!(status, 201, "{v}");
    v
}

#[test]
fn registering_again_with_the_same_key_from_the_same_address_renews_the_pending_registration() {
    // Arrange
    let s = console_builder().start();
    s.add_skill(SKILL, "read", 120, false, None);
    let key = AgentKey::generate();
    let first = s.register_ok(&agent_metadata(&key));
    let mut again = agent_metadata(&key);
    again["client_name"] = json!("Renamed agent");

    // Act
    let second = s.register_ok(&again);

    // Assert: one row, the same client, new credentials, the new metadata.
    assert_eq!(s.count_clients(), 1);
    let client_id = field(&first, "client_id");
    assert_eq!(field(&second, "client_id"), client_id);
    assert_eq!(second["owner_status"], "pending");
    assert_eq!(second["client_name"], "Renamed agent");
    let (old_token, new_token) = (
        field(&first, "registration_access_token"),
        field(&second, "registration_access_token"),
    );
    assert_ne!(old_token, new_token);
    let (old_code, new_code) = (field(&first, "user_code"), field(&second, "user_code"));
    assert_ne!(old_code, new_code);
    assert_oauth_error(
        read_registration(&s, &client_id, &old_token),
        401,
        "invalid_token",
    );
    let current: Value = read_registration(&s, &client_id, &new_token)
        .json()
        .unwrap();
    assert_eq!(current["client_name"], "Renamed agent");
    assert_eq!(field(&current, "user_code"), new_code);
    let ev = s.wait_for_audit(|e| {
        e.event == "client.register"
            && e.detail.as_deref() == Some("re-registration of a pending agent")
    });
    assert_eq!(ev.client_id.as_deref(), Some(client_id.as_str()));

    // The old code claims nothing; the new one claims the agent.
    let alice = Browser::dev_login(&s, "alice");
    alice
        .get(&format!("/claim?user_code={old_code}"))
        .expect(404);
    alice
        .approve(&new_code, &[(SKILL, "read")])
        .expect_see_other(&format!("/console/agents/{client_id}"));
}

#[test]
fn a_different_address_or_a_claimed_agent_registers_anew() {
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN", crate::helpers::ADMIN)
        .env("PATRON_REGISTRATION__TRUSTED_PROXIES", "[\"127.0.0.1\"]")
        .start();
    let key = AgentKey::generate();
    let metadata = agent_metadata(&key);

    // The same key from another address is another registration.
    let first = register_from(&s, "203.0.113.7", &metadata);
    let other = register_from(&s, "198.51.100.9", &metadata);
    assert_ne!(first["client_id"], other["client_id"]);
    assert_eq!(s.count_clients(), 2);
    // From the first address again, it is the first one.
    let again = register_from(&s, "203.0.113.7", &metadata);
    assert_eq!(again["client_id"], first["client_id"]);
    assert_eq!(s.count_clients(), 2);

    // Once claimed, registering again is a new registration.
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/approve", field(&first, "client_id")),
        Some(json!({"owner": OWNER})),
    );
    let after_claim = register_from(&s, "203.0.113.7", &metadata);
    assert_ne!(after_claim["client_id"], first["client_id"]);
    assert_eq!(after_claim["owner_status"], "pending");
    assert_eq!(s.count_clients(), 3);
}

#[test]
fn another_key_from_the_same_address_registers_anew() {
    let s = TestServer::spawn();
    let first = s.register_ok(&agent_metadata(&AgentKey::generate()));
    let second = s.register_ok(&agent_metadata(&AgentKey::generate()));
    assert_ne!(first["client_id"], second["client_id"]);
    assert_eq!(s.count_clients(), 2);
}

#[test]
fn renewals_are_throttled_like_registrations() {
    let s = TestServer::builder()
        .env("PATRON_REGISTRATION__RATE_LIMIT_PER_MINUTE", "6")
        .env("PATRON_REGISTRATION__RATE_LIMIT_BURST", "2")
        .start();
    let key = AgentKey::generate();
    let first = s.register_ok(&agent_metadata(&key));
    let second = s.register_ok(&agent_metadata(&key));
    assert_eq!(first["client_id"], second["client_id"]);
    assert_oauth_error(
        s.register(&agent_metadata(&key)),
        429,
        "temporarily_unavailable",
    );
    // The refused attempt changed nothing: the last credentials still work.
    assert_eq!(s.count_clients(), 1);
    let r = read_registration(
        &s,
        &field(&second, "client_id"),
        &field(&second, "registration_access_token"),
    );
    assert_eq!(r.status(), 200);
}
