//! E-mail delivery: through a real SMTP server (Debian's `python3-aiosmtpd`, writing a
//! Maildir) and into `.eml` files. Messages are read back with Python's `email` package, an
//! independent MIME parser, so the tests see what a mail client would. The owner notifications
//! Patron sends itself are checked the same way, once for each path that makes the change
//! (console and admin API): each sends the owner exactly one message.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use patron::config::{MailConfig, MailTransport, SmtpTls};
use patron::mail::{Mailer, Notification};
use serde_json::{Value, json};

use crate::helpers::console::{Browser, console_builder, dev_email};
use crate::helpers::{Agent, TestServer, free_port, runtime};

/// Debian's interpreter: the one that sees the `python3-aiosmtpd` package (a `python3`
/// earlier on `PATH` may be a pyenv build without it).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

const CONSOLE: &str = "https://auth.example.com/console";

/// Prints each message as JSON: headers, MIME type and the decoded bodies.
const PARSE_MESSAGES: &str = r#"
import email, json, sys
from email import policy
out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        m = email.message_from_bytes(f.read(), policy=policy.default)
    out.append({
        "to": str(m["To"]),
        "from": str(m["From"]),
        "rcpt_to": str(m["X-RcptTo"]) if m["X-RcptTo"] else None,
        "subject": str(m["Subject"]),
        "auto_submitted": str(m["Auto-Submitted"]),
        "content_type": m.get_content_type(),
        "text": m.get_body(("plain",)).get_content(),
        "html": m.get_body(("html",)).get_content(),
    })
print(json.dumps(out))
"#;

/// An aiosmtpd process on a free port, storing what it receives in a Maildir.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> Self {
        let has_aiosmtpd = Command::new(DEBIAN_PYTHON)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            has_aiosmtpd,
            "this test needs an SMTP server: apt-get install python3-aiosmtpd \
             (it must be importable by {DEBIAN_PYTHON})"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("aiosmtpd.log")).unwrap();
        let mut child = Command::new(DEBIAN_PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.path().join("aiosmtpd.log"));
                panic!("aiosmtpd did not start ({exited:?}): {log:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer { child, port, dir }
    }

    /// The messages received so far.
    fn messages(&self) -> Vec<Value> {
        let maildir = self.dir.path().join("maildir");
        let files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .flat_map(|sub| files_in(&maildir.join(sub)))
            .collect();
        parse_messages(&files)
    }

    /// The messages received so far that are addressed to `to`.
    fn messages_to(&self, to: &str) -> Vec<Value> {
        let mut messages = self.messages();
        messages.retain(|m| m["to"] == to);
        messages
    }

    /// Waits (up to 10 s) for a message to `to` whose subject contains `subject`, then
    /// watches for a grace period that no second one arrives; returns the one message.
    fn only_message_to(&self, to: &str, subject: &str) -> Value {
        let matching = || {
            let mut m = self.messages_to(to);
            m.retain(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)));
            m
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let first = loop {
            if let Some(m) = matching().into_iter().next() {
                break m;
            }
            assert!(
                Instant::now() < deadline,
                "no e-mail to {to} with {subject:?} in its subject reached the SMTP server; \
                 it received: {:#?}",
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let grace = Instant::now() + GRACE;
        loop {
            let all = matching();
            assert_eq!(all.len(), 1, "more than one e-mail to {to}: {all:#?}");
            if Instant::now() >= grace {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        first
    }
}

/// How long a test watches for a duplicate e-mail after the expected one arrived. Patron
/// sends notifications in the background, so a second copy would come within moments.
const GRACE: Duration = Duration::from_millis(1500);

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn parse_messages(files: &[PathBuf]) -> Vec<Value> {
    if files.is_empty() {
        return Vec::new();
    }
    let out = Command::new(DEBIAN_PYTHON)
        .args(["-c", PARSE_MESSAGES])
        .args(files)
        .output()
        .expect("python3 is required to read the messages back");
    assert!(
        out.status.success(),
        "parsing failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(messages) => messages,
        other => panic!("not a list: {other}"),
    }
}

fn config(transport: MailTransport) -> MailConfig {
    MailConfig {
        transport,
        from: "Patron <patron@auth.example.com>".to_owned(),
    }
}

fn find<'a>(messages: &'a [Value], to: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["to"] == to)
        .unwrap_or_else(|| panic!("no message to {to} in {messages:#?}"))
}

#[test]
fn notifications_sent_through_smtp_arrive_as_text_and_html_alternatives() {
    // Arrange
    let server = SmtpServer::start();
    let mailer = Mailer::new(
        &config(MailTransport::Smtp {
            host: "127.0.0.1".to_owned(),
            port: server.port,
            tls: SmtpTls::None,
            credentials: None,
        }),
        CONSOLE.to_owned(),
    )
    .unwrap();

    // Act
    runtime().block_on(async {
        mailer
            .send(
                "alice@example.com",
                Notification::AgentLinked {
                    client_id: "agt_linkedAAAA".to_owned(),
                    client_name: Some("<b>research</b> agent".to_owned()),
                    grants: vec![(
                        "https://skill.example/mcp".to_owned(),
                        "read write".to_owned(),
                    )],
                },
            )
            .await
            .unwrap();
        mailer
            .send(
                "bob@example.com",
                Notification::AgentSuspended {
                    client_id: "agt_suspendedBBBB".to_owned(),
                    client_name: None,
                },
            )
            .await
            .unwrap();
    });

    // Assert
    let messages = server.messages();
    assert_eq!(messages.len(), 2, "{messages:#?}");

    let linked = find(&messages, "alice@example.com");
    assert_eq!(linked["rcpt_to"], "alice@example.com");
    assert_eq!(linked["from"], "Patron <patron@auth.example.com>");
    assert_eq!(linked["content_type"], "multipart/alternative");
    assert_eq!(linked["auto_submitted"], "auto-generated");
    let subject = linked["subject"].as_str().unwrap();
    assert!(
        subject.contains("agt_linkedAAAA") && subject.contains("linked"),
        "{subject}"
    );
    let text = linked["text"].as_str().unwrap();
    assert!(text.contains("agt_linkedAAAA"), "{text}");
    assert!(text.contains("\"<b>research</b> agent\""), "{text}");
    assert!(
        text.contains("https://skill.example/mcp: read write"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{CONSOLE}/agents/agt_linkedAAAA")),
        "{text}"
    );
    let html = linked["html"].as_str().unwrap();
    assert!(html.contains("agt_linkedAAAA"), "{html}");
    assert!(
        !html.contains("<b>research"),
        "the name must be escaped: {html}"
    );

    let suspended = find(&messages, "bob@example.com");
    assert_eq!(suspended["rcpt_to"], "bob@example.com");
    let subject = suspended["subject"].as_str().unwrap();
    assert!(
        subject.contains("agt_suspendedBBBB") && subject.contains("suspended"),
        "{subject}"
    );
    assert!(
        suspended["text"]
            .as_str()
            .unwrap()
            .contains("agt_suspendedBBBB")
    );
    assert!(
        suspended["html"]
            .as_str()
            .unwrap()
            .contains("agt_suspendedBBBB")
    );
}

#[test]
fn an_unreachable_smtp_server_is_an_error_for_send() {
    let mailer = Mailer::new(
        &config(MailTransport::Smtp {
            host: "127.0.0.1".to_owned(),
            port: free_port(),
            tls: SmtpTls::None,
            credentials: None,
        }),
        CONSOLE.to_owned(),
    )
    .unwrap();

    let result =
        runtime().block_on(mailer.send("carol@example.com", Notification::AllTokensRevoked));

    let e = result.unwrap_err();
    assert!(!format!("{e:#}").contains("carol"), "{e:#}");
}

#[test]
fn the_files_transport_writes_one_eml_file_per_message_into_a_private_directory() {
    // Arrange: the directory does not exist yet.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mail");
    let mailer = Mailer::new(
        &config(MailTransport::Files(dir.clone())),
        CONSOLE.to_owned(),
    )
    .unwrap();

    // Act
    runtime()
        .block_on(mailer.send(
            "dave@example.com",
            Notification::AgentRekeyed {
                client_id: "agt_rekeyedCCCC".to_owned(),
                client_name: Some("rotator".to_owned()),
            },
        ))
        .unwrap();

    // Assert
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "mail directory mode {mode:o}");
    }
    let files = files_in(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let messages = parse_messages(&files);
    let m = find(&messages, "dave@example.com");
    assert!(m["subject"].as_str().unwrap().contains("agt_rekeyedCCCC"));
    assert!(m["text"].as_str().unwrap().contains("\"rotator\""));
    assert!(m["html"].as_str().unwrap().contains("agt_rekeyedCCCC"));
}

#[test]
fn notify_returns_at_once_and_delivers_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mail");
    let mailer = Mailer::new(
        &config(MailTransport::Files(dir.clone())),
        CONSOLE.to_owned(),
    )
    .unwrap();

    let delivered = runtime().block_on(async {
        mailer.notify(
            "erin@example.com",
            Notification::AgentDeleted {
                client_id: "agt_deletedDDDD".to_owned(),
                client_name: None,
                by: "you",
            },
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while files_in(&dir).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        files_in(&dir)
    });

    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let messages = parse_messages(&delivered);
    let m = find(&messages, "erin@example.com");
    assert!(m["text"].as_str().unwrap().contains("Deleted by: you"));
}

#[test]
fn notify_outside_an_async_runtime_drops_the_message_without_panicking() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mail");
    let mailer = Mailer::new(
        &config(MailTransport::Files(dir.clone())),
        CONSOLE.to_owned(),
    )
    .unwrap();

    mailer.notify("frank@example.com", Notification::AllTokensRevoked);

    assert!(files_in(&dir).is_empty());
}

/// A console server (admin API, development login) that sends its e-mail through `smtp`.
fn mailing_server(smtp: &SmtpServer) -> TestServer {
    console_builder()
        .env("PATRON_MAIL__TRANSPORT", "smtp")
        .env("PATRON_MAIL__SMTP_HOST", "127.0.0.1")
        .env("PATRON_MAIL__SMTP_PORT", &smtp.port.to_string())
        .env("PATRON_MAIL__SMTP_TLS", "none")
        .start()
}

/// An agent approved through the admin API for `dev:<name>` before that owner first logs in
/// (no address is known then, so the approval mails no one), and the owner's browser, logged
/// in with the development login, which records [`dev_email`]`(name)`.
fn agent_of_logged_in_owner<'a>(s: &'a TestServer, name: &str) -> (Agent, Browser<'a>) {
    let agent = Agent::register(s);
    agent.approve(s, &format!("dev:{name}"), json!({}));
    let browser = Browser::dev_login(s, name);
    (agent, browser)
}

/// Asserts `mail` tells of `event` (`suspended`, `resumed`) of `agent`, named as registered,
/// with a link to its console page.
fn assert_tells_of(mail: &Value, event: &str, agent: &Agent) {
    let id = agent.client_id.as_str();
    let subject = mail["subject"].as_str().unwrap();
    assert_eq!(subject, format!("Patron: agent {id} was {event}"), "{mail}");
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains(&format!("was {event}")), "{text}");
    assert!(text.contains(id), "{text}");
    assert!(text.contains("\"Test agent\""), "{text}");
    assert!(text.contains(&format!("/console/agents/{id}")), "{text}");
    let html = mail["html"].as_str().unwrap();
    assert!(html.contains(id) && html.contains("Test agent"), "{html}");
}

/// Asserts `mail` tells that every token of the owner's agents was revoked.
fn assert_tells_of_revoked_tokens(mail: &Value) {
    assert_eq!(
        mail["subject"],
        "Patron: all your agents' tokens were revoked"
    );
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.contains("Every token held by your agents was revoked"),
        "{text}"
    );
}

#[test]
fn an_owner_hears_by_smtp_when_they_link_an_agent_in_the_console() {
    // Patron itself sends this one: a console approval, delivered to a real SMTP server.
    let smtp = SmtpServer::start();
    let s = mailing_server(&smtp);
    let key = crate::helpers::AgentKey::generate();
    let reg = s.register_ok(&crate::helpers::agent_metadata(&key));
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let code = reg["user_code"].as_str().unwrap().to_owned();

    let carol = Browser::dev_login(&s, "carol");
    carol
        .submit_from(
            &format!("/claim?user_code={code}"),
            "/claim",
            &[("user_code", code.as_str()), ("action", "approve")],
        )
        .expect_see_other(&format!("/console/agents/{client_id}"));

    let mail = smtp.only_message_to(&dev_email("carol"), "is now linked to you");
    assert!(
        mail["subject"].as_str().unwrap().contains(&client_id),
        "{mail}"
    );
    assert!(mail["text"].as_str().unwrap().contains(&client_id));
    assert!(mail["html"].as_str().unwrap().contains("Test agent"));
}

#[test]
fn an_owner_hears_once_by_smtp_when_the_admin_api_links_an_agent_to_them() {
    let smtp = SmtpServer::start();
    let s = mailing_server(&smtp);
    let _carol = Browser::dev_login(&s, "carol");
    let agent = Agent::register(&s);

    agent.approve(&s, "dev:carol", json!({}));

    let mail = smtp.only_message_to(&dev_email("carol"), "is now linked to you");
    let id = agent.client_id.as_str();
    assert_eq!(
        mail["subject"],
        format!("Patron: agent {id} is now linked to you")
    );
    assert!(mail["text"].as_str().unwrap().contains(id), "{mail}");
    assert!(
        mail["html"].as_str().unwrap().contains("Test agent"),
        "{mail}"
    );
    assert_eq!(smtp.messages_to(&dev_email("carol")).len(), 1);
}

#[test]
fn an_owner_hears_once_by_smtp_when_they_suspend_their_agent_in_the_console() {
    let smtp = SmtpServer::start();
    let s = mailing_server(&smtp);
    let (agent, carol) = agent_of_logged_in_owner(&s, "carol");
    let page = format!("/console/agents/{}", agent.client_id);

    carol
        .submit_from(&page, &page, &[("action", "suspend")])
        .expect_see_other(&page);

    let mail = smtp.only_message_to(&dev_email("carol"), "was suspended");
    assert_tells_of(&mail, "suspended", &agent);
    assert_eq!(smtp.messages_to(&dev_email("carol")).len(), 1);
}

#[test]
fn an_owner_hears_once_by_smtp_when_the_admin_api_suspends_their_agent() {
    // As from the console: the README promises owners hear of every suspension.
    let smtp = SmtpServer::start();
    let s = mailing_server(&smtp);
    let (agent, _carol) = agent_of_logged_in_owner(&s, "carol");

    s.admin_ok(
        "POST",
        &format!("/admin/agents/{}/suspend", agent.client_id),
        None,
    );

    let mail = smtp.only_message_to(&dev_email("carol"), "was suspended");
    assert_tells_of(&mail, "suspended", &agent);
    assert_eq!(smtp.messages_to(&dev_email("carol")).len(), 1);
}

#[test]
fn an_owner_hears_once_by_smtp_when_the_admin_api_resumes_their_agent() {
    let smtp = SmtpServer::start();
    let s = mailing_server(&smtp);
    let (agent, _carol) = agent_of_logged_in_owner(&s, "carol");
    let path = |action: &str| format!("/admin/agents/{}/{action}", agent.client_id);
    s.admin_ok("POST", &path("suspend"), None);

    s.admin_ok("POST", &path("resume"), None);

    let mail = smtp.only_message_to(&dev_email("carol"), "was resumed");
    assert_tells_of(&mail, "resumed", &agent);
}

#[test]
fn an_owner_hears_once_by_smtp_when_they_revoke_all_tokens_in_the_console() {
    let smtp = SmtpServer::start();
    let s = mailing_server(&smtp);
    let (agent, carol) = agent_of_logged_in_owner(&s, "carol");
    agent.agent_token(&s);

    carol
        .submit_from("/console", "/console/kill-switch", &[("confirm", "yes")])
        .expect(200);

    assert_tells_of_revoked_tokens(
        &smtp.only_message_to(&dev_email("carol"), "tokens were revoked"),
    );
    assert_eq!(smtp.messages_to(&dev_email("carol")).len(), 1);
}

#[test]
fn an_owner_hears_once_by_smtp_when_the_admin_api_revokes_all_their_tokens() {
    let smtp = SmtpServer::start();
    let s = mailing_server(&smtp);
    let (agent, _carol) = agent_of_logged_in_owner(&s, "carol");
    agent.agent_token(&s);

    s.admin_ok("POST", "/admin/owners/dev:carol/revoke-all", None);

    assert_tells_of_revoked_tokens(
        &smtp.only_message_to(&dev_email("carol"), "tokens were revoked"),
    );
    assert_eq!(smtp.messages_to(&dev_email("carol")).len(), 1);
}
