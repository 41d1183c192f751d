//! Owners: their ids, the kill switch, and the e-mails that tell them what happened to
//! their agents. Every service that changes an agent notifies its owner through here, once.

use serde_json::{Value, json};

use crate::clock::{self, UnixTime};
use crate::mail::Notification;
use crate::oauth::client_metadata::ClientMetadata;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::peers::{self, Notice};
use crate::service::{Caller, store_failure};
use crate::state::AppState;
use crate::store::models::clients::{self, ClientRow};
use crate::store::models::owners;

/// An owner id: `github:<id>`, `google:<sub>` or `oidc:<issuer>#<sub>` (`dev:<name>` from
/// the development login).
pub fn check_owner_id(owner: &str) -> Result<(), OAuthError> {
    let ok = owner.len() <= 300
        && !owner.chars().any(char::is_control)
        && (owner
            .strip_prefix("github:")
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            || owner.strip_prefix("google:").is_some_and(|s| !s.is_empty())
            || owner.strip_prefix("oidc:").is_some_and(|s| s.contains('#'))
            || owner.strip_prefix("dev:").is_some_and(|s| !s.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorKind::InvalidRequest,
            "owner must look like github:<numeric id>, google:<sub> or oidc:<issuer>#<sub>",
            "owner_id_invalid",
        ))
    }
}

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
    serde_json::from_str::<ClientMetadata>(&row.metadata)
        .ok()
        .and_then(|m| m.client_name)
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
/// working. The owner is told by e-mail.
pub async fn revoke_all(
    state: &AppState,
    caller: &Caller,
    owner: &str,
) -> Result<Value, OAuthError> {
    let now: UnixTime = clock::now();
    let own = owner.to_owned();
    let result = async {
        check_owner_id(owner)?;
        let found = state
            .store
            .write(move |c| owners::revoke_all(c, &own, now))
            .await
            .map_err(store_failure)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_follow_the_documented_forms() {
        assert!(check_owner_id("github:12345").is_ok());
        assert!(check_owner_id("google:1099").is_ok());
        assert!(check_owner_id("oidc:https://idp.example#abc").is_ok());
        assert!(check_owner_id("github:abc").is_err());
        assert!(check_owner_id("mallory").is_err());
        assert!(check_owner_id("google:").is_err());
    }
}
