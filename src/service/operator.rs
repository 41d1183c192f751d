//! The operator's credential, the admin token that guards the admin API (and so the
//! `patron admin` CLI), and the audit trail of the admin API: every request, whatever its
//! outcome, is one audit event naming the action, its target and the listener it came
//! through. The domain services it calls (agents, skills, owners, tokens) audit their own
//! events besides.
//!
//! The token is configured in clear (`admin.token`) or as an argon2id hash
//! (`admin.token_hash`). A hashed token costs one argon2id run, on the blocking pool, the
//! first time it is presented; its SHA-256 is then remembered, so later admin requests are
//! checked with one SHA-256 and a constant-time comparison. Wrong tokens never enter that
//! memory and always pay argon2id, bounded by [`crate::crypto::Argon2Pool`].

use crate::audit::Outcome;
use crate::config::AdminToken;
use crate::crypto::{constant_time_eq, sha256};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::secret::Secret;
use crate::service::Caller;
use crate::state::AppState;

/// Reason code of a missing or wrong admin token.
const TOKEN_INVALID: &str = "admin_token_invalid";
/// Reason code of a request where the admin API is not offered.
const API_DISABLED: &str = "admin_api_disabled";
/// Reason code of a path or method under `/admin/` that is no admin action.
const UNKNOWN_ROUTE: &str = "admin_route_unknown";
/// Longest target recorded in an audit event, in bytes (targets come from the request).
const MAX_TARGET_LEN: usize = 200;

/// Checks a presented admin token. Without a configured token the admin API does not
/// exist (404); a missing or wrong token is 401. Both are audited with the request (see
/// [`audit_request`]).
pub async fn check_admin_token(
    state: &AppState,
    presented: Option<&str>,
) -> Result<(), OAuthError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(disabled());
    };
    let ok = match (presented, expected) {
        (None, _) => false,
        (Some(t), AdminToken::Plain(e)) => constant_time_eq(t.as_bytes(), e.expose().as_bytes()),
        (Some(t), AdminToken::Argon2id(phc)) => matches_hash(state, t, phc).await,
    };
    if ok {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorKind::InvalidToken,
            "a valid admin token is required",
            TOKEN_INVALID,
        ))
    }
}

/// Whether `presented` matches the configured argon2id hash: from memory after the first
/// success, otherwise by argon2id on the blocking pool.
async fn matches_hash(state: &AppState, presented: &str, phc: &str) -> bool {
    let digest = sha256(presented.as_bytes());
    if let Some(known) = state.verified_admin_token.get() {
        if constant_time_eq(known, &digest) {
            return true;
        }
    }
    let ok = state
        .argon2
        .verify(Secret::from(presented), phc.to_owned())
        .await;
    if ok {
        // Only the configured token can match, so the first value set is the only one.
        let _ = state.verified_admin_token.set(digest);
    }
    ok
}

/// The answer where the admin API is not offered.
pub fn disabled() -> OAuthError {
    OAuthError::new(ErrorKind::NotFound, "no such endpoint", API_DISABLED)
}

/// An action of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction {
    /// `POST /admin/skills`.
    PutSkill,
    /// `GET /admin/skills`.
    ListSkills,
    /// `POST /admin/skills/policy`.
    SetSkillPolicy,
    /// `POST /admin/skills/check`.
    CheckSkill,
    /// `POST /admin/agents/{client_id}/approve`.
    ApproveAgent,
    /// `POST /admin/agents/{client_id}/suspend`.
    SuspendAgent,
    /// `POST /admin/agents/{client_id}/resume`.
    ResumeAgent,
    /// `POST /admin/owners/{owner_id}/revoke-all`.
    RevokeOwner,
    /// `POST /admin/tokens/revoke`.
    RevokeToken,
    /// Any other path or method under `/admin/`.
    Unknown,
}

impl AdminAction {
    /// The audit event of a request for this action.
    pub fn event(self) -> &'static str {
        match self {
            Self::PutSkill => "admin.skill.put",
            Self::ListSkills => "admin.skill.list",
            Self::SetSkillPolicy => "admin.skill.policy",
            Self::CheckSkill => "admin.skill.check",
            Self::ApproveAgent => "admin.agent.approve",
            Self::SuspendAgent => "admin.agent.suspend",
            Self::ResumeAgent => "admin.agent.resume",
            Self::RevokeOwner => "admin.owner.revoke_all",
            Self::RevokeToken => "admin.token.revoke",
            Self::Unknown => "admin.unknown",
        }
    }
}

/// What an admin request is about, as the request named it (unverified; truncated when
/// recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTarget {
    /// Nothing in particular (a listing), or not known (a body that did not parse).
    None,
    /// An agent's `client_id`.
    Agent(String),
    /// An owner id.
    Owner(String),
    /// A skill's audience.
    Skill(String),
    /// A token's `jti`.
    Token(String),
    /// The path of a request that is no admin action.
    Path(String),
}

/// The listener an admin request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The main listener (which serves the admin API when `admin.listen` is not set, and
    /// answers 404 under `/admin/` when it is).
    Public,
    /// The admin API's own listener (`admin.listen`).
    Admin,
}

impl Listener {
    fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Admin => "admin",
        }
    }
}

/// One request to the admin API.
#[derive(Debug, Clone)]
pub struct AdminRequest {
    /// What it asked for.
    pub action: AdminAction,
    /// What about.
    pub target: AdminTarget,
    /// Where it came in.
    pub listener: Listener,
}

fn bounded(s: &str) -> &str {
    if s.len() <= MAX_TARGET_LEN {
        return s;
    }
    let mut end = MAX_TARGET_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// How an admin request was answered.
#[derive(Debug, Clone, Copy)]
pub enum AdminOutcome<'a> {
    /// Done (a status below 400).
    Done,
    /// Refused with this error.
    Refused(&'a OAuthError),
    /// Refused with this status by the HTTP layer itself (no OAuth error attached).
    Status(u16),
}

/// Audits one admin API request with its outcome. Refused admin-token checks and requests
/// where the API is not offered are `admin.auth` failures; everything else is the action's
/// event ([`AdminAction::event`]). The target goes in the column that fits it (client,
/// owner, audience or `jti`); the detail names the action and the listener.
pub fn audit_request(
    state: &AppState,
    caller: &Caller,
    request: &AdminRequest,
    outcome: AdminOutcome<'_>,
) {
    let ev = match (request.action, outcome) {
        (_, AdminOutcome::Refused(e)) if [TOKEN_INVALID, API_DISABLED].contains(&e.reason()) => {
            caller
                .audit("admin.auth", Outcome::Failure)
                .reason(e.reason())
        }
        (AdminAction::Unknown, _) => caller
            .audit(AdminAction::Unknown.event(), Outcome::Failure)
            .reason(UNKNOWN_ROUTE),
        (action, AdminOutcome::Done) => caller.audit(action.event(), Outcome::Success),
        (action, AdminOutcome::Refused(e)) => caller
            .audit(action.event(), Outcome::Failure)
            .reason(e.reason()),
        (action, AdminOutcome::Status(_)) => caller
            .audit(action.event(), Outcome::Failure)
            .reason("admin_request_refused"),
    };
    let named = match &request.target {
        AdminTarget::Path(p) => bounded(p),
        _ => request.action.event(),
    };
    let mut detail = format!("{named} via {} listener", request.listener.as_str());
    if let AdminOutcome::Status(status) = outcome {
        detail.push_str(&format!(", status {status}"));
    }
    let ev = match &request.target {
        AdminTarget::None | AdminTarget::Path(_) => ev,
        AdminTarget::Agent(id) => ev.client(bounded(id)),
        AdminTarget::Owner(id) => ev.owner(Some(bounded(id))),
        AdminTarget::Skill(aud) => ev.audience(bounded(aud)),
        AdminTarget::Token(jti) => ev.jti(bounded(jti)),
    };
    state.audit.record(ev.detail(detail));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_targets_are_bounded_on_a_character_boundary() {
        assert_eq!(bounded("agt_1"), "agt_1");
        let long = "é".repeat(MAX_TARGET_LEN);
        let b = bounded(&long);
        assert!(b.len() <= MAX_TARGET_LEN && b.len() >= MAX_TARGET_LEN - 1);
        assert!(long.starts_with(b));
    }

    #[test]
    fn every_action_has_an_admin_event() {
        for a in [
            AdminAction::PutSkill,
            AdminAction::ListSkills,
            AdminAction::SetSkillPolicy,
            AdminAction::CheckSkill,
            AdminAction::ApproveAgent,
            AdminAction::SuspendAgent,
            AdminAction::ResumeAgent,
            AdminAction::RevokeOwner,
            AdminAction::RevokeToken,
            AdminAction::Unknown,
        ] {
            assert!(a.event().starts_with("admin."), "{a:?}");
        }
    }
}
