//! The owner console end to end, in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`, with `fantoccini`), logging in at a real OpenID provider (npm
//! `oidc-provider`, run by `tests/support/oidc/provider.mjs` under Node), claiming an agent,
//! granting a skill and suspending the agent, while the agent asks for tokens over HTTP.
//!
//! A second story runs the authorization code flow's consent page: a person logs in with the
//! development login, approves an app and lands on the app's redirect URI with a code.
//!
//! Needs `chromium`, `chromium-driver` and `nodejs` (Debian packages) and
//! `npm ci --prefix tests/support/oidc`; `.ci/run` installs them. Without them the test fails
//! and says what to install. Screenshots of the main pages land in `target/screenshots/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use patron::service::sessions::SESSION_COOKIE;
use serde_json::{Value, json};

use crate::helpers::code_flow::{CodeClient, Pkce, ok_json};
use crate::helpers::console::console_builder;
use crate::helpers::{
    ADMIN, Agent, AgentKey, SKILL, TestServer, agent_metadata, assert_oauth_error, claims_of,
    free_port,
};

/// How long any one thing may take to show up in the browser.
const WAIT: Duration = Duration::from_secs(10);

/// The provider's name in Patron's configuration (and in its callback path).
const PROVIDER: &str = "testidp";
const CLIENT_ID: &str = "patron-test";
const CLIENT_SECRET: &str = "patron-test-secret";
const AGENT_NAME: &str = "Browser test agent";

/// A skill whose grant policy admits another owner only.
const FOREIGN_SKILL: &str = "https://not-for-alice.example/api";

fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oidc")
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

/// The full path of `program` on `PATH`, or a failure naming the Debian package to install.
fn require(program: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser test needs `{program}` on PATH: install the Debian package \
                 `{package}` (`apt-get install {package}`; .ci/run does this)"
            )
        })
}

// ---- the OpenID provider ------------------------------------------------------------------

/// `tests/support/oidc/provider.mjs` under Node; killed on drop.
struct OpenIdProvider {
    child: Child,
    /// Its issuer, `http://127.0.0.1:<port>`.
    issuer: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OpenIdProvider {
    fn start() -> Self {
        let node = require("node", "nodejs");
        let support = support_dir();
        assert!(
            support
                .join("node_modules/oidc-provider/package.json")
                .is_file(),
            "the browser test needs the npm package oidc-provider: run \
             `npm ci --prefix tests/support/oidc` (.ci/run does this)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("provider.log");
        let mut child = Command::new(node)
            .arg(support.join("provider.mjs"))
            .current_dir(&support)
            .env("OIDC_PORT", "0")
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            // The provider's default: e-mail claims only at UserInfo (OpenID Connect Core
            // §5.4), which Patron must ask.
            .env("OIDC_CONFORM_ID_TOKEN_CLAIMS", "1")
            .env(
                "OIDC_REDIRECT_PATH",
                format!("/console/callback/{PROVIDER}"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("provider log file"))
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("provider stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let issuer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(issuer) = line.strip_prefix("oidc-provider ready on ") {
                        break issuer.trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the OpenID provider did not start within 20 s; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        OpenIdProvider {
            child,
            issuer,
            log,
            _dir: dir,
        }
    }
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- OpenID provider log ----\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

// ---- the browser --------------------------------------------------------------------------

/// Headless Chromium behind a `chromedriver` of its own; both are ended on drop.
///
/// The WebDriver client is async; each step runs to completion on a private runtime, so the
/// rest of the test stays blocking like the other API tests.
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// chromedriver's port, for what the WebDriver client does not expose (the console log).
    driver_port: u16,
    driver_log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Self {
        let chromium = require("chromium", "chromium");
        let chromedriver = require("chromedriver", "chromium-driver");
        let profile = tempfile::tempdir().expect("browser profile dir");
        let _ = std::fs::remove_file(screenshot_dir().join("failure.png"));
        let driver_log = profile.path().join("chromedriver.log");
        let port = free_port();
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"))
            // Chromium keeps crash reports and caches under these, not the profile directory.
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .env("XDG_CACHE_HOME", profile.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&driver_log).expect("chromedriver log"))
            .stderr(Stdio::null());
        // A process group of its own: on drop it ends with every browser process it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut driver = cmd.spawn().expect("spawn chromedriver");

        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        let status_url = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(&status_url)
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            if let Ok(Some(status)) = driver.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}); its log:\n{}",
                    std::fs::read_to_string(&driver_log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                kill_group(&mut driver);
                panic!(
                    "chromedriver did not answer within 20 s; its log:\n{}",
                    std::fs::read_to_string(&driver_log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-crash-reporter",
                    "--window-size=1280,1100",
                    format!("--user-data-dir={}", profile.path().join("chrome").display()),
                ],
            }),
        );
        // What the page's console says (CSP refusals among it), read on failure.
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connected = rt.block_on(
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}")),
        );
        let client = match connected {
            Ok(c) => c,
            Err(e) => {
                kill_group(&mut driver);
                panic!(
                    "could not start Chromium through chromedriver: {e}\nchromedriver log:\n{}",
                    std::fs::read_to_string(&driver_log).unwrap_or_default()
                );
            }
        };
        Browser {
            rt,
            client: Some(client),
            driver,
            driver_port: port,
            driver_log,
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("browser session")
    }

    fn goto(&self, url: &str) {
        self.rt
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    fn url(&self) -> url::Url {
        self.rt
            .block_on(self.client().current_url())
            .expect("current URL")
    }

    fn source(&self) -> String {
        self.rt.block_on(self.client().source()).unwrap_or_default()
    }

    /// Fails the test with what the browser shows now (URL, page text, a screenshot).
    fn fail(&self, what: &str) -> ! {
        let url = self.url();
        let text = self
            .rt
            .block_on(async { self.client().find(Locator::Css("body")).await?.text().await })
            .unwrap_or_default();
        self.screenshot("failure");
        let console = self.console_log();
        panic!(
            "{what} (waited {WAIT:?})\nbrowser at {url}\npage text:\n{text}\n\
             browser console:\n{console}\n(screenshot: target/screenshots/failure.png)"
        );
    }

    /// The browser console's messages so far (chromedriver's log endpoint), one a line.
    fn console_log(&self) -> String {
        let Ok(Some(id)) = self.rt.block_on(self.client().session_id()) else {
            return "(no session id)".into();
        };
        let answer = reqwest::blocking::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/session/{id}/se/log",
                self.driver_port
            ))
            .json(&json!({"type": "browser"}))
            .timeout(Duration::from_secs(5))
            .send()
            .and_then(|r| r.json::<Value>());
        match answer {
            Ok(v) => v["value"]
                .as_array()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|e| format!("{} {}", e["level"], e["message"]))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_else(|| v.to_string()),
            Err(e) => format!("(could not read the console log: {e})"),
        }
    }

    /// Waits for the element `css` to appear and returns it.
    fn wait_for(&self, css: &str) -> Element {
        let found = self.rt.block_on(
            self.client()
                .wait()
                .at_most(WAIT)
                .for_element(Locator::Css(css)),
        );
        match found {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no element `{css}` appeared ({e})")),
        }
    }

    /// Waits for the link with exactly this text and returns it.
    fn wait_for_link(&self, text: &str) -> Element {
        let found = self.rt.block_on(
            self.client()
                .wait()
                .at_most(WAIT)
                .for_element(Locator::LinkText(text)),
        );
        match found {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no link `{text}` appeared ({e})")),
        }
    }

    /// Waits until the browser's URL satisfies `pred`; `what` names the page for failures.
    fn wait_for_url(&self, what: &str, pred: impl Fn(&url::Url) -> bool) -> url::Url {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.url();
            if pred(&now) {
                return now;
            }
            if Instant::now() > deadline {
                self.fail(&format!("the browser never reached {what}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the browser is at `origin` + `path` (query ignored).
    fn wait_for_page(&self, origin: &str, path: &str) -> url::Url {
        self.wait_for_url(&format!("{origin}{path}"), |u| {
            u.origin().ascii_serialization() == origin && u.path() == path
        })
    }

    /// Waits until the element `css` exists and its text is `expected`.
    fn wait_for_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.rt.block_on(async {
                match self.client().find(Locator::Css(css)).await {
                    Ok(e) => e.text().await.ok(),
                    Err(_) => None,
                }
            });
            if text.as_deref().map(str::trim) == Some(expected) {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!("`{css}` never read {expected:?} (last: {text:?})"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The visible text of the element `css` (waiting for it to appear).
    fn text_of(&self, css: &str) -> String {
        let element = self.wait_for(css);
        match self.rt.block_on(element.text()) {
            Ok(t) => t,
            Err(e) => self.fail(&format!("could not read the text of `{css}`: {e}")),
        }
    }

    /// The attribute `name` of `element`, if it has one.
    fn attr(&self, element: &Element, name: &str) -> Option<String> {
        self.rt
            .block_on(element.attr(name))
            .unwrap_or_else(|e| panic!("attribute {name}: {e}"))
    }

    fn click(&self, element: &Element, what: &str) {
        if let Err(e) = self.rt.block_on(element.click()) {
            self.fail(&format!("could not click {what}: {e}"));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let field = self.wait_for(css);
        if let Err(e) = self.rt.block_on(field.send_keys(text)) {
            self.fail(&format!("could not type into `{css}`: {e}"));
        }
    }

    fn is_checked(&self, element: &Element) -> bool {
        self.rt
            .block_on(element.is_selected())
            .expect("checkbox state")
    }

    /// Saves the visible page as `target/screenshots/<name>.png`.
    fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        match self.rt.block_on(self.client().screenshot()) {
            Ok(png) => std::fs::write(dir.join(format!("{name}.png")), png).expect("write PNG"),
            Err(e) => eprintln!("screenshot {name} failed: {e}"),
        }
    }

    /// The browser's cookies for the current page.
    fn cookies(&self) -> Vec<fantoccini::cookies::Cookie<'static>> {
        self.rt
            .block_on(self.client().get_all_cookies())
            .expect("cookies")
    }
}

/// Kills `child`'s whole process group (chromedriver and the browser it started).
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends the WebDriver session (Chromium quits); bounded in case it hangs.
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.close()).await
            });
        }
        kill_group(&mut self.driver);
        if std::thread::panicking() {
            eprintln!(
                "---- chromedriver log ----\n{}",
                std::fs::read_to_string(&self.driver_log).unwrap_or_default()
            );
        }
    }
}

// ---- the story ----------------------------------------------------------------------------

/// Patron configured with the provider as its only console login.
fn patron_for(provider: &OpenIdProvider, dir: &Path) -> TestServer {
    let config = dir.join("patron.toml");
    std::fs::write(
        &config,
        format!(
            "[console]\ndevelopment_login = false\n\n[[console.providers]]\nkind = \"oidc\"\n\
             name = \"{PROVIDER}\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"{CLIENT_SECRET}\"\n",
            provider.issuer
        ),
    )
    .expect("write patron.toml");
    TestServer::builder()
        .env("PATRON_CONFIG", config.to_str().expect("utf-8 path"))
        .env("PATRON_ADMIN_TOKEN", ADMIN)
        .start()
}

#[test]
fn an_owner_logs_in_with_openid_claims_an_agent_grants_a_skill_and_suspends_it_in_a_browser() {
    let provider = OpenIdProvider::start();
    let config_dir = tempfile::tempdir().expect("temp dir");
    let s = patron_for(&provider, config_dir.path());
    s.add_skill(SKILL, "read write", 300, false, None);
    // A skill whose policy admits somebody else: alice must never be offered it.
    s.admin_ok(
        "POST",
        "/admin/skills",
        Some(
            json!({"audience": FOREIGN_SKILL, "name": "Not for alice", "scopes": "read",
                    "grantable_by": ["owner:github:1"]}),
        ),
    );
    let patron = s.base.clone();
    let owner = format!("oidc:{}#alice", provider.issuer);

    // The agent registers over HTTP and gets a code for its human; no tokens yet.
    let key = AgentKey::generate();
    let mut metadata = agent_metadata(&key);
    metadata["client_name"] = json!(AGENT_NAME);
    let registration = s.register_ok(&metadata);
    assert_eq!(registration["owner_status"], "pending");
    let user_code = registration["user_code"].as_str().expect("user_code");
    let agent = Agent {
        key,
        dpop_key: AgentKey::generate(),
        client_id: registration["client_id"]
            .as_str()
            .expect("client_id")
            .to_owned(),
    };
    let skill_request = [("grant_type", "client_credentials"), ("resource", SKILL)];
    assert_oauth_error(agent.token(&s, &skill_request), 400, "unauthorized_client");

    let browser = Browser::start();

    // The claim link sends a stranger to the login page, which offers the provider.
    browser.goto(&format!("{patron}/claim?user_code={user_code}"));
    browser.wait_for_page(&patron, "/console/login");
    let continue_with = browser.wait_for_link(&format!("Continue with {PROVIDER}"));
    assert!(
        !browser.source().contains("Development login"),
        "the development login is off"
    );
    browser.screenshot("console-1-login");
    browser.click(&continue_with, "Continue with testidp");

    // The provider's own login form, then its consent page.
    browser.wait_for_url("the provider's login page", |u| {
        u.origin().ascii_serialization() == provider.issuer && u.path().starts_with("/interaction/")
    });
    browser.type_into("input[name=login]", "alice");
    browser.type_into("input[name=password]", "any password");
    browser.screenshot("console-2-provider-login");
    let sign_in = browser.wait_for("button[type=submit]");
    browser.click(&sign_in, "Sign-in at the provider");
    browser.wait_for("input[name=prompt][value=consent]");
    browser.screenshot("console-3-provider-consent");
    let allow = browser.wait_for("button[type=submit]");
    browser.click(&allow, "Continue on the consent page");

    // Back at Patron, logged in, on the review page of the claimed agent.
    browser.wait_for_page(&patron, "/claim");
    browser.wait_for("form[action='/claim'] button[name=action][value=approve]");
    let page = browser.source();
    assert!(page.contains(AGENT_NAME), "claim page names the agent");
    assert!(
        page.contains(SKILL),
        "the review page offers the skill alice may grant"
    );
    assert!(
        !page.contains(FOREIGN_SKILL),
        "the review page offers no skill whose policy does not admit alice"
    );
    assert!(
        page.contains(&agent.client_id),
        "claim page shows the client id"
    );
    assert!(
        page.contains("<span class=\"who\">alice</span>"),
        "the header shows the owner {owner} by the name the provider gave"
    );
    browser.screenshot("console-4-claim-review");

    let session: Vec<_> = browser
        .cookies()
        .into_iter()
        .filter(|c| c.name() == SESSION_COOKIE)
        .collect();
    assert_eq!(session.len(), 1, "one session cookie");
    assert_eq!(
        session[0].http_only(),
        Some(true),
        "session cookie is HttpOnly"
    );
    assert_eq!(
        session[0].same_site().map(|v| v.to_string()).as_deref(),
        Some("Lax"),
        "session cookie is SameSite=Lax"
    );
    assert_eq!(session[0].path(), Some("/"));

    // Grant the skill and approve.
    let grant = browser.wait_for(&format!(
        "input[type=checkbox][name=grant][value='{SKILL}']"
    ));
    assert!(!browser.is_checked(&grant), "no skill is pre-ticked");
    browser.click(&grant, "the skill's checkbox");
    assert!(browser.is_checked(&grant), "the skill is ticked");
    let approve = browser.wait_for("button[name=action][value=approve]");
    browser.click(&approve, "Approve");
    let agent_path = format!("/console/agents/{}", agent.client_id);
    browser.wait_for_page(&patron, &agent_path);
    browser.wait_for_text("span.status", "active");
    let granted = browser.wait_for(&format!(
        "input[type=checkbox][name=grant][value='{SKILL}']"
    ));
    assert!(
        browser.is_checked(&granted),
        "the agent page shows the grant"
    );
    browser.screenshot("console-5-agent-active");

    // The agent now gets a token for the skill, linked to the owner who logged in.
    let issued = agent.token_ok(&s, &skill_request);
    let claims = claims_of(issued["access_token"].as_str().expect("access_token"));
    assert_eq!(claims["aud"], SKILL);
    assert_eq!(claims["sub"], agent.client_id.as_str());
    assert_eq!(claims["owner"], owner.as_str());
    assert_eq!(issued["scope"], "read write");

    // Suspend in the console; the agent's next request is refused and audited.
    let suspend = browser.wait_for("button[name=action][value=suspend]");
    browser.click(&suspend, "Suspend");
    browser.wait_for_page(&patron, &agent_path);
    browser.wait_for_text("span.status", "suspended");
    browser.wait_for("button[name=action][value=resume]");
    browser.screenshot("console-6-agent-suspended");
    assert_oauth_error(agent.token(&s, &skill_request), 400, "unauthorized_client");
    s.expect_refusal_audited("token.issue", "agent_suspended");

    // The dashboard lists the agent as suspended, with its grant.
    browser.goto(&format!("{patron}/console"));
    browser.wait_for_page(&patron, "/console");
    browser.wait_for_text(&format!("a[href='{agent_path}']"), AGENT_NAME);
    browser.wait_for_text("span.status.suspended", "suspended");
    let dashboard = browser.source();
    assert!(dashboard.contains(AGENT_NAME), "dashboard lists the agent");
    assert!(
        dashboard.contains(&format!("{SKILL} (read write)")),
        "dashboard shows the grant"
    );
    browser.screenshot("console-7-dashboard");
}

// ---- the consent page of the authorization code flow --------------------------------------

/// A code-flow client's redirect target on loopback: answers every request `200 ok` and
/// reports each request target (path and query); ended on drop.
struct RedirectTarget {
    port: u16,
    requests: mpsc::Receiver<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RedirectTarget {
    fn start() -> Self {
        use std::io::{Read, Write};
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the redirect target");
        let port = listener.local_addr().expect("local address").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, requests) = mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let tx = tx.clone();
                // A thread per connection: a preconnected socket the browser never uses
                // must not hold up the next request.
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    if let Some(target) = head.lines().next().and_then(|l| l.split(' ').nth(1)) {
                        let _ = tx.send(target.to_owned());
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
                          Connection: close\r\n\r\nok",
                    );
                });
            }
        });
        RedirectTarget {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request targets received so far.
    fn received(&self) -> Vec<String> {
        self.requests.try_iter().collect()
    }
}

impl Drop for RedirectTarget {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const APP_NAME: &str = "Consent page test app";

#[test]
fn a_person_logs_in_reviews_the_consent_page_and_approves_an_app_in_a_browser() {
    let s = console_builder().start();
    s.put_skill(json!({
        "audience": SKILL, "name": "Team files", "scopes": "files:read files:write",
        "ttl_secs": 120, "require_dpop": false, "grantable_by": ["any"],
    }));
    let patron = s.base.clone();
    let target = RedirectTarget::start();
    let callback = format!("{}/callback", target.origin());
    let app = CodeClient::with(
        &s,
        json!({
            "client_name": APP_NAME,
            "redirect_uris": [callback],
            "token_endpoint_auth_method": "none",
        }),
    );
    let pkce = Pkce::new();
    let state = crate::helpers::unique();
    let path = app.authorize_path(
        &[SKILL],
        &pkce,
        &[
            ("redirect_uri", &callback),
            ("state", &state),
            ("scope", "files:read"),
        ],
    );

    let browser = Browser::start();

    // The authorization request sends a stranger to the login page, whose development login
    // returns to the request.
    browser.goto(&s.url(&path));
    browser.wait_for_page(&patron, "/console/login");
    let return_to = browser.wait_for("form[action='/console/login/dev'] input[name=return_to]");
    assert_eq!(
        browser.attr(&return_to, "value").as_deref(),
        Some(path.as_str()),
        "the login form returns to the authorization request"
    );
    browser.type_into(
        "form[action='/console/login/dev'] input[name=name]",
        "alice",
    );
    browser.screenshot("consent-1-dev-login");
    let log_in = browser.wait_for("form[action='/console/login/dev'] button[type=submit]");
    browser.click(&log_in, "Log in (development login)");

    // Logged in, back at /authorize: the consent page.
    browser.wait_for_page(&patron, "/authorize");
    browser.wait_for("form#consent-form");
    let client_table = browser.text_of("table#consent-client");
    assert!(
        client_table.contains(APP_NAME),
        "the consent page names the app: {client_table}"
    );
    assert!(
        client_table.contains(&app.client_id),
        "the consent page shows the client id: {client_table}"
    );
    // A public client has no keys: the row lists no thumbprint.
    assert!(
        client_table
            .lines()
            .any(|l| l.starts_with("Key thumbprints none")),
        "a public client has no key thumbprints: {client_table}"
    );
    assert!(
        client_table.contains("127.0.0.1"),
        "the consent page shows where it sends the person back: {client_table}"
    );
    let claims = browser.text_of("p#claims-agent");
    assert!(claims.contains("owner"), "{claims}");
    let form = browser.text_of("form#consent-form");
    assert!(
        form.contains("Team files") && form.contains(SKILL) && form.contains("files:read"),
        "the consent page offers the asked-for skill and scope: {form}"
    );
    assert!(
        !form.contains("files:write"),
        "only the asked-for scope is offered: {form}"
    );
    let grant = browser.wait_for(&format!(
        "form#consent-form input[type=checkbox][name=grant][value='{SKILL}']"
    ));
    assert!(browser.is_checked(&grant), "the asked-for skill is ticked");
    let session: Vec<_> = browser
        .cookies()
        .into_iter()
        .filter(|c| c.name() == SESSION_COOKIE)
        .collect();
    assert_eq!(session.len(), 1, "logged in with one session cookie");
    browser.screenshot("consent-2-consent-page");

    // Approve: the browser lands on the app's redirect URI with the code, state and iss.
    let approve = browser.wait_for("form#consent-form button#approve");
    assert_eq!(browser.attr(&approve, "value").as_deref(), Some("approve"));
    browser.click(&approve, "Approve");
    let origin = target.origin();
    let landed = browser.wait_for_url(
        &format!("the app's redirect URI {callback} (after Approve)"),
        |u| u.origin().ascii_serialization() == origin && u.path() == "/callback",
    );
    browser.wait_for_text("body", "ok");
    browser.screenshot("consent-3-redirected");
    let q: std::collections::HashMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(q.get("state"), Some(&state), "{landed}");
    assert_eq!(q.get("iss"), Some(&patron), "RFC 9207 iss: {landed}");
    assert!(!q.contains_key("error"), "{landed}");
    let code = q
        .get("code")
        .unwrap_or_else(|| panic!("no code in {landed}"))
        .clone();
    assert!(
        target
            .received()
            .iter()
            .any(|t| t.starts_with("/callback?") && t.contains(&format!("code={code}"))),
        "the app's server received the redirect"
    );

    // The code is real: the app exchanges it for alice's token at the skill.
    let tokens = ok_json(app.exchange(
        &s,
        &code,
        Some(&pkce.verifier),
        &[("redirect_uri", &callback)],
        None,
    ));
    assert_eq!(tokens["scope"], "files:read");
    let claims = claims_of(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(claims["aud"], SKILL);
    assert_eq!(claims["sub"], "dev:alice");
    assert_eq!(claims["client_id"], app.client_id.as_str());
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    // alice's dashboard lists the app she authorized.
    browser.goto(&format!("{patron}/console"));
    browser.wait_for_page(&patron, "/console");
    let dashboard = browser.text_of("body");
    assert!(
        dashboard.contains("Apps you have authorized") && dashboard.contains(&app.client_id),
        "{dashboard}"
    );
}
