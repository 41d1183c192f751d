//! TLS to Redis (`rediss://`): replicas share a TLS-only `redis-server` whose certificate a
//! throwaway CA signed (`redis.ca_file`), and a server whose certificate no trusted CA signed
//! is refused at start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::https::{openssl, self_signed};
use crate::replicas::{RedisServer, introspect, revoke, skill_token, two_replicas};

/// A CA and a server certificate for 127.0.0.1 it signed, in a temporary directory.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn make() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let c = Self { dir };
        c.new_ca("ca");
        openssl(
            c.dir.path(),
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            c.dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            c.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "1",
                "-days",
                "1",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        c
    }

    /// A self-signed CA `<name>.pem` (key `<name>.key`).
    fn new_ca(&self, name: &str) -> PathBuf {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        self_signed(
            self.dir.path(),
            &format!("/CN=Patron test CA {name}"),
            &[],
            &key,
            &pem,
        );
        self.path(&pem)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn redis(&self) -> RedisServer {
        RedisServer::start_tls(
            &self.path("server.pem"),
            &self.path("server.key"),
            &self.path("ca.pem"),
        )
    }
}

#[test]
fn two_replicas_sharing_a_tls_redis_see_each_others_revocations() {
    let certs = Certificates::make();
    let redis = certs.redis();
    assert!(redis.url().starts_with("rediss://"));
    let (a, b, agent) = two_replicas(Some(&redis));
    let t = skill_token(&a, &agent);
    assert_eq!(introspect(&b, &agent, &t)["active"], true);
    revoke(&a, &agent, &t);
    // b's database sync runs once an hour here: only the notice over TLS can tell it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while introspect(&b, &agent, &t)["active"] == true {
        assert!(
            Instant::now() < deadline,
            "b still reports the revoked token active"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `patron serve` against `url` with `ca_file`, expecting it to refuse to start;
/// returns its standard error.
fn refused_start(url: &str, ca_file: Option<&Path>) -> String {
    let db = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_patron"));
    cmd.arg("serve")
        .current_dir(db.path())
        .env_clear()
        .env("PATRON_LISTEN", "127.0.0.1:0")
        .env("PATRON_DATABASE_URL", "sqlite://patron.db")
        .env("PATRON_REDIS__URL", url);
    if let Some(ca) = ca_file {
        cmd.env("PATRON_REDIS__CA_FILE", ca);
    }
    let out = cmd.output().expect("run patron");
    assert!(!out.status.success(), "patron started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_redis_certificate_from_an_untrusted_ca_stops_the_server_with_a_clear_message() {
    let certs = Certificates::make();
    let redis = certs.redis();
    let other_ca = certs.new_ca("other");
    for ca in [Some(other_ca.as_path()), None] {
        let stderr = refused_start(&redis.url(), ca);
        assert!(
            stderr.contains("cannot reach Redis over TLS at redis.url")
                && stderr.contains("redis.ca_file")
                && stderr.contains("invalid peer certificate"),
            "CA {ca:?}; stderr: {stderr}"
        );
    }
}
