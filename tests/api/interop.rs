//! Third-party clients work unchanged, at their defaults: the `openidconnect` crate
//! registers; Authlib (Python) and openid-client (npm) get tokens with `private_key_jwt`;
//! openid-client runs the authorization code flow (PKCE, `resource`, RFC 9207 `iss`) and
//! refreshes.

use std::path::{Path, PathBuf};
use std::process::Command;

use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::rsa::RsaKeyPair;
use openidconnect::core::CoreClientRegistrationRequest;
use openidconnect::registration::EmptyAdditionalClientMetadata;
use openidconnect::{ClientName, RedirectUrl, RegistrationUrl};
use serde_json::{Value, json};

use crate::helpers::code_flow::{CodeClient, REDIRECT};
use crate::helpers::console::console_builder;
use crate::helpers::{AgentKey, OWNER, TestServer, claims_of};

#[test]
fn the_openidconnect_crate_registers_a_client_and_reads_the_response() {
    let s = TestServer::spawn();
    let http = openidconnect::reqwest::blocking::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new("https://agent.example/callback".into()).unwrap()],
        EmptyAdditionalClientMetadata {},
    )
    .set_client_name(Some(
        vec![(None, ClientName::new("openidconnect agent".into()))]
            .into_iter()
            .collect(),
    ))
    .register(&RegistrationUrl::new(s.url("/register")).unwrap(), &http)
    .expect("registration through the openidconnect crate");

    assert!(response.client_id().as_str().starts_with("agt_"));
    assert!(response.client_secret().is_some());
    assert!(response.registration_access_token().is_some());
    let uri = response
        .registration_client_uri()
        .expect("registration_client_uri")
        .url()
        .to_string();
    assert_eq!(
        uri,
        s.url(&format!("/register/{}", response.client_id().as_str()))
    );
    assert_eq!(s.count_clients(), 1);
}

/// Skills whose scopes are in the `resource:action` form resource servers such as Agno's
/// JWT middleware expect, with names that differ between the two.
const FILES: &str = "https://files.example/api";
const MAIL: &str = "https://mail.example/api";

fn support(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(path)
}

/// A server with the two skills.
fn server_with_skills() -> TestServer {
    let s = TestServer::with_admin();
    s.add_skill(FILES, "files:read files:write", 300, false, None);
    s.add_skill(MAIL, "mail:send", 300, false, None);
    s
}

/// Registers a `private_key_jwt` client with `jwk` (no DPoP: these clients do not send
/// proofs) and approves it for `files:read` at [`FILES`] and `mail:send` at [`MAIL`].
fn approved_client(s: &TestServer, jwk: Value) -> String {
    let reg = s.register_ok(&json!({
        "client_name": "Interop agent",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [jwk]},
        "scope": "files:read mail:send",
    }));
    let client_id = reg["client_id"].as_str().expect("client_id").to_owned();
    s.admin_ok(
        "POST",
        &format!("/admin/agents/{client_id}/approve"),
        Some(json!({"owner": OWNER, "grants": {FILES: "files:read", MAIL: "mail:send"}})),
    );
    client_id
}

/// Runs a peer client; `Ok(stdout JSON)` on success, `Err(stdout JSON)` on an OAuth error.
fn run_peer(cmd: &mut Command) -> Result<Value, Value> {
    let out = cmd.output().expect("run the peer client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = || -> Value {
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "peer output is not JSON ({e}): {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    match out.status.code() {
        Some(0) => Ok(parsed()),
        Some(3) => Err(parsed()),
        _ => panic!(
            "the peer client failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Asserts a skill token for `client_id` at `aud` with exactly `scope`.
fn assert_skill_token(token: &Value, client_id: &str, aud: &str, scope: &str) {
    // openid-client normalises the type to lower case (RFC 6749 §5.1: case-insensitive).
    assert!(
        token["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{token}"
    );
    let c = claims_of(token["access_token"].as_str().expect("access_token"));
    assert_eq!(c["aud"], aud);
    assert_eq!(c["sub"], client_id);
    assert_eq!(c["scope"], scope);
}

fn authlib(
    s: &TestServer,
    client_id: &str,
    key: &Path,
    resource: &str,
    scope: &str,
) -> Result<Value, Value> {
    run_peer(
        Command::new("python3")
            .arg(support("authlib_client.py"))
            .arg(s.url("/token"))
            .arg(client_id)
            .arg(key)
            .arg(resource)
            .arg(scope),
    )
}

#[test]
fn authlib_at_its_defaults_gets_skill_tokens_with_private_key_jwt() {
    let ok = Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs python3 with Authlib and requests: \
         pip install authlib==1.9.10 requests (scripts/test does this)"
    );
    let s = server_with_skills();
    // Authlib's PrivateKeyJWT signs with RS256 by default, without a kid.
    let rsa = RsaKeyPair::generate(2048).unwrap();
    let mut jwk = rsa.to_jwk_public_key().as_ref().clone();
    jwk.insert("kid".into(), json!("rsa-1"));
    let client_id = approved_client(&s, Value::Object(jwk));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("agent.pem");
    std::fs::write(&key, rsa.to_pem_private_key()).unwrap();

    let got = authlib(&s, &client_id, &key, FILES, "files:read").expect("a files token");
    assert_skill_token(&got["token"], &client_id, FILES, "files:read");
    // The assertion was Authlib's default one: an hour long, no kid needed.
    let a = &got["assertion"];
    assert_eq!(
        a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(),
        3600,
        "{a}"
    );
    assert_eq!(a["aud"], s.url("/token"));

    let got = authlib(&s, &client_id, &key, MAIL, "mail:send").expect("a mail token");
    assert_skill_token(&got["token"], &client_id, MAIL, "mail:send");

    // One skill's scope is not valid at the other.
    let refused = authlib(&s, &client_id, &key, MAIL, "files:read").unwrap_err();
    assert_eq!(refused["error"]["error"], "invalid_scope", "{refused}");
}

#[test]
fn openid_client_uses_discovery_and_private_key_jwt_for_client_credentials() {
    let dir = support("openid_client");
    assert!(
        dir.join("node_modules/openid-client/package.json")
            .is_file(),
        "this test needs node and the npm package openid-client: \
         npm ci --prefix tests/support/openid_client (scripts/test does this)"
    );
    let s = server_with_skills();
    let key = AgentKey::generate();
    let client_id = approved_client(&s, key.public_jwk("k1"));
    let pem_dir = tempfile::tempdir().unwrap();
    let pem = pem_dir.path().join("agent.pem");
    std::fs::write(&pem, key.pair.to_pem_private_key()).unwrap();
    let run = |resource: &str, scope: &str| {
        run_peer(
            Command::new("node")
                .arg(dir.join("client_credentials.mjs"))
                .arg(&s.base)
                .arg(&client_id)
                .arg("k1")
                .arg(&pem)
                .arg(resource)
                .arg(scope),
        )
    };

    let token = run(FILES, "files:read").expect("a files token");
    assert_skill_token(&token, &client_id, FILES, "files:read");
    let token = run(MAIL, "mail:send").expect("a mail token");
    assert_skill_token(&token, &client_id, MAIL, "mail:send");
    let refused = run(FILES, "mail:send").unwrap_err();
    assert_eq!(refused["error"]["error"], "invalid_scope", "{refused}");
}

/// Runs `tests/support/openid_client/code_flow.mjs` for `app` with `person` at the
/// development login; `scope` `None` sends no `scope`.
fn openid_client_code_flow(
    s: &TestServer,
    app: &CodeClient,
    resource: &str,
    scope: Option<&str>,
    person: &str,
) -> Value {
    let dir = support("openid_client");
    assert!(
        dir.join("node_modules/openid-client/package.json")
            .is_file(),
        "this test needs node and the npm package openid-client: \
         npm ci --prefix tests/support/openid_client (scripts/test does this)"
    );
    run_peer(
        Command::new("node")
            .arg(dir.join("code_flow.mjs"))
            .arg(&s.base)
            .arg(&app.client_id)
            .arg(app.secret.as_deref().unwrap_or("-"))
            .arg(REDIRECT)
            .arg(resource)
            .arg(scope.unwrap_or("-"))
            .arg(person),
    )
    .unwrap_or_else(|e| panic!("the code flow script reported an OAuth error: {e}"))
}

/// Asserts what openid-client saw of one code flow: discovery, the authorization request,
/// the login and consent, the callback and its checks, the tokens and their refresh.
fn assert_code_flow(s: &TestServer, app: &CodeClient, got: &Value, scope: &str, person: &str) {
    let owner = format!("dev:{person}");
    // Discovery gave openid-client what the code flow needs.
    let server = &got["server"];
    assert_eq!(server["issuer"], s.base.as_str(), "{server}");
    assert_eq!(server["authorization_endpoint"], s.url("/authorize"));
    assert_eq!(server["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        server["authorization_response_iss_parameter_supported"],
        true
    );

    // openid-client's authorization URL: code, S256, the state and the resource.
    let url = url::Url::parse(got["authorization_url"].as_str().unwrap()).unwrap();
    assert_eq!(
        url.as_str().split('?').next(),
        Some(s.url("/authorize").as_str())
    );
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code", "{url}");
    assert_eq!(q["client_id"], app.client_id, "{url}");
    assert_eq!(q["code_challenge_method"], "S256", "{url}");
    assert_eq!(q["resource"], FILES, "{url}");
    assert_eq!(q["redirect_uri"], REDIRECT, "{url}");
    assert_eq!(q["state"], got["state"].as_str().unwrap(), "{url}");
    let path = format!("{}?{}", url.path(), url.query().unwrap());

    // Anonymous: to the login page and, logged in, back to the request.
    assert_eq!(got["anonymous"]["status"], 303, "{}", got["anonymous"]);
    let login_to = got["anonymous"]["location"].as_str().unwrap();
    assert!(
        login_to.starts_with("/console/login?return_to="),
        "{login_to}"
    );
    assert_eq!(got["login"]["status"], 303, "{}", got["login"]);
    assert_eq!(got["login"]["location"], path.as_str(), "{}", got["login"]);
    assert_eq!(got["login"]["session_cookie"], true);

    // The consent page names the client, claims the new agent and offers the skill ticked.
    let consent = &got["consent"];
    assert_eq!(consent["status"], 200, "{consent}");
    assert_eq!(consent["has_form"], true, "{consent}");
    assert_eq!(consent["claims_agent"], true, "{consent}");
    assert_eq!(consent["shows_client_id"], true, "{consent}");
    assert_eq!(consent["form_action"], path.as_str(), "{consent}");
    assert_eq!(
        consent["grants"],
        json!([{"audience": FILES, "checked": true}]),
        "{consent}"
    );

    // Approve: to the redirect URI with the code, the state and RFC 9207's iss.
    assert_eq!(got["approve"]["status"], 302, "{}", got["approve"]);
    let location = got["approve"]["location"].as_str().unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    let callback = &got["callback"];
    assert!(
        callback["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{callback}"
    );
    assert_eq!(callback["state"], got["state"], "{callback}");
    assert_eq!(callback["iss"], s.base.as_str(), "{callback}");

    // openid-client refused a callback with another issuer, with none, or with another
    // state, before sending the code: the real exchange after them succeeded.
    for (what, why) in [
        ("iss", "unexpected \"iss\""),
        ("missing_iss", "\"iss\" (issuer) missing"),
        ("state", "unexpected \"state\""),
    ] {
        let t = &got["tampered"][what];
        assert_eq!(
            t["rejected"], true,
            "openid-client took a callback with {what} changed: {t}"
        );
        assert_eq!(t["code"], "OAUTH_INVALID_RESPONSE", "{what}: {t}");
        assert!(
            t["cause"].as_str().is_some_and(|m| m.contains(why)),
            "{what}: {t}"
        );
    }

    // The code's tokens: for the person, through this client, at the skill.
    let tokens = &got["tokens"];
    assert!(
        tokens["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{tokens}"
    );
    assert_eq!(tokens["scope"], scope, "{tokens}");
    let first = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(first, tokens["claims"], "the script decoded the same token");
    assert_eq!(first["iss"], s.base.as_str());
    assert_eq!(first["aud"], FILES);
    assert_eq!(first["sub"], owner.as_str(), "RFC 9068: sub is the person");
    assert_eq!(first["client_id"], app.client_id.as_str());
    assert_eq!(first["owner"], owner.as_str());
    assert_eq!(first["scope"], scope);
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    // The refresh: a new access token for the same grant, and a rotated refresh token.
    let refreshed = &got["refreshed"];
    let again = claims_of(refreshed["access_token"].as_str().unwrap());
    assert_eq!(again["aud"], FILES);
    assert_eq!(again["sub"], owner.as_str());
    assert_eq!(again["client_id"], app.client_id.as_str());
    assert_eq!(again["scope"], scope);
    assert_eq!(got["refresh_rotated"], true, "{got}");
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
    assert_eq!(got["access_token_differs"], true, "{got}");
    assert_ne!(
        again["jti"], first["jti"],
        "a new token, not the old one again"
    );

    // The used refresh token again: refused, as an OAuth error openid-client surfaces.
    let reused = &got["old_refresh_reused"];
    assert_eq!(reused["rejected"], true, "{reused}");
    assert_eq!(reused["name"], "ResponseBodyError", "{reused}");
    assert_eq!(reused["error"], "invalid_grant", "{reused}");
    s.expect_refusal_audited("token.issue", "refresh_reused");
}

#[test]
fn openid_client_runs_the_code_flow_with_pkce_resource_and_iss_then_refreshes() {
    let s = console_builder().start();
    s.add_skill(FILES, "files:read files:write", 300, false, None);

    // A public client (`none`), asking for one scope.
    let public = CodeClient::public(&s);
    assert!(public.secret.is_none());
    let got = openid_client_code_flow(&s, &public, FILES, Some("files:read"), "alice");
    assert_code_flow(&s, &public, &got, "files:read", "alice");

    // A confidential client (`client_secret_basic`), asking for no scope: all the skill's.
    let confidential = CodeClient::with(
        &s,
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
    );
    assert!(confidential.secret.is_some());
    let got = openid_client_code_flow(&s, &confidential, FILES, None, "bob");
    assert_code_flow(&s, &confidential, &got, "files:read files:write", "bob");
}
