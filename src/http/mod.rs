//! HTTP glue (actix-web only): one `configure` per area, errors, extractors.

pub mod admin;
pub mod console;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod home;
pub mod ops;
pub mod registration;
pub mod token;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::state::AppState;

/// The Content-Security-Policy of every response: no scripts, styles and images from this
/// origin only, no framing, and forms posted to this origin only, or also to `form_target`
/// (the consent page, whose form's answer redirects to the client's redirect URI: browsers
/// apply `form-action` to that redirect too).
pub fn content_security_policy(form_target: Option<&str>) -> String {
    let extra = form_target.map(|t| format!(" {t}")).unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'{extra}"
    )
}

/// The whole route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(home::configure)
        .configure(discovery::configure)
        .configure(registration::configure)
        .configure(token::configure)
        .configure(admin::configure)
        .configure(console::configure)
        .configure(ops::configure)
        .default_service(web::to(error::not_found));
}

/// A request's id: in the request's extensions, its tracing span, its audit events and the
/// `X-Request-Id` response header.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A cheap unique id: a random per-process prefix and a counter (no system call per
/// request, unlike a random UUID).
fn next_request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| u32::from_le_bytes(crate::crypto::random_bytes::<4>()));
    format!(
        "{prefix:08x}-{:010x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Gives each request an id and a tracing span (cheap when the span's level is filtered out).
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage as _;
    use tracing::Instrument as _;
    let id = next_request_id();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.path(),
        request_id = %id,
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&id) {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-request-id"),
            v,
        );
    }
    Ok(res)
}

/// Counts responses by status class for `/metrics`.
pub async fn count_responses(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        state.metrics.count_response(res.status().as_u16());
    }
    Ok(res)
}
