//! Several replicas: two `patron serve` processes sharing one database and one Redis server
//! (`redis.url`). A client assertion or DPoP proof used at one replica is refused at the
//! other, and a revocation at one is seen by the other at once. Each test starts its own
//! `redis-server` on a free port, so that stopping it harms no one else.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{
    ADMIN, Agent, OWNER, SKILL, TestServer, assert_oauth_error, dpop_claims, dpop_proof_with,
    free_port, now, unique,
};

/// Every replica's issuer: tokens, assertions and proofs name it, whichever replica serves.
const ISSUER: &str = "http://127.0.0.1:9";
/// Every replica's key-encryption key (they share the signing keys in the database).
const KEK: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A private `redis-server` on a free loopback port, stopped on drop.
pub(crate) struct RedisServer {
    child: Child,
    port: u16,
    /// For a TLS-only server: the CA file that signed its certificate.
    ca_file: Option<PathBuf>,
}

impl RedisServer {
    pub(crate) fn start() -> Self {
        let port = free_port();
        Self::launch(port, &["--port", &port.to_string()], None)
    }

    /// A server that speaks TLS only, with `cert`/`key` (signed by `ca`), not asking
    /// clients for certificates.
    pub(crate) fn start_tls(cert: &Path, key: &Path, ca: &Path) -> Self {
        let port = free_port();
        let path = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
        let args = [
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            path(cert),
            "--tls-key-file".to_owned(),
            path(key),
            "--tls-ca-cert-file".to_owned(),
            path(ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::launch(port, &args, Some(ca.to_owned()))
    }

    fn launch(port: u16, args: &[&str], ca_file: Option<PathBuf>) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1"])
            .args(args)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs redis-server on PATH ({e}); install the Debian package \
                     redis-server (.ci/run does)"
                )
            });
        let r = Self {
            child,
            port,
            ca_file,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !r.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.ca_file.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Whether it answers: `PING` in clear text, or (TLS) just accepting connections.
    fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.ca_file.is_some() {
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// The number of keys Redis holds.
    fn dbsize(&self) -> u64 {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("redis");
        s.write_all(b"DBSIZE\r\n").expect("write");
        let mut buf = [0u8; 32];
        let n = s.read(&mut buf).expect("read");
        let reply = std::str::from_utf8(&buf[..n]).expect("utf-8");
        reply
            .trim()
            .strip_prefix(':')
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unexpected DBSIZE reply {reply:?}"))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A replica with the shared issuer and key-encryption key; on `database` when given (the
/// first replica's), otherwise on a fresh database; with `redis` as its shared store.
/// Revocations reach it through the database only once an hour, so that a test sees what
/// Redis notices do.
fn replica(database: Option<&str>, redis: Option<&RedisServer>) -> TestServer {
    let mut b = TestServer::builder()
        .env("PATRON_ISSUER", ISSUER)
        .env("PATRON_KEY_ENCRYPTION_KEY", KEK)
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .env("PATRON_TOKENS__REVOCATION_SYNC_SECS", "3600");
    if let Some(url) = database {
        b = b.env("PATRON_DATABASE_URL", url);
    }
    if let Some(r) = redis {
        b = b.env("PATRON_REDIS__URL", &r.url());
        if let Some(ca) = &r.ca_file {
            b = b.env("PATRON_REDIS__CA_FILE", ca.to_str().expect("UTF-8 path"));
        }
    }
    b.start()
}

/// An assertion of `a` for the shared issuer, with a fresh `jti`.
fn assertion(a: &Agent) -> String {
    let t = now();
    a.key.sign(
        json!({"alg": "ES256", "kid": "k1"}),
        json!({"iss": a.client_id, "sub": a.client_id, "aud": ISSUER,
               "exp": t + 60, "iat": t, "jti": unique()}),
    )
}

/// A DPoP proof of `a` for the shared token endpoint, with a fresh `jti`.
fn proof(a: &Agent) -> String {
    dpop_proof_with(&a.dpop_key, dpop_claims("POST", &format!("{ISSUER}/token")))
}

/// Form fields authenticating `a` with a fresh assertion for the shared issuer.
fn authenticated(a: &Agent, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    Agent::form_with_assertion(&assertion(a), extra)
}

/// `POST /introspect` at `s` by `a`.
pub(crate) fn introspect(s: &TestServer, a: &Agent, token: &str) -> serde_json::Value {
    let r = s.post_form("/introspect", &authenticated(a, &[("token", token)]), None);
    assert_eq!(r.status(), 200);
    r.json().unwrap()
}

/// `POST /revoke` at `s` by `a`.
pub(crate) fn revoke(s: &TestServer, a: &Agent, token: &str) {
    let r = s.post_form("/revoke", &authenticated(a, &[("token", token)]), None);
    assert_eq!(r.status(), 200);
}

/// A skill token of `a` from `s`.
pub(crate) fn skill_token(s: &TestServer, a: &Agent) -> String {
    let r = token(s, &assertion(a), &proof(a));
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

fn token(s: &TestServer, assertion: &str, proof: &str) -> reqwest::blocking::Response {
    let f = Agent::form_with_assertion(
        assertion,
        &[("grant_type", "client_credentials"), ("resource", SKILL)],
    );
    s.post_form("/token", &f, Some(proof))
}

/// Two replicas on one database, and an agent approved for [`SKILL`].
pub(crate) fn two_replicas(redis: Option<&RedisServer>) -> (TestServer, TestServer, Agent) {
    let a = replica(None, redis);
    let b = replica(Some(a.db.url()), redis);
    a.add_skill(SKILL, "read", 120, false, None);
    let agent = Agent::register(&a);
    agent.approve(&a, OWNER, json!({SKILL: "read"}));
    (a, b, agent)
}

#[test]
fn an_assertion_or_proof_used_at_one_replica_is_refused_at_another() {
    let redis = RedisServer::start();
    let (a, b, agent) = two_replicas(Some(&redis));

    let used_assertion = assertion(&agent);
    let used_proof = proof(&agent);
    let r = token(&a, &used_assertion, &used_proof);
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    assert_eq!(redis.dbsize(), 2, "one key per identifier");

    // The same assertion at the other replica (with a fresh proof).
    assert_oauth_error(
        token(&b, &used_assertion, &proof(&agent)),
        401,
        "invalid_client",
    );
    // (b's audit events land in the shared database, which a's handle reads.)
    a.expect_refusal_audited("token.issue", "jti_replayed");
    // The same proof at the other replica (with a fresh assertion).
    assert_oauth_error(
        token(&b, &assertion(&agent), &used_proof),
        400,
        "invalid_dpop_proof",
    );
    a.expect_refusal_audited("token.issue", "dpop_jti_replayed");
    // Fresh ones work at either replica, and a token from one is good at the other.
    let r = token(&b, &assertion(&agent), &proof(&agent));
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let issued: serde_json::Value = r.json().unwrap();
    assert_eq!(issued["token_type"], "DPoP");
    let info = introspect(&a, &agent, issued["access_token"].as_str().unwrap());
    assert_eq!(info["active"], true, "{info}");
}

#[test]
fn a_revocation_at_one_replica_is_seen_at_the_other_at_once() {
    let redis = RedisServer::start();
    let (a, b, agent) = two_replicas(Some(&redis));
    let t = skill_token(&a, &agent);
    // b has verified and cached the token.
    assert_eq!(introspect(&b, &agent, &t)["active"], true);
    revoke(&a, &agent, &t);
    assert_eq!(introspect(&a, &agent, &t)["active"], false);
    // b learns of it from a's notice (its database sync runs once an hour here). The
    // notice travels asynchronously, so allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while introspect(&b, &agent, &t)["active"] == true {
        assert!(
            Instant::now() < deadline,
            "b still reports the revoked token active"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn narrowing_a_skills_policy_at_one_replica_revokes_live_tokens_at_the_other() {
    let redis = RedisServer::start();
    let (a, b, agent) = two_replicas(Some(&redis));
    let t = skill_token(&a, &agent);
    assert_eq!(introspect(&b, &agent, &t)["active"], true);
    // The policy no longer admits the agent's owner.
    a.admin_ok(
        "POST",
        "/admin/skills/policy",
        Some(json!({"audience": SKILL, "grantable_by": ["owner:github:999"]})),
    );
    assert_eq!(introspect(&a, &agent, &t)["active"], false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while introspect(&b, &agent, &t)["active"] == true {
        assert!(
            Instant::now() < deadline,
            "b still reports a token active whose grant the policy no longer admits"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // And b issues no new token for the skill.
    assert_oauth_error(
        token(&b, &assertion(&agent), &proof(&agent)),
        400,
        "invalid_target",
    );
}

#[test]
fn an_operators_revocation_by_jti_at_one_replica_is_seen_at_the_other_at_once() {
    let redis = RedisServer::start();
    let (a, b, agent) = two_replicas(Some(&redis));
    let t = skill_token(&a, &agent);
    assert_eq!(introspect(&b, &agent, &t)["active"], true);
    let jti = crate::helpers::claims_of(&t)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    a.admin_ok("POST", "/admin/tokens/revoke", Some(json!({ "jti": jti })));
    assert_eq!(introspect(&a, &agent, &t)["active"], false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while introspect(&b, &agent, &t)["active"] == true {
        assert!(
            Instant::now() < deadline,
            "b still reports the token revoked by jti active"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_redis_a_revocation_reaches_other_replicas_through_the_database_only() {
    // The control for the test above: with the database sync once an hour and no Redis,
    // b keeps answering from what it knew.
    let (a, b, agent) = two_replicas(None);
    let t = skill_token(&a, &agent);
    assert_eq!(introspect(&b, &agent, &t)["active"], true);
    revoke(&a, &agent, &t);
    assert_eq!(introspect(&a, &agent, &t)["active"], false);
    assert_eq!(introspect(&b, &agent, &t)["active"], true);
}

#[test]
fn a_skill_added_at_one_replica_reaches_the_others_discovery_document() {
    // Without Redis, through the periodic reload from the database (every 5 s).
    let a = replica(None, None);
    let b = replica(Some(a.db.url()), None);
    let scopes = |s: &TestServer| {
        let m: serde_json::Value = s.metadata();
        m["scopes_supported"].clone()
    };
    assert_eq!(scopes(&b), json!([]));
    a.add_skill(SKILL, "files:read", 120, false, None);
    let deadline = Instant::now() + Duration::from_secs(12);
    while scopes(&b) != json!(["files:read"]) {
        assert!(Instant::now() < deadline, "b still serves {}", scopes(&b));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn without_redis_each_replica_remembers_only_its_own_identifiers() {
    // The control for the test above: in memory, replay protection holds per replica only,
    // which is why several replicas need redis.url.
    let (a, b, agent) = two_replicas(None);
    let used_assertion = assertion(&agent);
    let used_proof = proof(&agent);
    assert_eq!(token(&a, &used_assertion, &used_proof).status(), 200);
    assert_oauth_error(
        token(&a, &used_assertion, &proof(&agent)),
        401,
        "invalid_client",
    );
    assert_eq!(token(&b, &used_assertion, &used_proof).status(), 200);
}

#[test]
fn when_redis_stops_answering_requests_are_refused_not_waved_through() {
    let mut redis = RedisServer::start();
    let s = replica(None, Some(&redis));
    s.add_skill(SKILL, "read", 120, false, None);
    let agent = Agent::register(&s);
    agent.approve(&s, OWNER, json!({SKILL: "read"}));
    assert_eq!(token(&s, &assertion(&agent), &proof(&agent)).status(), 200);

    redis.stop();
    let body = assert_oauth_error(
        token(&s, &assertion(&agent), &proof(&agent)),
        503,
        "temporarily_unavailable",
    );
    assert!(body["error_description"].as_str().is_some());
    s.expect_refusal_audited("token.issue", "replay_store_unavailable");
    // Requests that need no replay check still work.
    assert_eq!(
        s.http.get(s.url("/jwks.json")).send().unwrap().status(),
        200
    );
}

#[test]
fn a_replica_refuses_to_start_without_its_redis() {
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let db = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_patron"))
        .arg("serve")
        .current_dir(db.path())
        .env_clear()
        .env("PATRON_LISTEN", "127.0.0.1:0")
        .env("PATRON_DATABASE_URL", "sqlite://patron.db")
        .env(
            "PATRON_REDIS__URL",
            format!("redis://127.0.0.1:{dead_port}"),
        )
        .output()
        .expect("run patron");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach Redis at redis.url"),
        "stderr: {stderr}"
    );
}
