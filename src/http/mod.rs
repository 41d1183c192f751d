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
