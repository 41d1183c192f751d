//! A local HTTPS file server, for what Patron fetches under its SSRF guard (`jwks_uri`,
//! RFC 9728 protected resource metadata).

use std::process::{Child, Command, Stdio};

use super::Spawn;

/// A local HTTPS server (Python) serving files from a directory with a fresh self-signed
/// certificate for `localhost`; stopped on drop.
pub struct HttpsFiles {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The directory it serves.
    pub dir: tempfile::TempDir,
}

impl Drop for HttpsFiles {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `openssl` command line in `dir`, failing the test if it fails or is missing.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl CLI is required for this test (apt-get install openssl)");
    assert!(ok.success(), "openssl {args:?} failed");
}

/// A self-signed P-256 certificate `cert` (key `key`) for `subject`, valid for a day, with
/// `extra` `openssl req` arguments (such as a subjectAltName).
pub fn self_signed(dir: &std::path::Path, subject: &str, extra: &[&str], key: &str, cert: &str) {
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        subject,
        "-days",
        "1",
        "-keyout",
        key,
        "-out",
        cert,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
}

/// Starts a local HTTPS file server with a fresh self-signed certificate for `localhost`.
pub fn https_files() -> HttpsFiles {
    let dir = tempfile::tempdir().unwrap();
    self_signed(
        dir.path(),
        "/CN=localhost",
        &["-addext", "subjectAltName=DNS:localhost"],
        "key.pem",
        "cert.pem",
    );
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

impl HttpsFiles {
    /// `https://localhost:<port>`.
    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Writes `body` at `path` (relative, `/`-separated) under the served directory.
    pub fn publish(&self, path: &str, body: &str) {
        let file = self.dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, body).unwrap();
    }

    /// A server builder that may fetch from this one: `localhost` allow-listed, its
    /// certificate trusted.
    pub fn trusted_by(&self, builder: Spawn) -> Spawn {
        builder
            .env("PATRON_OUTBOUND__ALLOW_HOSTS", "[\"localhost\"]")
            .env(
                "PATRON_OUTBOUND__CA_FILE",
                self.dir.path().join("cert.pem").to_str().unwrap(),
            )
    }
}
