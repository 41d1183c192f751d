//! The grants of tokens a person approved at the authorization endpoint:
//! `authorization_code` (RFC 6749 §4.1.3, PKCE RFC 7636 §4.6) and `refresh_token`
//! (RFC 6749 §6, rotated on every use as RFC 9700 §4.14.2 recommends).
//!
//! A code is single-use and bound to its client, redirect URI, PKCE challenge and grants;
//! its exchange starts a refresh family. Every access token issued in a family carries the
//! family id in `patron_chain`, so a second use of a code or of a rotated refresh token
//! revokes the whole family, access tokens included, by revoking that one id. Access tokens
//! follow RFC 9068: `sub` is the person, `client_id` the agent, `aud` one skill.
//!
//! Each grant is one job of the group-commit writer: it reads the code (or refresh token)
//! and checks everything, then claims it with a conditional update and stores what it
//! issues, all in one transaction, so that of two concurrent uses exactly one wins, on any
//! replica, and a refusal changes nothing (but a replay, which revokes). Only the signature
//! is made outside.

use std::sync::Arc;

use super::{Issued, err, issue};
use crate::clock;
use crate::clock::UnixTime;
use crate::crypto::sortable_id;
use crate::jose::access_token::{self, AccessTokenClaims, Confirmation};
use crate::oauth::authorization::{self, AuthorizedGrants};
use crate::oauth::client_metadata::{GrantType, TokenEndpointAuthMethod};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::Audience;
use crate::oauth::scope;
use crate::oauth::split_token::{self, secret_matches};
use crate::secret::Secret;
use crate::service::directory::{ClientRecord, SkillMap};
use crate::service::store_failure;
use crate::service::token::revocation::{announce_revoked, revoked_until};
use crate::state::AppState;
use crate::store::models::refresh_tokens::{self, FamilyRow};
use crate::store::models::{authorization_codes, consents};
use crate::store::{DbConnection, StoreError};

/// What a code or refresh request asks for, besides the credential.
pub(super) struct Wanted {
    /// `resource`.
    pub resource: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// The DPoP key the request proved, if any.
    pub jkt: Option<String>,
}

/// What the write job needs to know, copied in (it runs on the writer's thread).
struct Job {
    client_id: String,
    /// The agent's owner, which must be the person; none for a document client.
    owner: Option<String>,
    public: bool,
    refreshes: bool,
    dpop_bound: bool,
    revoked_before: Option<UnixTime>,
    wanted: Wanted,
    skills: Arc<SkillMap>,
    require_proof: bool,
    idle_secs: i64,
    absolute_secs: i64,
    /// Until when a revoked family's id is kept in the revocation list.
    revoked_until: UnixTime,
    now: UnixTime,
}

impl Job {
    fn new(
        state: &AppState,
        client: &ClientRecord,
        owner: Option<&str>,
        wanted: Wanted,
        skills: Arc<SkillMap>,
        now: UnixTime,
    ) -> Self {
        let tokens = &state.config.tokens;
        Self {
            client_id: client.client_id.clone(),
            owner: owner.map(str::to_owned),
            public: client.metadata.token_endpoint_auth_method == TokenEndpointAuthMethod::None,
            refreshes: client.metadata.has_grant(GrantType::RefreshToken),
            dpop_bound: client.metadata.dpop_bound_access_tokens,
            revoked_before: client.revoked_before,
            wanted,
            skills,
            require_proof: tokens.require_audience_proof,
            idle_secs: tokens.refresh_idle_secs,
            absolute_secs: tokens.refresh_absolute_secs,
            revoked_until: revoked_until(state, now),
            now,
        }
    }
}

/// The outcome of a write job: what to sign, or why not, and in either case the families it
/// revoked (a replay), for the other replicas.
struct Done {
    result: Result<Minted, OAuthError>,
    revoked: Vec<(String, UnixTime)>,
}

impl Done {
    fn refused(e: OAuthError) -> Self {
        Self {
            result: Err(e),
            revoked: Vec::new(),
        }
    }
}

/// An access token to sign, and the refresh token that goes with it.
struct Minted {
    claims: AccessTokenClaims,
    refresh: Option<split_token::Minted>,
}

/// The prefix of refresh tokens' ids.
pub(crate) const REFRESH_PREFIX: &str = "prt_";

fn invalid_grant(description: &'static str, reason: &'static str) -> OAuthError {
    err(ErrorKind::InvalidGrant, description, reason)
}

/// A job's `invalid_grant` refusal, which changes nothing.
fn refused_grant(description: &'static str, reason: &'static str) -> Result<Done, StoreError> {
    Ok(Done::refused(invalid_grant(description, reason)))
}

fn corrupt(_: serde_json::Error) -> StoreError {
    StoreError::Corrupt("a stored grant set is not valid JSON".into())
}

fn same_audience(granted: &str, requested: &str) -> bool {
    granted == requested || Audience::key(granted) == Audience::key(requested)
}

/// The token for one skill of `grants`, for `person`, in `family`, or why not. Pure: the
/// skills come from the snapshot taken before the job.
fn mint(
    job: &Job,
    person: &str,
    family: &str,
    grants: &AuthorizedGrants,
) -> Result<Minted, OAuthError> {
    let (aud, scopes) = authorization::select(
        grants,
        job.wanted.resource.as_deref(),
        job.wanted.scope.as_deref(),
        same_audience,
    )?;
    let skill = job.skills.get(&aud).ok_or_else(|| {
        err(
            ErrorKind::InvalidTarget,
            "unknown resource",
            "audience_unknown",
        )
    })?;
    if job.require_proof && !skill.usable() {
        return Err(err(
            ErrorKind::InvalidTarget,
            "this resource has not proven its audience yet (RFC 9728 metadata naming this server)",
            "skill_unproven",
        ));
    }
    // A skill that dropped a scope stops issuing it, whatever the consent says.
    let offered = scope::parse(&skill.scopes);
    let scopes: Vec<&str> = scope::parse(&scopes)
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
    if job.wanted.jkt.is_none() && (job.dpop_bound || skill.require_dpop) {
        return Err(err(
            ErrorKind::InvalidDpopProof,
            "a DPoP proof is required: this client or skill only gets DPoP-bound tokens",
            "dpop_required",
        ));
    }
    Ok(Minted {
        claims: AccessTokenClaims {
            iss: String::new(),
            sub: person.to_owned(),
            aud: skill.audience.clone(),
            client_id: job.client_id.clone(),
            scope: Some(scope::join(&scopes)),
            iat: job.now,
            exp: job.now + skill.ttl_secs,
            jti: access_token::new_jti(),
            owner: person.to_owned(),
            cnf: job.wanted.jkt.clone().map(|jkt| Confirmation { jkt }),
            act: None,
            patron_chain: vec![family.to_owned()],
        },
        refresh: job
            .refreshes
            .then(|| split_token::mint(REFRESH_PREFIX, clock::now_millis())),
    })
}

fn store_refresh(
    c: &mut DbConnection,
    job: &Job,
    minted: &Minted,
    family: &str,
    family_end: UnixTime,
) -> Result<(), StoreError> {
    match &minted.refresh {
        Some(token) => {
            let until = (job.now + job.idle_secs).min(family_end);
            refresh_tokens::insert_token(c, &token.id, &token.secret_hash, family, job.now, until)
        }
        None => Ok(()),
    }
}

fn revoke(
    c: &mut DbConnection,
    job: &Job,
    family: &str,
    reason: &str,
) -> Result<Vec<(String, UnixTime)>, StoreError> {
    refresh_tokens::revoke(
        c,
        refresh_tokens::Families::Id(family),
        reason,
        job.now,
        job.revoked_until,
    )
}

/// Signs what a job minted, or reports why it did not, after telling the replicas of any
/// family it revoked.
async fn finish(state: &AppState, done: Done) -> Result<Issued, OAuthError> {
    announce_revoked(state, done.revoked).await;
    let minted = done.result?;
    let mut claims = minted.claims;
    claims.iss = state.issuer.clone();
    let mut issued = issue(state, claims, false)?;
    issued.response.refresh_token = minted.refresh.map(|r| Secret::from(r.value));
    Ok(issued)
}

fn code_job(
    c: &mut DbConnection,
    job: &Job,
    (id, secret): (&str, &str),
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<Done, StoreError> {
    let row = authorization_codes::find(c, id)?.filter(|r| secret_matches(secret, &r.secret_hash));
    let Some(row) = row else {
        return refused_grant("the code is unknown or expired", "code_unknown");
    };
    if row.client_id != job.client_id {
        return refused_grant(
            "the code was issued to another client",
            "code_client_mismatch",
        );
    }
    let reused = || {
        invalid_grant(
            "the code was already used; the tokens issued for it are revoked",
            "code_reused",
        )
    };
    if row.used_at.is_some() {
        let revoked = match &row.family_id {
            Some(family) => revoke(c, job, family, "code_reused")?,
            None => Vec::new(),
        };
        return Ok(Done {
            result: Err(reused()),
            revoked,
        });
    }
    if row.expires_at <= job.now {
        return refused_grant("the code has expired", "code_expired");
    }
    if row.redirect_uri.as_deref() != redirect_uri {
        return refused_grant(
            "redirect_uri must be the one of the authorization request",
            "code_redirect_mismatch",
        );
    }
    if let Err(e) = authorization::verify_pkce(verifier, &row.code_challenge) {
        return Ok(Done::refused(e));
    }
    if job.owner.as_ref().is_some_and(|o| *o != row.owner_id) {
        return refused_grant(
            "the code was approved by someone who no longer owns this agent",
            "code_owner_mismatch",
        );
    }
    let grants = AuthorizedGrants::from_json(&row.grants).map_err(corrupt)?;
    let family_id = sortable_id("fam_", clock::now_millis());
    let minted = match mint(job, &row.owner_id, &family_id, &grants) {
        Ok(m) => m,
        Err(e) => return Ok(Done::refused(e)),
    };
    if !authorization_codes::mark_used(c, id, &family_id, job.now)? {
        return Ok(Done::refused(reused()));
    }
    let family = FamilyRow {
        family_id: family_id.clone(),
        client_id: job.client_id.clone(),
        owner_id: row.owner_id,
        grants: row.grants,
        // RFC 9449 §5: refresh tokens of public clients are bound to the DPoP key they used.
        dpop_jkt: if job.public {
            job.wanted.jkt.clone()
        } else {
            None
        },
        created_at: job.now,
        expires_at: job.now + job.absolute_secs,
        revoked_at: None,
        revoked_reason: None,
    };
    refresh_tokens::insert_family(c, &family)?;
    store_refresh(c, job, &minted, &family_id, family.expires_at)?;
    Ok(Done {
        result: Ok(minted),
        revoked: Vec::new(),
    })
}

fn refresh_job(
    c: &mut DbConnection,
    job: &Job,
    (id, secret): (&str, &str),
) -> Result<Done, StoreError> {
    let found = refresh_tokens::find_token(c, id)?
        .filter(|(token, _)| secret_matches(secret, &token.secret_hash));
    let Some((token, family)) = found else {
        return refused_grant("the refresh token is unknown", "refresh_unknown");
    };
    if family.client_id != job.client_id {
        return refused_grant(
            "the refresh token was issued to another client",
            "refresh_client_mismatch",
        );
    }
    if family.revoked_at.is_some() {
        return refused_grant("the refresh token has been revoked", "refresh_revoked");
    }
    let reused = || {
        invalid_grant(
            "the refresh token was already used; every token of this grant is revoked",
            "refresh_reused",
        )
    };
    if token.used_at.is_some() {
        let revoked = revoke(c, job, &family.family_id, "refresh_reused")?;
        return Ok(Done {
            result: Err(reused()),
            revoked,
        });
    }
    if token.expires_at <= job.now || family.expires_at <= job.now {
        return refused_grant("the refresh token has expired", "refresh_expired");
    }
    let revoked_by_owner = job.revoked_before.is_some_and(|t| family.created_at <= t);
    if job.owner.as_ref().is_some_and(|o| *o != family.owner_id) || revoked_by_owner {
        return refused_grant(
            "the owner revoked this agent's tokens",
            "refresh_revoked_by_owner",
        );
    }
    if let Some(bound) = &family.dpop_jkt {
        match &job.wanted.jkt {
            Some(k) if k == bound => {}
            Some(_) => {
                return Ok(Done::refused(err(
                    ErrorKind::InvalidDpopProof,
                    "the DPoP proof must be made with the key the refresh token is bound to",
                    "dpop_key_mismatch",
                )));
            }
            None => {
                return Ok(Done::refused(err(
                    ErrorKind::InvalidDpopProof,
                    "the refresh token is DPoP-bound: prove possession of its key",
                    "dpop_required",
                )));
            }
        }
    }
    let Some(consent) = consents::find(c, &family.owner_id, &job.client_id)? else {
        return refused_grant(
            "the person revoked their consent for this client",
            "refresh_consent_revoked",
        );
    };
    let granted = AuthorizedGrants::from_json(&family.grants).map_err(corrupt)?;
    let consented = AuthorizedGrants::from_json(&consent.grants).map_err(corrupt)?;
    let minted = match mint(
        job,
        &family.owner_id,
        &family.family_id,
        &granted.intersection(&consented),
    ) {
        Ok(m) => m,
        Err(e) => return Ok(Done::refused(e)),
    };
    if !refresh_tokens::mark_used(c, id, job.now)? {
        // Another request rotated it a moment ago: a replay all the same.
        let revoked = revoke(c, job, &family.family_id, "refresh_reused")?;
        return Ok(Done {
            result: Err(reused()),
            revoked,
        });
    }
    store_refresh(c, job, &minted, &family.family_id, family.expires_at)?;
    Ok(Done {
        result: Ok(minted),
        revoked: Vec::new(),
    })
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
    let skills = state
        .directory
        .skills(&state.store)
        .await
        .map_err(store_failure)?;
    let job = Job::new(state, client, owner, wanted, skills, now);
    let Some((id, secret)) = split_token::split(code.expose(), crate::oauth::oxide::CODE_PREFIX)
    else {
        return Err(invalid_grant(
            "the code is unknown or expired",
            "code_unknown",
        ));
    };
    let (id, secret) = (id.to_owned(), secret.to_owned());
    let done = state
        .store
        .write(move |c| {
            code_job(
                c,
                &job,
                (&id, &secret),
                redirect_uri.as_deref(),
                code_verifier.as_deref(),
            )
        })
        .await
        .map_err(store_failure)?;
    finish(state, done).await
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
    let skills = state
        .directory
        .skills(&state.store)
        .await
        .map_err(store_failure)?;
    let job = Job::new(state, client, owner, wanted, skills, now);
    let Some((id, secret)) = split_token::split(refresh_token.expose(), REFRESH_PREFIX) else {
        return Err(invalid_grant(
            "the refresh token is unknown",
            "refresh_unknown",
        ));
    };
    let (id, secret) = (id.to_owned(), secret.to_owned());
    let done = state
        .store
        .write(move |c| refresh_job(c, &job, (&id, &secret)))
        .await
        .map_err(store_failure)?;
    finish(state, done).await
}
