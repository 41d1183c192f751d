//! E-mail to agent owners: what happened to one of their agents, when, and where to act.
//!
//! Each notification renders a subject line and an HTML + plain-text pair from the askama
//! templates in `templates/email/` and goes out as `multipart/alternative`, either through
//! SMTP or, in development, as `.eml` files in a directory.
//!
//! Agents choose their own `client_name`, so a name is hostile input: the HTML templates
//! escape it, [`untrusted_text`] strips the control and bidi characters that could fake
//! lines or reorder text in either body, and the subject line never contains it (a subject
//! is what a phishing agent would most like to write).
//!
//! Logs name the recipient only by the SHA-256 of the address, never the address itself.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use askama::Template;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tracing::Instrument as _;

use crate::clock::UnixTime;
use crate::config::{MailConfig, MailTransport, SmtpTls};
use crate::crypto::sha256_hex;

/// How long an SMTP connection or command may take before the send fails.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest agent-chosen name shown in a message, in characters.
const MAX_NAME_CHARS: usize = 80;

/// Longest skill audience or scope list shown in a message, in characters.
const MAX_GRANT_CHARS: usize = 200;

/// Something an owner is told about by e-mail.
#[derive(Debug, Clone)]
pub enum Notification {
    /// An agent was linked to the owner (claimed, or registered with an enrollment token).
    AgentLinked {
        /// The agent.
        client_id: String,
        /// Its self-chosen name, if any (hostile input).
        client_name: Option<String>,
        /// Granted skills: (audience, space-separated scopes).
        grants: Vec<(String, String)>,
    },
    /// An agent was suspended: it gets no new tokens.
    AgentSuspended {
        /// The agent.
        client_id: String,
        /// Its self-chosen name, if any (hostile input).
        client_name: Option<String>,
    },
    /// A suspended agent was resumed.
    AgentResumed {
        /// The agent.
        client_id: String,
        /// Its self-chosen name, if any (hostile input).
        client_name: Option<String>,
    },
    /// An agent's registration was deleted.
    AgentDeleted {
        /// The agent.
        client_id: String,
        /// Its self-chosen name, if any (hostile input).
        client_name: Option<String>,
        /// Who deleted it, as shown to the owner: `"the agent (RFC 7592)"` or `"you"`.
        by: &'static str,
    },
    /// An agent replaced its keys (an RFC 7592 update of `jwks` or `jwks_uri`).
    AgentRekeyed {
        /// The agent.
        client_id: String,
        /// Its self-chosen name, if any (hostile input).
        client_name: Option<String>,
    },
    /// The owner's kill switch revoked every token of every agent they own.
    AllTokensRevoked,
    /// A digest of refused requests that can mean a stolen key or a misbehaving agent.
    /// How often it is sent is the caller's business.
    SuspiciousActivity {
        /// (client_id, audit reason code, how many times).
        events: Vec<(String, String, i64)>,
    },
}

impl Notification {
    /// A short name for logs.
    fn kind(&self) -> &'static str {
        match self {
            Self::AgentLinked { .. } => "agent_linked",
            Self::AgentSuspended { .. } => "agent_suspended",
            Self::AgentResumed { .. } => "agent_resumed",
            Self::AgentDeleted { .. } => "agent_deleted",
            Self::AgentRekeyed { .. } => "agent_rekeyed",
            Self::AllTokensRevoked => "all_tokens_revoked",
            Self::SuspiciousActivity { .. } => "suspicious_activity",
        }
    }

    /// The agent concerned, for logs (none for owner-wide notifications).
    fn client_id(&self) -> Option<&str> {
        match self {
            Self::AgentLinked { client_id, .. }
            | Self::AgentSuspended { client_id, .. }
            | Self::AgentResumed { client_id, .. }
            | Self::AgentDeleted { client_id, .. }
            | Self::AgentRekeyed { client_id, .. } => Some(client_id),
            Self::AllTokensRevoked | Self::SuspiciousActivity { .. } => None,
        }
    }

    /// The subject line. Never includes the agent's self-chosen name.
    fn subject(&self) -> String {
        let agent = |id: &str| untrusted_text(id, MAX_NAME_CHARS);
        match self {
            Self::AgentLinked { client_id, .. } => {
                format!("Patron: agent {} is now linked to you", agent(client_id))
            }
            Self::AgentSuspended { client_id, .. } => {
                format!("Patron: agent {} was suspended", agent(client_id))
            }
            Self::AgentResumed { client_id, .. } => {
                format!("Patron: agent {} was resumed", agent(client_id))
            }
            Self::AgentDeleted { client_id, .. } => {
                format!("Patron: agent {} was deleted", agent(client_id))
            }
            Self::AgentRekeyed { client_id, .. } => {
                format!("Patron: agent {} replaced its keys", agent(client_id))
            }
            Self::AllTokensRevoked => "Patron: all your agents' tokens were revoked".to_owned(),
            Self::SuspiciousActivity { events } => {
                let mut agents: Vec<&str> = events.iter().map(|(id, _, _)| id.as_str()).collect();
                agents.sort_unstable();
                agents.dedup();
                match agents.as_slice() {
                    [one] => format!("Patron: suspicious activity of agent {}", agent(one)),
                    many => format!(
                        "Patron: suspicious activity of {} of your agents",
                        many.len()
                    ),
                }
            }
        }
    }

    /// Renders the subject and both bodies, dated `now`, with links under `console_url`.
    fn render(&self, now: UnixTime, console_url: &str) -> Result<Rendered, askama::Error> {
        let subject = self.subject();
        let when = crate::clock::utc_second(now);
        let c = Common {
            subject: &subject,
            when: &when,
            console_url,
        };
        let (text, html) = match self {
            Self::AgentLinked {
                client_id,
                client_name,
                grants,
            } => {
                let agent = AgentView::new(console_url, client_id, client_name.as_deref());
                let grants: Vec<GrantView> = grants
                    .iter()
                    .map(|(audience, scopes)| GrantView {
                        audience: untrusted_text(audience, MAX_GRANT_CHARS),
                        scopes: untrusted_text(scopes, MAX_GRANT_CHARS),
                    })
                    .collect();
                let (c, agent, grants) = (&c, &agent, grants.as_slice());
                (
                    AgentLinkedText { c, agent, grants }.render()?,
                    AgentLinkedHtml { c, agent, grants }.render()?,
                )
            }
            Self::AgentSuspended {
                client_id,
                client_name,
            } => {
                let agent = &AgentView::new(console_url, client_id, client_name.as_deref());
                (
                    AgentSuspendedText { c: &c, agent }.render()?,
                    AgentSuspendedHtml { c: &c, agent }.render()?,
                )
            }
            Self::AgentResumed {
                client_id,
                client_name,
            } => {
                let agent = &AgentView::new(console_url, client_id, client_name.as_deref());
                (
                    AgentResumedText { c: &c, agent }.render()?,
                    AgentResumedHtml { c: &c, agent }.render()?,
                )
            }
            Self::AgentDeleted {
                client_id,
                client_name,
                by,
            } => {
                let agent = &AgentView::new(console_url, client_id, client_name.as_deref());
                (
                    AgentDeletedText { c: &c, agent, by }.render()?,
                    AgentDeletedHtml { c: &c, agent, by }.render()?,
                )
            }
            Self::AgentRekeyed {
                client_id,
                client_name,
            } => {
                let agent = &AgentView::new(console_url, client_id, client_name.as_deref());
                (
                    AgentRekeyedText { c: &c, agent }.render()?,
                    AgentRekeyedHtml { c: &c, agent }.render()?,
                )
            }
            Self::AllTokensRevoked => {
                let agents_url = &format!("{console_url}/agents");
                (
                    AllTokensRevokedText { c: &c, agents_url }.render()?,
                    AllTokensRevokedHtml { c: &c, agents_url }.render()?,
                )
            }
            Self::SuspiciousActivity { events } => {
                let events: Vec<EventView> = events
                    .iter()
                    .map(|(client_id, reason, count)| EventView {
                        client_id: untrusted_text(client_id, MAX_NAME_CHARS),
                        reason: untrusted_text(reason, MAX_NAME_CHARS),
                        count: *count,
                        url: agent_url(console_url, client_id),
                    })
                    .collect();
                let events = events.as_slice();
                (
                    SuspiciousActivityText { c: &c, events }.render()?,
                    SuspiciousActivityHtml { c: &c, events }.render()?,
                )
            }
        };
        // askama drops the template's final newline; a text body ends with one.
        let text = if text.ends_with('\n') {
            text
        } else {
            text + "\n"
        };
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }
}

/// A rendered notification.
#[derive(Debug)]
struct Rendered {
    subject: String,
    text: String,
    html: String,
}

/// Sends notifications to owners. Cheap to clone (the transport is shared).
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    from: Mailbox,
    /// Console base URL without a trailing slash.
    console_url: String,
}

enum Transport {
    Files(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.inner.transport {
            Transport::Files(_) => "files",
            Transport::Smtp(_) => "smtp",
        };
        f.debug_struct("Mailer")
            .field("transport", &transport)
            .field("console_url", &self.inner.console_url)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds the transport the configuration names. For the files transport, creates the
    /// directory (mode 0700) if it is missing. Opens no connection: SMTP connects per
    /// message, so a mail server that is down delays nothing at start.
    ///
    /// `console_url` is the base of links in messages (`{console_url}/agents/{client_id}`),
    /// for example the issuer followed by `/console`.
    pub fn new(config: &MailConfig, console_url: String) -> anyhow::Result<Self> {
        let from: Mailbox = config.from.parse().map_err(|e| {
            anyhow!(
                "mail.from: `{}` is not an address like `Patron <patron@example.com>` ({e})",
                config.from
            )
        })?;
        let transport = match &config.transport {
            MailTransport::Files(dir) => {
                create_private_dir(dir)?;
                Transport::Files(AsyncFileTransport::new(dir))
            }
            MailTransport::Smtp {
                host,
                port,
                tls,
                credentials,
            } => {
                let builder = match tls {
                    SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                        .context("mail.smtp_host: cannot set up STARTTLS")?,
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                        .context("mail.smtp_host: cannot set up TLS")?,
                    SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                };
                let mut builder = builder.port(*port).timeout(Some(SMTP_TIMEOUT));
                if let Some((username, password)) = credentials {
                    builder = builder.credentials(Credentials::new(
                        username.clone(),
                        password.expose().to_owned(),
                    ));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                from,
                console_url: console_url.trim_end_matches('/').to_owned(),
            }),
        })
    }

    /// Renders and sends `notification` to `to` without blocking the caller: delivery runs
    /// as a task on the current tokio runtime (actix-rt is tokio). Failures are logged with
    /// the SHA-256 of the recipient address, never the address; nothing is retried, and a
    /// message still in flight when the runtime stops is lost.
    pub fn notify(&self, to: &str, notification: Notification) {
        let recipient = sha256_hex(to.as_bytes());
        let kind = notification.kind();
        let client_id = notification.client_id().unwrap_or("-").to_owned();
        let message = match self.compose(to, &notification, crate::clock::now()) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(%recipient, kind, %client_id, error = %format!("{e:#}"), "e-mail not sent");
                return;
            }
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%recipient, kind, %client_id, "e-mail not sent: no async runtime");
            return;
        };
        let mailer = self.clone();
        runtime.spawn(
            async move {
                match mailer.deliver(message).await {
                    Ok(()) => tracing::info!(%recipient, kind, %client_id, "e-mail sent"),
                    Err(e) => {
                        tracing::warn!(%recipient, kind, %client_id, error = %format!("{e:#}"), "e-mail not sent");
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// Renders and sends `notification` to `to`, and waits for the transport's answer (for
    /// tests and the CLI). An SMTP refusal is reported by its reply code only: the server's
    /// text may quote the recipient address.
    pub async fn send(&self, to: &str, notification: Notification) -> anyhow::Result<()> {
        let message = self.compose(to, &notification, crate::clock::now())?;
        self.deliver(message).await
    }

    /// Builds the message: headers, and the text and HTML bodies as alternatives.
    fn compose(
        &self,
        to: &str,
        notification: &Notification,
        now: UnixTime,
    ) -> anyhow::Result<Message> {
        // The error names no address: it ends up in logs.
        let to: Mailbox = to
            .parse()
            .map_err(|_| anyhow!("the recipient is not an e-mail address"))?;
        let rendered = notification
            .render(now, &self.inner.console_url)
            .context("rendering the e-mail templates")?;
        Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(rendered.subject)
            .date(UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0)))
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .context("building the e-mail")
    }

    async fn deliver(&self, message: Message) -> anyhow::Result<()> {
        match &self.inner.transport {
            Transport::Files(transport) => {
                transport
                    .send(message)
                    .await
                    .context("writing the e-mail file")?;
            }
            Transport::Smtp(transport) => {
                transport
                    .send(message)
                    .await
                    .map_err(|e| match e.status() {
                        Some(code) if e.is_permanent() => {
                            anyhow!("the SMTP server refused the e-mail (permanent error {code})")
                        }
                        Some(code) => {
                            anyhow!("the SMTP server refused the e-mail (transient error {code})")
                        }
                        None => anyhow::Error::new(e).context("sending the e-mail through SMTP"),
                    })?;
            }
        }
        Ok(())
    }
}

/// Creates the mail directory, readable only by the server's user (messages name agents
/// and carry console links).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("mail.dir: cannot create {}", dir.display()))
}

/// `Auto-Submitted: auto-generated` (RFC 3834 §5): tells mail systems not to send
/// vacation replies to a notification.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Text an agent chose (or any text from the database), made safe to show: control
/// characters and bidi overrides, which could fake extra lines or reorder what the owner
/// reads, become U+FFFD; longer than `max` characters is cut with an ellipsis. HTML
/// escaping is the templates' job.
fn untrusted_text(raw: &str, max: usize) -> String {
    let mut out: String = raw
        .chars()
        .take(max)
        .map(|ch| {
            if ch.is_control() || matches!(ch, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                '\u{fffd}'
            } else {
                ch
            }
        })
        .collect();
    if raw.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// Bytes left as they are in a path segment: RFC 3986 unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `{console_url}/agents/{client_id}`, the id percent-encoded as a path segment.
fn agent_url(console_url: &str, client_id: &str) -> String {
    format!(
        "{console_url}/agents/{}",
        utf8_percent_encode(client_id, PATH_SEGMENT)
    )
}

// ---- template contexts ------------------------------------------------------------------

/// What every message shows.
struct Common<'a> {
    subject: &'a str,
    when: &'a str,
    console_url: &'a str,
}

/// One agent, display-ready.
struct AgentView {
    client_id: String,
    name: Option<String>,
    url: String,
}

impl AgentView {
    fn new(console_url: &str, client_id: &str, client_name: Option<&str>) -> Self {
        Self {
            client_id: untrusted_text(client_id, MAX_NAME_CHARS),
            name: client_name
                .filter(|n| !n.trim().is_empty())
                .map(|n| untrusted_text(n, MAX_NAME_CHARS)),
            url: agent_url(console_url, client_id),
        }
    }
}

/// One granted skill, display-ready.
struct GrantView {
    audience: String,
    scopes: String,
}

/// One line of the suspicious-activity digest, display-ready.
struct EventView {
    client_id: String,
    reason: String,
    count: i64,
    url: String,
}

#[derive(Template)]
#[template(path = "email/agent_linked.html")]
struct AgentLinkedHtml<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
    grants: &'a [GrantView],
}

#[derive(Template)]
#[template(path = "email/agent_linked.txt", escape = "none")]
struct AgentLinkedText<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
    grants: &'a [GrantView],
}

#[derive(Template)]
#[template(path = "email/agent_suspended.html")]
struct AgentSuspendedHtml<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
}

#[derive(Template)]
#[template(path = "email/agent_suspended.txt", escape = "none")]
struct AgentSuspendedText<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
}

#[derive(Template)]
#[template(path = "email/agent_resumed.html")]
struct AgentResumedHtml<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
}

#[derive(Template)]
#[template(path = "email/agent_resumed.txt", escape = "none")]
struct AgentResumedText<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
}

#[derive(Template)]
#[template(path = "email/agent_deleted.html")]
struct AgentDeletedHtml<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
    by: &'a str,
}

#[derive(Template)]
#[template(path = "email/agent_deleted.txt", escape = "none")]
struct AgentDeletedText<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
    by: &'a str,
}

#[derive(Template)]
#[template(path = "email/agent_rekeyed.html")]
struct AgentRekeyedHtml<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
}

#[derive(Template)]
#[template(path = "email/agent_rekeyed.txt", escape = "none")]
struct AgentRekeyedText<'a> {
    c: &'a Common<'a>,
    agent: &'a AgentView,
}

#[derive(Template)]
#[template(path = "email/all_tokens_revoked.html")]
struct AllTokensRevokedHtml<'a> {
    c: &'a Common<'a>,
    agents_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/all_tokens_revoked.txt", escape = "none")]
struct AllTokensRevokedText<'a> {
    c: &'a Common<'a>,
    agents_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/suspicious_activity.html")]
struct SuspiciousActivityHtml<'a> {
    c: &'a Common<'a>,
    events: &'a [EventView],
}

#[derive(Template)]
#[template(path = "email/suspicious_activity.txt", escape = "none")]
struct SuspiciousActivityText<'a> {
    c: &'a Common<'a>,
    events: &'a [EventView],
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_795_860_187; // 2026-11-28 10:03:07 UTC
    const CONSOLE: &str = "https://auth.example.com/console";
    const ID: &str = "agt_7Hq2xYz";
    const HOSTILE: &str = "<script>alert(1)</script>";

    fn per_agent(client_name: Option<&str>) -> Vec<Notification> {
        let id = ID.to_owned();
        let name = client_name.map(str::to_owned);
        vec![
            Notification::AgentLinked {
                client_id: id.clone(),
                client_name: name.clone(),
                grants: vec![(
                    "https://skill.example/mcp".to_owned(),
                    "read write".to_owned(),
                )],
            },
            Notification::AgentSuspended {
                client_id: id.clone(),
                client_name: name.clone(),
            },
            Notification::AgentResumed {
                client_id: id.clone(),
                client_name: name.clone(),
            },
            Notification::AgentDeleted {
                client_id: id.clone(),
                client_name: name.clone(),
                by: "the agent (RFC 7592)",
            },
            Notification::AgentRekeyed {
                client_id: id.clone(),
                client_name: name,
            },
            Notification::SuspiciousActivity {
                events: vec![(id, "dpop_replay".to_owned(), 3)],
            },
        ]
    }

    #[test]
    fn every_agent_notification_names_the_agent_in_subject_and_both_bodies() {
        for n in per_agent(Some("research agent")) {
            let r = n.render(NOW, CONSOLE).unwrap();
            let kind = n.kind();
            assert!(r.subject.contains(ID), "{kind} subject: {}", r.subject);
            assert!(r.text.contains(ID), "{kind} text:\n{}", r.text);
            assert!(r.html.contains(ID), "{kind} html:\n{}", r.html);
            let link = format!("{CONSOLE}/agents/{ID}");
            assert!(r.text.contains(&link), "{kind} text lacks the console link");
            assert!(r.html.contains(&link), "{kind} html lacks the console link");
            assert!(
                r.text.contains("2026-11-28 10:03:07 UTC"),
                "{kind} text lacks the time"
            );
            assert!(
                r.html.contains("2026-11-28 10:03:07 UTC"),
                "{kind} html lacks the time"
            );
            assert!(
                r.text.contains("suspend"),
                "{kind} text says nothing of suspending"
            );
            assert!(
                r.html.contains("suspend"),
                "{kind} html says nothing of suspending"
            );
        }
    }

    #[test]
    fn the_agent_name_appears_in_both_bodies_but_never_in_the_subject() {
        for n in per_agent(Some("research agent")) {
            if matches!(n, Notification::SuspiciousActivity { .. }) {
                continue; // the digest lists ids only
            }
            let r = n.render(NOW, CONSOLE).unwrap();
            assert!(r.text.contains("\"research agent\""), "{}", r.text);
            assert!(r.html.contains("research agent"), "{}", r.html);
            assert!(!r.subject.contains("research"), "{}", r.subject);
        }
    }

    #[test]
    fn a_hostile_client_name_is_escaped_in_the_html_body() {
        for n in per_agent(Some(HOSTILE)) {
            let r = n.render(NOW, CONSOLE).unwrap();
            assert!(!r.html.contains("<script"), "{}:\n{}", n.kind(), r.html);
            assert!(!r.subject.contains("<script"), "{}", r.subject);
            if !matches!(n, Notification::SuspiciousActivity { .. }) {
                assert!(
                    r.html.contains("&#60;script&#62;") || r.html.contains("&lt;script&gt;"),
                    "{}:\n{}",
                    n.kind(),
                    r.html
                );
                // The text body shows the name as is: it is not HTML.
                assert!(r.text.contains(HOSTILE), "{}", r.text);
            }
        }
    }

    #[test]
    fn a_name_cannot_fake_lines_or_reorder_text() {
        let n = Notification::AgentSuspended {
            client_id: ID.to_owned(),
            client_name: Some("ok\r\nWhen: never\u{202e}evil".to_owned()),
        };
        let r = n.render(NOW, CONSOLE).unwrap();
        assert!(!r.text.contains("\nWhen: never"), "{}", r.text);
        assert!(!r.text.contains('\u{202e}'));
        assert!(r.text.contains("ok\u{fffd}\u{fffd}When: never\u{fffd}evil"));
    }

    #[test]
    fn a_long_name_is_cut() {
        let shown = untrusted_text(&"a".repeat(500), MAX_NAME_CHARS);
        assert_eq!(shown.chars().count(), MAX_NAME_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(untrusted_text("short", MAX_NAME_CHARS), "short");
    }

    #[test]
    fn an_agent_without_a_name_says_so() {
        let n = Notification::AgentResumed {
            client_id: ID.to_owned(),
            client_name: None,
        };
        let r = n.render(NOW, CONSOLE).unwrap();
        assert!(r.text.contains("(none given)"), "{}", r.text);
        assert!(r.html.contains("(none given)"), "{}", r.html);
    }

    #[test]
    fn the_linked_message_lists_the_granted_skills() {
        let r = per_agent(None)[0].render(NOW, CONSOLE).unwrap();
        assert!(
            r.text.contains("https://skill.example/mcp: read write"),
            "{}",
            r.text
        );
        assert!(r.html.contains("https://skill.example/mcp"), "{}", r.html);
        let none = Notification::AgentLinked {
            client_id: ID.to_owned(),
            client_name: None,
            grants: Vec::new(),
        }
        .render(NOW, CONSOLE)
        .unwrap();
        assert!(none.text.contains("none yet"), "{}", none.text);
        assert!(none.html.contains("None yet"), "{}", none.html);
    }

    #[test]
    fn the_deleted_message_says_who_deleted_the_agent() {
        for by in ["the agent (RFC 7592)", "you"] {
            let r = Notification::AgentDeleted {
                client_id: ID.to_owned(),
                client_name: None,
                by,
            }
            .render(NOW, CONSOLE)
            .unwrap();
            assert!(r.text.contains(&format!("Deleted by: {by}")), "{}", r.text);
            assert!(r.html.contains(&format!("Deleted by: {by}")), "{}", r.html);
        }
    }

    #[test]
    fn the_kill_switch_message_says_every_token_was_revoked() {
        let r = Notification::AllTokensRevoked.render(NOW, CONSOLE).unwrap();
        assert!(r.subject.contains("revoked"), "{}", r.subject);
        assert!(r.text.contains("revoked"), "{}", r.text);
        assert!(r.html.contains("revoked"), "{}", r.html);
        assert!(r.text.contains(&format!("{CONSOLE}/agents")), "{}", r.text);
        assert!(r.html.contains(&format!("{CONSOLE}/agents")), "{}", r.html);
        assert!(r.text.contains("2026-11-28 10:03:07 UTC"), "{}", r.text);
    }

    #[test]
    fn the_digest_lists_every_agent_reason_and_count() {
        let r = Notification::SuspiciousActivity {
            events: vec![
                ("agt_one".to_owned(), "dpop_replay".to_owned(), 1),
                ("agt_two".to_owned(), "assertion_invalid".to_owned(), 12),
                ("agt_two".to_owned(), "dpop_replay".to_owned(), 2),
            ],
        }
        .render(NOW, CONSOLE)
        .unwrap();
        assert_eq!(r.subject, "Patron: suspicious activity of 2 of your agents");
        assert!(
            r.text.contains("agt_one: dpop_replay, 1 time\n"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("agt_two: assertion_invalid, 12 times"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains(&format!("{CONSOLE}/agents/agt_two")),
            "{}",
            r.text
        );
        for needle in ["agt_one", "agt_two", "assertion_invalid", ">12<"] {
            assert!(r.html.contains(needle), "{needle}:\n{}", r.html);
        }
    }

    #[test]
    fn console_links_encode_the_agent_id() {
        assert_eq!(agent_url(CONSOLE, ID), format!("{CONSOLE}/agents/{ID}"));
        assert_eq!(
            agent_url("https://x/console", "a/b c"),
            "https://x/console/agents/a%2Fb%20c"
        );
    }

    #[test]
    fn the_default_sender_and_a_files_transport_make_a_mailer() {
        let dir = tempfile::tempdir().unwrap();
        let mail_dir = dir.path().join("mail");
        let config = MailConfig {
            transport: MailTransport::Files(mail_dir.clone()),
            from: "Patron <patron@localhost>".to_owned(),
        };
        let mailer = Mailer::new(&config, format!("{CONSOLE}/")).unwrap();
        assert_eq!(mailer.inner.console_url, CONSOLE);
        assert!(mail_dir.is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&mail_dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn a_bad_sender_address_is_refused_naming_the_setting() {
        let config = MailConfig {
            transport: MailTransport::Files(std::env::temp_dir()),
            from: "not an address".to_owned(),
        };
        let e = Mailer::new(&config, CONSOLE.to_owned()).unwrap_err();
        assert!(e.to_string().starts_with("mail.from:"), "{e}");
    }

    #[test]
    fn a_bad_recipient_is_refused_without_quoting_it() {
        let config = MailConfig {
            transport: MailTransport::Files(std::env::temp_dir()),
            from: "Patron <patron@localhost>".to_owned(),
        };
        let mailer = Mailer::new(&config, CONSOLE.to_owned()).unwrap();
        let e = mailer
            .compose("secret-local-part", &Notification::AllTokensRevoked, NOW)
            .unwrap_err();
        assert!(!e.to_string().contains("secret-local-part"), "{e}");
    }

    #[test]
    fn a_message_is_multipart_alternative_and_marked_auto_submitted() {
        let config = MailConfig {
            transport: MailTransport::Files(std::env::temp_dir()),
            from: "Patron <patron@localhost>".to_owned(),
        };
        let mailer = Mailer::new(&config, CONSOLE.to_owned()).unwrap();
        let message = mailer
            .compose("owner@example.com", &per_agent(None)[1], NOW)
            .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("Content-Type: multipart/alternative"), "{raw}");
        assert!(
            raw.contains("Content-Type: text/plain; charset=utf-8"),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/html; charset=utf-8"),
            "{raw}"
        );
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"), "{raw}");
        assert!(raw.contains("To: owner@example.com\r\n"), "{raw}");
        assert!(
            raw.contains("Date: Sat, 28 Nov 2026 10:03:07 +0000\r\n"),
            "{raw}"
        );
    }
}
