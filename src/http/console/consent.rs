//! The authorization endpoint's pages (RFC 6749 §3.1): `GET /authorize` logs the person in,
//! asks for consent or sends the browser straight back with a code; the consent form posts
//! to the same URL. And the console's list of apps a person authorized, with revoke.
//!
//! The work is in `service::authorization`; here the request becomes parameters and the
//! answer a redirect or a page.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::http::console::guard::{OwnerForm, Visitor, login_redirect};
use crate::http::console::page::{
    ConsoleError, agent_name, fmt_time, html, redirect, software, thumbprints,
};
use crate::http::home::Chrome;
use crate::oauth::error::OAuthError;
use crate::oauth::oxide::Decision;
use crate::service::authorization::{self, Answer, SkillAsked};
use crate::state::AppState;

/// Longest accepted query string of an authorization request.
const MAX_QUERY: usize = 8 * 1024;

#[derive(Template)]
#[template(path = "console/consent.html")]
struct ConsentTemplate {
    chrome: Chrome,
    action: String,
    name: String,
    client_id: String,
    software: String,
    thumbprints: Vec<String>,
    created: String,
    source: String,
    claims_agent: bool,
    vouched_by: Option<String>,
    consented_before: bool,
    redirect_host: String,
    offered: Vec<SkillAsked>,
    refused: Vec<String>,
}

fn pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, OAuthError> {
    let q = req.query_string();
    if q.len() > MAX_QUERY {
        return Err(OAuthError::new(
            crate::oauth::error::ErrorKind::InvalidRequest,
            "the authorization request is too long",
            "request_too_long",
        ));
    }
    Ok(url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect())
}

fn answer(
    req: &HttpRequest,
    chrome: &Chrome,
    answer: Answer,
) -> Result<HttpResponse, ConsoleError> {
    match answer {
        Answer::Redirect(to) => Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, to))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()),
        Answer::Login => Err(login_redirect(req)),
        Answer::ErrorPage(e) => Err(ConsoleError::page(
            chrome,
            StatusCode::from_u16(e.kind().status()).unwrap_or(StatusCode::BAD_REQUEST),
            "This sign-in request cannot be completed",
            &format!("{} ({})", e.description(), e.kind().code()),
            "/console",
        )),
        Answer::Consent(page) => {
            let (name, meta) = agent_name(&page.client);
            let t = ConsentTemplate {
                chrome: chrome.clone(),
                action: format!("{}?{}", crate::endpoints::AUTHORIZE, req.query_string()),
                name,
                client_id: page.client.client_id.clone(),
                software: software(meta.as_ref()),
                thumbprints: thumbprints(meta.as_ref()),
                created: fmt_time(page.client.created_at),
                source: page.client.source_addr.clone().unwrap_or_default(),
                claims_agent: page.claims_agent,
                vouched_by: page.vouched_by.clone(),
                consented_before: page.request.consented_before,
                redirect_host: page.redirect_host,
                offered: page.offered,
                refused: page.refused,
            };
            let mut resp = html(StatusCode::OK, &t);
            // The form's answer redirects to the client: let the browser follow it there.
            let csp = crate::http::content_security_policy(
                form_target(&page.request.redirect_uri).as_deref(),
            );
            if let Ok(v) = header::HeaderValue::from_str(&csp) {
                resp.headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, v);
            }
            Ok(resp)
        }
    }
}

/// The CSP source of a redirect URI: its origin (`http://127.0.0.1:53123`), or its scheme
/// for a private-use scheme of a native app (`com.example.app:`).
fn form_target(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    let source = match url.origin() {
        url::Origin::Tuple(..) => url.origin().ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    };
    // A source expression holds no separators or quotes.
    (!source.contains([';', ',', '\'', ' '])).then_some(source)
}

/// `GET /authorize`.
pub(super) async fn authorize_page(
    req: HttpRequest,
    visitor: Visitor,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let chrome = visitor.chrome.clone();
    let pairs = pairs(&req).map_err(|e| ConsoleError::from_oauth(&chrome, &e, "/console"))?;
    let a = authorization::authorize(
        &state,
        &visitor.caller,
        pairs,
        visitor.session.as_ref(),
        Decision::Ask,
    )
    .await;
    answer(&req, &chrome, a)
}

/// `POST /authorize`: the consent form (CSRF-checked by [`OwnerForm`]).
pub(super) async fn consent_action(
    req: HttpRequest,
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    let pairs = pairs(&req).map_err(owner.fail())?;
    let decision = match form.get("action") {
        Some("approve") => Decision::Approve(form.all("grant").into_iter().take(50).collect()),
        _ => Decision::Deny,
    };
    let a = authorization::authorize(&state, &owner.caller, pairs, Some(&owner.session), decision)
        .await;
    answer(&req, &owner.chrome, a)
}

/// `POST /console/consents/revoke`.
pub(super) async fn revoke_consent(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    let client_id = form.get("client_id").unwrap_or_default();
    authorization::revoke_consent(
        &state,
        &owner.caller,
        owner.session.owner_id.as_str(),
        client_id,
    )
    .await
    .map_err(owner.fail())?;
    Ok(redirect("/console"))
}
