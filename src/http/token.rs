//! Token, introspection and revocation endpoints (form-encoded, RFC 6749 §3.2).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;

use crate::http::error::{self, HttpError};
use crate::http::extract::caller;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::token::{
    self, INTROSPECTION_PATH, REVOCATION_PATH, RequestHeaders, TOKEN_PATH,
};
use crate::state::AppState;

/// Largest form body accepted.
const MAX_FORM_BODY: usize = 16 * 1024;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource =
        |path: &str| web::resource(path).default_service(web::to(error::method_not_allowed));
    cfg.service(resource(TOKEN_PATH).route(web::post().to(issue_token)))
        .service(resource(INTROSPECTION_PATH).route(web::post().to(introspect_token)))
        .service(resource(REVOCATION_PATH).route(web::post().to(revoke_token)));
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BODY`] bytes.
async fn form(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Vec<(String, String)>, OAuthError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !is_form {
        return Err(OAuthError::new(
            ErrorKind::UnsupportedMediaType,
            "the request body must be application/x-www-form-urlencoded",
            "content_type_not_form",
        ));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            OAuthError::new(
                ErrorKind::InvalidRequest,
                "the request body could not be read",
                "body_unreadable",
            )
        })?;
        if body.len() + chunk.len() > MAX_FORM_BODY {
            return Err(OAuthError::new(
                ErrorKind::PayloadTooLarge,
                format!("the request body exceeds {MAX_FORM_BODY} bytes"),
                "body_too_large",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

fn headers(req: &HttpRequest) -> RequestHeaders {
    let mut dpop = req.headers().get_all("dpop");
    let first = dpop.next().and_then(|v| v.to_str().ok()).map(str::to_owned);
    let dpop = match (first, dpop.next()) {
        (None, _) => None,
        (Some(p), None) => Some(Ok(p)),
        (Some(_), Some(_)) => Some(Err(())),
    };
    RequestHeaders {
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        dpop,
    }
}

fn no_store_json(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .content_type("application/json")
        .body(body)
}

/// `POST /token`.
async fn issue_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let body = form(&req, payload).await;
    let resp = token::token(&state, &who, headers(&req), body).await?;
    Ok(no_store_json(
        serde_json::to_string(&resp).map_err(|_| OAuthError::server_error())?,
    ))
}

/// `POST /introspect`.
async fn introspect_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let body = form(&req, payload).await;
    let resp = token::introspect(&state, &who, headers(&req), body).await?;
    Ok(no_store_json(resp.to_string()))
}

/// `POST /revoke`.
async fn revoke_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let body = form(&req, payload).await;
    token::revoke(&state, &who, headers(&req), body).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
