//! The MCP Python SDK (`mcp` on PyPI), unchanged, on both sides of Patron: its OAuth client
//! (`OAuthClientProvider`) connects to an MCP server built with the same SDK, follows the
//! server's 401 to its RFC 9728 metadata, discovers Patron there, registers by DCR, sends a
//! person through `/authorize` (the development login and the consent form), exchanges the
//! code, calls tools and refreshes an expired token; the MCP server checks every token's
//! signature against Patron's JWKS, its `iss`, `aud`, `exp` and scope.
//!
//! The peers are `tests/support/mcp/server.py` and `client.py`; `scripts/test` installs the
//! SDK. A second run gives the SDK a Client ID Metadata Document URL instead (published on a
//! local HTTPS server Patron trusts): seeing `client_id_metadata_document_supported` in
//! Patron's metadata, it uses that URL as its client id and never registers; Patron fetches
//! the document, and the client is shared, owned by nobody.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::code_flow::{CodeClient, Pkce};
use crate::helpers::console::{Browser, console_builder};
use crate::helpers::https::https_files;
use crate::helpers::{AgentKey, SKILL, TestServer, claims_of, header_of};

/// The scope the MCP server requires (and names in its metadata).
const SCOPE: &str = "notes:read";

/// The redirect URI `client.py` registers.
const REDIRECT: &str = "http://localhost:8976/callback";

fn support(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/mcp")
        .join(path)
}

/// Fails the test, saying what to install, when `python3` lacks the SDK.
fn require_mcp_sdk() {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import mcp.client.auth, mcp.server.mcpserver, jwt, httpx2, uvicorn",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs python3 with the MCP Python SDK and PyJWT: \
         pip install mcp==2.3.0 pyjwt==2.15.1 (scripts/test installs them into target/test-python)"
    );
}

/// `server.py`: an MCP server whose authorization server is `s`.
struct McpServer {
    child: Child,
    /// Its resource URL, `http://127.0.0.1:PORT/mcp`.
    url: String,
    dir: tempfile::TempDir,
}

impl McpServer {
    fn start(s: &TestServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stderr = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut child = Command::new("python3")
            .arg(support("server.py"))
            .arg(&s.base)
            .arg(SCOPE)
            .arg(dir.path().join("verifications.jsonl"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn python3 server.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Some(Ok(line)) = BufReader::new(stdout).lines().next() {
                let _ = tx.send(line);
            }
        });
        let mut server = Self {
            child,
            url: String::new(),
            dir,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the MCP server did not start:\n{}", server.log()));
        let first: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("unexpected first line {line:?} ({e})"));
        server.url = first["url"].as_str().expect("url").to_owned();
        server
    }

    /// Its stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Every token decision its verifier made, in order.
    fn verifications(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("verifications.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// POSTs a JSON-RPC `initialize` to the server with `token`; returns the status and
    /// `WWW-Authenticate`.
    fn initialize_with(&self, s: &TestServer, token: &str) -> (u16, String) {
        let r = s
            .http
            .post(&self.url)
            .bearer_auth(token)
            .header("Accept", "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "patron test", "version": "1"},
                },
            }))
            .send()
            .expect("POST to the MCP server");
        let status = r.status().as_u16();
        let www = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, www)
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- MCP server log ----\n{}", self.log());
        }
    }
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The index of the first request after `from` matching `method`, `url` and `status`.
fn find_request(requests: &[Value], from: usize, method: &str, url: &str, status: u16) -> usize {
    requests
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, r)| r["method"] == method && r["url"] == url && r["status"] == status)
        .map(|(i, _)| i)
        .unwrap_or_else(|| {
            panic!("no {method} {url} answered {status} after request {from}: {requests:#?}")
        })
}

/// Starts the MCP server for `s` and its skill, whose 10 s tokens are long enough for the
/// client's first session and short enough to expire before its second, which must refresh;
/// and another skill, which the consent page must not offer.
fn serve_mcp(s: &TestServer) -> McpServer {
    let mcp = McpServer::start(s);
    s.add_skill(&mcp.url, "notes:read notes:write", 10, false, None);
    s.add_skill(SKILL, "files:read", 120, false, None);
    mcp
}

/// Runs `client.py` against `mcp` as `person`, with `extra` arguments; what it printed.
fn run_client(mcp: &McpServer, person: &str, extra: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(support("client.py"))
        .arg(&mcp.url)
        .arg(person)
        .args(extra)
        .output()
        .expect("run python3 client.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the MCP SDK client failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("client output is not JSON ({e}): {stdout}"))
}

/// Where, among the client's requests, its flow reached Patron's metadata and exchanged the
/// code.
struct Flow {
    metadata_at: usize,
    code_at: usize,
}

/// What every run of `client.py` as alice must show, whichever way it got `client_id`: the
/// SDK found Patron from the MCP server's 401, alice logged in and approved the MCP server's
/// grant alone, the SDK exchanged the code as the public client `client_id`, called the
/// tools with Patron's token, saw the expired token refused, refreshed once and called a
/// tool with the new token.
fn assert_sdk_flow(s: &TestServer, mcp: &McpServer, got: &Value, client_id: &str) -> Flow {
    // The SDK started at the MCP server, was sent to its metadata, and found Patron there.
    let requests = got["requests"].as_array().expect("requests");
    let origin = mcp.url.trim_end_matches("/mcp");
    let prm = format!("{origin}/.well-known/oauth-protected-resource/mcp");
    assert_eq!(requests[0]["url"], mcp.url.as_str(), "{requests:#?}");
    assert_eq!(requests[0]["status"], 401);
    let challenge = requests[0]["www_authenticate"].as_str().unwrap();
    assert!(
        challenge.starts_with("Bearer ")
            && challenge.contains(&format!("resource_metadata=\"{prm}\"")),
        "{challenge}"
    );
    let i = find_request(requests, 1, "GET", &prm, 200);
    let metadata_at = find_request(
        requests,
        i,
        "GET",
        &s.url("/.well-known/oauth-authorization-server"),
        200,
    );
    let code_at = find_request(requests, metadata_at, "POST", &s.url("/token"), 200);
    assert_eq!(requests[code_at]["grant_type"], "authorization_code");
    assert_eq!(requests[code_at]["resource"], mcp.url.as_str());

    // Every token request came from the public client: its id in the body, no credentials.
    let grants: Vec<&Value> = requests
        .iter()
        .filter(|r| r["url"] == s.url("/token").as_str())
        .collect();
    assert_eq!(grants.len(), 2, "{requests:#?}");
    for g in &grants {
        assert_eq!(g["client_id"], client_id, "{g}");
        assert_eq!(g["authorization"], false, "{g}");
    }

    // The person: sent to the login, logged in, shown the MCP server's grant alone, approved.
    let person = &got["person"];
    let auth_url = person["authorization_url"].as_str().unwrap();
    assert!(auth_url.starts_with(&s.url("/authorize?")), "{auth_url}");
    let asked = query_of(auth_url);
    assert_eq!(asked["response_type"], "code");
    assert_eq!(asked["client_id"], client_id);
    assert_eq!(asked["redirect_uri"], REDIRECT);
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["resource"], mcp.url, "RFC 8707: the MCP server's URL");
    assert_eq!(asked["scope"], SCOPE, "the scope of its metadata");
    assert_eq!(person["anonymous"]["status"], 303);
    assert!(
        person["anonymous"]["location"]
            .as_str()
            .unwrap()
            .starts_with("/console/login?return_to="),
        "{person}"
    );
    assert_eq!(person["login"]["status"], 303);
    assert_eq!(person["login"]["session_cookie"], true);
    assert_eq!(person["offered_grants"], json!([mcp.url]));
    assert_eq!(person["approved"]["status"], 302);
    let redirect = person["approved"]["location"].as_str().unwrap();
    assert!(redirect.starts_with(&format!("{REDIRECT}?")), "{redirect}");
    let answer = query_of(redirect);
    assert_eq!(answer["state"], asked["state"]);
    assert_eq!(answer["iss"], s.base, "RFC 9207");
    assert_eq!(got["authorizations"], 1, "the person was asked once");
    s.wait_for_audit(|e| e.event == "consent.grant" && e.client_id.as_deref() == Some(client_id));

    // The token: Patron's, for the MCP server, for alice through this client.
    let tokens = got["tokens"].as_array().expect("tokens");
    assert_eq!(
        tokens.len(),
        2,
        "one token from the code, one refreshed: {tokens:#?}"
    );
    let first = tokens[0]["access_token"].as_str().unwrap();
    assert_eq!(header_of(first)["typ"], "at+jwt");
    assert_eq!(header_of(first)["alg"], "ES256");
    let c1 = claims_of(first);
    assert_eq!(c1["iss"], s.base.as_str());
    assert_eq!(c1["aud"], mcp.url.as_str());
    assert_eq!(c1["sub"], "dev:alice");
    assert_eq!(c1["client_id"], client_id);
    assert_eq!(c1["scope"], SCOPE);
    assert_eq!(tokens[0]["expires_in"], 10);

    // The tools ran, and the server saw that token.
    assert_eq!(got["tools"], json!(["echo", "whoami"]));
    assert_eq!(got["echo"], "echo: hello through Patron");
    let who = &got["whoami"];
    assert_eq!(who["sub"], "dev:alice");
    assert_eq!(who["aud"], mcp.url.as_str());
    assert_eq!(who["iss"], s.base.as_str());
    assert_eq!(who["client_id"], client_id);
    assert_eq!(who["scope"], SCOPE);
    assert_eq!(who["jti"], c1["jti"]);

    // Expired, that token is refused by the MCP server...
    assert_eq!(got["expired_token_answer"]["status"], 401, "{got}");
    assert!(
        got["expired_token_answer"]["www_authenticate"]
            .as_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let verifications = mcp.verifications();
    assert!(
        verifications
            .iter()
            .any(|v| v["ok"] == false && v["error"] == "ExpiredSignatureError"),
        "{verifications:#?}"
    );

    // ...so the second session began with a refresh_token grant (once, after the code).
    let refresh_at = find_request(requests, code_at + 1, "POST", &s.url("/token"), 200);
    assert_eq!(requests[refresh_at]["grant_type"], "refresh_token");
    assert_eq!(requests[refresh_at]["resource"], mcp.url.as_str());
    let second = tokens[1]["access_token"].as_str().unwrap();
    assert_ne!(second, first);
    assert_ne!(
        tokens[1]["refresh_token"], tokens[0]["refresh_token"],
        "the refresh token rotated"
    );
    let c2 = claims_of(second);
    assert_eq!(c2["aud"], mcp.url.as_str());
    assert_eq!(c2["sub"], "dev:alice");
    assert_eq!(c2["client_id"], client_id);
    assert_ne!(c2["jti"], c1["jti"]);
    // The tool call after it carried the new token.
    assert_eq!(got["whoami_after_refresh"]["jti"], c2["jti"]);
    assert_eq!(got["whoami_after_refresh"]["sub"], "dev:alice");
    assert!(
        verifications
            .iter()
            .any(|v| v["ok"] == true && v["jti"] == c2["jti"]),
        "{verifications:#?}"
    );
    Flow {
        metadata_at,
        code_at,
    }
}

#[test]
fn the_mcp_sdk_client_discovers_patron_registers_gets_consent_calls_tools_and_refreshes() {
    require_mcp_sdk();
    let s = console_builder().start();
    let mcp = serve_mcp(&s);
    let got = run_client(&mcp, "alice", &[]);

    // It registered a public client by DCR, bound to Patron as its issuer.
    let reg = &got["registration"];
    let client_id = reg["client_id"].as_str().expect("client_id");
    assert!(client_id.starts_with("agt_"), "{reg}");
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    assert_eq!(reg["redirect_uris"], json!([REDIRECT]));
    assert_eq!(reg["issuer"], s.base.as_str());

    let flow = assert_sdk_flow(&s, &mcp, &got, client_id);
    // It registered after reading Patron's metadata, before exchanging the code.
    let requests = got["requests"].as_array().unwrap();
    let registered = find_request(requests, flow.metadata_at, "POST", &s.url("/register"), 201);
    assert!(registered < flow.code_at, "{requests:#?}");

    // The consent page named the registered client and said approving claims it.
    let consent = &got["person"]["consent"];
    assert_eq!(consent["heading"], "Authorize MCP SDK client", "{consent}");
    assert!(
        consent["notices"].get("claims-agent").is_some(),
        "{consent}"
    );
    assert!(consent["notices"].get("vouched-by").is_none(), "{consent}");
    assert_eq!(
        s.owner_of(client_id).as_deref(),
        Some("dev:alice"),
        "approving claimed the agent"
    );
}

#[test]
fn the_mcp_sdk_client_uses_a_client_id_metadata_document_instead_of_registering() {
    require_mcp_sdk();
    let files = https_files();
    let s = files.trusted_by(console_builder()).start();
    let mcp = serve_mcp(&s);
    let url = format!("{}/oauth/mcp-client.json", files.base());
    files.publish(
        "oauth/mcp-client.json",
        &json!({
            "client_id": url,
            "client_name": "Notes assistant (from its document)",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })
        .to_string(),
    );
    let got = run_client(&mcp, "alice", &["--client-metadata-url", &url]);

    // Patron said it accepts documents, so the SDK took the URL as its client id and never
    // registered.
    let requests = got["requests"].as_array().expect("requests");
    assert!(
        !requests
            .iter()
            .any(|r| r["url"].as_str().is_some_and(|u| u.ends_with("/register"))),
        "no registration: {requests:#?}"
    );
    let info = &got["registration"];
    assert_eq!(info["client_id"], url.as_str(), "{info}");
    assert_eq!(info["token_endpoint_auth_method"], "none");

    assert_sdk_flow(&s, &mcp, &got, &url);
    // Patron fetched the document...
    s.wait_for_audit(|e| {
        e.event == "client_document.fetch"
            && e.outcome == "success"
            && e.client_id.as_deref() == Some(url.as_str())
    });

    // ...and its consent page named the client as the document does, and the host vouching
    // for it; nobody became its owner.
    let consent = &got["person"]["consent"];
    assert_eq!(
        consent["heading"], "Authorize Notes assistant (from its document)",
        "{consent}"
    );
    let vouched = consent["notices"]["vouched-by"]
        .as_str()
        .unwrap_or_default();
    assert!(vouched.contains("localhost"), "{consent}");
    assert!(
        consent["notices"].get("claims-agent").is_none(),
        "a shared client is claimed by nobody: {consent}"
    );
    assert_eq!(s.owner_of(&url), None, "a document client has no owner");
}

#[test]
fn the_mcp_server_refuses_another_audience_too_little_scope_and_a_forged_signature() {
    require_mcp_sdk();
    let s = console_builder().start();
    let mcp = McpServer::start(&s);
    s.add_skill(&mcp.url, "notes:read notes:write", 120, false, None);
    s.add_skill(SKILL, "files:read", 120, false, None);
    let app = CodeClient::public(&s);
    let alice = Browser::dev_login(&s, "alice");
    let token_for = |resource: &str, scope: &str| -> String {
        let pkce = Pkce::new();
        let path = app.authorize_path(&[resource], &pkce, &[("scope", scope)]);
        let code = alice.authorize_code(&path, &[resource]);
        let t = app.exchange_ok(&s, &code, &pkce.verifier, &[]);
        t["access_token"].as_str().unwrap().to_owned()
    };

    // A token of the same Patron for another skill.
    let other = token_for(SKILL, "files:read");
    let (status, www) = mcp.initialize_with(&s, &other);
    assert_eq!(status, 401, "{www}");
    assert!(www.contains("error=\"invalid_token\""), "{www}");
    assert_eq!(
        mcp.verifications().last().unwrap()["error"],
        "InvalidAudienceError"
    );

    // A token for the MCP server without the scope it requires.
    let write_only = token_for(&mcp.url, "notes:write");
    assert_eq!(claims_of(&write_only)["aud"], mcp.url.as_str());
    let (status, www) = mcp.initialize_with(&s, &write_only);
    assert_eq!(status, 403, "{www}");
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");

    // The right token is accepted; the same claims signed by another key are not.
    let good = token_for(&mcp.url, SCOPE);
    let (status, www) = mcp.initialize_with(&s, &good);
    assert_eq!(status, 200, "{www}");
    let forged = AgentKey::generate().sign(header_of(&good), claims_of(&good));
    let (status, www) = mcp.initialize_with(&s, &forged);
    assert_eq!(status, 401, "{www}");
    assert_eq!(
        mcp.verifications().last().unwrap()["error"],
        "InvalidSignatureError"
    );
}
