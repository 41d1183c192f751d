//! Skills: the resource servers Patron issues tokens for, each identified by its audience
//! URI, and the check every grant goes through against a skill's scopes.

use crate::clock;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::grant_policy::GrantPolicy;
use crate::oauth::ids::Audience;
use crate::oauth::scope::{self, Scopes};
use crate::service::peers::{self, Notice};
use crate::service::{Caller, skill_policy, store_failure};
use crate::state::AppState;
use crate::store::models::clients;
use crate::store::models::skills::{self, SkillRow};

fn bad(description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidRequest, description.into(), reason)
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
    /// Its grant policy entries (see `oauth::grant_policy`); `operator` alone, or no entry,
    /// admits only the operator. Absent on a replacement: the policy stays as it is;
    /// absent on a new skill: only the operator.
    #[serde(default)]
    pub grantable_by: Option<Vec<String>>,
}

/// Parses policy entries as the CLI, the console and the admin API give them (`operator`
/// stands for the empty policy).
pub fn parse_policy(entries: &[String]) -> Result<GrantPolicy, OAuthError> {
    let entries: Vec<&str> = entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty() && *e != "operator")
        .collect();
    GrantPolicy::parse(&entries)
        .map_err(|e| OAuthError::new(ErrorKind::InvalidRequest, e.to_string(), "policy_invalid"))
}

/// Creates or replaces a skill on behalf of an owner (`None`: an administrator). An owner
/// may only replace skills they created.
pub async fn put(
    state: &AppState,
    caller: &Caller,
    input: SkillInput,
    owner: Option<&str>,
) -> Result<SkillRow, OAuthError> {
    let result = put_inner(state, caller, input, owner).await;
    let ev = caller.audit_result("skill.put", &result);
    state.audit.record(match &result {
        Ok(s) => ev.audience(&s.audience),
        Err(_) => ev,
    });
    result
}

async fn put_inner(
    state: &AppState,
    caller: &Caller,
    input: SkillInput,
    owner: Option<&str>,
) -> Result<SkillRow, OAuthError> {
    let aud = input.audience.clone();
    let existing = state
        .store
        .read(move |c| skills::find(c, &aud))
        .await
        .map_err(store_failure)?;
    if let Some(o) = owner {
        if existing
            .as_ref()
            .is_some_and(|e| e.owner_id.as_deref() != Some(o))
        {
            return Err(bad(
                "a skill with this audience already exists and is not yours",
                "skill_not_owned",
            ));
        }
    }
    let (grant_policy, policy_needs_review) = match (&input.grantable_by, &existing) {
        (Some(entries), _) => (parse_policy(entries)?, false),
        (None, Some(e)) => (e.grant_policy.clone(), e.policy_needs_review),
        (None, None) => (GrantPolicy::default(), false),
    };
    let audience = Audience::parse(&input.audience)?;
    // A skill named like Patron itself would receive every agent token as its audience.
    if audience.trim_end_matches('/') == state.issuer {
        return Err(bad(
            "a skill's audience cannot be the issuer",
            "audience_is_issuer",
        ));
    }
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(bad(
            "name must be 1 to 200 printable characters",
            "skill_name_invalid",
        ));
    }
    let scopes = Scopes::parse(&input.scopes).map_err(|e| {
        bad(
            format!("scopes must be space-separated RFC 6749 scope tokens: {e}"),
            "scope_malformed",
        )
    })?;
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
        audience: audience.into(),
        name: name.to_owned(),
        scopes: scopes.into(),
        ttl_secs: ttl,
        require_dpop: input.require_dpop,
        // An admin changing an owner's skill leaves the owner its operator.
        owner_id: owner
            .map(str::to_owned)
            .or_else(|| existing.as_ref().and_then(|e| e.owner_id.clone())),
        created_at: now,
        updated_at: now,
        client_id: input.client_id.clone(),
        grant_policy,
        policy_needs_review,
    };
    let r = row.clone();
    state
        .store
        .write(move |c| skills::upsert(c, &r))
        .await
        .map_err(store_failure)?;
    peers::announce(state, Notice::Skills).await;
    // A new skill may find grants minted for it ahead of time (enrollment tokens): they
    // are brought within its policy like those of a narrowed one.
    if existing.is_none_or(|e| e.grant_policy != row.grant_policy) {
        skill_policy::enforce(state, caller, &row).await?;
    }
    Ok(row)
}

/// Lists skills.
pub async fn list(state: &AppState) -> Result<Vec<SkillRow>, OAuthError> {
    state.store.read(skills::all).await.map_err(store_failure)
}

/// Checks grants (audience → scopes) for `owner_id`'s agent against the skills: each skill
/// must exist, the scopes must be a non-empty subset of what it offers, and its grant
/// policy must admit the owner to them. Returns them normalised. Every path that creates
/// or widens grants (approval, the grants form, enrollment tokens) goes through here.
pub async fn check_grants(
    state: &AppState,
    caller: &Caller,
    owner_id: &str,
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
        let wanted = Scopes::parse(&scopes)
            .ok()
            .filter(|w| !w.is_empty() && scope::is_subset(&w.tokens(), &offered));
        let Some(wanted) = wanted else {
            return Err(bad(
                format!("scopes for {aud} must be one or more of: {}", skill.scopes),
                "grant_scope_unknown",
            ));
        };
        skill_policy::check_admitted(state, caller, &skill, owner_id, &wanted.tokens()).await?;
        checked.push((aud, wanted.into()));
    }
    Ok(checked)
}
