//! What every console page shares: rendering, redirects, the message page, the console's
//! error type (rendered as a page, never as JSON), and formatting of stored values.

use std::fmt;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::clock::UnixTime;
use crate::http::home::Chrome;
use crate::jose::jwks::PublicKeySet;
use crate::oauth::client_metadata::ClientMetadata;
use crate::oauth::error::OAuthError;
use crate::store::models::clients::ClientRow;

/// Renders `page` with `status`; a template failure is logged and answered 500.
pub fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// A 303 to a local path.
pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A page with a title, a message, an optional secret shown once, and a link onwards.
#[derive(Template)]
#[template(path = "console/message.html")]
pub struct MessagePage {
    /// The frame.
    pub chrome: Chrome,
    /// Heading.
    pub title: String,
    /// Text.
    pub message: String,
    /// A secret to show once (an enrollment token).
    pub secret: Option<String>,
    /// Where to go next.
    pub link: String,
}

/// A message page as a response.
pub fn message(
    chrome: Chrome,
    status: StatusCode,
    title: &str,
    msg: &str,
    link: &str,
) -> HttpResponse {
    html(
        status,
        &MessagePage {
            chrome,
            title: title.into(),
            message: msg.into(),
            secret: None,
            link: link.into(),
        },
    )
}

/// Why a console request did not succeed: a message page, or a redirect (to the login
/// page). Handlers return it with `?`; actix renders it.
#[derive(Debug)]
pub struct ConsoleError {
    status: StatusCode,
    outcome: Box<Outcome>,
}

#[derive(Debug)]
enum Outcome {
    Page {
        chrome: Chrome,
        title: String,
        message: String,
        link: String,
    },
    Redirect(String),
}

impl ConsoleError {
    /// A message page.
    pub fn page(
        chrome: &Chrome,
        status: StatusCode,
        title: &str,
        message: &str,
        link: &str,
    ) -> Self {
        Self {
            status,
            outcome: Box::new(Outcome::Page {
                chrome: chrome.clone(),
                title: title.to_owned(),
                message: message.to_owned(),
                link: link.to_owned(),
            }),
        }
    }

    /// A redirect to a local path.
    pub fn redirect(to: String) -> Self {
        Self {
            status: StatusCode::SEE_OTHER,
            outcome: Box::new(Outcome::Redirect(to)),
        }
    }

    /// A service's refusal as a page: its status, a title that fits it, its description.
    pub fn from_oauth(chrome: &Chrome, e: &OAuthError, link: &str) -> Self {
        let status = StatusCode::from_u16(e.kind().status()).unwrap_or(StatusCode::BAD_REQUEST);
        let title = match status.as_u16() {
            404 => "Not found",
            429 => "Too many attempts",
            502 => "Login unavailable",
            500..=599 => "Something went wrong",
            _ => "That did not work",
        };
        Self::page(chrome, status, title, e.description(), link)
    }

    /// The same, with a title of the caller's choosing.
    pub fn titled(chrome: &Chrome, e: &OAuthError, title: &str, link: &str) -> Self {
        let status = StatusCode::from_u16(e.kind().status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::page(chrome, status, title, e.description(), link)
    }
}

/// Maps service errors to pages framed by `chrome`, linking back to the dashboard.
pub fn fail(chrome: &Chrome) -> impl Fn(OAuthError) -> ConsoleError + '_ {
    move |e| ConsoleError::from_oauth(chrome, &e, "/console")
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome.as_ref() {
            Outcome::Page { title, message, .. } => write!(f, "{title}: {message}"),
            Outcome::Redirect(to) => write!(f, "redirect to {to}"),
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        match self.outcome.as_ref() {
            Outcome::Page {
                chrome,
                title,
                message: text,
                link,
            } => message(chrome.clone(), self.status, title, text, link),
            Outcome::Redirect(to) => redirect(to),
        }
    }
}

/// A stored time as `YYYY-MM-DD HH:MM` (UTC).
pub fn fmt_time(t: UnixTime) -> String {
    crate::clock::utc_minute(t)
}

/// An agent's display name, and its parsed metadata.
pub fn agent_name(row: &ClientRow) -> (String, Option<ClientMetadata>) {
    let meta: Option<ClientMetadata> = row.metadata.parsed().cloned();
    let name = meta
        .as_ref()
        .and_then(|m| m.client_name.clone())
        .unwrap_or_else(|| "(unnamed agent)".to_owned());
    (name, meta)
}

/// What software an agent says it is.
pub fn software(meta: Option<&ClientMetadata>) -> String {
    meta.map(|m| match (&m.software_id, &m.software_version) {
        (Some(id), Some(v)) => format!("{id} {v}"),
        (Some(id), None) => id.clone(),
        _ => "not stated".into(),
    })
    .unwrap_or_else(|| "not stated".into())
}

/// The thumbprints of an agent's keys (or where its keys are, or that it uses a secret).
pub fn thumbprints(meta: Option<&ClientMetadata>) -> Vec<String> {
    match meta.and_then(|m| m.jwks.as_ref()) {
        Some(jwks) => PublicKeySet::from_jwks(jwks)
            .map(|set| set.keys().iter().map(|k| k.thumbprint.clone()).collect())
            .unwrap_or_default(),
        None => match meta.and_then(|m| m.jwks_uri.as_ref()) {
            Some(u) => vec![format!("keys at {u}")],
            None if meta.is_some_and(|m| m.uses_secret()) => vec!["none (client secret)".into()],
            None => vec![],
        },
    }
}
