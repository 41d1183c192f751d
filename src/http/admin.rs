//! The admin API under `/admin/`, protected by the bearer token `PATRON_ADMIN_TOKEN` (or
//! its argon2id hash, `PATRON_ADMIN_TOKEN_HASH`; disabled, answering 404, when neither is
//! configured). The `patron admin` CLI calls it. A middleware over the scope hands every
//! request and its answer to [`operator::audit_request`], so that refusals before any
//! handler (admin token, body, unknown route) are audited too.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use actix_web::FromRequest;
use actix_web::dev::Payload;
use futures_util::future::LocalBoxFuture;

use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::{Next, from_fn};

use crate::endpoints::admin::{
    APPROVE_AGENT, RESUME_AGENT, REVOKE_OWNER, REVOKE_TOKEN, SCOPE, SKILL_POLICY, SKILLS,
    SKILLS_CHECK, SUSPEND_AGENT,
};
use crate::http::error::HttpError;
use crate::http::extract::{MAX_JSON_BODY, bearer, caller, json_object};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::ClientId;
use crate::service::operator::{AdminAction, AdminOutcome, AdminRequest, AdminTarget, Listener};
use crate::service::skills::{self, SkillInput};
use crate::service::{Actor, Caller, agents, operator, owners, skill_policy, token};
use crate::state::AppState;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(SCOPE)
            .route(SKILLS, web::post().to(put_skill))
            .route(SKILLS, web::get().to(list_skills))
            .route(SKILL_POLICY, web::post().to(set_skill_policy))
            .route(SKILLS_CHECK, web::post().to(check_skill))
            .route(APPROVE_AGENT, web::post().to(approve_agent))
            .route(SUSPEND_AGENT, web::post().to(suspend_agent))
            .route(RESUME_AGENT, web::post().to(resume_agent))
            .route(REVOKE_OWNER, web::post().to(revoke_all))
            .route(REVOKE_TOKEN, web::post().to(revoke_token))
            .wrap(from_fn(audit_admin_request)),
    );
}

/// The action a matched admin route and method stand for.
fn action_of(method: &Method, pattern: Option<&str>) -> AdminAction {
    let Some(route) = pattern.and_then(|p| p.strip_prefix(SCOPE)) else {
        return AdminAction::Unknown;
    };
    let post = *method == Method::POST;
    match route {
        SKILLS if post => AdminAction::PutSkill,
        SKILLS if *method == Method::GET => AdminAction::ListSkills,
        SKILL_POLICY if post => AdminAction::SetSkillPolicy,
        SKILLS_CHECK if post => AdminAction::CheckSkill,
        APPROVE_AGENT if post => AdminAction::ApproveAgent,
        SUSPEND_AGENT if post => AdminAction::SuspendAgent,
        RESUME_AGENT if post => AdminAction::ResumeAgent,
        REVOKE_OWNER if post => AdminAction::RevokeOwner,
        REVOKE_TOKEN if post => AdminAction::RevokeToken,
        _ => AdminAction::Unknown,
    }
}

/// The listener `req` came through.
fn listener(req: &HttpRequest, state: &AppState) -> Listener {
    match state.admin_addr.get() {
        Some(Some(admin)) if req.app_config().local_addr() == *admin => Listener::Admin,
        _ => Listener::Public,
    }
}

/// Records what a handler learnt from the body about the target of its request (the
/// audit of the request, below, picks it up).
fn note_target(req: &HttpRequest, target: AdminTarget) {
    req.extensions_mut().insert(target);
}

/// Hands every admin request, answered or refused (admin token, body, unknown target,
/// unknown route), to the operator service's audit.
async fn audit_admin_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let caller = caller(req.request(), &state);
    let listener = listener(req.request(), &state);
    let res = next.call(req).await?;
    let http = res.request();
    let action = action_of(http.method(), http.match_pattern().as_deref());
    let noted = http.extensions().get::<AdminTarget>().cloned();
    let param = |name: &str| http.match_info().get(name).map(str::to_owned);
    let target = match (action, noted) {
        (_, Some(t)) => t,
        (AdminAction::Unknown, None) => AdminTarget::Path(http.path().to_owned()),
        (
            AdminAction::ApproveAgent | AdminAction::SuspendAgent | AdminAction::ResumeAgent,
            None,
        ) => param("client_id").map_or(AdminTarget::None, AdminTarget::Agent),
        (AdminAction::RevokeOwner, None) => {
            param("owner_id").map_or(AdminTarget::None, AdminTarget::Owner)
        }
        (_, None) => AdminTarget::None,
    };
    let request = AdminRequest {
        action,
        target,
        listener,
    };
    let refusal = res
        .response()
        .error()
        .and_then(|e| e.as_error::<HttpError>());
    let status = res.status().as_u16();
    let outcome = match refusal {
        Some(e) => AdminOutcome::Refused(&e.0),
        None if status >= 400 => AdminOutcome::Status(status),
        None => AdminOutcome::Done,
    };
    operator::audit_request(&state, &caller, &request, outcome);
    Ok(res)
}

/// A request that presented the admin token (on the admin listener, when it has one of
/// its own). Anything else is refused with the admin API's JSON errors.
struct Operator {
    caller: Caller,
}

impl FromRequest for Operator {
    type Error = HttpError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { operator(&req).await.map_err(HttpError::from) })
    }
}

async fn operator(req: &HttpRequest) -> Result<Operator, OAuthError> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(OAuthError::server_error());
    };
    // With its own listener, the admin API does not exist on the public one.
    if matches!(state.admin_addr.get(), Some(Some(_))) && listener(req, state) != Listener::Admin {
        return Err(operator::disabled());
    }
    let caller = caller(req, state);
    operator::check_admin_token(state, bearer(req)).await?;
    Ok(Operator { caller })
}

fn json_response(status: actix_web::http::StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/json")
        .body(v.to_string())
}

/// The request's JSON body as `T` (bounded, `application/json`, unknown fields refused by
/// `T`'s `deny_unknown_fields`).
async fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, OAuthError> {
    let body = json_object(req, payload, MAX_JSON_BODY, ErrorKind::InvalidRequest).await?;
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
    let input: SkillInput = json_body(&req, payload).await?;
    note_target(&req, AdminTarget::Skill(input.audience.clone()));
    let skill = skills::put(&state, &op.caller, input, None).await?;
    Ok(json_response(
        actix_web::http::StatusCode::CREATED,
        &skill_json(&skill),
    ))
}

fn skill_json(s: &crate::store::models::skills::SkillRow) -> Value {
    json!({
        "audience": s.audience, "name": s.name, "scopes": s.scopes, "ttl_secs": s.ttl_secs,
        "require_dpop": s.require_dpop, "client_id": s.client_id, "owner_id": s.owner_id,
        "grantable_by": s.grant_policy.entries_text(),
        "policy_needs_review": s.policy_needs_review,
        "proven_at": s.proven_at, "proof_error": s.proof_error, "usable": s.usable(),
        "delegate_audiences": s.delegate_audiences().collect::<Vec<_>>(),
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    audience: String,
    grantable_by: Vec<String>,
}

async fn set_skill_policy(
    op: Operator,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body: PolicyBody = json_body(&req, payload).await?;
    note_target(&req, AdminTarget::Skill(body.audience.clone()));
    let out = skill_policy::set_policy(
        &state,
        &op.caller,
        Actor::Operator,
        &body.audience,
        &body.grantable_by,
    )
    .await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    audience: String,
}

/// A proven audience answers with the skill; an unproven one with `invalid_target` and
/// the reason (also recorded on the skill).
async fn check_skill(
    op: Operator,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body: CheckBody = json_body(&req, payload).await?;
    note_target(&req, AdminTarget::Skill(body.audience.clone()));
    let proof = skills::check(&state, &op.caller, &body.audience, None).await?;
    if let Some(failure) = proof.failure {
        return Err(OAuthError::from(failure).into());
    }
    Ok(json_response(
        actix_web::http::StatusCode::OK,
        &skill_json(&proof.skill),
    ))
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
    let body: ApproveBody = json_body(&req, payload).await?;
    let client_id = ClientId::parse(&path).map_err(OAuthError::from)?;
    let out = agents::approve(
        &state,
        &op.caller,
        &client_id,
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
    let client_id = ClientId::parse(&path).map_err(OAuthError::from)?;
    let out = agents::set_suspended(&state, &op.caller, Actor::Operator, &client_id, true).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, &out))
}

async fn resume_agent(
    op: Operator,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let client_id = ClientId::parse(&path).map_err(OAuthError::from)?;
    let out = agents::set_suspended(&state, &op.caller, Actor::Operator, &client_id, false).await?;
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeTokenBody {
    jti: String,
}

async fn revoke_token(
    op: Operator,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let body: RevokeTokenBody = json_body(&req, payload).await?;
    note_target(&req, AdminTarget::Token(body.jti.clone()));
    let out = token::revoke_jti(&state, &op.caller, &body.jti).await?;
    Ok(json_response(
        actix_web::http::StatusCode::OK,
        &json!({"jti": out.jti, "revoked_until": out.revoked_until}),
    ))
}
