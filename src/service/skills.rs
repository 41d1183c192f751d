//! Skills: the resource servers Patron issues tokens for, each identified by its audience
//! URI, and the check every grant goes through against a skill's scopes.

use crate::clock;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::Audience;
use crate::oauth::scope::{self, Scopes};
use crate::service::peers::{self, Notice};
use crate::service::{Caller, store_failure};
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
    /// Audiences that client may exchange tokens toward (at most
    /// [`MAX_DELEGATE_AUDIENCES`]); empty, the default, allows no delegation.
    #[serde(default)]
    pub delegate_audiences: Vec<String>,
}

/// Longest list of downstream audiences one skill may delegate to.
pub const MAX_DELEGATE_AUDIENCES: usize = 20;

/// Validates a skill's downstream audiences (absolute URIs without a fragment or
/// whitespace, at most [`MAX_DELEGATE_AUDIENCES`]) into their stored, space-separated form,
/// duplicates dropped and order kept.
fn delegate_audiences(list: &[String]) -> Result<String, OAuthError> {
    if list.len() > MAX_DELEGATE_AUDIENCES {
        return Err(bad(
            format!("at most {MAX_DELEGATE_AUDIENCES} delegate_audiences"),
            "skill_delegates_too_many",
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(list.len());
    for a in list {
        // Whitespace separates the stored entries; a URI never contains it (RFC 3986).
        let parsed = Audience::parse(a)
            .ok()
            .filter(|_| !a.chars().any(char::is_whitespace));
        let Some(parsed) = parsed else {
            return Err(bad(
                "each of delegate_audiences must be an absolute URI without a fragment or whitespace",
                "skill_delegate_invalid",
            ));
        };
        let parsed: String = parsed.into();
        if !kept.contains(&parsed) {
            kept.push(parsed);
        }
    }
    Ok(kept.join(" "))
}

/// Creates or replaces a skill on behalf of an owner (`None`: an administrator). An owner
/// may only replace skills they created.
pub async fn put(
    state: &AppState,
    caller: &Caller,
    input: SkillInput,
    owner: Option<&str>,
) -> Result<SkillRow, OAuthError> {
    let result = put_inner(state, input, owner).await;
    let ev = caller.audit_result("skill.put", &result);
    state.audit.record(match &result {
        Ok(s) => ev.audience(&s.audience),
        Err(_) => ev,
    });
    result
}

async fn put_inner(
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
    let delegates = delegate_audiences(&input.delegate_audiences)?;
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
        owner_id: owner.map(str::to_owned),
        created_at: now,
        updated_at: now,
        client_id: input.client_id.clone(),
        delegate_audiences: delegates,
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
pub async fn list(state: &AppState) -> Result<Vec<SkillRow>, OAuthError> {
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
        let wanted = Scopes::parse(&scopes)
            .ok()
            .filter(|w| !w.is_empty() && scope::is_subset(&w.tokens(), &offered));
        let Some(wanted) = wanted else {
            return Err(bad(
                format!("scopes for {aud} must be one or more of: {}", skill.scopes),
                "grant_scope_unknown",
            ));
        };
        checked.push((aud, wanted.into()));
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|i| (*i).to_owned()).collect()
    }

    #[test]
    fn delegate_audiences_are_absolute_uris_stored_space_separated() {
        assert_eq!(delegate_audiences(&[]).unwrap(), "");
        assert_eq!(
            delegate_audiences(&list(&[
                "https://mail.example/api",
                "https://b.example/",
                "https://mail.example/api",
            ]))
            .unwrap(),
            "https://mail.example/api https://b.example/"
        );
        for bad in [
            "mail.example",
            "https://mail.example/a b",
            "https://mail.example/#f",
            "",
        ] {
            assert_eq!(
                delegate_audiences(&list(&[bad])).unwrap_err().reason(),
                "skill_delegate_invalid",
                "{bad:?}"
            );
        }
        let many: Vec<String> = (0..=MAX_DELEGATE_AUDIENCES)
            .map(|i| format!("https://s{i}.example/"))
            .collect();
        assert_eq!(
            delegate_audiences(&many).unwrap_err().reason(),
            "skill_delegates_too_many"
        );
        assert!(delegate_audiences(&many[1..]).is_ok());
    }
}
