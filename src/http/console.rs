//! The owner console: server-rendered pages, usable without JavaScript. Every form carries
//! the session's CSRF token; every agent query is scoped to the logged-in owner.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::clock;
use crate::config::{Mode, ProviderKind};
use crate::crypto;
use crate::http::extract::{MAX_FORM_BODY, caller, form_pairs};
use crate::http::home::Chrome;
use crate::jose::jwks::PublicKeySet;
use crate::oauth::client_metadata::ClientMetadata;
use crate::oauth::error::OAuthError;
use crate::ratelimit::RateLimiter;
use crate::service::admin::{self, SkillInput};
use crate::service::console::{self as svc, SESSION_COOKIE, Session};
use crate::service::registration::{self, Caller, display_user_code};
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::models::clients::ClientRow;
use crate::store::models::skills::{self, SkillRow};
use crate::upstream::{self, github, oidc};

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(dashboard))
        .route("/console/login", web::get().to(login_page))
        .route("/console/login/dev", web::post().to(dev_login))
        .route("/console/login/{provider}", web::get().to(start_login))
        .route("/console/callback/{provider}", web::get().to(finish_login))
        .route("/console/logout", web::post().to(logout))
        .route("/console/agents/{client_id}", web::get().to(agent_page))
        .route("/console/agents/{client_id}", web::post().to(agent_action))
        .route("/console/skills", web::post().to(add_skill))
        .route("/console/enrollment", web::post().to(mint_enrollment))
        .route("/console/kill-switch", web::post().to(kill_switch))
        .route("/console/admin", web::get().to(admin_overview))
        .route("/claim", web::get().to(claim_page))
        .route("/claim", web::post().to(claim_action));
}

/// Per-address limit on user-code lookups (brute force on codes).
pub fn claim_limiter() -> RateLimiter {
    RateLimiter::new(30, 10)
}

// ---- rendering helpers ------------------------------------------------------------------

fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    chrome: Chrome,
    title: String,
    message: String,
    secret: Option<String>,
    link: String,
}

fn message(chrome: Chrome, status: StatusCode, title: &str, msg: &str, link: &str) -> HttpResponse {
    html(
        status,
        &MessagePage {
            chrome,
            title: title.into(),
            message: msg.into(),
            secret: None,
            link: link.into(),
        },
    )
}

fn failure(chrome: Chrome, e: &OAuthError) -> HttpResponse {
    let status = StatusCode::from_u16(e.kind().status()).unwrap_or(StatusCode::BAD_REQUEST);
    let title = match status.as_u16() {
        404 => "Not found",
        500..=599 => "Something went wrong",
        _ => "That did not work",
    };
    message(chrome, status, title, e.description(), "/console")
}

fn chrome_for(state: &AppState, session: Option<&Session>) -> Chrome {
    Chrome {
        development: state.config.mode == Mode::Development,
        owner: session.map(|s| s.owner_id.clone()),
        csrf: session.map(|s| s.csrf_token.clone()).unwrap_or_default(),
        admin: session.is_some_and(|s| s.admin),
    }
}

fn fmt_time(t: i64) -> String {
    // YYYY-MM-DD HH:MM from Unix seconds (UTC), without a date library.
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

// ---- sessions -----------------------------------------------------------------------------

async fn current(req: &HttpRequest, state: &AppState) -> Result<Option<Session>, OAuthError> {
    match req.cookie(SESSION_COOKIE) {
        Some(c) => svc::session(state, c.value()).await,
        None => Ok(None),
    }
}

/// The logged-in owner, or the response that sends the visitor to log in.
async fn require_session(req: &HttpRequest, state: &AppState) -> Result<Session, HttpResponse> {
    match current(req, state).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(login_redirect(req)),
        Err(e) => Err(failure(chrome_for(state, None), &e)),
    }
}

fn login_redirect(req: &HttpRequest) -> HttpResponse {
    let here = match req.uri().path_and_query() {
        Some(pq) => pq.as_str().to_owned(),
        None => "/console".to_owned(),
    };
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &svc::safe_return_to(Some(&here)))
        .finish();
    redirect(&format!("/console/login?{q}"))
}

fn session_cookie(state: &AppState, value: &str) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.issuer.starts_with("https://"))
        .path("/")
        .finish()
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A logged-in POST: session required (else to the login page), CSRF token checked (else 403).
async fn guarded_post(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Session, Vec<(String, String)>), HttpResponse> {
    // Read the body first, whatever happens next, so the connection stays usable.
    let form = form_pairs(req, payload, MAX_FORM_BODY).await;
    let session = match current(req, state).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(redirect("/console/login")),
        Err(e) => return Err(failure(chrome_for(state, None), &e)),
    };
    let form = match form {
        Ok(f) => f,
        Err(e) => return Err(failure(chrome_for(state, Some(&session)), &e)),
    };
    if !session.csrf_ok(form_value(&form, "csrf")) {
        state.audit.record(
            crate::audit::AuditEvent::new("console.post", crate::audit::Outcome::Failure)
                .reason("csrf_invalid")
                .owner(Some(&session.owner_id))
                .source(&caller(req, state).source.to_string())
                .detail(req.path().to_owned()),
        );
        return Err(message(
            chrome_for(state, Some(&session)),
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form is not valid any more (missing or wrong CSRF token). Reload the page and try again.",
            "/console",
        ));
    }
    Ok((session, form))
}

// ---- login --------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    providers: Vec<(String, String)>,
    dev_login: bool,
    return_to: String,
    error: Option<String>,
}

fn dev_login_enabled(state: &AppState) -> bool {
    state.config.mode == Mode::Development
        && state.config.console.development_login
        && state.config.listen.ip().is_loopback()
}

#[derive(serde::Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

async fn login_page(
    req: HttpRequest,
    q: web::Query<ReturnTo>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let session = current(&req, &state).await.ok().flatten();
    let providers = state
        .config
        .console
        .providers
        .iter()
        .map(|p| {
            let label = match p.kind {
                ProviderKind::Github => "GitHub".to_owned(),
                ProviderKind::Google => "Google".to_owned(),
                ProviderKind::Oidc => p.name.clone(),
            };
            (p.name.clone(), label)
        })
        .collect();
    html(
        StatusCode::OK,
        &LoginPage {
            chrome: chrome_for(&state, session.as_ref()),
            providers,
            dev_login: dev_login_enabled(&state),
            return_to: svc::safe_return_to(q.return_to.as_deref()),
            error: None,
        },
    )
}

fn logged_in(state: &AppState, cookie: &str, return_to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .cookie(session_cookie(state, cookie))
        .insert_header((header::LOCATION, svc::safe_return_to(Some(return_to))))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn dev_login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let chrome = chrome_for(&state, None);
    if !dev_login_enabled(&state) {
        return message(
            chrome,
            StatusCode::NOT_FOUND,
            "Not found",
            "The development login is disabled.",
            "/console/login",
        );
    }
    let form = match form_pairs(&req, payload, MAX_FORM_BODY).await {
        Ok(f) => f,
        Err(e) => return failure(chrome, &e),
    };
    let name = form_value(&form, "name")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        return message(
            chrome,
            StatusCode::BAD_REQUEST,
            "Invalid name",
            "Use letters, digits, dots, dashes and underscores.",
            "/console/login",
        );
    }
    let owner = format!("dev:{name}");
    let who = caller(&req, &state);
    let email = format!("{name}@dev.invalid");
    let result = async {
        svc::record_login(
            &state,
            &who,
            &owner,
            &email,
            Some(&name),
            "development login",
        )
        .await?;
        svc::start_session(&state, &owner).await
    }
    .await;
    match result {
        Ok(cookie) => logged_in(
            &state,
            &cookie,
            form_value(&form, "return_to").unwrap_or("/console"),
        ),
        Err(e) => failure(chrome, &e),
    }
}

/// Cookie that binds an upstream login to the browser that started it (login CSRF).
const LOGIN_COOKIE: &str = "patron_login";

fn login_cookie(state: &AppState, value: &str) -> Cookie<'static> {
    Cookie::build(LOGIN_COOKIE, value.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.issuer.starts_with("https://"))
        .path("/console/callback")
        .max_age(actix_web::cookie::time::Duration::seconds(
            svc::LOGIN_STATE_TTL,
        ))
        .finish()
}

fn callback_url(state: &AppState, provider: &str) -> String {
    format!("{}/console/callback/{provider}", state.issuer)
}

async fn start_login(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ReturnTo>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let chrome = chrome_for(&state, None);
    let Some(provider) = state
        .config
        .console
        .providers
        .iter()
        .find(|p| p.name == *path)
    else {
        return message(
            chrome,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such login provider.",
            "/console/login",
        );
    };
    // Each start stores a pending login: bound them per address.
    if state
        .claim_limiter
        .check(caller(&req, &state).source, clock::monotonic())
        .is_err()
    {
        return message(
            chrome,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many logins from this address. Wait a minute and try again.",
            "/console/login",
        );
    }
    let return_to = svc::safe_return_to(q.return_to.as_deref());
    let redirect_uri = callback_url(&state, &provider.name);
    let http = match upstream::http_client() {
        Ok(h) => h,
        Err(_) => return failure(chrome, &OAuthError::server_error()),
    };
    let started = match provider.kind {
        ProviderKind::Github => {
            let login_state = crypto::random_token("");
            let verifier = crypto::random_token("");
            let challenge = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                crypto::sha256(verifier.as_bytes()),
            );
            let url = github::authorize_url(provider, &redirect_uri, &login_state, &challenge);
            Ok((url, login_state, String::new(), verifier))
        }
        ProviderKind::Oidc | ProviderKind::Google => oidc::start(provider, &http, &redirect_uri)
            .await
            .map(|s| (s.url, s.state, s.nonce, s.pkce_verifier)),
    };
    let (url, login_state, nonce, verifier) = match started {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(provider = %provider.name, error = ?e, "upstream login could not start");
            return message(
                chrome,
                StatusCode::BAD_GATEWAY,
                "Login unavailable",
                &e.to_string(),
                "/console/login",
            );
        }
    };
    if let Err(e) = svc::save_login_state(
        &state,
        &provider.name,
        &login_state,
        &nonce,
        &verifier,
        &return_to,
    )
    .await
    {
        return failure(chrome, &e);
    }
    HttpResponse::SeeOther()
        .cookie(login_cookie(&state, &login_state))
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn finish_login(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let chrome = chrome_for(&state, None);
    let who = caller(&req, &state);
    let refuse = |reason: &'static str, msg: &str| {
        state.audit.record(
            crate::audit::AuditEvent::new("owner.login", crate::audit::Outcome::Failure)
                .reason(reason)
                .source(&who.source.to_string())
                .request(&who.request_id)
                .detail(format!("provider {}", path.as_str())),
        );
        message(
            chrome_for(&state, None),
            StatusCode::BAD_REQUEST,
            "Login failed",
            msg,
            "/console/login",
        )
    };
    let Some(provider) = state
        .config
        .console
        .providers
        .iter()
        .find(|p| p.name == *path)
    else {
        return message(
            chrome,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such login provider.",
            "/console/login",
        );
    };
    if q.error.is_some() {
        return refuse(
            "upstream_denied",
            "The identity provider did not log you in.",
        );
    }
    // The callback must arrive in the browser that started the login: its cookie holds the
    // same `state`. Otherwise an attacker's callback link would log the victim in as the
    // attacker.
    let presented = q.state.as_deref().unwrap_or("");
    let bound = req
        .cookie(LOGIN_COOKIE)
        .is_some_and(|c| crypto::constant_time_eq(c.value().as_bytes(), presented.as_bytes()));
    if !bound {
        return refuse(
            "login_not_bound",
            "This login was started in another browser, or its cookie expired. Start again from the login page.",
        );
    }
    let pending = match svc::take_login_state(&state, q.state.as_deref().unwrap_or_default()).await
    {
        Ok(Some(p)) if p.provider == provider.name => p,
        Ok(_) => {
            return refuse(
                "login_state_invalid",
                "This login link has expired or was already used. Start again from the login page.",
            );
        }
        Err(e) => return failure(chrome, &e),
    };
    let Some(code) = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() < 2048)
    else {
        return refuse(
            "upstream_code_missing",
            "The identity provider sent no code.",
        );
    };
    let http = match upstream::http_client() {
        Ok(h) => h,
        Err(_) => return failure(chrome, &OAuthError::server_error()),
    };
    let redirect_uri = callback_url(&state, &provider.name);
    let identity = match provider.kind {
        ProviderKind::Github => {
            github::complete(provider, &http, &redirect_uri, code, &pending.pkce_verifier).await
        }
        _ => {
            oidc::complete(
                provider,
                &http,
                &redirect_uri,
                code,
                &pending.nonce,
                &pending.pkce_verifier,
            )
            .await
        }
    };
    let identity = match identity {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(provider = %provider.name, error = ?e, "upstream login refused");
            return refuse(e.reason(), &e.to_string());
        }
    };
    let method = format!("login with {}", provider.name);
    let result = async {
        svc::record_login(
            &state,
            &who,
            &identity.owner_id,
            &identity.email,
            identity.name.as_deref(),
            &method,
        )
        .await?;
        svc::start_session(&state, &identity.owner_id).await
    }
    .await;
    match result {
        Ok(cookie) => logged_in(&state, &cookie, &pending.return_to),
        Err(e) => failure(chrome, &e),
    }
}

async fn logout(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (session, _) = match guarded_post(&req, payload, &state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(e) = svc::end_session(&state, &session).await {
        return failure(chrome_for(&state, None), &e);
    }
    let mut gone = session_cookie(&state, "");
    gone.make_removal();
    HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/"))
        .finish()
}

// ---- dashboard ----------------------------------------------------------------------------

struct AgentLine {
    client_id: String,
    name: String,
    status: String,
    grants: String,
    created: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    agents: Vec<AgentLine>,
    skills: Vec<SkillRow>,
}

fn agent_name(row: &ClientRow) -> (String, Option<ClientMetadata>) {
    let meta: Option<ClientMetadata> = serde_json::from_str(&row.metadata).ok();
    let name = meta
        .as_ref()
        .and_then(|m| m.client_name.clone())
        .unwrap_or_else(|| "(unnamed agent)".to_owned());
    (name, meta)
}

async fn all_skills(state: &AppState) -> Result<Vec<SkillRow>, OAuthError> {
    state.store.read(skills::all).await.map_err(store_failure)
}

async fn dashboard(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let session = match require_session(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    let (agents, skills) = match (
        svc::my_agents(&state, &session).await,
        all_skills(&state).await,
    ) {
        (Ok(a), Ok(s)) => (a, s),
        (Err(e), _) | (_, Err(e)) => return failure(chrome, &e),
    };
    let agents = agents
        .into_iter()
        .map(|(row, grants)| AgentLine {
            name: agent_name(&row).0,
            status: row.status.clone(),
            grants: if grants.is_empty() {
                "none".into()
            } else {
                grants
                    .iter()
                    .map(|g| format!("{} ({})", g.audience, g.scopes))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            created: fmt_time(row.created_at),
            client_id: row.client_id,
        })
        .collect();
    html(
        StatusCode::OK,
        &DashboardPage {
            chrome,
            agents,
            skills,
        },
    )
}

// ---- claiming -----------------------------------------------------------------------------

struct PendingView {
    client_id: String,
    name: String,
    software: String,
    thumbprints: Vec<String>,
    scope: String,
    created: String,
    source: String,
}

#[derive(Template)]
#[template(path = "console/claim.html")]
struct ClaimPage {
    chrome: Chrome,
    code: String,
    pending: Option<PendingView>,
    skills: Vec<SkillRow>,
    message: Option<String>,
}

fn thumbprints(meta: Option<&ClientMetadata>) -> Vec<String> {
    match meta.and_then(|m| m.jwks.as_ref()) {
        Some(jwks) => PublicKeySet::from_jwks(jwks)
            .map(|set| set.keys().iter().map(|k| k.thumbprint.clone()).collect())
            .unwrap_or_default(),
        None => match meta.and_then(|m| m.jwks_uri.as_ref()) {
            Some(u) => vec![format!("keys at {u}")],
            None => vec!["none (client secret)".into()],
        },
    }
}

fn pending_view(row: &ClientRow) -> PendingView {
    let (name, meta) = agent_name(row);
    let software = meta
        .as_ref()
        .map(|m| match (&m.software_id, &m.software_version) {
            (Some(id), Some(v)) => format!("{id} {v}"),
            (Some(id), None) => id.clone(),
            _ => "not stated".into(),
        })
        .unwrap_or_else(|| "not stated".into());
    PendingView {
        client_id: row.client_id.clone(),
        name,
        software,
        thumbprints: thumbprints(meta.as_ref()),
        scope: meta
            .as_ref()
            .and_then(|m| m.scope.clone())
            .unwrap_or_else(|| "none".into()),
        created: fmt_time(row.created_at),
        source: row.source_addr.clone().unwrap_or_default(),
    }
}

#[derive(serde::Deserialize)]
struct ClaimQuery {
    user_code: Option<String>,
}

async fn lookup_code(state: &AppState, who: &Caller, code: &str) -> Result<ClientRow, String> {
    if state
        .claim_limiter
        .check(who.source, clock::monotonic())
        .is_err()
    {
        state.audit.record(
            crate::audit::AuditEvent::new("agent.claim_lookup", crate::audit::Outcome::Failure)
                .reason("claim_rate_limited")
                .source(&who.source.to_string()),
        );
        return Err("Too many attempts. Wait a minute and try again.".into());
    }
    match svc::pending_by_code(state, code).await {
        Ok(Some(row)) if row.is_expired(clock::now()) => {
            Err("This code has expired. Ask the agent to register again.".into())
        }
        Ok(Some(row)) if row.status == "pending" => Ok(row),
        Ok(_) => {
            state.audit.record(
                crate::audit::AuditEvent::new("agent.claim_lookup", crate::audit::Outcome::Failure)
                    .reason("user_code_unknown")
                    .source(&who.source.to_string()),
            );
            Err(
                "No pending agent has this code. It may be mistyped, expired or already claimed."
                    .into(),
            )
        }
        Err(e) => Err(e.description().to_owned()),
    }
}

async fn claim_page(
    req: HttpRequest,
    q: web::Query<ClaimQuery>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let session = match require_session(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    let code = q
        .user_code
        .clone()
        .unwrap_or_default()
        .chars()
        .take(20)
        .collect::<String>();
    let mut page = ClaimPage {
        chrome,
        code: code.clone(),
        pending: None,
        skills: Vec::new(),
        message: None,
    };
    if !code.is_empty() {
        match lookup_code(&state, &caller(&req, &state), &code).await {
            Ok(row) => {
                page.code = row
                    .user_code
                    .as_deref()
                    .map(display_user_code)
                    .unwrap_or(code);
                page.pending = Some(pending_view(&row));
                page.skills = all_skills(&state).await.unwrap_or_default();
            }
            Err(m) => page.message = Some(m),
        }
    }
    html(
        if page.message.is_some() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        },
        &page,
    )
}

/// Grants chosen in a form: checked `grant` boxes with their `scopes:<audience>` fields.
fn chosen_grants(form: &[(String, String)]) -> Vec<(String, String)> {
    form.iter()
        .filter(|(k, _)| k == "grant")
        .take(100)
        .map(|(_, aud)| {
            let scopes = form_value(form, &format!("scopes:{aud}"))
                .unwrap_or_default()
                .replace(',', " ");
            (aud.clone(), scopes.trim().to_owned())
        })
        .collect()
}

async fn claim_action(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (session, form) = match guarded_post(&req, payload, &state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    let who = caller(&req, &state);
    let code = form_value(&form, "user_code").unwrap_or_default();
    let row = match lookup_code(&state, &who, code).await {
        Ok(r) => r,
        Err(m) => return message(chrome, StatusCode::NOT_FOUND, "Cannot claim", &m, "/claim"),
    };
    match form_value(&form, "action") {
        Some("approve") => {
            let grants = chosen_grants(&form);
            match admin::approve_agent(
                &state,
                &who,
                &row.client_id,
                &session.owner_id,
                grants.clone(),
            )
            .await
            {
                Ok(_) => {
                    notify(
                        &state,
                        &session.owner_id,
                        crate::mail::Notification::AgentLinked {
                            client_id: row.client_id.clone(),
                            client_name: agent_name(&row).1.and_then(|m| m.client_name),
                            grants,
                        },
                    );
                    redirect(&format!("/console/agents/{}", row.client_id))
                }
                Err(e) => failure(chrome, &e),
            }
        }
        Some("reject") => match svc::reject_pending(&state, &who, &session, &row.client_id).await {
            Ok(()) => message(
                chrome,
                StatusCode::OK,
                "Rejected",
                "The registration was deleted.",
                "/console",
            ),
            Err(e) => failure(chrome, &e),
        },
        _ => message(
            chrome,
            StatusCode::BAD_REQUEST,
            "Nothing done",
            "Choose approve or reject.",
            "/claim",
        ),
    }
}

/// Sends a notification to an owner, if they have an e-mail address (never blocks).
fn notify(state: &web::Data<AppState>, owner_id: &str, n: crate::mail::Notification) {
    let st = state.clone().into_inner();
    let owner = owner_id.to_owned();
    actix_web::rt::spawn(async move {
        if let Some(email) = svc::owner_email(&st, &owner).await {
            st.mailer.notify(&email, n);
        }
    });
}

// ---- one agent ----------------------------------------------------------------------------

struct AgentDetail {
    client_id: String,
    name: String,
    status: String,
    owner: String,
    software: String,
    auth_method: String,
    dpop: bool,
    thumbprints: Vec<String>,
    created: String,
}

struct SkillChoice {
    audience: String,
    name: String,
    scopes: String,
    granted: bool,
}

struct EventLine {
    at: String,
    event: String,
    outcome: String,
    reason: String,
    audience: String,
    source: String,
}

struct Bar {
    label: String,
    issued: usize,
    refused: usize,
    issued_h: usize,
    refused_h: usize,
}

#[derive(Template)]
#[template(path = "console/agent.html")]
struct AgentPage {
    chrome: Chrome,
    a: AgentDetail,
    skills: Vec<SkillChoice>,
    events: Vec<EventLine>,
    chart: Vec<Bar>,
}

/// Hourly bars for the last 24 hours, heights in tenths of the busiest hour.
fn chart(outcomes: &[(i64, String)], now: i64) -> Vec<Bar> {
    let mut issued = [0usize; 24];
    let mut refused = [0usize; 24];
    for (at, outcome) in outcomes {
        let age = now - at;
        if !(0..86_400).contains(&age) {
            continue;
        }
        let slot = 23 - (age / 3600) as usize;
        if outcome == "success" {
            issued[slot] += 1;
        } else {
            refused[slot] += 1;
        }
    }
    let max = issued
        .iter()
        .zip(&refused)
        .map(|(a, b)| a + b)
        .max()
        .unwrap_or(0)
        .max(1);
    (0..24)
        .map(|i| Bar {
            label: format!("{} h ago", 23 - i),
            issued: issued[i],
            refused: refused[i],
            issued_h: (issued[i] * 10).div_ceil(max),
            refused_h: (refused[i] * 10).div_ceil(max),
        })
        .collect()
}

async fn agent_page(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let session = match require_session(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    let view = match svc::agent(&state, &session, &path).await {
        Ok(v) => v,
        Err(e) => return failure(chrome, &e),
    };
    let skills = all_skills(&state).await.unwrap_or_default();
    let now = clock::now();
    let cid = view.row.client_id.clone();
    let outcomes = state
        .store
        .read(move |c| {
            crate::store::models::audit_events::token_outcomes_since(c, &cid, now - 86_400)
        })
        .await
        .unwrap_or_default();
    let (name, meta) = agent_name(&view.row);
    let software = pending_view(&view.row).software;
    let a = AgentDetail {
        client_id: view.row.client_id.clone(),
        name,
        status: view.row.status.clone(),
        owner: view
            .row
            .owner_id
            .clone()
            .unwrap_or_else(|| "unclaimed".into()),
        software,
        auth_method: meta
            .as_ref()
            .map(|m| m.token_endpoint_auth_method.as_str().to_owned())
            .unwrap_or_default(),
        dpop: meta.as_ref().is_some_and(|m| m.dpop_bound_access_tokens),
        thumbprints: thumbprints(meta.as_ref()),
        created: fmt_time(view.row.created_at),
    };
    let skills = skills
        .into_iter()
        .map(|s| {
            let granted = view.grants.iter().find(|g| g.audience == s.audience);
            SkillChoice {
                scopes: granted
                    .map(|g| g.scopes.clone())
                    .unwrap_or_else(|| s.scopes.clone()),
                granted: granted.is_some(),
                audience: s.audience,
                name: s.name,
            }
        })
        .collect();
    let events = view
        .events
        .into_iter()
        .map(|e| EventLine {
            at: fmt_time(e.at),
            event: e.event,
            outcome: e.outcome,
            reason: e.reason.unwrap_or_default(),
            audience: e.audience.unwrap_or_default(),
            source: e.source_addr.unwrap_or_default(),
        })
        .collect();
    html(
        StatusCode::OK,
        &AgentPage {
            chrome,
            a,
            skills,
            events,
            chart: chart(&outcomes, now),
        },
    )
}

async fn agent_action(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (session, form) = match guarded_post(&req, payload, &state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    let who = caller(&req, &state);
    // Ownership first: a foreign agent is "not found", and nothing changes.
    let view = match svc::agent(&state, &session, &path).await {
        Ok(v) => v,
        Err(e) => return failure(chrome, &e),
    };
    let name = agent_name(&view.row).1.and_then(|m| m.client_name);
    let owner = view
        .row
        .owner_id
        .clone()
        .unwrap_or_else(|| session.owner_id.clone());
    let back = format!("/console/agents/{}", path.as_str());
    use crate::mail::Notification as N;
    let result = match form_value(&form, "action") {
        Some("suspend") => admin::set_suspended(&state, &who, &path, true)
            .await
            .map(|_| {
                notify(
                    &state,
                    &owner,
                    N::AgentSuspended {
                        client_id: path.to_string(),
                        client_name: name.clone(),
                    },
                );
            }),
        Some("resume") => admin::set_suspended(&state, &who, &path, false)
            .await
            .map(|_| {
                notify(
                    &state,
                    &owner,
                    N::AgentResumed {
                        client_id: path.to_string(),
                        client_name: name.clone(),
                    },
                );
            }),
        Some("delete") => match svc::delete_agent(&state, &who, &session, &path).await {
            Ok(()) => {
                notify(
                    &state,
                    &owner,
                    N::AgentDeleted {
                        client_id: path.to_string(),
                        client_name: name.clone(),
                        by: "you",
                    },
                );
                return redirect("/console");
            }
            Err(e) => Err(e),
        },
        Some("grants") => {
            svc::set_grants(&state, &who, &session, &path, chosen_grants(&form)).await
        }
        _ => {
            return message(
                chrome,
                StatusCode::BAD_REQUEST,
                "Nothing done",
                "Unknown action.",
                &back,
            );
        }
    };
    match result {
        Ok(()) => redirect(&back),
        Err(e) => failure(chrome, &e),
    }
}

// ---- skills, enrollment, kill switch -----------------------------------------------------------

async fn add_skill(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (session, form) = match guarded_post(&req, payload, &state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    let input = SkillInput {
        audience: form_value(&form, "audience")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        name: form_value(&form, "name").unwrap_or_default().to_owned(),
        scopes: form_value(&form, "scopes")
            .unwrap_or_default()
            .replace(',', " "),
        ttl_secs: form_value(&form, "ttl_secs").and_then(|t| t.parse().ok()),
        require_dpop: form_value(&form, "require_dpop") == Some("on"),
        client_id: None,
    };
    let owner = (!session.admin).then_some(session.owner_id.as_str());
    match admin::put_skill_as(&state, &caller(&req, &state), input, owner).await {
        Ok(_) => redirect("/console"),
        Err(e) => failure(chrome, &e),
    }
}

async fn mint_enrollment(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (session, form) = match guarded_post(&req, payload, &state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    let uses: i32 = form_value(&form, "uses")
        .and_then(|u| u.parse().ok())
        .unwrap_or(1)
        .clamp(1, 100);
    let hours: i64 = form_value(&form, "hours")
        .and_then(|h| h.parse().ok())
        .unwrap_or(24)
        .clamp(1, 720);
    let grants = match admin::check_grants(&state, chosen_grants(&form)).await {
        Ok(g) => g,
        Err(e) => return failure(chrome, &e),
    };
    let owner = session.owner_id.clone();
    let now = clock::now();
    let minted = state
        .store
        .write(move |c| {
            registration::mint_enrollment_token(c, &owner, &grants, uses, hours * 3600, now)
        })
        .await;
    match minted {
        Ok((token, id)) => {
            state.audit.record(
                crate::audit::AuditEvent::new("enrollment.mint", crate::audit::Outcome::Success)
                    .owner(Some(&session.owner_id))
                    .detail(format!("{id}: {uses} use(s), {hours} h")),
            );
            html(
                StatusCode::OK,
                &MessagePage {
                    chrome,
                    title: "Enrollment token".into(),
                    message: format!(
                        "Give this token to your agent; it registers with `Authorization: Bearer <token>` and is linked to you at once. It allows {uses} registration(s) within {hours} hour(s)."
                    ),
                    secret: Some(token),
                    link: "/console".into(),
                },
            )
        }
        Err(e) => failure(chrome, &store_failure(e)),
    }
}

async fn kill_switch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (session, form) = match guarded_post(&req, payload, &state).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    if form_value(&form, "confirm") != Some("yes") {
        return message(
            chrome,
            StatusCode::BAD_REQUEST,
            "Not confirmed",
            "Tick the confirmation box to revoke all tokens.",
            "/console",
        );
    }
    match admin::revoke_all(&state, &caller(&req, &state), &session.owner_id).await {
        Ok(_) => {
            notify(
                &state,
                &session.owner_id,
                crate::mail::Notification::AllTokensRevoked,
            );
            message(
                chrome,
                StatusCode::OK,
                "All tokens revoked",
                "Every token of every agent you own has stopped working.",
                "/console",
            )
        }
        Err(e) => failure(chrome, &e),
    }
}

// ---- admin overview -----------------------------------------------------------------------

struct AdminLine {
    client_id: String,
    name: String,
    owner: String,
    status: String,
    created: String,
}

#[derive(Template)]
#[template(path = "console/admin.html")]
struct AdminPage {
    chrome: Chrome,
    agents: Vec<AdminLine>,
}

/// Every owner's agents, for owners named in `console.admins` (others get "not found").
async fn admin_overview(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let session = match require_session(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let chrome = chrome_for(&state, Some(&session));
    if !session.admin {
        return message(
            chrome,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such page.",
            "/console",
        );
    }
    let rows = match state
        .store
        .read(|c| crate::store::models::clients::newest(c, 500))
        .await
    {
        Ok(r) => r,
        Err(e) => return failure(chrome, &store_failure(e)),
    };
    let agents = rows
        .into_iter()
        .map(|row| AdminLine {
            name: agent_name(&row).0,
            status: row.status.clone(),
            owner: row.owner_id.clone().unwrap_or_else(|| "unclaimed".into()),
            created: fmt_time(row.created_at),
            client_id: row.client_id,
        })
        .collect();
    html(StatusCode::OK, &AdminPage { chrome, agents })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_utc_dates() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00");
        assert_eq!(fmt_time(1_795_843_428), "2026-11-28 05:23");
        assert_eq!(fmt_time(951_782_400), "2000-02-29 00:00");
    }

    #[test]
    fn the_chart_scales_to_the_busiest_hour() {
        let now = 100_000;
        let outcomes = vec![
            (now - 10, "success".to_owned()),
            (now - 20, "success".to_owned()),
            (now - 30, "failure".to_owned()),
        ];
        let bars = chart(&outcomes, now);
        assert_eq!(bars.len(), 24);
        assert_eq!((bars[23].issued, bars[23].refused), (2, 1));
        assert_eq!(bars[23].issued_h, 7);
        assert_eq!(bars[0].issued, 0);
    }

    #[test]
    fn chosen_grants_pair_boxes_with_their_scopes() {
        let form = vec![
            ("grant".to_owned(), "https://a".to_owned()),
            ("scopes:https://a".to_owned(), "read,write".to_owned()),
            ("scopes:https://b".to_owned(), "x".to_owned()),
        ];
        assert_eq!(
            chosen_grants(&form),
            vec![("https://a".to_owned(), "read write".to_owned())]
        );
    }
}
