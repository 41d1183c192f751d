//! The admin API under `/admin/`, protected by the bearer token `PATRON_ADMIN_TOKEN`
//! (disabled, answering 404, when none is configured). The `patron admin` CLI calls it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use actix_web::FromRequest;
use actix_web::dev::Payload;
use futures_util::future::{Ready, ready};

use crate::endpoints::admin::{
    APPROVE_AGENT, RESUME_AGENT, REVOKE_OWNER, SCOPE, SKILLS, SUSPEND_AGENT,
};
use crate::http::error::HttpError;
use crate::http::extract::{MAX_JSON_BODY, bearer, caller, json_object};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::skills::{self, SkillInput};
use crate::service::{Actor, Caller, agents, operator, owners};
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

/// A request that presented the admin token (on the admin listener, when it has one of
/// its own). Anything else is refused with the admin API's JSON errors.
struct Operator {
    caller: Caller,
}

impl FromRequest for Operator {
    type Error = HttpError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(operator(req).map_err(HttpError::from))
    }
}

fn operator(req: &HttpRequest) -> Result<Operator, OAuthError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(OAuthError::server_error());
    };
    // With its own listener, the admin API does not exist on the public one.
    if let Some(Some(admin)) = state.admin_addr.get() {
        if req.app_config().local_addr() != *admin {
            return Err(operator::disabled());
        }
    }
    let caller = caller(req, state);
    operator::check_admin_token(state, &caller, bearer(req))?;
    Ok(Operator { caller })
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
    op: Operator,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body = json_object(&req, payload, MAX_JSON_BODY, ErrorKind::InvalidRequest).await?;
    let skill = skills::put(&state, &op.caller, body_as::<SkillInput>(body)?, None).await?;
    Ok(json_response(
        actix_web::http::StatusCode::CREATED,
        &skill_json(&skill),
    ))
}

fn skill_json(s: &crate::store::models::skills::SkillRow) -> Value {
    json!({
        "audience": s.audience, "name": s.name, "scopes": s.scopes, "ttl_secs": s.ttl_secs,
        "require_dpop": s.require_dpop, "client_id": s.client_id,
        "delegate_audiences": s.delegate_audiences().collect::<Vec<_>>(),
    })
}

async fn list_skills(_: Operator, state: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let skills = skills::list(&state).await?;
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
    op: Operator,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body = json_object(&req, payload, MAX_JSON_BODY, ErrorKind::InvalidRequest).await?;
    let body: ApproveBody = body_as(body)?;
    let out = agents::approve(
        &state,
        &op.caller,
        &path,
        &body.owner,
        body.grants.into_iter().collect(),
    )
    .await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}

async fn suspend_agent(
    op: Operator,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let out = agents::set_suspended(&state, &op.caller, Actor::Operator, &path, true).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}

async fn resume_agent(
    op: Operator,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let out = agents::set_suspended(&state, &op.caller, Actor::Operator, &path, false).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}

async fn revoke_all(
    op: Operator,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let out = owners::revoke_all(&state, &op.caller, &path).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}
