//! The admin API under `/admin/`, protected by the bearer token `PATRON_ADMIN_TOKEN`
//! (disabled, answering 404, when none is configured). The `patron admin` CLI calls it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use crate::crypto::constant_time_eq;
use crate::endpoints::admin::{
    APPROVE_AGENT, RESUME_AGENT, REVOKE_OWNER, SCOPE, SKILLS, SUSPEND_AGENT,
};
use crate::http::error::HttpError;
use crate::http::extract::{MAX_JSON_BODY, bearer, caller, json_object};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::admin::{self, SkillInput};
use crate::state::AppState;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(SCOPE)
            .route(SKILLS, web::post().to(put_skill))
            .route(SKILLS, web::get().to(list_skills))
            .route(APPROVE_AGENT, web::post().to(approve_agent))
            .route(SUSPEND_AGENT, web::post().to(suspend_agent))
            .route(RESUME_AGENT, web::post().to(resume_agent))
            .route(REVOKE_OWNER, web::post().to(revoke_all)),
    );
}

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), OAuthError> {
    let not_found = || {
        OAuthError::new(
            ErrorKind::NotFound,
            "no such endpoint",
            "admin_api_disabled",
        )
    };
    let Some(expected) = &state.config.admin_token else {
        return Err(not_found());
    };
    // With its own listener, the admin API does not exist on the public one.
    if let Some(Some(admin)) = state.admin_addr.get() {
        if req.app_config().local_addr() != *admin {
            return Err(not_found());
        }
    }
    match bearer(req) {
        Some(t) if constant_time_eq(t.as_bytes(), expected.expose().as_bytes()) => Ok(()),
        _ => {
            state.audit.record(
                crate::audit::AuditEvent::new("admin.auth", crate::audit::Outcome::Failure)
                    .reason("admin_token_invalid")
                    .source(&caller(req, state).source.to_string()),
            );
            Err(OAuthError::new(
                ErrorKind::InvalidToken,
                "a valid admin token is required",
                "admin_token_invalid",
            ))
        }
    }
}

fn json_response(status: actix_web::http::StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(v.to_string())
}

fn body_as<T: serde::de::DeserializeOwned>(body: Map<String, Value>) -> Result<T, OAuthError> {
    serde_json::from_value(Value::Object(body)).map_err(|e| {
        OAuthError::new(
            ErrorKind::InvalidRequest,
            format!("invalid request body: {e}"),
            "admin_body_invalid",
        )
    })
}

async fn put_skill(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    authorize(&req, &state)?;
    let body = json_object(&req, payload, MAX_JSON_BODY, ErrorKind::InvalidRequest).await?;
    let skill =
        admin::put_skill(&state, &caller(&req, &state), body_as::<SkillInput>(body)?).await?;
    Ok(json_response(
        actix_web::http::StatusCode::CREATED,
        &skill_json(&skill),
    ))
}

fn skill_json(s: &crate::store::models::skills::SkillRow) -> Value {
    json!({
        "audience": s.audience, "name": s.name, "scopes": s.scopes, "ttl_secs": s.ttl_secs,
        "require_dpop": s.require_dpop, "client_id": s.client_id,
    })
}

async fn list_skills(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    authorize(&req, &state)?;
    let skills = admin::list_skills(&state).await?;
    let list: Vec<Value> = skills.iter().map(skill_json).collect();
    Ok(json_response(
        actix_web::http::StatusCode::OK,
        &json!({ "skills": list }),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    owner: String,
    #[serde(default)]
    grants: std::collections::BTreeMap<String, String>,
}

async fn approve_agent(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    authorize(&req, &state)?;
    let body = json_object(&req, payload, MAX_JSON_BODY, ErrorKind::InvalidRequest).await?;
    let body: ApproveBody = body_as(body)?;
    let out = admin::approve_agent(
        &state,
        &caller(&req, &state),
        &path,
        &body.owner,
        body.grants.into_iter().collect(),
    )
    .await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}

async fn suspend_agent(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    authorize(&req, &state)?;
    let out = admin::set_suspended(&state, &caller(&req, &state), &path, true).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}

async fn resume_agent(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    authorize(&req, &state)?;
    let out = admin::set_suspended(&state, &caller(&req, &state), &path, false).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}

async fn revoke_all(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    authorize(&req, &state)?;
    let out = admin::revoke_all(&state, &caller(&req, &state), &path).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}
