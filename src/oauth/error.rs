//! The OAuth error every endpoint answers with: one kind per RFC error code, a description
//! safe to show the caller, and a private reason code for the audit log.
//!
//! Codes: RFC 6749 §5.2, RFC 6750 §3.1 (`invalid_token`), RFC 7591 §3.2.2, RFC 8693 §2.2.2
//! (`invalid_target` comes from RFC 8707), RFC 6749 §4.1.2.1 (`access_denied`), RFC 9449 §7.1.

use std::borrow::Cow;
use std::fmt;

/// The RFC error codes Patron emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request.
    InvalidRequest,
    /// Client authentication failed (401).
    InvalidClient,
    /// Grant or token invalid.
    InvalidGrant,
    /// Client not allowed this grant.
    UnauthorizedClient,
    /// Grant type not supported.
    UnsupportedGrantType,
    /// Scope invalid or exceeds the grant.
    InvalidScope,
    /// Resource or audience not allowed (RFC 8707 §2).
    InvalidTarget,
    /// The person (or the server on their behalf) denied an authorization request
    /// (RFC 6749 §4.1.2.1) (403).
    AccessDenied,
    /// The authorization endpoint does not offer this `response_type` (RFC 6749 §4.1.2.1).
    UnsupportedResponseType,
    /// Bearer credential missing or invalid (RFC 6750; RFC 7592 registration token) (401).
    InvalidToken,
    /// A client metadata value is invalid (RFC 7591 §3.2.2).
    InvalidClientMetadata,
    /// A redirect URI is invalid (RFC 7591 §3.2.2).
    InvalidRedirectUri,
    /// The software statement is invalid (RFC 7591 §3.2.2).
    InvalidSoftwareStatement,
    /// The software statement is not from a trusted publisher (RFC 7591 §3.2.2).
    UnapprovedSoftwareStatement,
    /// The DPoP proof is missing or invalid (RFC 9449 §7.1).
    InvalidDpopProof,
    /// The DPoP proof must carry the server's nonce (RFC 9449 §8); sent with `DPoP-Nonce`.
    UseDpopNonce,
    /// The request body is too large (413).
    PayloadTooLarge,
    /// The request body has the wrong media type (415).
    UnsupportedMediaType,
    /// Too many requests from this source (429).
    TooManyRequests,
    /// No such endpoint (404).
    NotFound,
    /// Method not allowed on this endpoint (405).
    MethodNotAllowed,
    /// Something failed inside the server (500); the cause is logged, not shown.
    ServerError,
    /// A dependency (the database) is unavailable (503).
    TemporarilyUnavailable,
    /// An upstream identity provider could not be reached or answered badly (502).
    UpstreamUnavailable,
}

impl ErrorKind {
    /// The `error` value on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest
            | Self::PayloadTooLarge
            | Self::UnsupportedMediaType
            | Self::NotFound
            | Self::MethodNotAllowed => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidToken => "invalid_token",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::TooManyRequests | Self::TemporarilyUnavailable | Self::UpstreamUnavailable => {
                "temporarily_unavailable"
            }
            Self::ServerError => "server_error",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::AccessDenied => 403,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManyRequests => 429,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::ServerError => 500,
            Self::UpstreamUnavailable => 502,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An OAuth error response plus its audit reason.
#[derive(Debug, Clone)]
pub struct OAuthError {
    kind: ErrorKind,
    description: Cow<'static, str>,
    reason: &'static str,
    retry_after: Option<u64>,
    dpop_nonce: Option<String>,
}

impl OAuthError {
    /// An error of `kind` with a caller-safe `description` and an audit `reason` code.
    pub fn new(
        kind: ErrorKind,
        description: impl Into<Cow<'static, str>>,
        reason: &'static str,
    ) -> Self {
        Self {
            kind,
            description: description.into(),
            reason,
            retry_after: None,
            dpop_nonce: None,
        }
    }

    /// An opaque server error; the caller logs the cause.
    pub fn server_error() -> Self {
        Self::new(
            ErrorKind::ServerError,
            "the server could not complete the request",
            "server_error",
        )
    }

    /// The database or another dependency is unavailable.
    pub fn unavailable() -> Self {
        Self::new(
            ErrorKind::TemporarilyUnavailable,
            "the server is temporarily unavailable; retry shortly",
            "store_unavailable",
        )
    }

    /// Adds a `Retry-After` hint (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Adds the nonce to send in the `DPoP-Nonce` header.
    pub fn with_dpop_nonce(mut self, nonce: String) -> Self {
        self.dpop_nonce = Some(nonce);
        self
    }

    /// The nonce for the `DPoP-Nonce` header, if any.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop_nonce.as_deref()
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The caller-safe description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The audit reason code.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Seconds to wait before retrying, when known.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The JSON body: exactly `{error, error_description}`.
    pub fn body(&self) -> String {
        serde_json::json!({
            "error": self.kind.code(),
            "error_description": self.description,
        })
        .to_string()
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.code(),
            self.reason,
            self.description
        )
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_holds_exactly_error_and_description() {
        let e = OAuthError::new(
            ErrorKind::InvalidRedirectUri,
            "no fragments",
            "redirect_uri_fragment",
        );
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "invalid_redirect_uri", "error_description": "no fragments"})
        );
        assert_eq!(e.kind().status(), 400);
        assert_eq!(e.reason(), "redirect_uri_fragment");
    }

    #[test]
    fn authentication_failures_are_401() {
        assert_eq!(ErrorKind::InvalidClient.status(), 401);
        assert_eq!(ErrorKind::InvalidToken.status(), 401);
        assert_eq!(ErrorKind::TooManyRequests.status(), 429);
    }
}
