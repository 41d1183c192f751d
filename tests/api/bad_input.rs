//! Every malformed registration gets the right RFC 7591 error or status, writes nothing,
//! is audited with a precise reason, and never yields a 5xx.

use serde_json::{Value, json};

use crate::helpers::{AgentKey, TestServer, agent_metadata, assert_oauth_error};

/// Sends `body`, expects `status`/`code`, nothing stored, and the audit `reason`.
fn refused(s: &TestServer, body: &Value, status: u16, code: &str, reason: &str) {
    let before = s.count_clients();
    let r = s.register(body);
    assert_oauth_error(r, status, code);
    assert_eq!(
        s.count_clients(),
        before,
        "a refused registration must write nothing"
    );
    s.expect_refusal_audited("client.register", reason);
}

fn with_redirect(uri: &str) -> Value {
    json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none"})
}

#[test]
fn redirect_uri_defects_are_invalid_redirect_uri() {
    let s = TestServer::spawn();
    for (uri, reason) in [
        ("https://app.example/cb#frag", "redirect_uri_fragment"),
        ("https://*.example/cb", "redirect_uri_wildcard"),
        ("javascript:alert(1)", "redirect_uri_scheme_forbidden"),
        ("data:text/html,hi", "redirect_uri_scheme_forbidden"),
        ("http://app.example/cb", "redirect_uri_http_not_loopback"),
        ("/relative/cb", "redirect_uri_not_absolute"),
        ("https://user:pw@app.example/cb", "redirect_uri_userinfo"),
        (
            "myapp:/cb",
            "redirect_uri_private_scheme_not_reverse_domain",
        ),
    ] {
        refused(&s, &with_redirect(uri), 400, "invalid_redirect_uri", reason);
    }
    refused(
        &s,
        &json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none"}),
        400,
        "invalid_redirect_uri",
        "redirect_uris_missing",
    );
}

#[test]
fn private_key_material_in_jwks_is_refused() {
    let s = TestServer::spawn();
    let key = AgentKey::generate();
    let mut m = agent_metadata(&key);
    m["jwks"] = json!({"keys": [key.private_jwk()]});
    refused(&s, &m, 400, "invalid_client_metadata", "jwks_invalid");
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    use josekit::jwk::KeyPair as _;
    let s = TestServer::spawn();
    let small = josekit::jwk::alg::rsa::RsaKeyPair::generate(1024).unwrap();
    let mut m = agent_metadata(&AgentKey::generate());
    m["jwks"] = json!({"keys": [Value::Object(small.to_jwk_public_key().as_ref().clone())]});
    refused(&s, &m, 400, "invalid_client_metadata", "jwks_invalid");
}

#[test]
fn unsupported_key_types_and_curves_are_refused() {
    let s = TestServer::spawn();
    let key = AgentKey::generate();
    let mut bad_crv = key.public_jwk("k1");
    bad_crv["crv"] = json!("secp256k1");
    for k in [
        bad_crv,
        json!({"kty": "oct", "k": "c2VjcmV0"}),
        json!({"kty": "DH", "x": "AA"}),
    ] {
        let mut m = agent_metadata(&key);
        m["jwks"] = json!({"keys": [k]});
        refused(&s, &m, 400, "invalid_client_metadata", "jwks_invalid");
    }
}

#[test]
fn jwks_and_jwks_uri_together_are_refused() {
    let s = TestServer::spawn();
    let mut m = agent_metadata(&AgentKey::generate());
    m["jwks_uri"] = json!("https://agent.example/jwks.json");
    refused(&s, &m, 400, "invalid_client_metadata", "jwks_and_jwks_uri");
}

#[test]
fn an_unknown_auth_method_is_refused() {
    let s = TestServer::spawn();
    let mut m = agent_metadata(&AgentKey::generate());
    m["token_endpoint_auth_method"] = json!("client_secret_jwt");
    refused(
        &s,
        &m,
        400,
        "invalid_client_metadata",
        "auth_method_unsupported",
    );
    m["token_endpoint_auth_method"] = json!("none");
    refused(
        &s,
        &m,
        400,
        "invalid_client_metadata",
        "auth_method_none_without_code",
    );
}

#[test]
fn grant_types_without_matching_response_types_are_refused() {
    let s = TestServer::spawn();
    refused(
        &s,
        &json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["authorization_code"], "response_types": []}),
        400,
        "invalid_client_metadata",
        "grant_response_mismatch",
    );
    refused(
        &s,
        &json!({"grant_types": ["client_credentials"], "response_types": ["code"]}),
        400,
        "invalid_client_metadata",
        "grant_response_mismatch",
    );
}

#[test]
fn client_name_is_limited_in_length_and_characters() {
    let s = TestServer::spawn();
    let mut m = agent_metadata(&AgentKey::generate());
    m["client_name"] = json!("a".repeat(201));
    refused(
        &s,
        &m,
        400,
        "invalid_client_metadata",
        "client_name_too_long",
    );
    m["client_name"] = json!("evil\u{0007}name");
    refused(
        &s,
        &m,
        400,
        "invalid_client_metadata",
        "client_name_control_chars",
    );
    m["client_name"] = json!("a".repeat(200));
    s.register_ok(&m);
}

#[test]
fn non_json_wrong_type_oversized_and_deep_bodies_are_refused() {
    let s = TestServer::spawn();
    let before = s.count_clients();
    assert_oauth_error(
        s.register_raw("application/json", b"{not json".to_vec()),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "body_not_json");
    assert_oauth_error(
        s.register_raw("application/json", b"[1,2]".to_vec()),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "body_not_object");
    assert_oauth_error(
        s.register_raw("text/plain", b"{}".to_vec()),
        415,
        "invalid_request",
    );
    s.expect_refusal_audited("client.register", "content_type_not_json");
    let mut big = br#"{"client_name":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend(br#""}"#);
    assert_oauth_error(
        s.register_raw("application/json", big),
        413,
        "invalid_request",
    );
    s.expect_refusal_audited("client.register", "body_too_large");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let deep = format!(r#"{{"client_name":"x","x":{deep}}}"#);
    assert_oauth_error(
        s.register_raw("application/json", deep.into_bytes()),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "body_too_deep");
    assert_eq!(s.count_clients(), before);
}

#[test]
fn wrongly_typed_members_are_refused() {
    let s = TestServer::spawn();
    refused(
        &s,
        &json!({"redirect_uris": "https://a.example/cb"}),
        400,
        "invalid_client_metadata",
        "field_wrong_type",
    );
    refused(
        &s,
        &json!({"grant_types": ["client_credentials"], "response_types": [], "client_name": 42}),
        400,
        "invalid_client_metadata",
        "field_wrong_type",
    );
}

#[test]
fn no_malformed_request_yields_a_server_error() {
    let s = TestServer::spawn();
    let bodies: Vec<&[u8]> = vec![
        b"",
        b"null",
        b"\"x\"",
        b"{\"jwks\": 5}",
        b"{\"jwks\": {\"keys\": \"x\"}}",
        b"{\"contacts\": [1]}",
        b"{\"scope\": \"a\\\"b\"}",
        b"{\"grant_types\": [null]}",
        b"{\"redirect_uris\": [\"https://\\u0000\"]}",
        b"\xff\xfe",
        b"{\"jwks_uri\": \"https://[::1]:99999/x\"}",
        b"{\"software_statement\": \"a.b.c\"}",
    ];
    for body in bodies {
        let r = s.register_raw("application/json", body.to_vec());
        let status = r.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{status} for {:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(s.count_clients(), 0);
}
