//! Owners (and admins) adding skills from the dashboard.

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
        // One field, audiences separated by spaces, commas or new lines.
        delegate_audiences: form
            .get("delegate_audiences")
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    // An admin's skill belongs to the operator; an owner's to the owner.
    let creator = (!owner.session.admin).then_some(owner.session.owner_id.as_str());
    skills::put(&state, &owner.caller, input, creator)
        .await
        .map_err(owner.fail())?;
    Ok(redirect("/console"))
}
