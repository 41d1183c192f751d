//! RFC 7591 registration and RFC 7592 management endpoints.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use crate::endpoints::{CLIENT_CONFIGURATION, REGISTRATION};
use crate::http::error::{self, HttpError};
use crate::http::extract::{MAX_JSON_BODY, bearer, caller, json_object};
use crate::oauth::error::ErrorKind;
use crate::service::registration;
use crate::state::AppState;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(REGISTRATION)
            .route(web::post().to(register_client))
            .default_service(web::to(error::method_not_allowed)),
    )
    .service(
        web::resource(CLIENT_CONFIGURATION)
            .route(web::get().to(read_client))
            .route(web::put().to(update_client))
            .route(web::delete().to(delete_client))
            .default_service(web::to(error::method_not_allowed)),
    );
}

fn json(status: actix_web::http::StatusCode, body: &Map<String, Value>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(serde_json::to_string(body).unwrap_or_else(|_| "{}".into()))
}

/// `POST /register`.
async fn register_client(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let body = json_object(
        &req,
        payload,
        MAX_JSON_BODY,
        ErrorKind::InvalidClientMetadata,
    )
    .await;
    let info = registration::register(&state, &who, bearer(&req), body).await?;
    Ok(json(actix_web::http::StatusCode::CREATED, &info))
}

/// `GET /register/{client_id}`.
async fn read_client(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let info = registration::read(&state, &who, &path, bearer(&req)).await?;
    Ok(json(actix_web::http::StatusCode::OK, &info))
}

/// `PUT /register/{client_id}`.
async fn update_client(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    let body = json_object(
        &req,
        payload,
        MAX_JSON_BODY,
        ErrorKind::InvalidClientMetadata,
    )
    .await;
    let info = registration::update(&state, &who, &path, bearer(&req), body).await?;
    Ok(json(actix_web::http::StatusCode::OK, &info))
}

/// `DELETE /register/{client_id}`.
async fn delete_client(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = caller(&req, &state);
    registration::delete(&state, &who, &path, bearer(&req)).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
