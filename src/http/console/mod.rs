//! The owner console: server-rendered pages, usable without JavaScript. Handlers are thin:
//! the session, the CSRF-checked form and the caller arrive as extractors ([`guard`]),
//! the work is done by `service::{agents, skills, owners, enrollment, owner_login}`, and
//! failures are [`page::ConsoleError`]s rendered as pages.
//!
//! - [`login`]: login page, development login, upstream login, logout;
//! - [`claim`]: claiming a pending agent by user code;
//! - [`consent`]: the authorization endpoint's login and consent, and revoking consents;
//! - [`agents`]: the dashboard and one agent's page and actions;
//! - [`skills`]: adding skills, checking their audience proofs;
//! - [`settings`]: enrollment tokens and the kill switch;
//! - [`admin`]: the admin overview.

mod admin;
mod agents;
mod claim;
mod consent;
pub mod guard;
mod login;
pub mod page;
mod settings;
mod skills;

use actix_web::web;

use crate::endpoints;

/// Routes of this area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(agents::dashboard))
        .route("/console/login", web::get().to(login::login_page))
        .route("/console/login/dev", web::post().to(login::dev_login))
        .route(
            "/console/login/{provider}",
            web::get().to(login::start_login),
        )
        .route(
            "/console/callback/{provider}",
            web::get().to(login::finish_login),
        )
        .route("/console/logout", web::post().to(login::logout))
        .route(
            "/console/agents/{client_id}",
            web::get().to(agents::agent_page),
        )
        .route(
            "/console/agents/{client_id}",
            web::post().to(agents::agent_action),
        )
        .route("/console/skills", web::post().to(skills::add_skill))
        .route("/console/skill", web::get().to(skills::skill_page))
        .route("/console/skill/policy", web::post().to(skills::set_policy))
        .route(
            "/console/skill/revoke",
            web::post().to(skills::revoke_grant),
        )
        .route("/console/skills/check", web::post().to(skills::check_skill))
        .route(
            "/console/enrollment",
            web::post().to(settings::mint_enrollment),
        )
        .route(
            "/console/kill-switch",
            web::post().to(settings::kill_switch),
        )
        .route("/console/admin", web::get().to(admin::admin_overview))
        .route(endpoints::AUTHORIZE, web::get().to(consent::authorize_page))
        .route(
            endpoints::AUTHORIZE,
            web::post().to(consent::consent_action),
        )
        .route(
            "/console/consents/revoke",
            web::post().to(consent::revoke_consent),
        )
        .route(endpoints::CLAIM, web::get().to(claim::claim_page))
        .route(endpoints::CLAIM, web::post().to(claim::claim_action));
}
