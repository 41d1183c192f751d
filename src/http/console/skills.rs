//! Skills in the console: adding one (with the explicit choice of who may be granted it),
//! checking an owner's skill's audience proof again, and the operator's page of a skill:
//! its policy, who holds grants, revoking them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::http::console::guard::{Owner, OwnerForm};
use crate::http::console::page::{ConsoleError, html, redirect};
use crate::http::home::Chrome;
use crate::service::skill_policy::{self, Grantable};
use crate::service::skills::{self, SkillInput};
use crate::state::AppState;

/// A skill as the console lists it: with the scopes this owner may grant of it.
pub(super) struct SkillLine {
    pub(super) audience: String,
    pub(super) name: String,
    pub(super) scopes: String,
    pub(super) ttl_secs: i64,
    pub(super) require_dpop: bool,
    pub(super) delegate_audiences: String,
}

impl From<Grantable> for SkillLine {
    fn from(g: Grantable) -> Self {
        Self {
            audience: g.skill.audience,
            name: g.skill.name,
            scopes: g.scopes,
            ttl_secs: g.skill.ttl_secs,
            require_dpop: g.skill.require_dpop,
            delegate_audiences: g.skill.delegate_audiences,
        }
    }
}

/// The policy entries a form chose: `policy` = `operator` (the default), `any`, or
/// `custom` with one entry per line in `grantable_by`.
fn chosen_policy(form: &crate::http::console::guard::Form) -> Vec<String> {
    match form.get("policy") {
        Some("any") => vec!["any".to_owned()],
        Some("custom") => form
            .get("grantable_by")
            .unwrap_or_default()
            .lines()
            .take(100)
            .map(str::to_owned)
            .collect(),
        _ => vec!["operator".to_owned()],
    }
}

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
        grantable_by: Some(chosen_policy(form)),
        // One field, audiences separated by spaces, commas or new lines.
        delegate_audiences: form
            .get("delegate_audiences")
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
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

struct HolderLine {
    client_id: String,
    owner: String,
    status: String,
    scopes: String,
}

#[derive(Template)]
#[template(path = "console/skill.html")]
struct SkillPage {
    chrome: Chrome,
    audience: String,
    name: String,
    scopes: String,
    policy: Vec<String>,
    needs_review: bool,
    holders: Vec<HolderLine>,
}

#[derive(serde::Deserialize)]
pub(super) struct SkillQuery {
    audience: Option<String>,
}

/// Where a skill's page is.
pub(super) fn skill_path(audience: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("audience", audience)
        .finish();
    format!("/console/skill?{q}")
}

pub(super) async fn skill_page(
    owner: Owner,
    q: web::Query<SkillQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let audience = q.audience.as_deref().unwrap_or_default();
    let (skill, holders) = skill_policy::holders(&state, owner.session.actor(), audience)
        .await
        .map_err(owner.fail())?;
    let holders = holders
        .into_iter()
        .map(|h| HolderLine {
            client_id: h.grant.client_id,
            owner: h.owner_id.unwrap_or_else(|| "unclaimed".into()),
            status: h.status.unwrap_or("gone").to_owned(),
            scopes: h.grant.scopes,
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        &SkillPage {
            chrome: owner.chrome,
            policy: skill.grant_policy.entries_text(),
            needs_review: skill.policy_needs_review,
            audience: skill.audience,
            name: skill.name,
            scopes: skill.scopes,
            holders,
        },
    ))
}

pub(super) async fn set_policy(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    let audience = form.get("audience").unwrap_or_default();
    skill_policy::set_policy(
        &state,
        &owner.caller,
        owner.session.actor(),
        audience,
        &chosen_policy(form),
    )
    .await
    .map_err(owner.fail())?;
    Ok(redirect(&skill_path(audience)))
}

pub(super) async fn revoke_grant(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    let audience = form.get("audience").unwrap_or_default();
    skill_policy::revoke_grant(
        &state,
        &owner.caller,
        owner.session.actor(),
        audience,
        form.get("client_id").unwrap_or_default(),
    )
    .await
    .map_err(owner.fail())?;
    Ok(redirect(&skill_path(audience)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skill_pages_carry_the_audience_encoded() {
        assert_eq!(
            skill_path("https://a.example/x?y=1"),
            "/console/skill?audience=https%3A%2F%2Fa.example%2Fx%3Fy%3D1"
        );
    }
}
