//! `jwks_uri` is fetched under the SSRF guard: https only, public addresses unless the host
//! is allow-listed, no redirects, bounded size.

use serde_json::json;

use crate::helpers::https::https_files;
use crate::helpers::{AgentKey, TestServer, agent_metadata, assert_oauth_error};

pub(crate) fn with_jwks_uri(uri: &str) -> serde_json::Value {
    let mut m = agent_metadata(&AgentKey::generate());
    m.as_object_mut().unwrap().remove("jwks");
    m["jwks_uri"] = json!(uri);
    m
}

#[test]
fn jwks_uri_to_private_addresses_is_refused() {
    let s = TestServer::spawn();
    for uri in [
        "https://127.0.0.1/jwks.json",
        "https://localhost:8443/jwks.json",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/jwks.json",
        "https://10.0.0.8/jwks.json",
    ] {
        assert_oauth_error(
            s.register(&with_jwks_uri(uri)),
            400,
            "invalid_client_metadata",
        );
        s.expect_refusal_audited("client.register", "jwks_uri_private_address");
    }
    assert_oauth_error(
        s.register(&with_jwks_uri("http://agent.example/jwks.json")),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "jwks_uri_not_https");
    assert_eq!(s.count_clients(), 0);
}

#[test]
fn an_allow_listed_https_jwks_uri_is_fetched_and_its_keys_checked() {
    let files = https_files();
    let key = AgentKey::generate();
    std::fs::write(
        files.dir.path().join("jwks.json"),
        json!({"keys": [key.public_jwk("k1")]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        files.dir.path().join("bad.json"),
        json!({"keys": [key.private_jwk()]}).to_string(),
    )
    .unwrap();
    std::fs::write(files.dir.path().join("big.json"), "x".repeat(100_000)).unwrap();
    let s = TestServer::builder()
        .env("PATRON_OUTBOUND__ALLOW_HOSTS", "[\"localhost\"]")
        .env(
            "PATRON_OUTBOUND__CA_FILE",
            files.dir.path().join("cert.pem").to_str().unwrap(),
        )
        .start();
    let base = format!("https://localhost:{}", files.port);

    let r = s.register_ok(&with_jwks_uri(&format!("{base}/jwks.json")));
    assert_eq!(r["jwks_uri"], format!("{base}/jwks.json"));

    assert_oauth_error(
        s.register(&with_jwks_uri(&format!("{base}/bad.json"))),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "jwks_uri_invalid_keys");
    assert_oauth_error(
        s.register(&with_jwks_uri(&format!("{base}/big.json"))),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "jwks_uri_too_large");
    assert_oauth_error(
        s.register(&with_jwks_uri(&format!("{base}/missing.json"))),
        400,
        "invalid_client_metadata",
    );
    s.expect_refusal_audited("client.register", "jwks_uri_fetch_failed");
    assert_eq!(s.count_clients(), 1);
}
