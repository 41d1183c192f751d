//! Operations endpoints: liveness, readiness, Prometheus metrics.

use actix_web::{HttpResponse, web};

use crate::endpoints::{HEALTHZ, METRICS, READYZ};
use crate::service::health;
use crate::state::AppState;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(HEALTHZ, web::get().to(healthz))
        .route(READYZ, web::get().to(readyz))
        .route(METRICS, web::get().to(metrics));
}

/// The process is up.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// The database answers and a signing key is active.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let found = health::readiness(&state).await;
    let body = format!(
        "database: {}\nsigning key: {}\n",
        if found.database { "ok" } else { "unavailable" },
        if found.signing_key {
            "ok"
        } else {
            "none active"
        }
    );
    if found.ready() {
        HttpResponse::Ok().content_type("text/plain").body(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
