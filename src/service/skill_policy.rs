//! Skill operators and grant policies: who may be granted a skill, with which scopes, and
//! what its operator (the owner who created it, or an admin for an admin's skill) may do:
//! change the policy, see who holds grants, revoke them.
//!
//! Every path that creates or widens a grant — console claim and grant editing, enrollment
//! tokens at minting and at use, the admin API approve — goes through [`admitted_scopes`]
//! (via `skills::check_grants`). Narrowing a policy trims the grants it no longer admits
//! and revokes the tokens issued under them, on every replica, as suspension does. The
//! token endpoint needs no policy check: the grants it reads are kept within the policy.

use serde_json::{Value, json};

use crate::audit::Outcome;
use crate::clock;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::grant_policy::Grantee;
use crate::oauth::ids::Audience;
use crate::oauth::scope;
use crate::service::peers::{self, Notice};
use crate::service::{Actor, Caller, skills as skill_service, store_failure};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::clients::{self, ClientRow};
use crate::store::models::grants::{self, GrantRow};
use crate::store::models::owners;
use crate::store::models::skills::{self, SkillRow};

/// Whether `owner_id` operates `skill`: its creator, or an admin for an admin's skill.
pub fn is_operator(state: &AppState, skill: &SkillRow, owner_id: &str) -> bool {
    match &skill.owner_id {
        Some(creator) => creator == owner_id,
        None => state.config.console.admins.iter().any(|a| a == owner_id),
    }
}

/// Whether `actor` may manage `skill` (change it, see and revoke its grants).
pub fn may_manage(state: &AppState, skill: &SkillRow, actor: Actor<'_>) -> bool {
    actor.sees_all()
        || actor
            .owner_id()
            .is_some_and(|o| is_operator(state, skill, o))
}

/// An owner's verified e-mail address, for domain entries.
async fn owner_email(state: &AppState, owner_id: &str) -> Result<Option<String>, OAuthError> {
    let o = owner_id.to_owned();
    Ok(state
        .store
        .read(move |c| owners::find(c, &o))
        .await
        .map_err(store_failure)?
        .and_then(|row| row.email))
}

/// The scopes of `skill` that `owner_id` (with verified e-mail `email`) may be granted.
pub fn admitted_scopes(
    state: &AppState,
    skill: &SkillRow,
    owner_id: &str,
    email: Option<&str>,
) -> Vec<String> {
    let who = Grantee {
        owner_id,
        email,
        is_operator: is_operator(state, skill, owner_id),
    };
    skill
        .grant_policy
        .admitted(&who, &scope::parse(&skill.scopes))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The check of one grant for `owner_id`: `wanted` (valid, non-empty, offered) must lie
/// within what the skill's policy admits them to. Refusals are audited
/// (`grant_not_permitted`).
pub async fn check_admitted(
    state: &AppState,
    caller: &Caller,
    skill: &SkillRow,
    owner_id: &str,
    wanted: &[&str],
) -> Result<(), OAuthError> {
    let email = owner_email(state, owner_id).await?;
    let admitted = admitted_scopes(state, skill, owner_id, email.as_deref());
    if wanted.iter().all(|w| admitted.iter().any(|a| a == w)) {
        return Ok(());
    }
    state.audit.record(
        caller
            .audit("grant.refused", Outcome::Failure)
            .reason("grant_not_permitted")
            .owner(Some(owner_id))
            .audience(&skill.audience),
    );
    Err(OAuthError::new(
        ErrorKind::InvalidRequest,
        if admitted.is_empty() {
            format!("the policy of {} does not admit this owner", skill.audience)
        } else {
            format!(
                "the policy of {} admits this owner only to: {}",
                skill.audience,
                admitted.join(" ")
            )
        },
        "grant_not_permitted",
    ))
}

/// A skill an owner may grant, with the scopes they may grant of it.
pub struct Grantable {
    /// The skill.
    pub skill: SkillRow,
    /// The scopes admitted, space-separated.
    pub scopes: String,
}

/// The skills `owner_id` may grant their agents, each with the admitted scopes (the
/// console shows only these).
pub async fn grantable(state: &AppState, owner_id: &str) -> Result<Vec<Grantable>, OAuthError> {
    let email = owner_email(state, owner_id).await?;
    Ok(all_skills(state)
        .await?
        .into_iter()
        .filter_map(|skill| {
            let scopes = admitted_scopes(state, &skill, owner_id, email.as_deref());
            (!scopes.is_empty()).then(|| Grantable {
                scopes: scopes.join(" "),
                skill,
            })
        })
        .collect())
}

fn not_found() -> OAuthError {
    OAuthError::new(ErrorKind::NotFound, "no such skill", "skill_unknown")
}

async fn managed_skill(
    state: &AppState,
    actor: Actor<'_>,
    audience: &str,
) -> Result<SkillRow, OAuthError> {
    let aud = Audience::parse(audience)?;
    let found = state
        .store
        .read(move |c| skills::find(c, &aud))
        .await
        .map_err(store_failure)?;
    match found {
        Some(skill) if may_manage(state, &skill, actor) => Ok(skill),
        _ => Err(not_found()),
    }
}

/// Sets a skill's grant policy (its operator or an admin only), then trims the grants it
/// no longer admits and revokes the tokens issued under them.
pub async fn set_policy(
    state: &AppState,
    caller: &Caller,
    actor: Actor<'_>,
    audience: &str,
    entries: &[String],
) -> Result<Value, OAuthError> {
    let result = async {
        let mut skill = managed_skill(state, actor, audience).await?;
        skill.grant_policy = skill_service::parse_policy(entries)?;
        skill.policy_needs_review = false;
        skill.updated_at = clock::now();
        let row = skill.clone();
        state
            .store
            .write(move |c| skills::upsert(c, &row))
            .await
            .map_err(store_failure)?;
        peers::announce(state, Notice::Skills).await;
        let trimmed = enforce(state, caller, &skill).await?;
        Ok::<_, OAuthError>((skill, trimmed))
    }
    .await;
    state.audit.record(
        caller
            .audit_result("skill.policy", &result)
            .owner(actor.owner_id())
            .audience(audience)
            .detail(match &result {
                Ok((s, n)) => format!(
                    "policy [{}]; {n} grant(s) narrowed or revoked",
                    s.grant_policy.entries_text().join(", ")
                ),
                Err(_) => String::new(),
            }),
    );
    let (skill, trimmed) = result?;
    Ok(json!({
        "audience": skill.audience,
        "grantable_by": skill.grant_policy.entries_text(),
        "grants_changed": trimmed,
    }))
}

/// Brings the grants of `skill` within its policy: each grant keeps only the scopes its
/// agent's owner is admitted to, or goes; the agents concerned lose every token issued so
/// far (on every replica). Returns how many grants changed.
pub async fn enforce(
    state: &AppState,
    caller: &Caller,
    skill: &SkillRow,
) -> Result<usize, OAuthError> {
    let aud = skill.audience.clone();
    let held: Vec<(GrantRow, Option<ClientRow>, Option<String>)> = state
        .store
        .read(move |c| {
            let mut out = Vec::new();
            for g in grants::for_audience(c, &aud)? {
                let client = clients::find(c, &g.client_id)?;
                let email = match client.as_ref().and_then(|r| r.owner_id.as_deref()) {
                    Some(o) => owners::find(c, o)?.and_then(|o| o.email),
                    None => None,
                };
                out.push((g, client, email));
            }
            Ok::<_, StoreError>(out)
        })
        .await
        .map_err(store_failure)?;
    let mut changes: Vec<(String, Option<String>)> = Vec::new();
    for (grant, client, email) in &held {
        let owner = client.as_ref().and_then(|c| c.owner_id.as_deref());
        let admitted = match owner {
            Some(o) => {
                // Only scopes the policy governs are trimmed: a granted scope the skill no
                // longer offers is left alone (it is not issued while not offered).
                let who = Grantee {
                    owner_id: o,
                    email: email.as_deref(),
                    is_operator: is_operator(state, skill, o),
                };
                skill
                    .grant_policy
                    .admitted(&who, &scope::parse(&grant.scopes))
                    .join(" ")
            }
            None => String::new(),
        };
        if admitted != grant.scopes {
            changes.push((
                grant.client_id.clone(),
                (!admitted.is_empty()).then_some(admitted),
            ));
        }
    }
    if changes.is_empty() {
        return Ok(0);
    }
    let now = clock::now();
    let (aud, writes) = (skill.audience.clone(), changes.clone());
    state
        .store
        .write(move |c| {
            for (cid, scopes) in &writes {
                match scopes {
                    Some(s) => grants::upsert(c, cid, &aud, s, now)?,
                    None => {
                        grants::delete(c, cid, &aud)?;
                    }
                }
                clients::revoke_tokens_before(c, cid, now)?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map_err(store_failure)?;
    for (cid, scopes) in &changes {
        peers::announce(state, Notice::Client(cid.clone())).await;
        state.audit.record(
            caller
                .audit("grant.revoke", Outcome::Success)
                .reason("policy_narrowed")
                .client(cid)
                .audience(&skill.audience)
                .detail(match scopes {
                    Some(s) => format!("narrowed to {s}"),
                    None => "revoked".to_owned(),
                }),
        );
    }
    Ok(changes.len())
}

/// A grant holder as the skill's operator sees it.
pub struct Holder {
    /// The grant.
    pub grant: GrantRow,
    /// The agent's owner.
    pub owner_id: Option<String>,
    /// The agent's status.
    pub status: Option<&'static str>,
}

/// The skill and who holds grants for it (its operator or an admin only).
pub async fn holders(
    state: &AppState,
    actor: Actor<'_>,
    audience: &str,
) -> Result<(SkillRow, Vec<Holder>), OAuthError> {
    let skill = managed_skill(state, actor, audience).await?;
    let aud = skill.audience.clone();
    let list = state
        .store
        .read(move |c| {
            let mut out = Vec::new();
            for grant in grants::for_audience(c, &aud)? {
                let client = clients::find(c, &grant.client_id)?;
                out.push(Holder {
                    owner_id: client.as_ref().and_then(|r| r.owner_id.clone()),
                    status: client.as_ref().map(|r| r.status.as_str()),
                    grant,
                });
            }
            Ok::<_, StoreError>(out)
        })
        .await
        .map_err(store_failure)?;
    Ok((skill, list))
}

/// Revokes one agent's grant for a skill (its operator or an admin only), and the tokens
/// issued under it.
pub async fn revoke_grant(
    state: &AppState,
    caller: &Caller,
    actor: Actor<'_>,
    audience: &str,
    client_id: &str,
) -> Result<(), OAuthError> {
    let result = async {
        let skill = managed_skill(state, actor, audience).await?;
        let (aud, cid, now) = (skill.audience.clone(), client_id.to_owned(), clock::now());
        let removed = state
            .store
            .write(move |c| {
                let removed = grants::delete(c, &cid, &aud)?;
                if removed {
                    clients::revoke_tokens_before(c, &cid, now)?;
                }
                Ok::<_, StoreError>(removed)
            })
            .await
            .map_err(store_failure)?;
        if !removed {
            return Err(OAuthError::new(
                ErrorKind::NotFound,
                "that agent holds no grant for this skill",
                "grant_unknown",
            ));
        }
        peers::announce(state, Notice::Client(client_id.to_owned())).await;
        Ok(())
    }
    .await;
    state.audit.record(
        caller
            .audit_result("grant.revoke", &result)
            .client(client_id)
            .owner(actor.owner_id())
            .audience(audience)
            .detail("by the skill's operator"),
    );
    result
}

async fn all_skills(state: &AppState) -> Result<Vec<SkillRow>, OAuthError> {
    state.store.read(skills::all).await.map_err(store_failure)
}

/// The skills `actor` manages (all of them for an admin).
pub async fn operated(state: &AppState, actor: Actor<'_>) -> Result<Vec<SkillRow>, OAuthError> {
    let mut all = all_skills(state).await?;
    all.retain(|s| may_manage(state, s, actor));
    Ok(all)
}

/// Skills that predate grant policies and still admit anyone until their operator picks a
/// policy (flagged at startup and in the console).
pub async fn needing_review(state: &AppState) -> Result<Vec<String>, OAuthError> {
    Ok(all_skills(state)
        .await?
        .into_iter()
        .filter(|s| s.policy_needs_review)
        .map(|s| s.audience)
        .collect())
}
