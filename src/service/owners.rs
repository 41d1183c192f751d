//! Owners: their ids, the kill switch, and the e-mails that tell them what happened to
//! their agents. Every service that changes an agent notifies its owner through here, once.

use serde_json::{Value, json};

use crate::clock::{self, UnixTime};
use crate::mail::Notification;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::OwnerId;
use crate::service::peers::{self, Notice};
use crate::service::{Caller, store_failure};
use crate::state::AppState;
use crate::store::models::clients::{self, ClientRow};
use crate::store::models::{owners, refresh_tokens};

/// The owner's e-mail address, for notifications.
pub async fn email(state: &AppState, owner_id: &str) -> Option<String> {
    let o = owner_id.to_owned();
    state
        .store
        .read(move |c| owners::find(c, &o))
        .await
        .ok()
        .flatten()
        .and_then(|o| o.email)
}

/// Tells `owner_id` what happened, if they have an e-mail address. Delivery runs in the
/// background; only the address lookup is awaited.
pub async fn notify(state: &AppState, owner_id: &str, notification: Notification) {
    if let Some(address) = email(state, owner_id).await {
        state.mailer.notify(&address, notification);
    }
}

/// The agent's self-chosen name, if its metadata has one (hostile input: the mail module
/// escapes it).
pub fn agent_name(row: &ClientRow) -> Option<String> {
    row.metadata.parsed().and_then(|m| m.client_name.clone())
}

/// Tells the owner of `row` (if it has one) what happened; `make` gets the agent's name.
pub async fn notify_agent_owner(
    state: &AppState,
    row: &ClientRow,
    make: impl FnOnce(Option<String>) -> Notification,
) {
    if let Some(owner) = &row.owner_id {
        notify(state, owner, make(agent_name(row))).await;
    }
}

/// Like [`notify_agent_owner`] for an agent known by id (read afresh).
pub async fn notify_owner_of(
    state: &AppState,
    client_id: &str,
    make: impl FnOnce(Option<String>) -> Notification,
) {
    let cid = client_id.to_owned();
    if let Ok(Some(row)) = state.store.read(move |c| clients::find(c, &cid)).await {
        notify_agent_owner(state, &row, make).await;
    }
}

/// The owner's kill switch: every token of every agent they own, issued up to now, stops
/// working, and so does every refresh token of the apps they authorized. The owner is told by e-mail.
pub async fn revoke_all(
    state: &AppState,
    caller: &Caller,
    owner: &str,
) -> Result<Value, OAuthError> {
    let now: UnixTime = clock::now();
    let until = crate::service::token::revoked_until(state, now);
    let own = owner.to_owned();
    let result = async {
        OwnerId::parse(owner)?;
        let found = state
            .store
            .write(move |c| {
                let found = owners::revoke_all(c, &own, now)?;
                let families = refresh_tokens::revoke(
                    c,
                    refresh_tokens::Families::Owner(&own),
                    "owner_revoked_all",
                    now,
                    until,
                )?;
                Ok::<_, crate::store::StoreError>((found, families))
            })
            .await
            .map_err(store_failure)?;
        let (found, families) = found;
        crate::service::token::announce_revoked(state, families).await;
        if !found {
            return Err(OAuthError::new(
                ErrorKind::NotFound,
                "no such owner",
                "owner_unknown",
            ));
        }
        Ok::<_, OAuthError>(json!({"owner": owner, "tokens_revoked_before": now}))
    }
    .await;
    peers::announce(state, Notice::AllClients).await;
    state.audit.record(
        caller
            .audit_result("owner.revoke_all", &result)
            .owner(Some(owner)),
    );
    if result.is_ok() {
        notify(state, owner, Notification::AllTokensRevoked).await;
    }
    result
}
