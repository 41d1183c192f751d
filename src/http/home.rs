//! The landing page and its stylesheet.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::config::Mode;
use crate::state::AppState;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/static/css/patron.css", web::get().to(stylesheet));
}

/// What every page's frame shows: the development banner and who is logged in.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// Development mode banner.
    pub development: bool,
    /// The logged-in owner as the header names them: name, else e-mail address, else id.
    pub owner: Option<String>,
    /// CSRF token for the logout form.
    pub csrf: String,
    /// Whether the owner is an admin (shows the admin link).
    pub admin: bool,
}

impl Chrome {
    /// The frame for an anonymous visitor.
    pub fn anonymous(state: &AppState) -> Self {
        Self {
            development: state.config.mode == Mode::Development,
            owner: None,
            csrf: String::new(),
            admin: false,
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    chrome: Chrome,
    issuer: &'a str,
}

async fn home(state: web::Data<AppState>) -> HttpResponse {
    let page = HomePage {
        chrome: Chrome::anonymous(&state),
        issuer: &state.issuer,
    };
    match page.render() {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "home page template failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .content_type("text/css")
        .body(include_str!("../../static/css/patron.css"))
}
