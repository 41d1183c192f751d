//! RFC 7592: reading, updating and deleting a registration with its access token.

use serde_json::{Value, json};

use crate::helpers::{AgentKey, TestServer, agent_metadata, assert_oauth_error};

fn registered(s: &TestServer) -> (Value, AgentKey) {
    let key = AgentKey::generate();
    (s.register_ok(&agent_metadata(&key)), key)
}

fn uri(r: &Value) -> &str {
    r["registration_client_uri"].as_str().unwrap()
}

fn rat(r: &Value) -> &str {
    r["registration_access_token"].as_str().unwrap()
}

#[test]
fn read_returns_the_current_configuration() {
    let s = TestServer::spawn();
    let (r, _) = registered(&s);
    let resp = s.http.get(uri(&r)).bearer_auth(rat(&r)).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let info: Value = resp.json().unwrap();
    assert_eq!(info["client_id"], r["client_id"]);
    assert_eq!(info["jwks"], r["jwks"]);
    assert!(
        info.get("registration_access_token").is_none(),
        "the token is never echoed"
    );
    s.wait_for_audit(|e| e.event == "client.read" && e.outcome == "success");
}

#[test]
fn a_missing_or_wrong_registration_token_is_401_with_www_authenticate() {
    let s = TestServer::spawn();
    let (r, _) = registered(&s);
    let resp = s.http.get(uri(&r)).send().unwrap();
    let www = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.starts_with("Bearer error=\"invalid_token\""), "{www}");
    assert_oauth_error(resp, 401, "invalid_token");
    s.expect_refusal_audited("client.read", "registration_token_missing");

    let resp = s
        .http
        .get(uri(&r))
        .bearer_auth("patron_rat_wrong")
        .send()
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
    s.expect_refusal_audited("client.read", "registration_token_invalid");

    // Another client's token does not open this one.
    let (other, _) = registered(&s);
    let resp = s
        .http
        .delete(uri(&r))
        .bearer_auth(rat(&other))
        .send()
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
    assert_eq!(s.count_clients(), 2);

    let resp = s
        .http
        .get(s.url("/register/agt_nonexistent"))
        .bearer_auth(rat(&r))
        .send()
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
    s.expect_refusal_audited("client.read", "client_unknown");
}

#[test]
fn update_replaces_the_metadata_and_rotates_keys() {
    let s = TestServer::spawn();
    let (r, _) = registered(&s);
    let new_key = AgentKey::generate();
    let mut body = agent_metadata(&new_key);
    body["client_id"] = r["client_id"].clone();
    body["client_name"] = json!("Renamed agent");
    body.as_object_mut().unwrap().remove("scope");
    let resp = s
        .http
        .put(uri(&r))
        .bearer_auth(rat(&r))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().unwrap();
    assert_eq!(info["client_name"], "Renamed agent");
    assert_eq!(info["jwks"]["keys"][0]["x"], new_key.public_jwk("k1")["x"]);
    assert!(
        info.get("scope").is_none(),
        "PUT is a full replacement: omitted fields go"
    );

    let read: Value = s
        .http
        .get(uri(&r))
        .bearer_auth(rat(&r))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(read["client_name"], "Renamed agent");
    let ev = s.wait_for_audit(|e| e.event == "client.update" && e.outcome == "success");
    assert_eq!(ev.detail.as_deref(), Some("keys replaced"));
}

#[test]
fn an_update_that_changes_client_id_is_refused_and_changes_nothing() {
    let s = TestServer::spawn();
    let (r, key) = registered(&s);
    let mut body = agent_metadata(&key);
    body["client_id"] = json!("agt_someone_else");
    body["client_name"] = json!("Hijack");
    let resp = s
        .http
        .put(uri(&r))
        .bearer_auth(rat(&r))
        .json(&body)
        .send()
        .unwrap();
    assert_oauth_error(resp, 400, "invalid_client_metadata");
    s.expect_refusal_audited("client.update", "client_id_mismatch");
    let read: Value = s
        .http
        .get(uri(&r))
        .bearer_auth(rat(&r))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(read["client_name"], "Test agent");
}

#[test]
fn an_invalid_update_changes_nothing() {
    let s = TestServer::spawn();
    let (r, key) = registered(&s);
    let mut body = agent_metadata(&key);
    body["client_id"] = r["client_id"].clone();
    body["jwks"] = json!({"keys": [key.private_jwk()]});
    let resp = s
        .http
        .put(uri(&r))
        .bearer_auth(rat(&r))
        .json(&body)
        .send()
        .unwrap();
    assert_oauth_error(resp, 400, "invalid_client_metadata");
    let read: Value = s
        .http
        .get(uri(&r))
        .bearer_auth(rat(&r))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(read["jwks"], r["jwks"]);
    let resp = s.http.put(uri(&r)).send().unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
}

#[test]
fn switching_to_a_secret_method_issues_a_secret_and_a_wrong_secret_is_refused() {
    let s = TestServer::spawn();
    let (r, _) = registered(&s);
    let body = json!({
        "client_id": r["client_id"],
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    let info: Value = s
        .http
        .put(uri(&r))
        .bearer_auth(rat(&r))
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let secret = info["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("patron_cs_"));

    let mut with_wrong = body.clone();
    with_wrong["client_secret"] = json!("patron_cs_wrong");
    let resp = s
        .http
        .put(uri(&r))
        .bearer_auth(rat(&r))
        .json(&with_wrong)
        .send()
        .unwrap();
    assert_oauth_error(resp, 400, "invalid_client_metadata");
    s.expect_refusal_audited("client.update", "client_secret_mismatch");

    let mut with_right = body;
    with_right["client_secret"] = json!(secret);
    with_right["client_name"] = json!("kept secret");
    let info: Value = s
        .http
        .put(uri(&r))
        .bearer_auth(rat(&r))
        .json(&with_right)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info["client_name"], "kept secret");
    assert!(
        info.get("client_secret").is_none(),
        "the secret is kept, not re-issued"
    );
}

#[test]
fn delete_removes_the_client_and_its_token_stops_working() {
    let s = TestServer::spawn();
    let (r, _) = registered(&s);
    let resp = s.http.delete(uri(&r)).bearer_auth(rat(&r)).send().unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(s.count_clients(), 0);
    s.wait_for_audit(|e| e.event == "client.delete" && e.outcome == "success");
    let resp = s.http.get(uri(&r)).bearer_auth(rat(&r)).send().unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
    let resp = s.http.delete(uri(&r)).bearer_auth(rat(&r)).send().unwrap();
    assert_oauth_error(resp, 401, "invalid_token");
}
