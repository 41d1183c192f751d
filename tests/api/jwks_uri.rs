//! `jwks_uri` is fetched under the SSRF guard: https only, public addresses unless the host
//! is allow-listed, no redirects, bounded size.

use std::process::{Child, Command, Stdio};

use serde_json::json;

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

/// A local HTTPS server (Python) serving files from a directory with a fresh self-signed
/// certificate for `localhost`.
pub(crate) struct HttpsFiles {
    child: Child,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Drop for HttpsFiles {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn https_files() -> HttpsFiles {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-days",
            "1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl CLI is required for this test (apt-get install openssl)");
    assert!(ok.success());
    let script = r#"
import http.server, ssl, socketserver, sys, os
os.chdir(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("cert.pem", "key.pem")
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is required for this test");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line.trim().parse().expect("port");
    HttpsFiles { child, port, dir }
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
