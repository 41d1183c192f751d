//! Console sessions: server-side, rotated at every login (no fixation), with idle and
//! absolute timeouts, and a CSRF token per session.

use crate::audit::Outcome;
use crate::clock;
use crate::crypto;
use crate::oauth::error::OAuthError;
use crate::oauth::ids::OwnerId;
use crate::service::{Actor, Caller, store_failure};
use crate::state::AppState;
use crate::store::models::sessions::{self, SessionOwner, SessionRow};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "patron_session";
/// Sessions are touched at most this often (not on every request).
const TOUCH_EVERY: i64 = 60;

/// A logged-in owner.
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the cookie value.
    pub id_hash: String,
    /// The owner.
    pub owner_id: OwnerId,
    /// How the page header names the owner: their name, else e-mail address, else id.
    pub owner_label: String,
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

    /// The authority this session acts with.
    pub fn actor(&self) -> Actor<'_> {
        Actor::Owner {
            owner_id: &self.owner_id,
            admin: self.admin,
        }
    }
}

/// Starts a session for `owner_id` (a fresh id at every login: no fixation). Returns the
/// cookie value.
pub async fn start(state: &AppState, owner_id: &OwnerId) -> Result<String, OAuthError> {
    let cookie = crypto::random_token("");
    let row = SessionRow {
        id_hash: crypto::sha256_hex(cookie.as_bytes()),
        owner_id: owner_id.to_string(),
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
pub async fn find(state: &AppState, cookie: &str) -> Result<Option<Session>, OAuthError> {
    if cookie.len() > 100 {
        return Ok(None);
    }
    let id_hash = crypto::sha256_hex(cookie.as_bytes());
    let h = id_hash.clone();
    let Some((row, owner)) = state
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
    let Ok(owner_id) = OwnerId::parse(&row.owner_id) else {
        tracing::warn!("a stored session names a malformed owner id; ignored");
        return Ok(None);
    };
    let admin = cfg.admins.contains(&row.owner_id);
    Ok(Some(Session {
        id_hash,
        owner_label: owner_label(owner, &row.owner_id),
        owner_id,
        csrf_token: row.csrf_token,
        admin,
    }))
}

/// The owner's name, else e-mail address, else id (blank values skipped).
fn owner_label(owner: Option<SessionOwner>, owner_id: &str) -> String {
    let owner = owner.unwrap_or(SessionOwner {
        display_name: None,
        email: None,
    });
    [owner.display_name, owner.email]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| owner_id.to_owned())
}

/// Ends a session.
pub async fn end(state: &AppState, session: &Session) -> Result<(), OAuthError> {
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
                && p.len() <= 4000 =>
        {
            p.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

/// Records a console form refused for a missing or wrong CSRF token.
pub fn csrf_refused(state: &AppState, caller: &Caller, session: &Session, path: &str) {
    state.audit.record(
        caller
            .audit("console.post", Outcome::Failure)
            .reason("csrf_invalid")
            .owner(Some(&session.owner_id))
            .detail(path.to_owned()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_owner_by_name_then_email_then_id() {
        let owner = |n: Option<&str>, e: Option<&str>| {
            Some(SessionOwner {
                display_name: n.map(str::to_owned),
                email: e.map(str::to_owned),
            })
        };
        assert_eq!(owner_label(owner(Some("Ada"), Some("a@x")), "dev:a"), "Ada");
        assert_eq!(owner_label(owner(Some(" "), Some("a@x")), "dev:a"), "a@x");
        assert_eq!(owner_label(owner(None, None), "dev:a"), "dev:a");
        assert_eq!(owner_label(None, "dev:a"), "dev:a");
    }

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
