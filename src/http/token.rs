//! Token, introspection and revocation endpoints (form-encoded, RFC 6749 §3.2).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::endpoints::{INTROSPECTION, REVOCATION, TOKEN};
use crate::http::error::{self, HttpError};
use crate::http::extract::{MAX_FORM_BODY, caller, form_pairs};
use crate::oauth::error::OAuthError;
use crate::secret::Secret;
use crate::service::Caller;
use crate::service::token::{self, RequestHeaders};
use crate::state::AppState;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource =
        |path: &str| web::resource(path).default_service(web::to(error::method_not_allowed));
    cfg.service(resource(TOKEN).route(web::post().to(issue_token)))
        .service(resource(INTROSPECTION).route(web::post().to(introspect_token)))
        .service(resource(REVOCATION).route(web::post().to(revoke_token)));
}

fn headers(req: &HttpRequest, who: &Caller) -> RequestHeaders {
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
            .map(Secret::from),
        dpop,
        source: Some(who.source),
    }
}

/// `value` as a JSON 200 that no cache may store (RFC 6749 §5.1).
fn no_store_json(value: &impl serde::Serialize) -> Result<HttpResponse, HttpError> {
    let body = serde_json::to_string(value).map_err(|_| OAuthError::server_error())?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .content_type("application/json")
        .body(body))
}

/// `POST /token`.
async fn issue_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let body = form_pairs(&req, payload, MAX_FORM_BODY).await;
    let resp = token::token(&state, &who, headers(&req, &who), body).await?;
    no_store_json(&resp)
}

/// `POST /introspect`.
async fn introspect_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let body = form_pairs(&req, payload, MAX_FORM_BODY).await;
    let resp = token::introspect(&state, &who, headers(&req, &who), body).await?;
    no_store_json(&resp)
}

/// `POST /revoke`.
async fn revoke_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let body = form_pairs(&req, payload, MAX_FORM_BODY).await;
    token::revoke(&state, &who, headers(&req, &who), body).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
