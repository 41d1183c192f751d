//! The grants of tokens a person approved at the authorization endpoint:
//! `authorization_code` (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6) and `refresh_token`
//! (RFC 6749 §6, rotated on every use as RFC 9700 §4.14.2 recommends).
//!
//! A code is single-use and bound to its client, redirect URI, PKCE challenge and grants;
//! its exchange starts a refresh family. A second use of a code or of a rotated refresh
//! token revokes the whole family, the access tokens issued in it included. Access tokens
//! follow RFC 9068: `sub` is the person, `client_id` the agent, `aud` one skill.
//!
//! Both grants read their row from the pool, check everything, then claim it in the
//! group-commit writer with a conditional update, so of two concurrent uses exactly one
//! wins, on any replica.

use super::{Issued, err, issue, known_skill, require_binding};
use crate::clock::UnixTime;
use crate::crypto::{random_id, random_token, sha256_hex};
use crate::jose::access_token::{self, AccessTokenClaims, Confirmation};
use crate::oauth::authorization::{self, AuthorizedGrants};
use crate::oauth::client_metadata::{GrantType, TokenEndpointAuthMethod};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::Audience;
use crate::secret::Secret;
use crate::service::directory::ClientRecord;
use crate::service::store_failure;
use crate::service::token::revocation::announce_revoked;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::refresh_tokens::{self, FamilyRow};
use crate::store::models::{authorization_codes, consents};

/// What a code or refresh request asks for, besides the credential.
pub(super) struct Wanted {
    /// `resource`.
    pub resource: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// The DPoP key the request proved, if any.
    pub jkt: Option<String>,
}

fn invalid_grant(description: &'static str, reason: &'static str) -> OAuthError {
    err(ErrorKind::InvalidGrant, description, reason)
}

fn corrupt(_: serde_json::Error) -> OAuthError {
    tracing::error!("a stored grant set is not valid JSON");
    OAuthError::server_error()
}

fn same_audience(granted: &str, requested: &str) -> bool {
    granted == requested || Audience::key(granted) == Audience::key(requested)
}

/// Revokes a family (and its access tokens) and tells the replicas.
async fn revoke_family(state: &AppState, family_id: String, reason: &'static str, now: UnixTime) {
    let revoked = state
        .store
        .write(move |c| refresh_tokens::revoke_family(c, &family_id, reason, now))
        .await;
    match revoked {
        Ok(jtis) => announce_revoked(state, jtis).await,
        Err(e) => tracing::error!(error = %e, "revoking a refresh family failed"),
    }
}

/// The token and, when the client may refresh, a new refresh token of `family`.
struct Minted {
    claims: AccessTokenClaims,
    refresh: Option<(String, String)>,
}

async fn mint(
    state: &AppState,
    client: &ClientRecord,
    owner: &str,
    grants: &AuthorizedGrants,
    wanted: &Wanted,
    now: UnixTime,
) -> Result<Minted, OAuthError> {
    let (aud, scopes) = authorization::select(
        grants,
        wanted.resource.as_deref(),
        wanted.scope.as_deref(),
        same_audience,
    )?;
    let skill = known_skill(state, &aud).await?;
    // A skill that dropped a scope stops issuing it, whatever the consent says.
    let offered = crate::oauth::scope::parse(&skill.scopes);
    let scopes: Vec<&str> = crate::oauth::scope::parse(&scopes)
        .into_iter()
        .filter(|s| offered.contains(s))
        .collect();
    if scopes.is_empty() {
        return Err(err(
            ErrorKind::InvalidScope,
            "no granted scope of this resource is available",
            "scope_none_granted",
        ));
    }
    require_binding(client, skill.require_dpop, &wanted.jkt)?;
    let refresh = client.metadata.has_grant(GrantType::RefreshToken).then(|| {
        let token = random_token("prt_");
        let hash = sha256_hex(token.as_bytes());
        (token, hash)
    });
    Ok(Minted {
        claims: AccessTokenClaims {
            iss: state.issuer.clone(),
            sub: owner.to_owned(),
            aud: skill.audience.clone(),
            client_id: client.client_id.clone(),
            scope: Some(crate::oauth::scope::join(&scopes)),
            iat: now,
            exp: now + skill.ttl_secs,
            jti: access_token::new_jti(),
            owner: owner.to_owned(),
            cnf: wanted.jkt.clone().map(|jkt| Confirmation { jkt }),
            act: None,
            patron_chain: Vec::new(),
        },
        refresh,
    })
}

fn respond(state: &AppState, minted: Minted) -> Result<Issued, OAuthError> {
    let mut issued = issue(state, minted.claims, false)?;
    issued.response.refresh_token = minted.refresh.map(|(token, _)| Secret::from(token));
    Ok(issued)
}

/// Exchanges an authorization code of `client` (an active agent of `owner`, or a client
/// identified by a metadata document, which has none).
#[allow(clippy::too_many_arguments)]
pub(super) async fn exchange_code(
    state: &AppState,
    client: &ClientRecord,
    owner: Option<&str>,
    code: &Secret,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    wanted: Wanted,
    now: UnixTime,
) -> Result<Issued, OAuthError> {
    let hash = sha256_hex(code.expose().as_bytes());
    let h = hash.clone();
    let row = state
        .store
        .read(move |c| authorization_codes::find(c, &h))
        .await
        .map_err(store_failure)?
        .ok_or_else(|| invalid_grant("the code is unknown or expired", "code_unknown"))?;
    if row.client_id != client.client_id {
        return Err(invalid_grant(
            "the code was issued to another client",
            "code_client_mismatch",
        ));
    }
    if row.used_at.is_some() {
        if let Some(family) = row.family_id {
            revoke_family(state, family, "code_reused", now).await;
        }
        return Err(invalid_grant(
            "the code was already used; the tokens issued for it are revoked",
            "code_reused",
        ));
    }
    if row.expires_at <= now {
        return Err(invalid_grant("the code has expired", "code_expired"));
    }
    if row.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "redirect_uri must be the one of the authorization request",
            "code_redirect_mismatch",
        ));
    }
    authorization::verify_pkce(code_verifier.as_deref(), &row.code_challenge)?;
    if owner.is_some_and(|o| o != row.owner_id) {
        return Err(invalid_grant(
            "the code was approved by someone who no longer owns this agent",
            "code_owner_mismatch",
        ));
    }
    let person = row.owner_id.clone();
    let grants = AuthorizedGrants::from_json(&row.grants).map_err(corrupt)?;
    let minted = mint(state, client, &person, &grants, &wanted, now).await?;
    // RFC 9449 §5: refresh tokens of public clients are bound to the DPoP key they used.
    let public = client.metadata.token_endpoint_auth_method == TokenEndpointAuthMethod::None;
    let family = FamilyRow {
        family_id: random_id("fam_"),
        client_id: client.client_id.clone(),
        owner_id: person,
        grants: row.grants,
        dpop_jkt: if public { wanted.jkt.clone() } else { None },
        created_at: now,
        expires_at: now + state.config.tokens.refresh_absolute_secs,
        revoked_at: None,
        revoked_reason: None,
    };
    let refresh_until = (now + state.config.tokens.refresh_idle_secs).min(family.expires_at);
    let (refresh_hash, jti, exp) = (
        minted.refresh.as_ref().map(|(_, h)| h.clone()),
        minted.claims.jti.clone(),
        minted.claims.exp,
    );
    let won = state
        .store
        .write(move |c| {
            if !authorization_codes::mark_used(c, &hash, &family.family_id, now)? {
                return Ok(false);
            }
            refresh_tokens::insert_family(c, &family)?;
            if let Some(h) = &refresh_hash {
                refresh_tokens::insert_token(c, h, &family.family_id, now, refresh_until)?;
            }
            refresh_tokens::insert_issued(c, &jti, &family.family_id, exp)?;
            Ok::<_, StoreError>(true)
        })
        .await
        .map_err(store_failure)?;
    if !won {
        return Err(invalid_grant(
            "the code was already used; the tokens issued for it are revoked",
            "code_reused",
        ));
    }
    respond(state, minted)
}

/// Rotates a refresh token of `client` (an active agent of `owner`, or a client identified
/// by a metadata document, which has none).
pub(super) async fn refresh(
    state: &AppState,
    client: &ClientRecord,
    owner: Option<&str>,
    refresh_token: &Secret,
    wanted: Wanted,
    now: UnixTime,
) -> Result<Issued, OAuthError> {
    let hash = sha256_hex(refresh_token.expose().as_bytes());
    let (h, cid) = (hash.clone(), client.client_id.clone());
    let (found, consent) = state
        .store
        .read(move |c| {
            let Some((token, family)) = refresh_tokens::find_token(c, &h)? else {
                return Ok((None, None));
            };
            let consent = consents::find(c, &family.owner_id, &cid)?;
            Ok((Some((token, family)), consent))
        })
        .await
        .map_err(store_failure)?;
    let unknown = || invalid_grant("the refresh token is unknown", "refresh_unknown");
    let (token, family) = found.ok_or_else(unknown)?;
    if family.client_id != client.client_id {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
            "refresh_client_mismatch",
        ));
    }
    if family.revoked_at.is_some() {
        return Err(invalid_grant(
            "the refresh token has been revoked",
            "refresh_revoked",
        ));
    }
    if token.used_at.is_some() {
        revoke_family(state, family.family_id, "refresh_reused", now).await;
        return Err(invalid_grant(
            "the refresh token was already used; every token of this grant is revoked",
            "refresh_reused",
        ));
    }
    if token.expires_at <= now || family.expires_at <= now {
        return Err(invalid_grant(
            "the refresh token has expired",
            "refresh_expired",
        ));
    }
    if owner.is_some_and(|o| o != family.owner_id) || client.revoked_at(family.created_at) {
        return Err(invalid_grant(
            "the owner revoked this agent's tokens",
            "refresh_revoked_by_owner",
        ));
    }
    if let Some(bound) = &family.dpop_jkt {
        match &wanted.jkt {
            Some(k) if k == bound => {}
            Some(_) => {
                return Err(err(
                    ErrorKind::InvalidDpopProof,
                    "the DPoP proof must be made with the key the refresh token is bound to",
                    "dpop_key_mismatch",
                ));
            }
            None => {
                return Err(err(
                    ErrorKind::InvalidDpopProof,
                    "the refresh token is DPoP-bound: prove possession of its key",
                    "dpop_required",
                ));
            }
        }
    }
    let consent = consent.ok_or_else(|| {
        invalid_grant(
            "the person revoked their consent for this client",
            "refresh_consent_revoked",
        )
    })?;
    let granted = AuthorizedGrants::from_json(&family.grants).map_err(corrupt)?;
    let consented = AuthorizedGrants::from_json(&consent.grants).map_err(corrupt)?;
    let minted = mint(
        state,
        client,
        &family.owner_id,
        &granted.intersection(&consented),
        &wanted,
        now,
    )
    .await?;
    let refresh_until = (now + state.config.tokens.refresh_idle_secs).min(family.expires_at);
    let (new_hash, jti, exp, fid) = (
        minted.refresh.as_ref().map(|(_, h)| h.clone()),
        minted.claims.jti.clone(),
        minted.claims.exp,
        family.family_id.clone(),
    );
    let won = state
        .store
        .write(move |c| {
            if !refresh_tokens::mark_used(c, &hash, now)? {
                return Ok(false);
            }
            if let Some(h) = &new_hash {
                refresh_tokens::insert_token(c, h, &fid, now, refresh_until)?;
            }
            refresh_tokens::insert_issued(c, &jti, &fid, exp)?;
            Ok::<_, StoreError>(true)
        })
        .await
        .map_err(store_failure)?;
    if !won {
        revoke_family(state, family.family_id, "refresh_reused", now).await;
        return Err(invalid_grant(
            "the refresh token was already used; every token of this grant is revoked",
            "refresh_reused",
        ));
    }
    respond(state, minted)
}
