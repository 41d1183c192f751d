//! Agents as their owners and the operator manage them: claiming (approval with grants),
//! grant editing, suspension, deletion, and the views the console shows. Ownership is
//! checked here, on every path: an owner who names another owner's agent finds nothing.
//! Each change that concerns an owner e-mails them from here, once, whichever path made it.

use serde_json::{Value, json};

use crate::audit::Outcome;
use crate::clock::{self, UnixTime};
use crate::mail::Notification;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::OwnerId;
use crate::ratelimit::{KeyedLimiter, RateLimiter};
use crate::service::peers::{self, Notice};
use crate::service::sessions::Session;
use crate::service::{Actor, Caller, owners, registration, skills, store_failure};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::audit_events::{self, AuditEventRow};
use crate::store::models::clients::{self, ClientRow, ClientStatus, SuspendedBy};
use crate::store::models::grants::{self, GrantRow};

/// User-code lookups (and login starts) per address, or lookups per console session, per
/// minute.
pub const CLAIM_LOOKUPS_PER_MINUTE: u32 = 30;
/// Burst of the per-address and per-session lookup limits.
pub const CLAIM_LOOKUP_BURST: u32 = 10;

/// Per-address limit on user-code lookups and login starts (brute force on codes).
pub fn claim_limiter() -> RateLimiter {
    RateLimiter::new(CLAIM_LOOKUPS_PER_MINUTE, CLAIM_LOOKUP_BURST)
}

/// Per-session limit on user-code lookups (one session spread over many addresses).
pub fn claim_limiter_per_session() -> KeyedLimiter<String> {
    KeyedLimiter::new(CLAIM_LOOKUPS_PER_MINUTE, CLAIM_LOOKUP_BURST)
}

fn not_found(actor: Actor<'_>) -> OAuthError {
    match actor {
        Actor::Operator => OAuthError::new(ErrorKind::NotFound, "no such agent", "client_unknown"),
        Actor::Owner { .. } => {
            OAuthError::new(ErrorKind::NotFound, "no such agent", "agent_not_visible")
        }
    }
}

fn bad(description: &'static str, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidRequest, description, reason)
}

/// Approves an agent for `owner` with `grants` (audience → scopes), making it active, and
/// tells the owner. Grants replace the agent's previous grants for those audiences. The
/// operator's path: an agent already active (or suspended) may be approved again.
pub async fn approve(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    owner: &str,
    grant_list: Vec<(String, String)>,
) -> Result<Value, OAuthError> {
    approve_as(state, caller, client_id, owner, grant_list, false).await
}

/// Claims a pending agent for `owner` (a person who typed its user code): [`approve`], but
/// only while the agent is still pending, checked inside the write so that of two
/// concurrent claims exactly one succeeds.
pub async fn claim(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    owner: &str,
    grant_list: Vec<(String, String)>,
) -> Result<Value, OAuthError> {
    approve_as(state, caller, client_id, owner, grant_list, true).await
}

async fn approve_as(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    owner: &str,
    grant_list: Vec<(String, String)>,
    only_pending: bool,
) -> Result<Value, OAuthError> {
    let result = approve_inner(state, caller, client_id, owner, grant_list, only_pending).await;
    state.audit.record(
        caller
            .audit_result("agent.approve", &result)
            .client(client_id)
            .owner(Some(owner)),
    );
    let (row, granted) = result?;
    owners::notify(
        state,
        owner,
        Notification::AgentLinked {
            client_id: client_id.to_owned(),
            client_name: owners::agent_name(&row),
            grants: granted.clone(),
        },
    )
    .await;
    Ok(json!({
        "client_id": client_id,
        "owner": owner,
        "owner_status": ClientStatus::Active.as_str(),
        "grants": granted.len(),
    }))
}

async fn approve_inner(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    owner: &str,
    grant_list: Vec<(String, String)>,
    only_pending: bool,
) -> Result<(ClientRow, Vec<(String, String)>), OAuthError> {
    let owner = OwnerId::parse(owner)?;
    let checked = skills::check_grants(state, caller, &owner, grant_list).await?;
    let now = clock::now();
    let (cid, to_store) = (client_id.to_owned(), checked.clone());
    let row = state
        .store
        .write(move |c| {
            let row = match clients::find(c, &cid)? {
                Some(row) if !row.is_expired(now) => row,
                _ => return Ok(Err(not_found(Actor::Operator))),
            };
            crate::store::models::owners::ensure(c, &owner, now)?;
            if only_pending {
                if !clients::claim_pending(c, &cid, &owner, now)? {
                    return Ok(Err(OAuthError::new(
                        ErrorKind::NotFound,
                        "This agent has already been claimed.",
                        "agent_not_pending",
                    )));
                }
            } else {
                clients::set_status(c, &cid, ClientStatus::Active, Some(&owner), None, now)?;
                clients::set_suspended_by(c, &cid, None)?;
            }
            for (aud, scopes) in &to_store {
                grants::upsert(c, &cid, aud, scopes, now)?;
            }
            Ok::<_, StoreError>(Ok(row))
        })
        .await
        .map_err(store_failure)??;
    peers::announce(state, Notice::Client(client_id.to_owned())).await;
    Ok((row, checked))
}

/// The pending registration a human typed the user code of (case and dash forgiven),
/// rate-limited per address and per console session, and refused for everyone while the
/// global budget of failed lookups is spent: guessing codes from many addresses and
/// sessions at once finds no more than the global cap allows. Unknown and expired codes are
/// refused with a message for the person.
pub async fn find_claimable(
    state: &AppState,
    caller: &Caller,
    session: &Session,
    code: &str,
) -> Result<ClientRow, OAuthError> {
    let refuse = |reason: &'static str| {
        state.audit.record(
            caller
                .audit("agent.claim_lookup", Outcome::Failure)
                .owner(Some(session.owner_id.as_str()))
                .reason(reason),
        );
    };
    let limited = |reason: &'static str| {
        refuse(reason);
        OAuthError::new(
            ErrorKind::TooManyRequests,
            "Too many attempts. Wait a minute and try again.",
            reason,
        )
    };
    let now = clock::monotonic();
    if state.claim_limiter.check(caller.source, now).is_err() {
        return Err(limited("claim_rate_limited"));
    }
    if state
        .claim_session_limiter
        .check(session.id_hash.clone(), now)
        .is_err()
    {
        return Err(limited("claim_rate_limited_session"));
    }
    if state.claim_failure_limiter.peek(&(), now).is_err() {
        return Err(limited("claim_rate_limited_global"));
    }
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let found = if normalised.len() == 8 {
        state
            .store
            .read(move |c| clients::find_by_user_code(c, &normalised))
            .await
            .map_err(store_failure)?
    } else {
        None
    };
    match found {
        Some(row) if row.is_expired(clock::now()) => {
            state.claim_failure_limiter.charge((), now);
            Err(OAuthError::new(
                ErrorKind::NotFound,
                "This code has expired. Ask the agent to register again.",
                "user_code_expired",
            ))
        }
        Some(row) if row.status == ClientStatus::Pending => Ok(row),
        _ => {
            state.claim_failure_limiter.charge((), now);
            refuse("user_code_unknown");
            Err(OAuthError::new(
                ErrorKind::NotFound,
                "No pending agent has this code. It may be mistyped, expired or already claimed.",
                "user_code_unknown",
            ))
        }
    }
}

/// Rejects (deletes) a pending registration the owner does not recognise.
pub async fn reject(
    state: &AppState,
    caller: &Caller,
    owner_id: &str,
    client_id: &str,
) -> Result<(), OAuthError> {
    let cid = client_id.to_owned();
    let now = clock::now();
    let deleted = state
        .store
        .write(move |c| match clients::find(c, &cid)? {
            Some(r) if r.status == ClientStatus::Pending && !r.is_expired(now) => {
                clients::delete(c, &cid)
            }
            _ => Ok(false),
        })
        .await
        .map_err(store_failure)?;
    let outcome = if deleted {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    state.audit.record(
        caller
            .audit("agent.reject", outcome)
            .client(client_id)
            .owner(Some(owner_id)),
    );
    if deleted {
        Ok(())
    } else {
        Err(not_found(Actor::Owner {
            owner_id,
            admin: false,
        }))
    }
}

/// Suspends (`suspend = true`) or resumes an agent `actor` may see, and tells its owner.
/// Suspension invalidates every token issued to it so far.
pub async fn set_suspended(
    state: &AppState,
    caller: &Caller,
    actor: Actor<'_>,
    client_id: &str,
    suspend: bool,
) -> Result<Value, OAuthError> {
    let now = clock::now();
    let cid = client_id.to_owned();
    let (visible_to, admin) = match actor {
        Actor::Operator => (None, true),
        Actor::Owner { owner_id, admin } => (Some(owner_id.to_owned()), admin),
    };
    let result = async {
        let found = state
            .store
            .write(move |c| {
                let Some(row) = clients::find(c, &cid)? else {
                    return Ok(None);
                };
                if !admin && row.owner_id != visible_to {
                    return Ok(None);
                }
                if row.owner_id.is_none() {
                    return Ok(Some(Err(bad(
                        "the agent has no owner yet; approve it first",
                        "agent_pending",
                    ))));
                }
                // An owner may not undo an admin's suspension (nor downgrade it to their own).
                let by_admin = admin || row.suspended_by_admin();
                if !suspend && !admin && row.suspended_by_admin() {
                    return Ok(Some(Err(OAuthError::new(
                        ErrorKind::InvalidRequest,
                        "an administrator suspended this agent; only an administrator can resume it",
                        "suspended_by_admin",
                    ))));
                }
                let (status, revoke, by) = if suspend {
                    let by = if by_admin {
                        SuspendedBy::Admin
                    } else {
                        SuspendedBy::Owner
                    };
                    (ClientStatus::Suspended, Some(now), Some(by))
                } else {
                    (ClientStatus::Active, None, None)
                };
                clients::set_status(c, &cid, status, None, revoke, now)?;
                clients::set_suspended_by(c, &cid, by)?;
                Ok::<_, StoreError>(Some(Ok(row)))
            })
            .await
            .map_err(store_failure)?;
        match found {
            None => Err(not_found(actor)),
            Some(Err(refusal)) => Err(refusal),
            Some(Ok(row)) => Ok(row),
        }
    }
    .await;
    peers::announce(state, Notice::Client(client_id.to_owned())).await;
    let event = if suspend {
        "agent.suspend"
    } else {
        "agent.resume"
    };
    state.audit.record(
        caller
            .audit_result(event, &result)
            .client(client_id)
            .owner(actor.owner_id()),
    );
    let row = result?;
    let id = client_id.to_owned();
    owners::notify_agent_owner(state, &row, |client_name| {
        if suspend {
            Notification::AgentSuspended {
                client_id: id,
                client_name,
            }
        } else {
            Notification::AgentResumed {
                client_id: id,
                client_name,
            }
        }
    })
    .await;
    let status = if suspend {
        ClientStatus::Suspended
    } else {
        ClientStatus::Active
    };
    Ok(json!({"client_id": client_id, "owner_status": status.as_str()}))
}

/// Deletes an agent `actor` may see, and tells its owner.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    actor: Actor<'_>,
    client_id: &str,
) -> Result<(), OAuthError> {
    let row = visible(state, actor, client_id).await?;
    registration::remove_client(state, client_id).await?;
    state.audit.record(
        caller
            .audit("agent.delete", Outcome::Success)
            .client(client_id)
            .owner(actor.owner_id()),
    );
    let by = if actor.owner_id().is_some() && actor.owner_id() == row.owner_id.as_deref() {
        "you"
    } else {
        "an administrator"
    };
    owners::notify_agent_owner(state, &row, |client_name| Notification::AgentDeleted {
        client_id: client_id.to_owned(),
        client_name,
        by,
    })
    .await;
    Ok(())
}

/// Replaces the grants of an agent `actor` may see with `chosen` (audience → scopes), each
/// checked against the skill's scopes.
pub async fn set_grants(
    state: &AppState,
    caller: &Caller,
    actor: Actor<'_>,
    client_id: &str,
    chosen: Vec<(String, String)>,
) -> Result<(), OAuthError> {
    let row = visible(state, actor, client_id).await?;
    // The grants are the agent's owner's, whoever edits them.
    let owner = row
        .owner_id
        .as_deref()
        .or(actor.owner_id())
        .unwrap_or_default();
    let checked = skills::check_grants(state, caller, owner, chosen).await?;
    let cid = client_id.to_owned();
    let now = clock::now();
    let n = checked.len();
    state
        .store
        .write(move |c| {
            grants::delete_for_client(c, &cid)?;
            for (aud, scopes) in &checked {
                grants::upsert(c, &cid, aud, scopes, now)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(store_failure)?;
    peers::announce(state, Notice::Client(client_id.to_owned())).await;
    state.audit.record(
        caller
            .audit("agent.grants", Outcome::Success)
            .client(client_id)
            .owner(actor.owner_id())
            .detail(format!("{n} grant(s)")),
    );
    Ok(())
}

async fn visible(
    state: &AppState,
    actor: Actor<'_>,
    client_id: &str,
) -> Result<ClientRow, OAuthError> {
    let cid = client_id.to_owned();
    match state
        .store
        .read(move |c| clients::find(c, &cid))
        .await
        .map_err(store_failure)?
    {
        Some(row) if actor.may_see(&row) => Ok(row),
        _ => Err(not_found(actor)),
    }
}

/// An agent as the console shows it.
pub struct AgentView {
    /// The stored row.
    pub row: ClientRow,
    /// Its grants.
    pub grants: Vec<GrantRow>,
    /// One page of the audit events about it, newest first.
    pub events: Vec<AuditEventRow>,
    /// The cursor of the next older page (`before`), when there are older events.
    pub older: Option<i64>,
    /// Token outcomes of the last 24 hours: (when, `success` or `failure`).
    pub token_outcomes: Vec<(UnixTime, String)>,
}

/// How many audit events one page of an agent's view shows.
const VIEW_EVENTS: i64 = 50;

/// One agent, if `actor` may see it (a foreign agent is indistinguishable from none), with
/// the page of its audit events older than the event id `before` (the newest without).
pub async fn view(
    state: &AppState,
    actor: Actor<'_>,
    client_id: &str,
    before: Option<i64>,
) -> Result<AgentView, OAuthError> {
    let cid = client_id.to_owned();
    let since = clock::now() - 86_400;
    let found = state
        .store
        .read(move |c| {
            let Some(row) = clients::find(c, &cid)? else {
                return Ok(None);
            };
            // One more than a page tells whether an older page exists.
            let mut events = audit_events::page_for_client(c, &cid, before, VIEW_EVENTS + 1)?;
            let older = if events.len() as i64 > VIEW_EVENTS {
                events.truncate(VIEW_EVENTS as usize);
                events.last().map(|e| e.id)
            } else {
                None
            };
            Ok::<_, StoreError>(Some(AgentView {
                grants: grants::for_client(c, &cid)?,
                events,
                older,
                token_outcomes: audit_events::token_outcomes_since(c, &cid, since)?,
                row,
            }))
        })
        .await
        .map_err(store_failure)?;
    match found {
        Some(v) if actor.may_see(&v.row) => Ok(v),
        _ => Err(not_found(actor)),
    }
}

/// The agents `owner_id` owns, with their grants.
pub async fn owned(
    state: &AppState,
    owner_id: &str,
) -> Result<Vec<(ClientRow, Vec<GrantRow>)>, OAuthError> {
    let owner = owner_id.to_owned();
    state
        .store
        .read(move |c| {
            let rows = clients::for_owner(c, &owner)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let g = grants::for_client(c, &r.client_id)?;
                out.push((r, g));
            }
            Ok::<_, StoreError>(out)
        })
        .await
        .map_err(store_failure)
}

/// How many agents the admin overview lists.
const OVERVIEW_AGENTS: i64 = 500;

/// Every owner's newest agents, for an actor who sees all (others get "not found").
pub async fn overview(state: &AppState, actor: Actor<'_>) -> Result<Vec<ClientRow>, OAuthError> {
    if !actor.sees_all() {
        return Err(OAuthError::new(
            ErrorKind::NotFound,
            "No such page.",
            "admin_only",
        ));
    }
    state
        .store
        .read(|c| clients::newest(c, OVERVIEW_AGENTS))
        .await
        .map_err(store_failure)
}
