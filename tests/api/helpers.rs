//! The test harness: spawns the real `patron serve` binary on a fresh database (SQLite by
//! default; PostgreSQL when `PATRON_TEST_DATABASE_URL` names a server) and talks HTTP to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use patron::config::DatabaseUrl;
use patron::store::models::audit_events::AuditEventRow;
use patron::store::schema::{audit_events, clients};
use patron::store::{ConnectionManager, DbConnection};
use serde_json::{Value, json};

pub mod code_flow;
pub mod console;
pub mod https;

/// A fresh database for one test.
pub enum TestDb {
    /// A temporary SQLite file (the directory is removed on drop).
    Sqlite { dir: tempfile::TempDir, url: String },
    /// A PostgreSQL database created for this test and dropped on drop.
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDb {
    /// Creates the database the environment asks for.
    pub fn create() -> Self {
        match std::env::var("PATRON_TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("patron_t_{}", hex(&rand_bytes()));
                let mut conn = diesel::PgConnection::establish(&admin_url).unwrap_or_else(|e| {
                    panic!(
                        "PATRON_TEST_DATABASE_URL is set but PostgreSQL is unreachable ({e}); \
                         start PostgreSQL or unset the variable to test on SQLite"
                    )
                });
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&admin_url);
                let url = format!("{base}/{name}");
                TestDb::Postgres {
                    admin_url,
                    name,
                    url,
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("patron.db").display());
                TestDb::Sqlite { dir, url }
            }
        }
    }

    /// The database URL for the server.
    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    /// A directory for the server's working files.
    pub fn workdir(&self) -> std::path::PathBuf {
        match self {
            TestDb::Sqlite { dir, .. } => dir.path().to_path_buf(),
            TestDb::Postgres { .. } => std::env::temp_dir(),
        }
    }

    /// A direct connection, for assertions on what was (not) written.
    pub fn connect(&self) -> DbConnection {
        let url = DatabaseUrl::parse(self.url()).expect("test database url");
        ConnectionManager::new(url)
            .establish()
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
        {
            if let Ok(mut conn) = diesel::PgConnection::establish(admin_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn);
            }
        }
    }
}

fn rand_bytes() -> [u8; 8] {
    patron::crypto::random_bytes::<8>()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running `patron serve` process.
pub struct TestServer {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// Its database.
    pub db: TestDb,
    /// HTTP client (no redirects followed).
    pub http: reqwest::blocking::Client,
    /// The startup line the server printed.
    pub startup_line: String,
    stderr_log: std::path::PathBuf,
}

/// Builder for a server with extra environment.
pub struct Spawn {
    env: Vec<(String, String)>,
    db: Option<TestDb>,
}

impl Spawn {
    /// Adds an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Reuses a database (for restart tests).
    pub fn db(mut self, db: TestDb) -> Self {
        self.db = Some(db);
        self
    }

    /// Starts the server and waits until `/readyz` answers 200.
    pub fn start(self) -> TestServer {
        let db = self.db.unwrap_or_else(TestDb::create);
        let workdir = db.workdir();
        let stderr_log = workdir.join(format!("patron-{}.log", hex(&rand_bytes())));
        let stderr_file = std::fs::File::create(&stderr_log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_patron"));
        cmd.arg("serve")
            .current_dir(&workdir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PATRON_LISTEN", "127.0.0.1:0")
            .env("PATRON_DATABASE_URL", db.url())
            .env("PATRON_AUDIT__FLUSH_INTERVAL_MS", "20")
            .env("PATRON_DATABASE__POOL_SIZE", "4")
            .env("PATRON_WORKERS", "2")
            .env("PATRON_REGISTRATION__RATE_LIMIT_PER_MINUTE", "0")
            .env("PATRON_KEYS__REFRESH_INTERVAL_SECS", "1")
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        if matches!(db, TestDb::Postgres { .. }) {
            // Keep the key-encryption key out of the shared temp dir.
            cmd.env(
                "PATRON_KEY_ENCRYPTION_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            );
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn patron");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "patron did not start; its log:\n{}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                )
            });
        let addr = line
            .strip_prefix("patron listening on ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        let http = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let server = TestServer {
            child,
            base: addr,
            db,
            http,
            startup_line: line.clone(),
            stderr_log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = server.http.get(server.url("/readyz")).send() {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "server never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl TestServer {
    /// The `kid`s currently in `/jwks.json`.
    pub fn published_kids(&self) -> Vec<String> {
        let jwks: Value = self
            .http
            .get(self.url("/jwks.json"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A server with default test settings.
    pub fn spawn() -> Self {
        Self::builder().start()
    }

    /// A builder for custom settings.
    pub fn builder() -> Spawn {
        Spawn {
            env: Vec::new(),
            db: None,
        }
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The authorization server metadata (`GET /.well-known/oauth-authorization-server`).
    pub fn metadata(&self) -> Value {
        self.http
            .get(self.url("/.well-known/oauth-authorization-server"))
            .send()
            .expect("GET metadata")
            .json()
            .expect("metadata JSON")
    }

    /// `POST /register` with a JSON body.
    pub fn register(&self, body: &Value) -> reqwest::blocking::Response {
        self.http
            .post(self.url("/register"))
            .json(body)
            .send()
            .expect("POST /register")
    }

    /// `POST /register` with a raw body and content type.
    pub fn register_raw(&self, content_type: &str, body: Vec<u8>) -> reqwest::blocking::Response {
        self.http
            .post(self.url("/register"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .expect("POST /register")
    }

    /// Registers `body` and returns the 201 response JSON.
    pub fn register_ok(&self, body: &Value) -> Value {
        let r = self.register(body);
        let status = r.status();
        let json: Value = r.json().expect("json");
        assert_eq!(status, 201, "registration failed: {json}");
        json
    }

    /// The stored owner of `client_id` (none while unclaimed, or for a shared client).
    pub fn owner_of(&self, client_id: &str) -> Option<String> {
        let mut c = self.db.connect();
        clients::table
            .find(client_id)
            .select(clients::owner_id)
            .first::<Option<String>>(&mut c)
            .expect("client row")
    }

    /// Number of stored registrations.
    pub fn count_clients(&self) -> i64 {
        let mut c = self.db.connect();
        clients::table
            .count()
            .get_result(&mut c)
            .expect("count clients")
    }

    /// Waits (up to 10 s) for an audit event matching `pred`, and returns it.
    pub fn wait_for_audit(&self, pred: impl Fn(&AuditEventRow) -> bool) -> AuditEventRow {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut c = self.db.connect();
            let rows: Vec<AuditEventRow> = audit_events::table
                .order(audit_events::id.asc())
                .select(AuditEventRow::as_select())
                .load(&mut c)
                .expect("load audit");
            if let Some(r) = rows.into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "expected audit event never appeared"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Waits for a failed registration audited with `reason`.
    pub fn expect_refusal_audited(&self, event: &str, reason: &str) {
        self.wait_for_audit(|r| {
            r.event == event && r.outcome == "failure" && r.reason.as_deref() == Some(reason)
        });
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn stop(mut self) -> (bool, TestDb) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        let ok = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Move the database out; Drop below then only kills (already exited) the process.
        let db = std::mem::replace(&mut self.db, TestDb::placeholder());
        (ok, db)
    }
}

impl TestDb {
    fn placeholder() -> Self {
        TestDb::Sqlite {
            dir: tempfile::tempdir().expect("temp dir"),
            url: String::new(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- patron log ----\n{}", self.log());
        }
    }
}

/// A P-256 key pair for a test agent.
pub struct AgentKey {
    /// The key pair.
    pub pair: josekit::jwk::alg::ec::EcKeyPair,
}

impl AgentKey {
    /// Generates a key.
    pub fn generate() -> Self {
        Self {
            pair: josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256)
                .expect("generate key"),
        }
    }

    /// Its public JWK with `kid`.
    pub fn public_jwk(&self, kid: &str) -> Value {
        use josekit::jwk::KeyPair as _;
        let mut m = self.pair.to_jwk_public_key().as_ref().clone();
        m.insert("kid".into(), json!(kid));
        Value::Object(m)
    }

    /// Its private JWK (for tests that must be refused).
    pub fn private_jwk(&self) -> Value {
        use josekit::jwk::KeyPair as _;
        Value::Object(self.pair.to_jwk_private_key().as_ref().clone())
    }

    /// Signs a compact JWS over `header` and `claims` with ES256.
    pub fn sign(&self, header: Value, claims: Value) -> String {
        use base64::Engine as _;
        use josekit::jwk::KeyPair as _;
        use josekit::jws::JwsSigner as _;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!(
            "{}.{}",
            e.encode(header.to_string()),
            e.encode(claims.to_string())
        );
        let signer = josekit::jws::ES256
            .signer_from_der(self.pair.to_der_private_key())
            .expect("signer");
        let sig = signer.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", e.encode(sig))
    }
}

/// Metadata of a typical agent: private_key_jwt, client_credentials, DPoP-bound.
pub fn agent_metadata(key: &AgentKey) -> Value {
    json!({
        "client_name": "Test agent",
        "grant_types": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
        "response_types": [],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.public_jwk("k1")]},
        "dpop_bound_access_tokens": true,
        "scope": "read write",
    })
}

/// Asserts an OAuth error response: status, `error` code, and exactly the RFC members.
pub fn assert_oauth_error(resp: reqwest::blocking::Response, status: u16, code: &str) -> Value {
    let actual = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = resp.json().expect("error body is JSON");
    assert_eq!(actual, status, "body: {body}");
    assert_eq!(body["error"], code, "body: {body}");
    let desc = body["error_description"].as_str().unwrap_or_default();
    assert!(!desc.is_empty(), "error_description must help: {body}");
    let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["error", "error_description", "error_uri"].contains(&k.as_str())),
        "unexpected members: {body}"
    );
    assert_eq!(cache, "no-store");
    body
}

// ---------------------------------------------------------------------------------------
// Token service: admin API, approved agents, client assertions, DPoP proofs.
// ---------------------------------------------------------------------------------------

/// The admin bearer token tests start the server with (`PATRON_ADMIN_TOKEN`).
pub const ADMIN: &str = "test-admin-token-0123456789abcdef-0123456789";

/// Grant type URI of token exchange (RFC 8693).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Token type URI of access tokens (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The owner agents are approved for unless a test says otherwise.
pub const OWNER: &str = "github:42";

/// The first skill's audience.
pub const SKILL: &str = "https://skill.example/api";

/// Current Unix time in seconds.
pub fn now() -> i64 {
    patron::clock::now()
}

/// A fresh random identifier (for `jti`s).
pub fn unique() -> String {
    hex(&patron::crypto::random_bytes::<16>())
}

/// Decodes one base64url JWT part as JSON.
fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("JWT part {index} is not base64url ({e}): {token}"));
    serde_json::from_slice(&bytes).expect("JWT part is JSON")
}

/// The (unverified) claims of a JWT.
pub fn claims_of(token: &str) -> Value {
    jwt_part(token, 1)
}

/// The (unverified) JOSE header of a JWT.
pub fn header_of(token: &str) -> Value {
    jwt_part(token, 0)
}

impl TestServer {
    /// A server with the admin API enabled.
    pub fn with_admin() -> Self {
        Self::builder().env("PATRON_ADMIN_TOKEN", ADMIN).start()
    }

    /// Calls the admin API with the right bearer token.
    pub fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::blocking::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.http.request(method, self.url(path)).bearer_auth(ADMIN);
        if let Some(b) = &body {
            req = req.json(b);
        }
        req.send().expect("admin request")
    }

    /// Calls the admin API and asserts a 2xx answer; returns its JSON.
    pub fn admin_ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.admin(method, path, body);
        let status = r.status();
        let text = r.text().expect("admin body");
        assert!(status.is_success(), "admin {path}: {status} {text}");
        serde_json::from_str(&text).expect("admin JSON")
    }

    /// Creates a skill (audience, scopes, token lifetime, DPoP requirement, its client).
    pub fn add_skill(
        &self,
        audience: &str,
        scopes: &str,
        ttl_secs: i64,
        require_dpop: bool,
        client_id: Option<&str>,
    ) -> Value {
        self.put_skill(json!({
            "audience": audience,
            "name": "Test skill",
            "scopes": scopes,
            "ttl_secs": ttl_secs,
            "require_dpop": require_dpop,
            "client_id": client_id,
            "grantable_by": ["any"],
        }))
    }

    /// Registers skill `audience` (`scopes`, 120 s, DPoP optional) whose client `client_id`
    /// may exchange tokens it receives toward `delegate_to`; returns the skill JSON.
    pub fn add_delegating_skill(
        &self,
        audience: &str,
        scopes: &str,
        client_id: &str,
        delegate_to: &[&str],
    ) -> Value {
        self.put_skill(json!({
            "audience": audience,
            "name": "Test skill",
            "scopes": scopes,
            "ttl_secs": 120,
            "client_id": client_id,
            "delegate_audiences": delegate_to,
            "grantable_by": ["any"],
        }))
    }

    /// `POST /admin/skills` with `body`, asserting 201; returns the skill JSON.
    pub fn put_skill(&self, body: Value) -> Value {
        let r = self.admin("POST", "/admin/skills", Some(body));
        let status = r.status();
        let body: Value = r.json().expect("skill JSON");
        assert_eq!(status, 201, "skill creation failed: {body}");
        body
    }

    /// POSTs a form to `path` with an optional `DPoP` header.
    pub fn post_form(
        &self,
        path: &str,
        form: &[(String, String)],
        dpop: Option<&str>,
    ) -> reqwest::blocking::Response {
        let mut req = self.http.post(self.url(path)).form(form);
        if let Some(p) = dpop {
            req = req.header("DPoP", p);
        }
        req.send().expect("POST form")
    }
}

/// Owned form pairs from borrowed ones.
pub fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The public JWK of `key` without `kid` (as a DPoP proof carries it).
pub fn bare_public_jwk(key: &AgentKey) -> serde_json::Map<String, Value> {
    use josekit::jwk::KeyPair as _;
    key.pair.to_jwk_public_key().as_ref().clone()
}

/// RFC 7638 thumbprint of `key`'s public JWK (the `cnf.jkt` a token bound to it carries).
pub fn thumbprint_of(key: &AgentKey) -> String {
    patron::jose::jwks::thumbprint(&bare_public_jwk(key)).expect("thumbprint")
}

/// The standard DPoP proof claims for `htm` and `htu`, issued now with a fresh `jti`.
pub fn dpop_claims(htm: &str, htu: &str) -> Value {
    json!({"htm": htm, "htu": htu, "iat": now(), "jti": unique()})
}

/// A DPoP proof signed by `key` carrying its public JWK, with `claims`.
pub fn dpop_proof_with(key: &AgentKey, claims: Value) -> String {
    key.sign(
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": bare_public_jwk(key)}),
        claims,
    )
}

/// A registered agent (private_key_jwt with kid `k1`, DPoP-bound tokens) and its DPoP key.
pub struct Agent {
    /// Its client authentication key (registered as `k1`).
    pub key: AgentKey,
    /// The key its DPoP proofs are made with.
    pub dpop_key: AgentKey,
    /// Its `client_id`.
    pub client_id: String,
}

impl Agent {
    /// Registers an agent with [`agent_metadata`]; it stays pending until approved.
    pub fn register(s: &TestServer) -> Self {
        let key = AgentKey::generate();
        let metadata = agent_metadata(&key);
        let r = s.register(&metadata);
        let status = r.status();
        let registration: Value = r.json().expect("registration JSON");
        assert_eq!(status, 201, "registration failed: {registration}");
        Self {
            key,
            dpop_key: AgentKey::generate(),
            client_id: registration["client_id"]
                .as_str()
                .expect("client_id")
                .to_owned(),
        }
    }

    /// Registers an agent and approves it for [`OWNER`] with `grants` (audience → scopes).
    pub fn approved(s: &TestServer, grants: Value) -> Self {
        let a = Self::register(s);
        a.approve(s, OWNER, grants);
        a
    }

    /// Approves this agent for `owner` with `grants`.
    pub fn approve(&self, s: &TestServer, owner: &str, grants: Value) {
        s.admin_ok(
            "POST",
            &format!("/admin/agents/{}/approve", self.client_id),
            Some(json!({"owner": owner, "grants": grants})),
        );
    }

    /// Valid assertion claims (audience: the issuer), fresh `jti`.
    pub fn assertion_claims(&self, s: &TestServer) -> Value {
        let t = now();
        json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": s.base,
            "exp": t + 60,
            "iat": t,
            "jti": unique(),
        })
    }

    /// A valid client assertion (fresh `jti` each call).
    pub fn assertion(&self, s: &TestServer) -> String {
        self.key.sign(
            json!({"alg": "ES256", "kid": "k1"}),
            self.assertion_claims(s),
        )
    }

    /// A DPoP proof with this agent's DPoP key for `POST htu`.
    pub fn dpop_proof(&self, htu: &str) -> String {
        dpop_proof_with(&self.dpop_key, dpop_claims("POST", htu))
    }

    /// `extra` plus `private_key_jwt` client authentication with `assertion`.
    pub fn form_with_assertion(assertion: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut f = form(extra);
        f.push(("client_assertion_type".into(), JWT_BEARER.into()));
        f.push(("client_assertion".into(), assertion.to_owned()));
        f
    }

    /// POSTs `extra` to `path`, authenticated with a fresh assertion, with `dpop` if any.
    pub fn send(
        &self,
        s: &TestServer,
        path: &str,
        extra: &[(&str, &str)],
        dpop: Option<&str>,
    ) -> reqwest::blocking::Response {
        s.post_form(
            path,
            &Self::form_with_assertion(&self.assertion(s), extra),
            dpop,
        )
    }

    /// `POST /token` with `extra`, a fresh assertion and a fresh DPoP proof.
    pub fn token(&self, s: &TestServer, extra: &[(&str, &str)]) -> reqwest::blocking::Response {
        let proof = self.dpop_proof(&s.url("/token"));
        self.send(s, "/token", extra, Some(&proof))
    }

    /// [`Agent::token`], asserting success; returns the token response JSON.
    pub fn token_ok(&self, s: &TestServer, extra: &[(&str, &str)]) -> Value {
        let r = self.token(s, extra);
        let status = r.status();
        let cache = r
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = r.json().expect("token response JSON");
        assert_eq!(status, 200, "token request failed: {body}");
        assert_eq!(cache, "no-store");
        body
    }

    /// An agent token (`client_credentials` without `resource`).
    pub fn agent_token(&self, s: &TestServer) -> String {
        let r = self.token_ok(s, &[("grant_type", "client_credentials")]);
        r["access_token"].as_str().expect("access_token").to_owned()
    }

    /// A skill token for `resource` with all granted scopes.
    pub fn skill_token(&self, s: &TestServer, resource: &str) -> String {
        let r = self.token_ok(
            s,
            &[("grant_type", "client_credentials"), ("resource", resource)],
        );
        r["access_token"].as_str().expect("access_token").to_owned()
    }

    /// A token exchange of `subject_token` for `resource` (with a DPoP proof).
    pub fn exchange(
        &self,
        s: &TestServer,
        subject_token: &str,
        resource: &str,
    ) -> reqwest::blocking::Response {
        self.token(
            s,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", subject_token),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("resource", resource),
            ],
        )
    }

    /// [`Agent::exchange`], asserting success; returns the issued token.
    pub fn exchange_ok(&self, s: &TestServer, subject_token: &str, resource: &str) -> String {
        let r = self.exchange(s, subject_token, resource);
        let status = r.status();
        let body: Value = r.json().expect("exchange response JSON");
        assert_eq!(status, 200, "token exchange failed: {body}");
        assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// `POST /introspect` of `token`; asserts 200 and returns the JSON.
    pub fn introspect(&self, s: &TestServer, token: &str) -> Value {
        let r = self.send(s, "/introspect", &[("token", token)], None);
        let status = r.status();
        let body: Value = r.json().expect("introspection JSON");
        assert_eq!(status, 200, "introspection failed: {body}");
        body
    }

    /// `POST /revoke` of `token`; asserts 200.
    pub fn revoke(&self, s: &TestServer, token: &str) {
        let r = self.send(s, "/revoke", &[("token", token)], None);
        assert_eq!(r.status(), 200, "revocation failed: {:?}", r.text());
    }
}

impl TestServer {
    /// Waits (up to 10 s) until at least `n` audit events match `pred`; returns how many.
    pub fn wait_for_audit_count(&self, n: usize, pred: impl Fn(&AuditEventRow) -> bool) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut c = self.db.connect();
            let rows: Vec<AuditEventRow> = audit_events::table
                .select(AuditEventRow::as_select())
                .load(&mut c)
                .expect("load audit");
            let count = rows.iter().filter(|r| pred(r)).count();
            if count >= n {
                return count;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} matching audit events, found {count}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Waits until `n` refusals of `event` with `reason` are audited.
    pub fn expect_refusals_audited(&self, event: &str, reason: &str, n: usize) {
        self.wait_for_audit_count(n, |r| {
            r.event == event && r.outcome == "failure" && r.reason.as_deref() == Some(reason)
        });
    }
}

/// The GitHub stand-in (`tests/support/github_standin.py`); killed on drop.
pub struct GithubStandIn {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl GithubStandIn {
    /// Starts it on a free port.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port_file = dir.path().join("port");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support/github_standin.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("the GitHub stand-in needs `python3` on PATH: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
            {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the GitHub stand-in exited at start ({status})");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the GitHub stand-in did not report its port within 20 s");
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// A URL on the stand-in.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The owner id Patron gives the stand-in's user `id`: the stand-in is not github.com,
    /// so its host is part of the id.
    pub fn owner_id(&self, id: u64) -> String {
        format!("github:127.0.0.1:{}:{id}", self.port)
    }

    /// A Patron configuration file with a GitHub provider pointing here.
    pub fn config_file(&self) -> std::path::PathBuf {
        let file = self._dir.path().join("patron.toml");
        std::fs::write(
            &file,
            format!(
                "[[console.providers]]\nkind = \"github\"\nclient_id = \"test-client\"\n\
                 client_secret = \"test-secret\"\n\
                 authorize_url = \"{base}/login/oauth/authorize\"\n\
                 token_url = \"{base}/login/oauth/access_token\"\n\
                 api_url = \"{base}\"\n",
                base = self.url("")
            ),
        )
        .expect("write config");
        file
    }
}

impl Drop for GithubStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A single-threaded tokio runtime, for calling the library's async functions directly.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
