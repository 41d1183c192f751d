//! The `[mail]` section: where owner notifications go.

use std::path::PathBuf;

use super::raw::RawMail;
use super::{ConfigError, Mode, SecretString};

/// How TLS is used towards the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No TLS: only for a relay on this host (tests, a local MTA).
    None,
}

/// Where e-mail goes.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// Written as `.eml` files into a directory (development).
    Files(PathBuf),
    /// Sent through an SMTP server.
    Smtp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// TLS mode.
        tls: SmtpTls,
        /// Credentials, if the server wants them.
        credentials: Option<(String, SecretString)>,
    },
}

/// E-mail settings.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Transport.
    pub transport: MailTransport,
    /// `From` header.
    pub from: String,
}

/// Validates `[mail]`. The files transport writes into `mail` beside the SQLite database
/// (`database_dir`) unless `dir` is set; SMTP needs a host, a TLS mode, and both or neither
/// of username and password. Production mode with the files transport only warns.
pub(super) fn validate_mail(
    raw: &RawMail,
    mode: Mode,
    database_dir: Option<PathBuf>,
) -> Result<MailConfig, ConfigError> {
    let transport = match raw.transport.as_str() {
        "files" => MailTransport::Files(
            raw.dir
                .clone()
                .unwrap_or_else(|| database_dir.unwrap_or_default().join("mail")),
        ),
        "smtp" => {
            let host = raw.smtp_host.clone().ok_or_else(|| {
                ConfigError::new("mail.smtp_host", "is required with transport = \"smtp\"")
            })?;
            let tls = match raw.smtp_tls.as_str() {
                "starttls" => SmtpTls::Starttls,
                "tls" => SmtpTls::Tls,
                "none" => SmtpTls::None,
                other => {
                    return Err(ConfigError::new(
                        "mail.smtp_tls",
                        format!("`{other}` is not one of starttls, tls, none"),
                    ));
                }
            };
            let port = raw.smtp_port.unwrap_or(match tls {
                SmtpTls::Tls => 465,
                _ => 587,
            });
            let credentials = match (&raw.smtp_username, &raw.smtp_password) {
                (Some(u), Some(p)) => Some((u.clone(), SecretString(p.clone()))),
                (None, None) => None,
                _ => {
                    return Err(ConfigError::new(
                        "mail.smtp_username",
                        "set both smtp_username and smtp_password, or neither",
                    ));
                }
            };
            MailTransport::Smtp {
                host,
                port,
                tls,
                credentials,
            }
        }
        other => {
            return Err(ConfigError::new(
                "mail.transport",
                format!("`{other}` is not one of files, smtp"),
            ));
        }
    };
    if mode == Mode::Production && matches!(transport, MailTransport::Files(_)) {
        tracing::warn!("production mode with mail.transport = \"files\": owners get no e-mail");
    }
    Ok(MailConfig {
        transport,
        from: raw.from.clone(),
    })
}
