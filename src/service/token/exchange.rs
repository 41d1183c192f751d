//! Token exchange (RFC 8693): an agent trades its token for a skill token, or a skill
//! trades a token it received for one to another skill (delegation, recorded in `act`).
//! Also the validation of tokens Patron issued, which exchange and introspection share.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Issued, err, issue, known_skill, narrow_scopes, require_binding, still_offered};
use crate::clock::UnixTime;
use crate::jose::access_token::{self, AccessTokenClaims, Confirmation};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::secret::Secret;
use crate::service::directory::ClientRecord;
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::models::clients::ClientStatus;

fn act_depth(act: Option<&Value>) -> usize {
    let mut depth = 0;
    let mut cur = act;
    while let Some(a) = cur {
        depth += 1;
        cur = a.get("act");
    }
    depth
}

/// The scopes of the subject token that bound an exchange toward `target`: its own scopes
/// when it is for that same audience, else none. Scope names belong to one resource's
/// vocabulary (`files:read` means nothing to a mail skill), so across skills, and from an
/// agent token, only the agent's grant for the target decides.
fn same_audience_scopes<'a>(
    subject_aud: &str,
    subject_scope: Option<&'a str>,
    target: &str,
) -> Option<&'a str> {
    (subject_aud == target).then_some(subject_scope.unwrap_or(""))
}

/// Whose standing a token depends on.
#[derive(Clone, Copy)]
enum Holder {
    /// The agent in `sub`.
    Agent,
    /// The client that requested it on the agent's behalf (`client_id` ≠ `sub`).
    Delegate,
}

/// `record` if it exists, is active and has not revoked tokens issued at `iat`.
fn holder_in_good_standing(
    record: Option<Arc<ClientRecord>>,
    iat: UnixTime,
    holder: Holder,
) -> Result<Arc<ClientRecord>, OAuthError> {
    let who = match holder {
        Holder::Agent => "the token's agent",
        Holder::Delegate => "the client holding the token",
    };
    let refuse = |state: &str, agent: &'static str, delegate: &'static str| {
        let reason = match holder {
            Holder::Agent => agent,
            Holder::Delegate => delegate,
        };
        err(ErrorKind::InvalidGrant, format!("{who} {state}"), reason)
    };
    let Some(record) = record else {
        return Err(refuse(
            "no longer exists",
            "agent_deleted",
            "delegate_deleted",
        ));
    };
    match record.status {
        ClientStatus::Active => {}
        ClientStatus::Suspended => {
            return Err(refuse(
                "is suspended",
                "agent_suspended",
                "delegate_suspended",
            ));
        }
        ClientStatus::Pending => {
            return Err(refuse(
                "is not approved",
                "agent_pending",
                "delegate_pending",
            ));
        }
    }
    if record.revoked_at(iat) {
        let reason = match holder {
            Holder::Agent => "token_revoked",
            Holder::Delegate => "delegate_revoked",
        };
        return Err(err(
            ErrorKind::InvalidGrant,
            "the token has been revoked",
            reason,
        ));
    }
    Ok(record)
}

/// Validates a token Patron issued, including revocation and the state of its agent and,
/// for a delegated token, of the delegate that holds it.
pub async fn validate_issued(
    state: &AppState,
    token: &str,
    now: UnixTime,
) -> Result<(Arc<AccessTokenClaims>, Arc<ClientRecord>), OAuthError> {
    let ring = state.keys.ring();
    let claims = state
        .verified_tokens
        .verify(token, &ring.public, &state.issuer, now)
        .map_err(|r| {
            err(
                ErrorKind::InvalidGrant,
                format!("subject_token: {}", r.description()),
                r.as_str(),
            )
        })?;
    let revoked = std::iter::once(&claims.jti)
        .chain(claims.patron_chain.iter())
        .any(|j| state.revocations.is_revoked(j));
    if revoked {
        return Err(err(
            ErrorKind::InvalidGrant,
            "the token has been revoked",
            "token_revoked",
        ));
    }
    let agent = state
        .directory
        .client(&state.store, claims.agent())
        .await
        .map_err(store_failure)?;
    let agent = holder_in_good_standing(agent, claims.iat, Holder::Agent)?;
    // A delegate (the skill client that exchanged it, recorded in `act`) holds the token
    // too: suspending, deleting or revoking the delegate ends it as well.
    if claims.client_id != claims.agent() {
        let delegate = state
            .directory
            .client(&state.store, &claims.client_id)
            .await
            .map_err(store_failure)?;
        holder_in_good_standing(delegate, claims.iat, Holder::Delegate)?;
    }
    Ok((claims, agent))
}

/// Exchanges `subject_token` for a token to `target`, on behalf of `requester`.
pub(super) async fn grant(
    state: &AppState,
    requester: &ClientRecord,
    subject_token: &Secret,
    target: &str,
    scope: Option<String>,
    jkt: Option<String>,
    now: UnixTime,
) -> Result<Issued, OAuthError> {
    let (subject, agent) = validate_issued(state, subject_token.expose(), now).await?;
    let skill = known_skill(state, target).await?;

    // Who may exchange: the agent itself, or the skill the subject token was issued to
    // (delegation, recorded in `act`).
    let act = if requester.client_id == subject.agent() {
        if let (Some(cnf), Some(presented)) = (&subject.cnf, &jkt) {
            if cnf.jkt != *presented {
                return Err(err(
                    ErrorKind::InvalidDpopProof,
                    "the DPoP proof must be made with the key the subject token is bound to",
                    "dpop_key_mismatch",
                ));
            }
        } else if subject.cnf.is_some() {
            return Err(err(
                ErrorKind::InvalidDpopProof,
                "the subject token is DPoP-bound: prove possession of its key",
                "dpop_required",
            ));
        }
        subject.act.clone()
    } else {
        if subject.for_person() {
            // The delegate would become the token's client and hide the agent a person
            // approved; only the agent itself exchanges such tokens.
            return Err(err(
                ErrorKind::InvalidGrant,
                "a token a person approved can be exchanged by its agent only",
                "exchange_not_holder",
            ));
        }
        let subject_skill = state
            .directory
            .skill(&state.store, &subject.aud)
            .await
            .map_err(store_failure)?;
        let is_delegate = subject_skill
            .as_ref()
            .and_then(|s| s.client_id.as_deref())
            .is_some_and(|c| c == requester.client_id);
        if !is_delegate {
            return Err(err(
                ErrorKind::InvalidGrant,
                "only the token's agent, or the skill it was issued to, may exchange it",
                "exchange_not_holder",
            ));
        }
        // A delegate reaches only the downstream audiences its skill's operator listed.
        if !subject_skill.is_some_and(|s| s.may_delegate_to(&skill.audience)) {
            return Err(err(
                ErrorKind::InvalidTarget,
                "this skill may not delegate to that resource",
                "delegation_not_allowed",
            ));
        }
        let mut act = Map::new();
        act.insert("sub".into(), json!(requester.client_id));
        if let Some(prior) = &subject.act {
            act.insert("act".into(), prior.clone());
        }
        Some(Value::Object(act))
    };
    if act_depth(act.as_ref()) > state.config.tokens.max_exchange_depth {
        return Err(err(
            ErrorKind::InvalidGrant,
            "the delegation chain is too deep",
            "chain_too_deep",
        ));
    }
    let granted = agent.grants.get(&skill.audience).ok_or_else(|| {
        err(
            ErrorKind::InvalidTarget,
            "the agent has not been granted that resource",
            "grant_missing",
        )
    })?;
    let held = same_audience_scopes(&subject.aud, subject.scope.as_deref(), &skill.audience);
    let granted = still_offered(granted, &skill.scopes);
    let scope = narrow_scopes(scope.as_deref(), &granted, held)?;
    require_binding(requester, skill.require_dpop, &jkt)?;
    let owner = agent
        .owner_id
        .clone()
        .unwrap_or_else(|| subject.owner.clone());
    let mut chain = subject.patron_chain.clone();
    chain.push(subject.jti.clone());
    let exp = subject.exp.min(now + skill.ttl_secs);
    // The subject token verifies until `exp` + skew; a token cut to its `exp` would be born
    // expired (and `expires_in` negative) within that window.
    if exp <= now {
        return Err(err(
            ErrorKind::InvalidGrant,
            "the subject token has expired",
            "subject_token_expired",
        ));
    }
    let claims = AccessTokenClaims {
        iss: state.issuer.clone(),
        sub: subject.sub.clone(),
        aud: skill.audience.clone(),
        client_id: requester.client_id.clone(),
        scope,
        iat: now,
        exp,
        jti: access_token::new_jti(),
        owner,
        cnf: jkt.map(|jkt| Confirmation { jkt }),
        act,
        patron_chain: chain,
    };
    issue(state, claims, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn act_depth_counts_nesting() {
        assert_eq!(act_depth(None), 0);
        assert_eq!(act_depth(Some(&json!({"sub": "a"}))), 1);
        assert_eq!(
            act_depth(Some(&json!({"sub": "a", "act": {"sub": "b"}}))),
            2
        );
    }

    const FILES: &str = "https://files.example/api";
    const MAIL: &str = "https://mail.example/api";

    fn exchange_scopes(
        subject_aud: &str,
        subject_scope: &str,
        target: &str,
        granted: &[&str],
        requested: Option<&str>,
    ) -> Result<Option<String>, OAuthError> {
        let granted: Vec<String> = granted.iter().map(|g| (*g).to_owned()).collect();
        let held = same_audience_scopes(subject_aud, Some(subject_scope), target);
        narrow_scopes(requested, &granted, held)
    }

    #[test]
    fn scopes_of_another_skill_do_not_bound_an_exchange() {
        // A `files:read` token exchanged for the mail skill gets what the mail grant holds.
        assert_eq!(
            exchange_scopes(FILES, "files:read", MAIL, &["mail:send"], None)
                .unwrap()
                .as_deref(),
            Some("mail:send")
        );
        assert_eq!(
            exchange_scopes(FILES, "files:read", MAIL, &["mail:send"], Some("mail:send"))
                .unwrap()
                .as_deref(),
            Some("mail:send")
        );
        // Still never beyond that grant.
        assert_eq!(
            exchange_scopes(FILES, "files:read", MAIL, &["mail:send"], Some("mail:read"))
                .unwrap_err()
                .reason(),
            "scope_exceeds_grant"
        );
        // An agent token (audience: the issuer) does not bound it either.
        assert_eq!(
            same_audience_scopes("https://patron.example", Some("x"), MAIL),
            None
        );
    }

    #[test]
    fn a_same_audience_exchange_stays_within_the_subject_tokens_scopes() {
        let granted = ["files:read", "files:write"];
        assert_eq!(
            exchange_scopes(FILES, "files:read", FILES, &granted, Some("files:write"))
                .unwrap_err()
                .reason(),
            "scope_exceeds_grant"
        );
        assert_eq!(
            exchange_scopes(FILES, "files:read", FILES, &granted, None)
                .unwrap()
                .as_deref(),
            Some("files:read")
        );
        // A subject token without a scope bounds it to nothing.
        assert_eq!(same_audience_scopes(FILES, None, FILES), Some(""));
    }
}
