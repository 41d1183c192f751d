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

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    issuer: &'a str,
    development: bool,
}

async fn home(state: web::Data<AppState>) -> HttpResponse {
    let page = HomePage {
        issuer: &state.issuer,
        development: state.config.mode == Mode::Development,
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
