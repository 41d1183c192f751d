use diesel::prelude::*;
use patron::store::schema::clients;
use serde_json::{Value, json};

use crate::helpers::{AgentKey, TestServer, agent_metadata, assert_oauth_error};

#[test]
fn an_agent_registers_with_private_key_jwt_and_is_pending_with_a_user_code() {
    let s = TestServer::spawn();
    let key = AgentKey::generate();
    let r = s.register_ok(&agent_metadata(&key));

    let client_id = r["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("agt_"));
    assert!(
        r.get("client_secret").is_none(),
        "private_key_jwt clients get no secret"
    );
    assert_eq!(r["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(r["dpop_bound_access_tokens"], true);
    assert_eq!(r["jwks"]["keys"][0]["kid"], "k1");
    assert_eq!(r["owner_status"], "pending");
    let code = r["user_code"].as_str().unwrap();
    assert_eq!(code.len(), 9, "XXXX-XXXX: {code}");
    assert_eq!(r["verification_uri"], s.url("/claim"));
    assert_eq!(
        r["verification_uri_complete"],
        s.url(&format!("/claim?user_code={code}"))
    );
    assert_eq!(
        r["registration_client_uri"],
        s.url(&format!("/register/{client_id}"))
    );
    assert!(
        r["registration_access_token"]
            .as_str()
            .unwrap()
            .starts_with("patron_rat_")
    );
    assert!(r["client_id_issued_at"].as_i64().unwrap() > 1_700_000_000);

    assert_eq!(s.count_clients(), 1);
    let ev = s.wait_for_audit(|e| e.event == "client.register" && e.outcome == "success");
    assert_eq!(ev.client_id.as_deref(), Some(client_id));
    assert_eq!(ev.source_addr.as_deref(), Some("127.0.0.1"));
}

#[test]
fn a_confidential_client_gets_a_256_bit_secret_stored_only_as_a_keyed_hash() {
    let s = TestServer::spawn();
    let r = s.register_ok(&json!({
        "redirect_uris": ["https://app.example/cb"],
        "client_name": "Web app",
    }));
    assert_eq!(r["token_endpoint_auth_method"], "client_secret_basic");
    let secret = r["client_secret"].as_str().unwrap();
    assert!(secret.starts_with("patron_cs_") && secret.len() == "patron_cs_".len() + 43);
    assert_eq!(r["client_secret_expires_at"], 0);

    let mut c = s.db.connect();
    let (hash, rat_hash): (Option<String>, String) = clients::table
        .select((
            clients::client_secret_hash,
            clients::registration_token_hash,
        ))
        .first(&mut c)
        .unwrap();
    let hash = hash.unwrap();
    // HMAC-SHA-256 under the server key: 256 bits, base64url.
    assert!(hash.starts_with("hmac-sha256$"), "{hash}");
    assert_eq!(hash.len(), "hmac-sha256$".len() + 43, "{hash}");
    assert!(!hash.contains(&secret["patron_cs_".len()..]));
    let rat = r["registration_access_token"].as_str().unwrap();
    assert_eq!(rat_hash, patron::crypto::sha256_hex(rat.as_bytes()));
}

#[test]
fn a_public_client_registers_for_the_code_flow() {
    let s = TestServer::spawn();
    let r = s.register_ok(&json!({
        "redirect_uris": ["http://127.0.0.1:33418/callback", "com.example.agent:/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
    }));
    assert_eq!(r["token_endpoint_auth_method"], "none");
    assert!(r.get("client_secret").is_none());
    assert_eq!(r["response_types"], json!(["code"]));
}

#[test]
fn unknown_metadata_is_ignored() {
    let s = TestServer::spawn();
    let key = AgentKey::generate();
    let mut m = agent_metadata(&key);
    m["x_vendor_extension"] = json!({"anything": [1, 2, 3]});
    m["client_id"] = json!("chosen-by-client");
    let r = s.register_ok(&m);
    assert!(r.get("x_vendor_extension").is_none());
    assert_ne!(r["client_id"], "chosen-by-client");
}

#[test]
fn registrations_are_durable_and_audit_is_flushed_on_shutdown() {
    let s = TestServer::builder()
        // A long flush interval: only the shutdown flush can write the event in time.
        .env("PATRON_AUDIT__FLUSH_INTERVAL_MS", "600000")
        .start();
    let key = AgentKey::generate();
    let r = s.register_ok(&agent_metadata(&key));
    let (clean, db) = s.stop();
    assert!(clean, "graceful shutdown");

    let s = TestServer::builder().db(db).start();
    s.wait_for_audit(|e| {
        e.event == "client.register" && e.client_id.as_deref() == r["client_id"].as_str()
    });
    // The old base URL differs (new port): read through the new server.
    let path = format!("/register/{}", r["client_id"].as_str().unwrap());
    let resp = s
        .http
        .get(s.url(&path))
        .bearer_auth(r["registration_access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().unwrap();
    assert_eq!(info["client_name"], "Test agent");
}

#[test]
fn a_flood_of_open_registrations_from_one_address_is_throttled() {
    let s = TestServer::builder()
        .env("PATRON_REGISTRATION__RATE_LIMIT_PER_MINUTE", "6")
        .env("PATRON_REGISTRATION__RATE_LIMIT_BURST", "3")
        .start();
    // Distinct keys: the same key again would be one renewed registration
    // (reregistration.rs), which the limiter throttles all the same.
    for _ in 0..3 {
        s.register_ok(&agent_metadata(&AgentKey::generate()));
    }
    let r = s.register(&agent_metadata(&AgentKey::generate()));
    let retry = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(retry >= 1);
    assert_oauth_error(r, 429, "temporarily_unavailable");
    assert_eq!(s.count_clients(), 3);
    s.expect_refusal_audited("client.register", "registration_rate_limited");
}

#[test]
fn an_unclaimed_registration_expires_after_its_window() {
    let s = TestServer::builder()
        .env("PATRON_REGISTRATION__PENDING_TTL_SECS", "1")
        .start();
    let key = AgentKey::generate();
    let r = s.register_ok(&agent_metadata(&key));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let resp = s
        .http
        .get(r["registration_client_uri"].as_str().unwrap())
        .bearer_auth(r["registration_access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
    s.expect_refusal_audited("client.read", "client_expired");
}
