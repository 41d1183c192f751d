//! Software statements (RFC 7591 §2.3) from configured trusted publishers.

use serde_json::{Value, json};

use crate::helpers::{AgentKey, TestServer, agent_metadata, assert_oauth_error};

struct Publisher {
    key: AgentKey,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

const ISSUER: &str = "https://publisher.example";

fn publisher(required: bool) -> Publisher {
    let key = AgentKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("publisher.json");
    std::fs::write(&jwks, json!({"keys": [key.public_jwk("pub1")]}).to_string()).unwrap();
    let config = dir.path().join("patron.toml");
    std::fs::write(
        &config,
        format!(
            "[software_statements]\nrequired = {required}\n\n[[software_statements.publishers]]\nissuer = \"{ISSUER}\"\njwks_file = \"{}\"\n",
            jwks.display()
        ),
    )
    .unwrap();
    Publisher {
        key,
        _dir: dir,
        config,
    }
}

fn statement(p: &Publisher, claims: Value) -> String {
    p.key
        .sign(json!({"alg": "ES256", "kid": "pub1", "typ": "JWT"}), claims)
}

fn server(p: &Publisher) -> TestServer {
    TestServer::builder()
        .env("PATRON_CONFIG", p.config.to_str().unwrap())
        .start()
}

fn now() -> i64 {
    patron::clock::now()
}

#[test]
fn statement_claims_take_precedence_over_request_members() {
    let p = publisher(false);
    let s = server(&p);
    let mut m = agent_metadata(&AgentKey::generate());
    m["client_name"] = json!("Self-declared name");
    let st = statement(
        &p,
        json!({"iss": ISSUER, "iat": now(), "exp": now() + 3600, "software_id": "com.example.tool", "client_name": "Certified Tool"}),
    );
    m["software_statement"] = json!(st);
    let r = s.register_ok(&m);
    assert_eq!(r["client_name"], "Certified Tool");
    assert_eq!(r["software_id"], "com.example.tool");
    assert_eq!(r["software_statement"], st);
}

#[test]
fn tampered_expired_and_untrusted_statements_are_refused() {
    let p = publisher(false);
    let s = server(&p);
    let base = agent_metadata(&AgentKey::generate());

    let expired = statement(
        &p,
        json!({"iss": ISSUER, "exp": now() - 3600, "software_id": "x"}),
    );
    let mut m = base.clone();
    m["software_statement"] = json!(expired);
    assert_oauth_error(s.register(&m), 400, "invalid_software_statement");
    s.expect_refusal_audited("client.register", "token_expired");

    let good = statement(&p, json!({"iss": ISSUER, "software_id": "x"}));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        json!({"iss": ISSUER, "software_id": "forged"}).to_string(),
    );
    m["software_statement"] = json!(parts.join("."));
    assert_oauth_error(s.register(&m), 400, "invalid_software_statement");
    s.expect_refusal_audited("client.register", "signature_invalid");

    let stranger = AgentKey::generate();
    let untrusted = stranger.sign(
        json!({"alg": "ES256"}),
        json!({"iss": "https://stranger.example"}),
    );
    m["software_statement"] = json!(untrusted);
    assert_oauth_error(s.register(&m), 400, "unapproved_software_statement");
    s.expect_refusal_audited("client.register", "software_statement_unapproved");

    let none_alg = format!(
        "{}.{}.",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            r#"{"alg":"none"}"#
        ),
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            json!({"iss": ISSUER}).to_string()
        ),
    );
    m["software_statement"] = json!(none_alg);
    assert_oauth_error(s.register(&m), 400, "invalid_software_statement");
    s.expect_refusal_audited("client.register", "alg_not_allowed");
    assert_eq!(s.count_clients(), 0);
}

#[test]
fn a_required_statement_must_be_present() {
    let p = publisher(true);
    let s = server(&p);
    let m = agent_metadata(&AgentKey::generate());
    assert_oauth_error(s.register(&m), 400, "invalid_software_statement");
    s.expect_refusal_audited("client.register", "software_statement_required");
    let mut m = m;
    m["software_statement"] = json!(statement(&p, json!({"iss": ISSUER, "exp": now() + 3600})));
    s.register_ok(&m);
}

#[test]
fn statements_without_exp_valid_too_long_or_of_another_type_are_refused() {
    // A leaked statement must stop working: `exp` is required, at most a year ahead
    // (software_statements.max_lifetime_secs), and a `typ` other than JWT is another kind
    // of token the publisher signed.
    let p = publisher(false);
    let s = server(&p);
    let mut m = agent_metadata(&AgentKey::generate());
    let cases = [
        (
            statement(&p, json!({"iss": ISSUER, "software_id": "x"})),
            "exp_missing",
        ),
        (
            statement(
                &p,
                json!({"iss": ISSUER, "exp": now() + 400 * 24 * 3600, "software_id": "x"}),
            ),
            "software_statement_lifetime_too_long",
        ),
        (
            p.key.sign(
                json!({"alg": "ES256", "kid": "pub1", "typ": "at+jwt"}),
                json!({"iss": ISSUER, "exp": now() + 3600, "software_id": "x"}),
            ),
            "typ_mismatch",
        ),
    ];
    for (st, reason) in cases {
        m["software_statement"] = json!(st);
        assert_oauth_error(s.register(&m), 400, "invalid_software_statement");
        s.expect_refusal_audited("client.register", reason);
    }
    assert_eq!(s.count_clients(), 0);
}
