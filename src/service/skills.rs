//! Skills: the resource servers Patron issues tokens for, each identified by its audience
//! URI, and the check every grant goes through against a skill's scopes.
//!
//! # Audiences
//!
//! A new skill's audience is stored in its canonical form ([`Audience::canonical`]), and a
//! skill whose audience is a variant of an existing one (`HTTPS://API.BANK.EXAMPLE` beside
//! `https://api.bank.example/`) is refused as `audience_duplicate`, unless it is that skill
//! replaced by its operator. Audiences stored before this rule stay as they were.
//!
//! An owner's skill is unusable until its audience is proven ([`check`]): the resource
//! publishes RFC 9728 metadata naming the audience and Patron. Each attempt is audited as
//! `skill.proof`; the last one decides.

use crate::clock;
use crate::config::Mode;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::grant_policy::GrantPolicy;
use crate::oauth::ids::Audience;
use crate::oauth::resource_metadata::{self, ProofError};
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
    /// Audiences that client may exchange tokens toward (at most
    /// [`MAX_DELEGATE_AUDIENCES`]); empty, the default, allows no delegation.
    #[serde(default)]
    pub delegate_audiences: Vec<String>,
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
    let raw = input.audience.trim();
    let all = state.store.read(skills::all).await.map_err(store_failure)?;
    // The name of a skill as stored is that skill, canonical or not (an audience stored
    // before audiences were canonical stays as it is); anything else must be canonical.
    let audience: String = match all.iter().find(|s| s.audience == raw) {
        Some(e) => e.audience.clone(),
        None => Audience::canonical(raw, state.config.mode == Mode::Development)?.into(),
    };
    let existing = same_resource(&all, &audience).cloned();
    if let Some(e) = &existing {
        if owner.is_some() && e.owner_id.as_deref() != owner {
            return Err(if e.audience == raw {
                bad(
                    "a skill with this audience already exists and is not yours",
                    "skill_not_owned",
                )
            } else {
                bad(
                    format!(
                        "this audience names the same resource as the existing skill {}",
                        e.audience
                    ),
                    "audience_duplicate",
                )
            });
        }
    }
    // Replacing a skill keeps the audience it is stored under.
    let audience = existing.as_ref().map_or(audience, |e| e.audience.clone());
    let (grant_policy, policy_needs_review) = match (&input.grantable_by, &existing) {
        (Some(entries), _) => (parse_policy(entries)?, false),
        (None, Some(e)) => (e.grant_policy.clone(), e.policy_needs_review),
        (None, None) => (GrantPolicy::default(), false),
    };
    // A skill named like Patron itself would receive every agent token as its audience.
    if Audience::key(&audience).trim_end_matches('/')
        == Audience::key(&state.issuer).trim_end_matches('/')
    {
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
    // An owner's skill proves its audience whenever its owner writes it; an admin's
    // needs no proof and keeps what it had.
    let (proven_at, proof_error) = match owner {
        Some(o) => match attempt_proof(state, caller, &audience, Some(o)).await {
            Ok(()) => (Some(clock::now()), None),
            Err(e) => (None, Some(e.to_string())),
        },
        None => existing
            .as_ref()
            .map_or((None, None), |e| (e.proven_at, e.proof_error.clone())),
    };
    let now = clock::now();
    let row = SkillRow {
        audience,
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
        proven_at,
        proof_error,
        delegate_audiences: delegates,
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

/// The stored skill for the same resource as `audience`: stored under exactly that name,
/// else under a variant of it.
fn same_resource<'a>(all: &'a [SkillRow], audience: &str) -> Option<&'a SkillRow> {
    let key = Audience::key(audience);
    all.iter()
        .find(|s| s.audience == audience)
        .or_else(|| all.iter().find(|s| Audience::key(&s.audience) == key))
}

/// The outcome of checking a skill's audience.
#[derive(Debug)]
pub struct Proof {
    /// The skill, with the outcome recorded.
    pub skill: SkillRow,
    /// Why it is not proven, when it is not.
    pub failure: Option<ProofError>,
}

/// Checks again whether the resource at a skill's audience publishes RFC 9728 metadata
/// naming it and Patron, and records the outcome (a failure makes an owner's skill
/// unusable again), on every replica. `owner`: the owner asking, who must be the skill's
/// (`None`: an administrator, who may check any). The document is fetched afresh.
pub async fn check(
    state: &AppState,
    caller: &Caller,
    audience: &str,
    owner: Option<&str>,
) -> Result<Proof, OAuthError> {
    let result = check_inner(state, caller, audience, owner).await;
    if let Err(e) = &result {
        // A proof attempt audits itself; this is a refusal before one.
        state.audit.record(
            caller
                .audit("skill.proof", crate::audit::Outcome::Failure)
                .reason(e.reason())
                .owner(owner),
        );
    }
    result
}

async fn check_inner(
    state: &AppState,
    caller: &Caller,
    audience: &str,
    owner: Option<&str>,
) -> Result<Proof, OAuthError> {
    let all = state.store.read(skills::all).await.map_err(store_failure)?;
    let Some(skill) = same_resource(&all, audience.trim()) else {
        return Err(bad("no skill has this audience", "skill_unknown"));
    };
    if owner.is_some() && skill.owner_id.as_deref() != owner {
        return Err(bad("this skill is not yours", "skill_not_owned"));
    }
    let mut skill = skill.clone();
    let failure = attempt_proof(state, caller, &skill.audience, owner)
        .await
        .err();
    skill.proven_at = failure.is_none().then(clock::now);
    skill.proof_error = failure.as_ref().map(ToString::to_string);
    let (aud, at, error) = (
        skill.audience.clone(),
        skill.proven_at,
        skill.proof_error.clone(),
    );
    state
        .store
        .write(move |c| skills::record_proof(c, &aud, at, error.as_deref()))
        .await
        .map_err(store_failure)?;
    peers::announce(state, Notice::Skills).await;
    Ok(Proof { skill, failure })
}

/// Fetches and verifies the audience's metadata, auditing the attempt (`skill.proof`).
async fn attempt_proof(
    state: &AppState,
    caller: &Caller,
    audience: &str,
    owner: Option<&str>,
) -> Result<(), ProofError> {
    let result = prove(state, audience).await;
    let ev = caller
        .audit(
            "skill.proof",
            if result.is_ok() {
                crate::audit::Outcome::Success
            } else {
                crate::audit::Outcome::Failure
            },
        )
        .audience(audience)
        .owner(owner);
    state.audit.record(match &result {
        Ok(()) => ev,
        Err(e) => ev.reason(e.reason()).detail(e.to_string()),
    });
    result
}

async fn prove(state: &AppState, audience: &str) -> Result<(), ProofError> {
    let url = resource_metadata::metadata_url(audience)?;
    let doc = state
        .fetcher
        .fetch_json_uncached(&url)
        .await
        .map_err(|e| ProofError::Fetch {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    resource_metadata::verify(&doc, url.as_str(), audience, &state.issuer)
}

/// What a skill's resource publishes to prove its audience.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Where (RFC 9728 §3.1).
    pub url: String,
    /// The JSON document, pretty-printed.
    pub document: String,
}

/// What the resource at `audience` must publish to name this Patron; `None` for an
/// audience that is not a URL with a host.
pub fn publication(state: &AppState, audience: &str) -> Option<Publication> {
    let url = resource_metadata::metadata_url(audience).ok()?;
    let doc = resource_metadata::document(audience, &state.issuer);
    Some(Publication {
        url: url.to_string(),
        document: serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string()),
    })
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
        // A variant of a skill's audience names that skill; grants keep its stored name.
        let aud = skill.audience.clone();
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
