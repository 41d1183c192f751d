//! The owner console's services: sessions, upstream logins, and owner-scoped views and
//! changes. Every query about agents is filtered by the logged-in owner (admins see all), so
//! one owner can never read or change another's agents.

use crate::audit::{AuditEvent, Outcome};
use crate::clock::{self, UnixTime};
use crate::crypto;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::peers::{self, Notice};
use crate::service::registration::Caller;
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::audit_events::{self, AuditEventRow};
use crate::store::models::clients::{self, ClientRow};
use crate::store::models::grants::{self, GrantRow};
use crate::store::models::owners;
use crate::store::models::sessions::{self, SessionRow};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "patron_session";
/// How long an upstream login may take.
pub const LOGIN_STATE_TTL: i64 = 600;
/// Sessions are touched at most this often (not on every request).
const TOUCH_EVERY: i64 = 60;

/// A logged-in owner.
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the cookie value.
    pub id_hash: String,
    /// The owner.
    pub owner_id: String,
    /// CSRF token for this session's forms.
    pub csrf_token: String,
    /// Whether the owner is an admin.
    pub admin: bool,
}

impl Session {
    /// Whether a submitted CSRF token is this session's.
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted
            .is_some_and(|s| crypto::constant_time_eq(s.as_bytes(), self.csrf_token.as_bytes()))
    }

    /// Whether this owner may see `row`.
    pub fn may_see(&self, row: &ClientRow) -> bool {
        self.admin || row.owner_id.as_deref() == Some(self.owner_id.as_str())
    }
}

/// Starts a session for `owner_id` (a fresh id at every login: no fixation). Returns the
/// cookie value.
pub async fn start_session(state: &AppState, owner_id: &str) -> Result<String, OAuthError> {
    let cookie = crypto::random_token("");
    let row = SessionRow {
        id_hash: crypto::sha256_hex(cookie.as_bytes()),
        owner_id: owner_id.to_owned(),
        csrf_token: crypto::random_token(""),
        created_at: clock::now(),
        last_seen_at: clock::now(),
    };
    state
        .store
        .write(move |c| sessions::insert(c, &row))
        .await
        .map_err(store_failure)?;
    Ok(cookie)
}

/// The session for a cookie value, if it is live (idle and absolute timeouts enforced).
pub async fn session(state: &AppState, cookie: &str) -> Result<Option<Session>, OAuthError> {
    if cookie.len() > 100 {
        return Ok(None);
    }
    let id_hash = crypto::sha256_hex(cookie.as_bytes());
    let h = id_hash.clone();
    let Some(row) = state
        .store
        .read(move |c| sessions::find(c, &h))
        .await
        .map_err(store_failure)?
    else {
        return Ok(None);
    };
    let now = clock::now();
    let cfg = &state.config.console;
    if now - row.last_seen_at > cfg.session_idle_secs || now - row.created_at > cfg.session_max_secs
    {
        let h = id_hash.clone();
        state
            .store
            .write(move |c| sessions::delete(c, &h))
            .await
            .map_err(store_failure)?;
        return Ok(None);
    }
    if now - row.last_seen_at > TOUCH_EVERY {
        let h = id_hash.clone();
        state
            .store
            .write(move |c| sessions::touch(c, &h, now))
            .await
            .map_err(store_failure)?;
    }
    let admin = cfg.admins.contains(&row.owner_id);
    Ok(Some(Session {
        id_hash,
        owner_id: row.owner_id,
        csrf_token: row.csrf_token,
        admin,
    }))
}

/// Ends a session.
pub async fn end_session(state: &AppState, session: &Session) -> Result<(), OAuthError> {
    let h = session.id_hash.clone();
    state
        .store
        .write(move |c| sessions::delete(c, &h))
        .await
        .map_err(store_failure)
}

/// A return path that cannot leave this site: a local absolute path, or the dashboard.
pub fn safe_return_to(requested: Option<&str>) -> String {
    match requested {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.len() <= 500 =>
        {
            p.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

/// Records an owner's login (creating or refreshing the owner) and audits it.
pub async fn record_login(
    state: &AppState,
    caller: &Caller,
    owner_id: &str,
    email: &str,
    name: Option<&str>,
    method: &str,
) -> Result<(), OAuthError> {
    let (o, e, n, now) = (
        owner_id.to_owned(),
        email.to_owned(),
        name.map(str::to_owned),
        clock::now(),
    );
    state
        .store
        .write(move |c| owners::upsert_login(c, &o, &e, n.as_deref(), now))
        .await
        .map_err(store_failure)?;
    state.audit.record(
        AuditEvent::new("owner.login", Outcome::Success)
            .owner(Some(owner_id))
            .source(&caller.source.to_string())
            .request(&caller.request_id)
            .detail(method.to_owned()),
    );
    Ok(())
}

/// Stores a pending upstream login under the SHA-256 of its `state`.
pub async fn save_login_state(
    state: &AppState,
    provider: &str,
    login_state: &str,
    nonce: &str,
    pkce_verifier: &str,
    return_to: &str,
) -> Result<(), OAuthError> {
    let (h, p, n, v, r) = (
        crypto::sha256_hex(login_state.as_bytes()),
        provider.to_owned(),
        nonce.to_owned(),
        pkce_verifier.to_owned(),
        return_to.to_owned(),
    );
    let now = clock::now();
    state
        .store
        .write(move |c| sessions::insert_login_state(c, &h, &p, &n, &v, &r, now))
        .await
        .map_err(store_failure)
}

/// A pending login taken back at the callback.
pub struct PendingLogin {
    /// Provider name.
    pub provider: String,
    /// Expected ID token nonce.
    pub nonce: String,
    /// PKCE verifier.
    pub pkce_verifier: String,
    /// Where to go afterwards.
    pub return_to: String,
}

/// Takes (and deletes) the pending login for a `state`; a replayed or stale state is `None`.
pub async fn take_login_state(
    state: &AppState,
    login_state: &str,
) -> Result<Option<PendingLogin>, OAuthError> {
    if login_state.is_empty() || login_state.len() > 200 {
        return Ok(None);
    }
    let h = crypto::sha256_hex(login_state.as_bytes());
    let row = state
        .store
        .write(move |c| sessions::take_login_state(c, &h))
        .await
        .map_err(store_failure)?;
    Ok(row.and_then(
        |(provider, nonce, pkce_verifier, return_to, created): (
            String,
            String,
            String,
            String,
            UnixTime,
        )| {
            (clock::now() - created <= LOGIN_STATE_TTL).then_some(PendingLogin {
                provider,
                nonce,
                pkce_verifier,
                return_to,
            })
        },
    ))
}

/// An agent as the console shows it.
pub struct AgentView {
    /// The stored row.
    pub row: ClientRow,
    /// Its grants.
    pub grants: Vec<GrantRow>,
    /// Recent audit events about it.
    pub events: Vec<AuditEventRow>,
}

/// The owner's agents (all agents for an admin is not offered here: admins use the admin
/// API or open agents directly).
pub async fn my_agents(
    state: &AppState,
    session: &Session,
) -> Result<Vec<(ClientRow, Vec<GrantRow>)>, OAuthError> {
    let owner = session.owner_id.clone();
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

fn not_found() -> OAuthError {
    OAuthError::new(ErrorKind::NotFound, "no such agent", "agent_not_visible")
}

/// One agent, if this owner may see it (a foreign agent is indistinguishable from none).
pub async fn agent(
    state: &AppState,
    session: &Session,
    client_id: &str,
) -> Result<AgentView, OAuthError> {
    let cid = client_id.to_owned();
    let found = state
        .store
        .read(move |c| {
            let Some(row) = clients::find(c, &cid)? else {
                return Ok(None);
            };
            let g = grants::for_client(c, &cid)?;
            let ev = audit_events::recent_for_client(c, &cid, 50)?;
            Ok::<_, StoreError>(Some(AgentView {
                row,
                grants: g,
                events: ev,
            }))
        })
        .await
        .map_err(store_failure)?;
    match found {
        Some(v) if session.may_see(&v.row) => Ok(v),
        _ => Err(not_found()),
    }
}

/// A pending registration by user code (as typed: case and dash are forgiven).
pub async fn pending_by_code(
    state: &AppState,
    code: &str,
) -> Result<Option<ClientRow>, OAuthError> {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if normalised.len() != 8 {
        return Ok(None);
    }
    state
        .store
        .read(move |c| clients::find_by_user_code(c, &normalised))
        .await
        .map_err(store_failure)
}

/// Rejects (deletes) a pending registration the owner does not recognise.
pub async fn reject_pending(
    state: &AppState,
    caller: &Caller,
    session: &Session,
    client_id: &str,
) -> Result<(), OAuthError> {
    let cid = client_id.to_owned();
    let now = clock::now();
    let deleted = state
        .store
        .write(move |c| match clients::find(c, &cid)? {
            Some(r) if r.status == "pending" && !r.is_expired(now) => clients::delete(c, &cid),
            _ => Ok(false),
        })
        .await
        .map_err(store_failure)?;
    state.audit.record(
        AuditEvent::new(
            "agent.reject",
            if deleted {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        )
        .client(client_id)
        .owner(Some(&session.owner_id))
        .source(&caller.source.to_string())
        .request(&caller.request_id),
    );
    if deleted { Ok(()) } else { Err(not_found()) }
}

/// Deletes one of the owner's agents.
pub async fn delete_agent(
    state: &AppState,
    caller: &Caller,
    session: &Session,
    client_id: &str,
) -> Result<(), OAuthError> {
    agent(state, session, client_id).await?;
    crate::service::registration::remove_client(state, client_id).await?;
    state.audit.record(
        AuditEvent::new("agent.delete", Outcome::Success)
            .client(client_id)
            .owner(Some(&session.owner_id))
            .source(&caller.source.to_string())
            .request(&caller.request_id),
    );
    Ok(())
}

/// The owner's e-mail address, for notifications.
pub async fn owner_email(state: &AppState, owner_id: &str) -> Option<String> {
    let o = owner_id.to_owned();
    state
        .store
        .read(move |c| owners::find(c, &o))
        .await
        .ok()
        .flatten()
        .and_then(|o| o.email)
}

/// Replaces an owned agent's grants with `chosen` (audience → scopes), each checked against
/// the skill's scopes.
pub async fn set_grants(
    state: &AppState,
    caller: &Caller,
    session: &Session,
    client_id: &str,
    chosen: Vec<(String, String)>,
) -> Result<(), OAuthError> {
    agent(state, session, client_id).await?;
    let checked = crate::service::admin::check_grants(state, chosen).await?;
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
        AuditEvent::new("agent.grants", Outcome::Success)
            .client(client_id)
            .owner(Some(&session.owner_id))
            .source(&caller.source.to_string())
            .request(&caller.request_id)
            .detail(format!("{n} grant(s)")),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_cannot_leave_the_site() {
        assert_eq!(
            safe_return_to(Some("/claim?user_code=AB")),
            "/claim?user_code=AB"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/console");
    }
}
