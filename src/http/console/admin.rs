//! The admin overview: every owner's agents, for owners named in `console.admins`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::http::console::guard::Owner;
use crate::http::console::page::{ConsoleError, agent_name, fmt_time, html};
use crate::http::home::Chrome;
use crate::service::agents;
use crate::state::AppState;

struct AdminLine {
    client_id: String,
    name: String,
    owner: String,
    status: String,
    created: String,
}

#[derive(Template)]
#[template(path = "console/admin.html")]
struct AdminPage {
    chrome: Chrome,
    agents: Vec<AdminLine>,
}

pub(super) async fn admin_overview(
    owner: Owner,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let rows = agents::overview(&state, owner.session.actor())
        .await
        .map_err(owner.fail())?;
    let agents = rows
        .into_iter()
        .map(|row| AdminLine {
            name: agent_name(&row).0,
            status: row.status.as_str().to_owned(),
            owner: row.owner_id.clone().unwrap_or_else(|| "unclaimed".into()),
            created: fmt_time(row.created_at),
            client_id: row.client_id,
        })
        .collect();
    Ok(html(
        StatusCode::OK,
        &AdminPage {
            chrome: owner.chrome,
            agents,
        },
    ))
}
