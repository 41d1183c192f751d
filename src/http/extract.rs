//! Request helpers: bounded JSON bodies with RFC-style errors, bearer tokens, and the
//! caller's source address and request id.

use std::net::IpAddr;

use actix_web::HttpMessage as _;
use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;
use futures_util::StreamExt as _;
use serde_json::{Map, Value};

use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::Caller;
use crate::state::AppState;

/// Largest request body accepted by JSON endpoints.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Whether the request's `Content-Type` is `mime` (parameters such as `charset` ignored).
fn has_media_type(req: &HttpRequest, mime: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` at once,
/// else while streaming).
async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
) -> Result<web::BytesMut, OAuthError> {
    let too_large = || {
        OAuthError::new(
            ErrorKind::PayloadTooLarge,
            format!("the request body exceeds {limit} bytes"),
            "body_too_large",
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            OAuthError::new(
                ErrorKind::InvalidRequest,
                "the request body could not be read",
                "body_unreadable",
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a JSON object body: `application/json`, at most `limit` bytes, nesting bounded by
/// serde_json's recursion limit. `bad_json` is the error kind for unparseable content.
pub async fn json_object(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    bad_json: ErrorKind,
) -> Result<Map<String, Value>, OAuthError> {
    if !has_media_type(req, "application/json") {
        return Err(OAuthError::new(
            ErrorKind::UnsupportedMediaType,
            "the request body must be application/json",
            "content_type_not_json",
        ));
    }
    let body = read_body(req, &mut payload, limit).await?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(OAuthError::new(
            bad_json,
            "the request body must be a JSON object",
            "body_not_object",
        )),
        Err(e) if e.to_string().contains("recursion limit") => Err(OAuthError::new(
            bad_json,
            "the request body is nested too deeply",
            "body_too_deep",
        )),
        Err(e) => Err(OAuthError::new(
            bad_json,
            format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
            "body_not_json",
        )),
    }
}

/// Largest form body accepted.
pub const MAX_FORM_BODY: usize = 16 * 1024;

/// Reads an `application/x-www-form-urlencoded` body of at most `limit` bytes.
pub async fn form_pairs(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<(String, String)>, OAuthError> {
    if !has_media_type(req, "application/x-www-form-urlencoded") {
        return Err(OAuthError::new(
            ErrorKind::UnsupportedMediaType,
            "the request body must be application/x-www-form-urlencoded",
            "content_type_not_form",
        ));
    }
    let body = read_body(req, &mut payload, limit).await?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// The bearer token of the `Authorization` header, if it has one (RFC 6750 §2.1).
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller's address (believing `X-Forwarded-For` only from trusted proxies) and the
/// request id.
pub fn caller(req: &HttpRequest, state: &AppState) -> Caller {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let trusted = &state.config.registration.trusted_proxies;
    let source = if trusted.contains(&peer) {
        req.headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.rsplit(',')
                    .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                    .find(|ip| !trusted.contains(ip))
            })
            .unwrap_or(peer)
    } else {
        peer
    };
    let request_id = req
        .extensions()
        .get::<crate::http::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    Caller { source, request_id }
}
