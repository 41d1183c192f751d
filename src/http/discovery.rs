//! Discovery metadata (RFC 8414, and the OpenID Connect discovery path) and the JWKS,
//! both served from bytes prepared in advance.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::endpoints::{JWKS, OAUTH_METADATA, OPENID_CONFIGURATION};
use crate::state::AppState;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(OAUTH_METADATA, web::get().to(metadata))
        .route(OPENID_CONFIGURATION, web::get().to(metadata))
        .route(JWKS, web::get().to(jwks));
}

async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .content_type("application/json")
        .body(state.discovery.json().to_string())
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    // Keys are published `keys.promote_delay_secs` before they sign; caching for at most
    // five minutes (and never beyond half that delay) keeps verifiers current.
    let max_age = (state.config.keys.promote_delay_secs / 2).clamp(0, 300);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .content_type("application/jwk-set+json")
        .body(state.keys.ring().jwks_json.to_string())
}
