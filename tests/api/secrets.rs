//! Client secrets at rest (keyed hashes, the lazy migration of argon2id hashes) and the
//! admin token configured as an argon2id hash.

use std::io::Write as _;
use std::process::{Command, Stdio};

use patron::store::models::clients;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, OWNER, SKILL, TestServer, assert_oauth_error, form};

/// A server with the admin API and a skill.
fn server() -> TestServer {
    let s = TestServer::with_admin();
    s.add_skill(SKILL, "read", 120, false, None);
    s
}

/// Registers a `client_secret_basic` client; returns `(client_id, client_secret)`.
fn register_secret_client(s: &TestServer) -> (String, String) {
    let r = s.register_ok(&json!({
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
    }));
    let field = |k: &str| r[k].as_str().unwrap().to_owned();
    (field("client_id"), field("client_secret"))
}

fn approve(s: &TestServer, id: &str) {
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{id}/approve"),
        Some(json!({"owner": OWNER, "grants": {SKILL: "read"}})),
    );
}

fn stored_hash(s: &TestServer, id: &str) -> String {
    clients::find(&mut s.db.connect(), id)
        .unwrap()
        .unwrap()
        .client_secret_hash
        .unwrap()
}

fn token_with(s: &TestServer, id: &str, secret: &str) -> reqwest::blocking::Response {
    s.http
        .post(s.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&form(&[
            ("grant_type", "client_credentials"),
            ("resource", SKILL),
        ]))
        .send()
        .unwrap()
}

#[test]
fn a_new_client_secret_is_stored_as_a_keyed_hash() {
    let s = server();
    let (id, secret) = register_secret_client(&s);
    assert!(secret.starts_with("patron_cs_"), "{secret}");
    let stored = stored_hash(&s, &id);
    assert!(stored.starts_with("hmac-sha256$"), "{stored}");
    assert!(!stored.contains(&secret["patron_cs_".len()..]));
    approve(&s, &id);
    assert_eq!(token_with(&s, &id, &secret).status(), 200);
    let r = token_with(&s, &id, "patron_cs_wrong");
    assert_oauth_error(r, 401, "invalid_client");
    s.expect_refusal_audited("token.issue", "client_secret_invalid");
}

#[test]
fn an_argon2id_secret_hash_is_replaced_by_a_keyed_hash_on_its_first_success() {
    // Arrange: a client whose secret was stored the old way.
    let s = server();
    let (id, secret) = register_secret_client(&s);
    let legacy = patron::crypto::hash_argon2id(&secret).unwrap();
    let keyed = stored_hash(&s, &id);
    assert!(
        clients::replace_secret_hash(&mut s.db.connect(), &id, &keyed, &legacy).unwrap(),
        "the row holds the argon2id hash"
    );
    approve(&s, &id);

    // A wrong secret is refused and changes nothing.
    let r = token_with(&s, &id, "patron_cs_wrong");
    assert_oauth_error(r, 401, "invalid_client");
    s.expect_refusal_audited("token.issue", "client_secret_invalid");
    assert_eq!(stored_hash(&s, &id), legacy);

    // Act: the first successful authentication.
    assert_eq!(token_with(&s, &id, &secret).status(), 200);

    // Assert: the row now holds the keyed hash, and the secret still works.
    let migrated = stored_hash(&s, &id);
    assert_eq!(migrated, keyed, "the keyed hash of the same secret");
    assert_eq!(token_with(&s, &id, &secret).status(), 200);
    assert_oauth_error(
        token_with(&s, &id, "patron_cs_wrong"),
        401,
        "invalid_client",
    );
    assert_eq!(stored_hash(&s, &id), keyed);
}

#[test]
fn an_update_confirming_an_argon2id_secret_stores_it_keyed() {
    let s = server();
    let r = s.register_ok(&json!({
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
    }));
    let (id, secret) = (
        r["client_id"].as_str().unwrap(),
        r["client_secret"].as_str().unwrap(),
    );
    let keyed = stored_hash(&s, id);
    let legacy = patron::crypto::hash_argon2id(secret).unwrap();
    clients::replace_secret_hash(&mut s.db.connect(), id, &keyed, &legacy).unwrap();
    let mut body = r.as_object().unwrap().clone();
    body.retain(|k, _| {
        [
            "client_id",
            "client_secret",
            "grant_types",
            "response_types",
            "token_endpoint_auth_method",
        ]
        .contains(&k.as_str())
    });
    body.insert("client_name".into(), json!("renamed"));
    let put = s
        .http
        .put(r["registration_client_uri"].as_str().unwrap())
        .bearer_auth(r["registration_access_token"].as_str().unwrap())
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().unwrap());
    assert_eq!(stored_hash(&s, id), keyed);
    approve(&s, id);
    assert_eq!(token_with(&s, id, secret).status(), 200);
}

/// Hashes `token` with `patron admin hash-token`, fed on standard input.
fn hash_token_cli(token: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_patron"))
        .args(["admin", "hash-token"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_server_configured_with_an_admin_token_hash_accepts_the_token_and_refuses_others() {
    let (ok, phc, err) = hash_token_cli(ADMIN);
    assert!(ok, "{err}");
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert!(!phc.contains(ADMIN));
    let s = TestServer::builder()
        .env("PATRON_ADMIN_TOKEN_HASH", &phc)
        .start();
    let skill = || json!({"audience": SKILL, "name": "Skill", "scopes": "read"});

    let wrong = s
        .http
        .post(s.url("/admin/skills"))
        .bearer_auth(format!("{ADMIN}-not"))
        .json(&skill())
        .send()
        .unwrap();
    assert_oauth_error(wrong, 401, "invalid_token");
    s.expect_refusal_audited("admin.auth", "admin_token_invalid");

    // The right token, twice: argon2id once, then from memory.
    assert_eq!(
        s.admin("POST", "/admin/skills", Some(skill())).status(),
        201
    );
    let listed: Value = s.admin_ok("GET", "/admin/skills", None);
    assert_eq!(
        listed["skills"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    // A wrong token is still refused after the right one was remembered.
    let wrong = s
        .http
        .get(s.url("/admin/skills"))
        .bearer_auth("x".repeat(44))
        .send()
        .unwrap();
    assert_oauth_error(wrong, 401, "invalid_token");
    assert_eq!(
        s.wait_for_audit_count(2, |r| r.event == "admin.auth"
            && r.reason.as_deref() == Some("admin_token_invalid")),
        2
    );
}

#[test]
fn hash_token_refuses_a_short_token() {
    let (ok, phc, err) = hash_token_cli("short");
    assert!(!ok);
    assert!(phc.is_empty(), "{phc}");
    assert!(err.contains("at least 32 characters"), "{err}");
}

#[test]
fn an_admin_token_and_a_token_hash_together_stop_start_up() {
    let phc = patron::crypto::hash_argon2id(ADMIN).unwrap();
    let (ok, err) = crate::ops::serve_with(&[
        ("PATRON_ADMIN_TOKEN", ADMIN),
        ("PATRON_ADMIN_TOKEN_HASH", &phc),
    ]);
    assert!(!ok);
    assert!(err.contains("admin.token_hash"), "{err}");
    assert!(err.contains("not both"), "{err}");
    let (ok, err) = crate::ops::serve_with(&[("PATRON_ADMIN_TOKEN_HASH", ADMIN)]);
    assert!(!ok);
    assert!(err.contains("patron admin hash-token"), "{err}");
}
