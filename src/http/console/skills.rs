//! Owners (and admins) adding skills from the dashboard, and checking an owner's skill's
//! audience proof again.

use actix_web::{HttpResponse, web};

use crate::http::console::guard::OwnerForm;
use crate::http::console::page::{ConsoleError, redirect};
use crate::service::skills::{self, SkillInput};
use crate::state::AppState;

pub(super) async fn add_skill(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    let input = SkillInput {
        audience: form.get("audience").unwrap_or_default().trim().to_owned(),
        name: form.get("name").unwrap_or_default().to_owned(),
        scopes: form.get("scopes").unwrap_or_default().replace(',', " "),
        ttl_secs: form.get("ttl_secs").and_then(|t| t.parse().ok()),
        require_dpop: form.get("require_dpop") == Some("on"),
        client_id: None,
    };
    skills::put(&state, &owner.caller, input, operator(&post))
        .await
        .map_err(owner.fail())?;
    Ok(redirect("/console"))
}

/// An admin acts as the operator; an owner as themself.
fn operator(post: &OwnerForm) -> Option<&str> {
    let session = &post.owner.session;
    (!session.admin).then_some(session.owner_id.as_str())
}

/// "Check again": the outcome, proven or not, shows on the dashboard.
pub(super) async fn check_skill(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let audience = post.form.get("audience").unwrap_or_default();
    skills::check(&state, &post.owner.caller, audience, operator(&post))
        .await
        .map_err(post.owner.fail())?;
    Ok(redirect("/console"))
}
