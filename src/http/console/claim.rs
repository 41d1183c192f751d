//! Claiming a pending agent by its user code: review, then approve with skills or reject.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::http::console::guard::{Owner, OwnerForm};
use crate::http::console::page::{
    ConsoleError, agent_name, fmt_time, html, message, redirect, software, thumbprints,
};
use crate::http::console::skills::SkillLine;
use crate::http::home::Chrome;
use crate::service::registration::display_user_code;
use crate::service::{agents, skill_policy};
use crate::state::AppState;
use crate::store::models::clients::ClientRow;

/// A pending registration as the review page shows it.
pub(super) struct PendingView {
    client_id: String,
    name: String,
    software: String,
    thumbprints: Vec<String>,
    scope: String,
    created: String,
    source: String,
}

impl PendingView {
    fn of(row: &ClientRow) -> Self {
        let (name, meta) = agent_name(row);
        Self {
            client_id: row.client_id.clone(),
            name,
            software: software(meta.as_ref()),
            thumbprints: thumbprints(meta.as_ref()),
            scope: meta
                .as_ref()
                .and_then(|m| m.scope.clone())
                .unwrap_or_else(|| "none".into()),
            created: fmt_time(row.created_at),
            source: row.source_addr.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/claim.html")]
struct ClaimPage {
    chrome: Chrome,
    code: String,
    pending: Option<PendingView>,
    skills: Vec<SkillLine>,
    message: Option<String>,
}

#[derive(serde::Deserialize)]
pub(super) struct ClaimQuery {
    user_code: Option<String>,
}

pub(super) async fn claim_page(
    owner: Owner,
    q: web::Query<ClaimQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let code: String = q
        .user_code
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(20)
        .collect();
    let mut page = ClaimPage {
        chrome: owner.chrome.clone(),
        code: code.clone(),
        pending: None,
        skills: Vec::new(),
        message: None,
    };
    if !code.is_empty() {
        match agents::find_claimable(&state, &owner.caller, &owner.session, &code).await {
            Ok(row) => {
                page.code = row
                    .user_code
                    .as_deref()
                    .map(display_user_code)
                    .unwrap_or(code);
                page.pending = Some(PendingView::of(&row));
                page.skills = skill_policy::grantable(&state, &owner.session.owner_id)
                    .await
                    .map_err(owner.fail())?
                    .into_iter()
                    .map(SkillLine::from)
                    .collect();
            }
            Err(e) => page.message = Some(e.description().to_owned()),
        }
    }
    let status = if page.message.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    Ok(html(status, &page))
}

pub(super) async fn claim_action(
    post: OwnerForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (owner, form) = (&post.owner, &post.form);
    let code = form.get("user_code").unwrap_or_default();
    let row = agents::find_claimable(&state, &owner.caller, &owner.session, code)
        .await
        .map_err(|e| {
            ConsoleError::page(
                &owner.chrome,
                StatusCode::NOT_FOUND,
                "Cannot claim",
                e.description(),
                "/claim",
            )
        })?;
    let owner_id = &owner.session.owner_id;
    match form.get("action") {
        Some("approve") => {
            agents::claim(
                &state,
                &owner.caller,
                &row.client_id,
                owner_id,
                form.grants(),
            )
            .await
            .map_err(owner.fail())?;
            Ok(redirect(&format!("/console/agents/{}", row.client_id)))
        }
        Some("reject") => {
            agents::reject(&state, &owner.caller, owner_id, &row.client_id)
                .await
                .map_err(owner.fail())?;
            Ok(message(
                owner.chrome.clone(),
                StatusCode::OK,
                "Rejected",
                "The registration was deleted.",
                "/console",
            ))
        }
        _ => Err(ConsoleError::page(
            &owner.chrome,
            StatusCode::BAD_REQUEST,
            "Nothing done",
            "Choose approve or reject.",
            "/claim",
        )),
    }
}
