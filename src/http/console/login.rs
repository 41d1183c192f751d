//! Logging in and out: the login page, the development login, and the upstream login's
//! start and callback.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::http::console::guard::{
    LOGIN_COOKIE, OwnerForm, PublicForm, Visitor, login_cookie, session_cookie,
};
use crate::http::console::page::{ConsoleError, html};
use crate::http::home::Chrome;
use crate::service::owner_login::{self, Callback};
use crate::service::sessions;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    providers: Vec<(String, String)>,
    dev_login: bool,
    return_to: String,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
pub(super) struct ReturnTo {
    return_to: Option<String>,
}

pub(super) async fn login_page(
    visitor: Visitor,
    q: web::Query<ReturnTo>,
    state: web::Data<AppState>,
) -> HttpResponse {
    html(
        StatusCode::OK,
        &LoginPage {
            chrome: visitor.chrome,
            providers: owner_login::providers(&state),
            dev_login: owner_login::dev_login_enabled(&state),
            return_to: sessions::safe_return_to(q.return_to.as_deref()),
            error: None,
        },
    )
}

fn logged_in(state: &AppState, cookie: &str, return_to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .cookie(session_cookie(state, cookie))
        .insert_header((header::LOCATION, sessions::safe_return_to(Some(return_to))))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn login_error(
    state: &AppState,
    title: &str,
) -> impl Fn(crate::oauth::error::OAuthError) -> ConsoleError {
    let chrome = Chrome::anonymous(state);
    let title = title.to_owned();
    move |e| match e.kind().status() {
        400 => ConsoleError::titled(&chrome, &e, &title, "/console/login"),
        _ => ConsoleError::from_oauth(&chrome, &e, "/console/login"),
    }
}

pub(super) async fn dev_login(
    post: PublicForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let name = post.form.get("name").unwrap_or_default();
    let cookie = owner_login::dev_login(&state, &post.caller, name)
        .await
        .map_err(login_error(&state, "Invalid name"))?;
    Ok(logged_in(
        &state,
        &cookie,
        post.form.get("return_to").unwrap_or("/console"),
    ))
}

pub(super) async fn start_login(
    visitor: Visitor,
    path: web::Path<String>,
    q: web::Query<ReturnTo>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let started = owner_login::start(&state, &visitor.caller, &path, q.return_to.as_deref())
        .await
        .map_err(login_error(&state, "Login failed"))?;
    Ok(HttpResponse::SeeOther()
        .cookie(login_cookie(&state, &started.login_state))
        .insert_header((header::LOCATION, started.url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

#[derive(serde::Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub(super) async fn finish_login(
    req: HttpRequest,
    visitor: Visitor,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let bound = req.cookie(LOGIN_COOKIE);
    let callback = Callback {
        code: q.code.as_deref(),
        state: q.state.as_deref(),
        bound_state: bound.as_ref().map(|c| c.value()),
        error: q.error.is_some(),
    };
    let done = owner_login::finish(&state, &visitor.caller, &path, callback)
        .await
        .map_err(login_error(&state, "Login failed"))?;
    Ok(logged_in(&state, &done.cookie, &done.return_to))
}

pub(super) async fn logout(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    sessions::end(&state, &post.owner.session)
        .await
        .map_err(|e| ConsoleError::from_oauth(&Chrome::anonymous(&state), &e, "/console"))?;
    let mut gone = session_cookie(&state, "");
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/"))
        .finish())
}
