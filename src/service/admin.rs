//! Administration: skills, approving agents for an owner with grants, suspension, and an
//! owner's kill switch. Used by the admin API today and by the owner console later.

use serde_json::{Value, json};

use crate::audit::{AuditEvent, Outcome};
use crate::clock::{self, UnixTime};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::scope;
use crate::service::peers::{self, Notice};
use crate::service::registration::Caller;
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::clients::{self, ClientStatus};
use crate::store::models::skills::{self, SkillRow};
use crate::store::models::{grants, owners};

fn bad(description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidRequest, description.into(), reason)
}

fn not_found(what: &'static str, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::NotFound, what, reason)
}

/// A skill to create or replace.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkillInput {
    /// Audience URI.
    pub audience: String,
    /// Display name.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// Token lifetime (default `tokens.default_skill_ttl_secs`).
    pub ttl_secs: Option<i64>,
    /// Whether tokens must be DPoP-bound.
    #[serde(default)]
    pub require_dpop: bool,
    /// The registered client that is this skill (for delegation).
    pub client_id: Option<String>,
}

/// An owner id: `github:<id>`, `google:<sub>` or `oidc:<issuer>#<sub>`.
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
        Err(bad(
            "owner must look like github:<numeric id>, google:<sub> or oidc:<issuer>#<sub>",
            "owner_id_invalid",
        ))
    }
}

fn audit(
    caller: &Caller,
    event: &'static str,
    result: &Result<impl Sized, OAuthError>,
) -> AuditEvent {
    let ev = AuditEvent::new(
        event,
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        },
    )
    .source(&caller.source.to_string())
    .request(&caller.request_id);
    match result {
        Ok(_) => ev,
        Err(e) => ev.reason(e.reason()),
    }
}

/// Creates or replaces a skill.
pub async fn put_skill(
    state: &AppState,
    caller: &Caller,
    input: SkillInput,
) -> Result<SkillRow, OAuthError> {
    put_skill_as(state, caller, input, None).await
}

/// Creates or replaces a skill on behalf of an owner (`None`: an administrator). An owner
/// may only replace skills they created.
pub async fn put_skill_as(
    state: &AppState,
    caller: &Caller,
    input: SkillInput,
    owner: Option<&str>,
) -> Result<SkillRow, OAuthError> {
    let result = put_skill_inner(state, input, owner).await;
    let ev = audit(caller, "skill.put", &result);
    state.audit.record(match &result {
        Ok(s) => ev.audience(&s.audience),
        Err(_) => ev,
    });
    result
}

async fn put_skill_inner(
    state: &AppState,
    input: SkillInput,
    owner: Option<&str>,
) -> Result<SkillRow, OAuthError> {
    if let Some(o) = owner {
        let aud = input.audience.clone();
        let existing = state
            .store
            .read(move |c| skills::find(c, &aud))
            .await
            .map_err(store_failure)?;
        if existing.is_some_and(|e| e.owner_id.as_deref() != Some(o)) {
            return Err(bad(
                "a skill with this audience already exists and is not yours",
                "skill_not_owned",
            ));
        }
    }
    let aud = url::Url::parse(&input.audience)
        .map_err(|_| bad("audience must be an absolute URI", "audience_invalid"))?;
    // A skill named like Patron itself would receive every agent token as its audience.
    if input.audience.trim_end_matches('/') == state.issuer {
        return Err(bad(
            "a skill's audience cannot be the issuer",
            "audience_is_issuer",
        ));
    }
    if aud.fragment().is_some() || input.audience.len() > 500 {
        return Err(bad(
            "audience must not have a fragment and must be at most 500 characters",
            "audience_invalid",
        ));
    }
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(bad(
            "name must be 1 to 200 printable characters",
            "skill_name_invalid",
        ));
    }
    if !scope::is_valid(&input.scopes) || scope::parse(&input.scopes).len() > 50 {
        return Err(bad(
            "scopes must be space-separated RFC 6749 scope tokens (at most 50)",
            "scope_malformed",
        ));
    }
    let ttl = input
        .ttl_secs
        .unwrap_or(state.config.tokens.default_skill_ttl_secs);
    if ttl < 1 || ttl > state.config.keys.max_token_lifetime_secs {
        return Err(bad(
            format!(
                "ttl_secs must be between 1 and {}",
                state.config.keys.max_token_lifetime_secs
            ),
            "skill_ttl_invalid",
        ));
    }
    if let Some(cid) = &input.client_id {
        let cid = cid.clone();
        let exists = state
            .store
            .read(move |c| clients::find(c, &cid))
            .await
            .map_err(store_failure)?;
        if exists.is_none() {
            return Err(bad(
                "client_id names no registered client",
                "skill_client_unknown",
            ));
        }
    }
    let now = clock::now();
    let row = SkillRow {
        audience: input.audience.clone(),
        name: name.to_owned(),
        scopes: scope::join(&scope::parse(&input.scopes)),
        ttl_secs: ttl,
        require_dpop: input.require_dpop,
        owner_id: owner.map(str::to_owned),
        created_at: now,
        updated_at: now,
        client_id: input.client_id.clone(),
    };
    let r = row.clone();
    state
        .store
        .write(move |c| skills::upsert(c, &r))
        .await
        .map_err(store_failure)?;
    peers::announce(state, Notice::Skills).await;
    Ok(row)
}

/// Lists skills.
pub async fn list_skills(state: &AppState) -> Result<Vec<SkillRow>, OAuthError> {
    state.store.read(skills::all).await.map_err(store_failure)
}

/// Checks grants (audience → scopes) against the skills: each skill must exist, and the
/// scopes must be a non-empty subset of what it offers. Returns them normalised. Every path
/// that creates grants (approval, the grants form, enrollment tokens) goes through here.
pub async fn check_grants(
    state: &AppState,
    grant_list: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, OAuthError> {
    if grant_list.len() > 100 {
        return Err(bad("at most 100 grants at once", "too_many_grants"));
    }
    let mut checked = Vec::new();
    for (aud, scopes) in grant_list {
        let skill = state
            .directory
            .skill(&state.store, &aud)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| bad(format!("no skill has audience {aud}"), "skill_unknown"))?;
        let offered = scope::parse(&skill.scopes);
        let wanted = scope::parse(&scopes);
        if wanted.is_empty() || !scope::is_subset(&wanted, &offered) {
            return Err(bad(
                format!("scopes for {aud} must be one or more of: {}", skill.scopes),
                "grant_scope_unknown",
            ));
        }
        checked.push((aud, scope::join(&wanted)));
    }
    Ok(checked)
}

/// Approves (claims) an agent for `owner` with `grants` (audience → scopes), making it
/// active. Grants replace the agent's previous grants for those audiences.
pub async fn approve_agent(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    owner: &str,
    grant_list: Vec<(String, String)>,
) -> Result<Value, OAuthError> {
    let result = approve_inner(state, client_id, owner, grant_list).await;
    let ev = audit(caller, "agent.approve", &result)
        .client(client_id)
        .owner(Some(owner));
    state.audit.record(ev);
    result
}

async fn approve_inner(
    state: &AppState,
    client_id: &str,
    owner: &str,
    grant_list: Vec<(String, String)>,
) -> Result<Value, OAuthError> {
    check_owner_id(owner)?;
    let checked = check_grants(state, grant_list).await?;
    let now = clock::now();
    let (cid, own) = (client_id.to_owned(), owner.to_owned());
    let n_grants = checked.len();
    let found = state
        .store
        .write(move |c| {
            match clients::find(c, &cid)? {
                Some(row) if !row.is_expired(now) => {}
                _ => return Ok(false),
            }
            owners::ensure(c, &own, now)?;
            clients::set_status(c, &cid, ClientStatus::Active, Some(&own), None, now)?;
            for (aud, scopes) in &checked {
                grants::upsert(c, &cid, aud, scopes, now)?;
            }
            Ok::<_, StoreError>(true)
        })
        .await
        .map_err(store_failure)?;
    if !found {
        return Err(not_found("no such agent", "client_unknown"));
    }
    peers::announce(state, Notice::Client(client_id.to_owned())).await;
    Ok(
        json!({"client_id": client_id, "owner": owner, "owner_status": "active", "grants": n_grants}),
    )
}

/// Suspends (`suspend = true`) or resumes an agent. Suspension invalidates every token
/// issued to it so far.
pub async fn set_suspended(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    suspend: bool,
) -> Result<Value, OAuthError> {
    let now = clock::now();
    let cid = client_id.to_owned();
    let result = async {
        let found = state
            .store
            .write(move |c| {
                let Some(row) = clients::find(c, &cid)? else {
                    return Ok(None);
                };
                if row.owner_id.is_none() {
                    return Ok(Some(false));
                }
                let (status, revoke) = if suspend {
                    (ClientStatus::Suspended, Some(now))
                } else {
                    (ClientStatus::Active, None)
                };
                clients::set_status(c, &cid, status, None, revoke, now)?;
                Ok::<_, StoreError>(Some(true))
            })
            .await
            .map_err(store_failure)?;
        match found {
            None => Err(not_found("no such agent", "client_unknown")),
            Some(false) => Err(bad(
                "the agent has no owner yet; approve it first",
                "agent_pending",
            )),
            Some(true) => Ok(json!({
                "client_id": client_id,
                "owner_status": if suspend { "suspended" } else { "active" },
            })),
        }
    }
    .await;
    peers::announce(state, Notice::Client(client_id.to_owned())).await;
    let event = if suspend {
        "agent.suspend"
    } else {
        "agent.resume"
    };
    state
        .audit
        .record(audit(caller, event, &result).client(client_id));
    result
}

/// The owner's kill switch: every token of every agent they own, issued up to now, stops
/// working.
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
            return Err(not_found("no such owner", "owner_unknown"));
        }
        Ok(json!({"owner": owner, "tokens_revoked_before": now}))
    }
    .await;
    peers::announce(state, Notice::AllClients).await;
    state
        .audit
        .record(audit(caller, "owner.revoke_all", &result).owner(Some(owner)));
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
