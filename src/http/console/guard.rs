//! What a console handler is given instead of checking for itself: the visitor (maybe
//! logged in), a logged-in owner (else a redirect to the login page), and a logged-in
//! owner's form whose CSRF token was checked (else 403). Cookies are set here too.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;

use crate::http::console::page::{ConsoleError, fail};
use crate::http::extract::{MAX_FORM_BODY, caller, form_pairs};
use crate::http::home::Chrome;
use crate::oauth::error::OAuthError;
use crate::service::sessions::{self, SESSION_COOKIE, Session};
use crate::service::{Caller, owner_login};
use crate::state::AppState;

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ConsoleError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("console route without application state");
            ConsoleError::page(
                &Chrome::default(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server is misconfigured.",
                "/",
            )
        })
}

/// The frame of a page for `session` (or an anonymous visitor).
pub fn chrome_for(state: &AppState, session: Option<&Session>) -> Chrome {
    Chrome {
        owner: session.map(|s| s.owner_label.clone()),
        csrf: session.map(|s| s.csrf_token.clone()).unwrap_or_default(),
        admin: session.is_some_and(|s| s.admin),
        ..Chrome::anonymous(state)
    }
}

async fn current(req: &HttpRequest, state: &AppState) -> Result<Option<Session>, OAuthError> {
    match req.cookie(SESSION_COOKIE) {
        Some(c) => sessions::find(state, c.value()).await,
        None => Ok(None),
    }
}

/// Anyone: the session if there is one.
pub struct Visitor {
    /// The page frame.
    pub chrome: Chrome,
    /// The caller.
    pub caller: Caller,
    /// The session, when someone is logged in.
    pub session: Option<Session>,
}

impl FromRequest for Visitor {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            // A broken session lookup still shows public pages, as an anonymous visitor.
            let session = current(&req, &state).await.ok().flatten();
            Ok(Self {
                chrome: chrome_for(&state, session.as_ref()),
                caller: caller(&req, &state),
                session,
            })
        })
    }
}

/// A logged-in owner; anyone else is sent to the login page and back here afterwards.
pub struct Owner {
    /// The session.
    pub session: Session,
    /// The page frame.
    pub chrome: Chrome,
    /// The caller.
    pub caller: Caller,
}

impl Owner {
    /// Maps service errors to pages in this owner's frame.
    pub fn fail(&self) -> impl Fn(OAuthError) -> ConsoleError + '_ {
        fail(&self.chrome)
    }
}

/// A redirect to the login page that comes back to this request afterwards.
pub fn login_redirect(req: &HttpRequest) -> ConsoleError {
    let here = req
        .uri()
        .path_and_query()
        .map_or("/console", |pq| pq.as_str());
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &sessions::safe_return_to(Some(here)))
        .finish();
    ConsoleError::redirect(format!("/console/login?{q}"))
}

impl FromRequest for Owner {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = app_state(&req)?;
            match current(&req, &state).await {
                Ok(Some(session)) => Ok(Self {
                    chrome: chrome_for(&state, Some(&session)),
                    caller: caller(&req, &state),
                    session,
                }),
                Ok(None) => Err(login_redirect(&req)),
                Err(e) => Err(fail(&Chrome::anonymous(&state))(e)),
            }
        })
    }
}

/// A form body (`application/x-www-form-urlencoded`, bounded).
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of field `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Grants chosen in a form: checked `grant` boxes (at most 100) with their
    /// `scopes:<audience>` fields (commas or spaces between scopes).
    pub fn grants(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(k, _)| k == "grant")
            .take(100)
            .map(|(_, aud)| {
                let scopes = self
                    .get(&format!("scopes:{aud}"))
                    .unwrap_or_default()
                    .replace(',', " ");
                (aud.clone(), scopes.trim().to_owned())
            })
            .collect()
    }
}

async fn read_form(
    req: &HttpRequest,
    payload: impl std::future::Future<Output = Result<web::Payload, actix_web::Error>>,
) -> Result<Form, OAuthError> {
    let payload = payload.await.map_err(|_| OAuthError::server_error())?;
    form_pairs(req, payload, MAX_FORM_BODY).await.map(Form)
}

/// A form anyone may post (the development login).
pub struct PublicForm {
    /// The form.
    pub form: Form,
    /// The caller.
    pub caller: Caller,
}

impl FromRequest for PublicForm {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            let state = app_state(&req)?;
            let form = read_form(&req, payload).await.map_err(|e| {
                ConsoleError::from_oauth(&Chrome::anonymous(&state), &e, "/console/login")
            })?;
            Ok(Self {
                form,
                caller: caller(&req, &state),
            })
        })
    }
}

/// A logged-in owner's form with a valid CSRF token. Without a session: to the login
/// page; with a wrong token: 403, audited.
pub struct OwnerForm {
    /// The owner.
    pub owner: Owner,
    /// The form.
    pub form: Form,
}

impl FromRequest for OwnerForm {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            let state = app_state(&req)?;
            // Read the body first, whatever happens next, so the connection stays usable.
            let form = read_form(&req, payload).await;
            let session = match current(&req, &state).await {
                Ok(Some(s)) => s,
                Ok(None) => return Err(ConsoleError::redirect("/console/login".to_owned())),
                Err(e) => return Err(fail(&Chrome::anonymous(&state))(e)),
            };
            let owner = Owner {
                chrome: chrome_for(&state, Some(&session)),
                caller: caller(&req, &state),
                session,
            };
            let form = form.map_err(owner.fail())?;
            if !owner.session.csrf_ok(form.get("csrf")) {
                sessions::csrf_refused(&state, &owner.caller, &owner.session, req.path());
                return Err(ConsoleError::page(
                    &owner.chrome,
                    StatusCode::FORBIDDEN,
                    "Form expired",
                    "This form is not valid any more (missing or wrong CSRF token). Reload the page and try again.",
                    "/console",
                ));
            }
            Ok(Self { owner, form })
        })
    }
}

/// The session cookie.
pub fn session_cookie(state: &AppState, value: &str) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.issuer.starts_with("https://"))
        .path("/")
        .finish()
}

/// Cookie that binds an upstream login to the browser that started it (login CSRF).
pub const LOGIN_COOKIE: &str = "patron_login";

/// The login-binding cookie, sent only to the callback and only for the login's lifetime.
pub fn login_cookie(state: &AppState, value: &str) -> Cookie<'static> {
    Cookie::build(LOGIN_COOKIE, value.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.issuer.starts_with("https://"))
        .path("/console/callback")
        .max_age(actix_web::cookie::time::Duration::seconds(
            owner_login::LOGIN_STATE_TTL,
        ))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_grants_pair_boxes_with_their_scopes() {
        let form = Form(vec![
            ("grant".to_owned(), "https://a".to_owned()),
            ("scopes:https://a".to_owned(), "read,write".to_owned()),
            ("scopes:https://b".to_owned(), "x".to_owned()),
        ]);
        assert_eq!(
            form.grants(),
            vec![("https://a".to_owned(), "read write".to_owned())]
        );
    }
}
