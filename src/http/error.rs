//! Which error type goes where, and how errors become responses.
//!
//! - Protocol failures are [`OAuthError`] (from `oauth`), carrying the RFC code, a safe
//!   description and an audit reason. Handlers return them wrapped in [`HttpError`], which
//!   renders exactly `{error, error_description}` with the right status and headers:
//!   `WWW-Authenticate` on 401, `Retry-After` on 429, `Cache-Control: no-store` always.
//! - Storage failures are `StoreError`; services map them with
//!   `service::store_failure`, which logs the cause once and yields an opaque
//!   `server_error` (500) or `temporarily_unavailable` (503).
//! - Failures of actix extractors (bad path, overflowing body) are mapped here too, so no
//!   response is ever actix's default plain text.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::oauth::error::{ErrorKind, OAuthError};

/// An [`OAuthError`] as an actix response.
#[derive(Debug)]
pub struct HttpError(pub OAuthError);

impl From<OAuthError> for HttpError {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        render(&self.0)
    }
}

fn quote(s: &str) -> String {
    s.replace(['"', '\\'], "'")
}

/// Renders an OAuth error response.
pub fn render(e: &OAuthError) -> HttpResponse {
    let status =
        StatusCode::from_u16(e.kind().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json");
    match e.kind() {
        ErrorKind::InvalidToken => {
            let v = format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                quote(e.description())
            );
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.insert_header((header::WWW_AUTHENTICATE, v));
            }
        }
        ErrorKind::InvalidClient => {
            resp.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"patron\""));
        }
        _ => {}
    }
    if let Some(nonce) = e.dpop_nonce() {
        resp.insert_header(("DPoP-Nonce", nonce.to_owned()));
    }
    if let Some(secs) = e.retry_after() {
        resp.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    resp.body(e.body())
}

/// 404 for unknown paths, as OAuth-style JSON.
pub async fn not_found() -> HttpResponse {
    render(&OAuthError::new(
        ErrorKind::NotFound,
        "no such endpoint",
        "not_found",
    ))
}

/// 405 for a known path with the wrong method.
pub async fn method_not_allowed() -> HttpResponse {
    render(&OAuthError::new(
        ErrorKind::MethodNotAllowed,
        "method not allowed on this endpoint",
        "method_not_allowed",
    ))
}
