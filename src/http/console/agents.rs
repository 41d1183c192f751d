//! The dashboard (the owner's agents) and one agent's page: details, grants, activity,
//! and the suspend, resume, delete and grant-editing actions.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::clock::{self, UnixTime};
use crate::http::console::guard::{Owner, OwnerForm};
use crate::http::console::page::{
    ConsoleError, agent_name, fmt_time, html, redirect, software, thumbprints,
};
use crate::http::console::skills::{SkillLine, skill_path};
use crate::http::home::Chrome;
use crate::service::{agents, authorization, skill_policy, skills};
use crate::state::AppState;

struct AgentLine {
    client_id: String,
    name: String,
    status: String,
    grants: String,
    created: String,
}

struct OperatedLine {
    name: String,
    audience: String,
    path: String,
    needs_review: bool,
}

/// An owner's skill the viewer operates, with what proving its audience takes.
struct ProofLine {
    audience: String,
    proven: Option<String>,
    error: Option<String>,
    publication: Option<skills::Publication>,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    agents: Vec<AgentLine>,
    skills: Vec<SkillLine>,
    operated: Vec<OperatedLine>,
    proofs: Vec<ProofLine>,
    consents: Vec<ConsentLine>,
}

/// An app the owner authorized, as the dashboard lists it.
struct ConsentLine {
    client_id: String,
    name: String,
    grants: String,
    updated: String,
}

pub(super) async fn dashboard(
    owner: Owner,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let agents = agents::owned(&state, &owner.session.owner_id)
        .await
        .map_err(owner.fail())?;
    let skills = skill_policy::grantable(&state, &owner.session.owner_id)
        .await
        .map_err(owner.fail())?
        .into_iter()
        .map(SkillLine::from)
        .collect();
    let operated_rows = skill_policy::operated(&state, owner.session.actor())
        .await
        .map_err(owner.fail())?;
    // An owner's skill proves its audience; an admin's needs no proof.
    let proofs = operated_rows
        .iter()
        .filter(|s| s.owner_id.is_some())
        .map(|s| ProofLine {
            audience: s.audience.clone(),
            proven: s.proven_at.map(fmt_time),
            error: s.proof_error.clone(),
            publication: skills::publication(&state, &s.audience),
        })
        .collect();
    let operated = operated_rows
        .into_iter()
        .map(|s| OperatedLine {
            path: skill_path(&s.audience),
            needs_review: s.policy_needs_review,
            name: s.name,
            audience: s.audience,
        })
        .collect();
    let agents = agents
        .into_iter()
        .map(|(row, grants)| AgentLine {
            name: agent_name(&row).0,
            status: row.status.as_str().to_owned(),
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
    let consents = authorization::consents_of(&state, owner.session.owner_id.as_str())
        .await
        .map_err(owner.fail())?
        .into_iter()
        .map(|c| ConsentLine {
            name: c.client_name.unwrap_or_else(|| "unnamed app".into()),
            grants: c
                .grants
                .pairs()
                .into_iter()
                .map(|(aud, scopes)| format!("{aud} ({scopes})"))
                .collect::<Vec<_>>()
                .join(", "),
            updated: fmt_time(c.updated_at),
            client_id: c.client_id,
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        &DashboardPage {
            chrome: owner.chrome,
            agents,
            skills,
            operated,
            proofs,
            consents,
        },
    ))
}

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
    /// Suspended by an admin, and the viewer is not one: resuming is not theirs to do.
    admin_suspended: bool,
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
    /// Whether this is an older page of the audit trail (links back to the newest).
    paged: bool,
    /// The cursor of the next older page of the audit trail.
    older: Option<i64>,
    chart: Vec<Bar>,
}

/// The agent page's query: `?before=<event id>` pages through the audit trail.
#[derive(serde::Deserialize)]
pub(super) struct AgentQuery {
    before: Option<String>,
}

impl AgentQuery {
    /// The cursor: a positive event id, else a 400 page.
    fn before(&self, chrome: &Chrome, client_id: &str) -> Result<Option<i64>, ConsoleError> {
        match self.before.as_deref() {
            None => Ok(None),
            Some(raw) => match raw.parse::<i64>() {
                Ok(id) if id > 0 => Ok(Some(id)),
                _ => Err(ConsoleError::page(
                    chrome,
                    StatusCode::BAD_REQUEST,
                    "No such page",
                    "The audit trail page in the address is not valid.",
                    &format!("/console/agents/{client_id}"),
                )),
            },
        }
    }
}

/// Hourly bars for the last 24 hours, heights in tenths of the busiest hour.
fn chart(outcomes: &[(UnixTime, String)], now: UnixTime) -> Vec<Bar> {
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

pub(super) async fn agent_page(
    owner: Owner,
    path: web::Path<String>,
    query: web::Query<AgentQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let before = query.before(&owner.chrome, &path)?;
    let view = agents::view(&state, owner.session.actor(), &path, before)
        .await
        .map_err(owner.fail())?;
    // What may be granted is what the policies admit the agent's owner to.
    let grantee = view
        .row
        .owner_id
        .clone()
        .unwrap_or_else(|| owner.session.owner_id.to_string());
    let grantable = skill_policy::grantable(&state, &grantee)
        .await
        .map_err(owner.fail())?;
    let (name, meta) = agent_name(&view.row);
    let a = AgentDetail {
        client_id: view.row.client_id.clone(),
        name,
        status: view.row.status.as_str().to_owned(),
        owner: view
            .row
            .owner_id
            .clone()
            .unwrap_or_else(|| "unclaimed".into()),
        software: software(meta.as_ref()),
        auth_method: meta
            .as_ref()
            .map(|m| m.token_endpoint_auth_method.as_str().to_owned())
            .unwrap_or_default(),
        dpop: meta.as_ref().is_some_and(|m| m.dpop_bound_access_tokens),
        thumbprints: thumbprints(meta.as_ref()),
        created: fmt_time(view.row.created_at),
        admin_suspended: view.row.suspended_by_admin() && !owner.session.actor().sees_all(),
    };
    let skills = grantable
        .into_iter()
        .map(|g| {
            let granted = view.grants.iter().find(|v| v.audience == g.skill.audience);
            SkillChoice {
                scopes: granted
                    .map(|v| v.scopes.clone())
                    .unwrap_or_else(|| g.scopes.clone()),
                granted: granted.is_some(),
                audience: g.skill.audience,
                name: g.skill.name,
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
    Ok(html(
        StatusCode::OK,
        &AgentPage {
            chrome: owner.chrome,
            a,
            skills,
            events,
            paged: before.is_some(),
            older: view.older,
            chart: chart(&view.token_outcomes, clock::now()),
        },
    ))
}

pub(super) async fn agent_action(
    post: OwnerForm,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    let (who, actor) = (&owner.caller, owner.session.actor());
    let back = format!("/console/agents/{}", path.as_str());
    match form.get("action") {
        Some("suspend") => agents::set_suspended(&state, who, actor, &path, true)
            .await
            .map(drop),
        Some("resume") => agents::set_suspended(&state, who, actor, &path, false)
            .await
            .map(drop),
        Some("delete") => {
            agents::delete(&state, who, actor, &path)
                .await
                .map_err(owner.fail())?;
            return Ok(redirect("/console"));
        }
        Some("grants") => agents::set_grants(&state, who, actor, &path, form.grants()).await,
        _ => {
            return Err(ConsoleError::page(
                &owner.chrome,
                StatusCode::BAD_REQUEST,
                "Nothing done",
                "Unknown action.",
                &back,
            ));
        }
    }
    .map_err(owner.fail())?;
    Ok(redirect(&back))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
