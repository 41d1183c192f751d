//! The token service: the `POST /token` entry that dispatches on the typed request, and
//! what both grants share (scope narrowing, DPoP binding, signing and the token response).
//! One module per job beside it:
//!
//! - `client_auth`: client authentication at the token, introspection and revocation
//!   endpoints (RFC 6749 §2.3, RFC 7523 `private_key_jwt`);
//! - `dpop`: DPoP proofs and server nonces (RFC 9449);
//! - `authorization_code`: the `authorization_code` and `refresh_token` grants (tokens a
//!   person approved at the authorization endpoint);
//! - `client_credentials`: the `client_credentials` grant (RFC 6749 §4.4 with RFC 8707
//!   resources);
//! - `exchange`: token exchange (RFC 8693) and the validation of tokens Patron issued;
//! - `introspection`: RFC 7662;
//! - `revocation`: RFC 7009, and loading revocations made by other replicas.
//!
//! Every issuance and every refusal is audited with its reason code. The hot path makes no
//! database round trip: clients, grants and skills come from the [`Directory`] cache,
//! replayed `jti`s from the in-memory replay cache, revocations from the in-memory set.
//!
//! [`Directory`]: crate::service::directory::Directory

mod authorization_code;
mod client_auth;
mod client_credentials;
mod dpop;
mod exchange;
mod introspection;
mod revocation;

use std::sync::Arc;

use crate::audit::{AuditEvent, Outcome};
use crate::clock::{self, UnixTime};
use crate::endpoints;
use crate::jose::access_token::{self, AccessTokenClaims};
use crate::oauth::client_metadata::GrantType;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::scope;
use crate::oauth::token_request::{self, ACCESS_TOKEN_TYPE, TokenRequest};
use crate::secret::Secret;
use crate::service::Caller;
use crate::service::directory::ClientRecord;
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::models::clients::ClientStatus;

pub use client_auth::{
    Authenticated, authenticate_active_client, authenticate_client, client_auth_throttled,
};
pub use dpop::DpopNonces;
pub use exchange::validate_issued;
pub use introspection::introspect;
pub use revocation::{
    JtiRevocation, announce_revoked, revoke, revoke_jti, revoked_until, sync_revocations,
};

/// What the HTTP layer hands over besides the form.
#[derive(Debug, Default)]
pub struct RequestHeaders {
    /// `Authorization` header value.
    pub authorization: Option<Secret>,
    /// `DPoP` header value; `Err` when the header was repeated.
    pub dpop: Option<Result<String, ()>>,
    /// The caller's address (after trusted-proxy resolution), for the failed-authentication
    /// throttle.
    pub source: Option<std::net::IpAddr>,
}

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Debug, serde::Serialize)]
pub struct TokenResponse {
    /// The token.
    #[serde(serialize_with = "crate::secret::serialize_exposed")]
    pub access_token: Secret,
    /// `DPoP` when bound, else `Bearer`.
    pub token_type: &'static str,
    /// Seconds until expiry.
    pub expires_in: i64,
    /// Granted scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// For token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    /// For the code and refresh grants, when the client registered `refresh_token`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::secret::serialize_exposed_option"
    )]
    pub refresh_token: Option<Secret>,
}

/// What an issuance audit event records.
struct Issued {
    claims: AccessTokenClaims,
    response: TokenResponse,
}

/// `POST /token`.
pub async fn token(
    state: &AppState,
    caller: &Caller,
    headers: RequestHeaders,
    form: Result<Vec<(String, String)>, OAuthError>,
) -> Result<TokenResponse, OAuthError> {
    let now = clock::now();
    let mut client_id: Option<String> = None;
    let result = token_inner(state, &headers, form, now, &mut client_id).await;
    let ev = AuditEvent::at(
        "token.issue",
        if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        now,
    )
    .source(&caller.source.to_string())
    .request(&caller.request_id);
    let ev = match &client_id {
        Some(c) => ev.client(c),
        None => ev,
    };
    match result {
        Ok(issued) => {
            state.audit.record(
                ev.owner(Some(&issued.claims.owner))
                    .audience(&issued.claims.aud)
                    .jti(&issued.claims.jti)
                    .detail(format!("subject {}", issued.claims.sub)),
            );
            Ok(issued.response)
        }
        Err(e) => {
            if let Some(c) = &client_id {
                state.suspicion.record(c, e.reason());
            }
            state.audit.record(ev.reason(e.reason()));
            Err(e)
        }
    }
}

async fn token_inner(
    state: &AppState,
    headers: &RequestHeaders,
    form: Result<Vec<(String, String)>, OAuthError>,
    now: UnixTime,
    client_id_out: &mut Option<String>,
) -> Result<Issued, OAuthError> {
    let (request, creds) = token_request::parse(&form?)?;
    // Attribute refusals to the client it claims to be, so its owner sees them.
    *client_id_out = client_auth::claimed_client_id(headers, &creds);
    let endpoint = endpoints::url(&state.issuer, endpoints::TOKEN);
    let auth = authenticate_client(state, headers, creds, &endpoint, now).await?;
    let client = auth.client;
    *client_id_out = Some(client.client_id.clone());
    let jkt = dpop::check_dpop(state, headers, &endpoint, now).await?;
    let person_grant = matches!(
        request,
        TokenRequest::AuthorizationCode { .. } | TokenRequest::RefreshToken { .. }
    );
    // A client identified by a metadata document has no owner: each person it acts for
    // consented on their own, and the code or refresh token names them.
    let owner = if person_grant {
        grant_holder(&client)?
    } else {
        Some(require_active(&client)?)
    };
    let owner = owner.as_deref();
    match request {
        TokenRequest::ClientCredentials { resource, scope } => {
            if !client.metadata.has_grant(GrantType::ClientCredentials) {
                return Err(err(
                    ErrorKind::UnauthorizedClient,
                    "this client is not registered for client_credentials",
                    "grant_not_registered",
                ));
            }
            let owner = owner.unwrap_or_default().to_owned();
            client_credentials::grant(state, &client, owner, resource, scope, jkt, now).await
        }
        TokenRequest::TokenExchange {
            subject_token,
            target,
            scope,
        } => {
            if !client.metadata.has_grant(GrantType::TokenExchange) {
                return Err(err(
                    ErrorKind::UnauthorizedClient,
                    "this client is not registered for token exchange",
                    "grant_not_registered",
                ));
            }
            exchange::grant(state, &client, &subject_token, &target, scope, jkt, now).await
        }
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            resource,
            scope,
        } => {
            registered_for(&client, GrantType::AuthorizationCode)?;
            let wanted = authorization_code::Wanted {
                resource,
                scope,
                jkt,
            };
            authorization_code::exchange_code(
                state,
                &client,
                owner,
                &code,
                redirect_uri,
                code_verifier,
                wanted,
                now,
            )
            .await
        }
        TokenRequest::RefreshToken {
            refresh_token,
            resource,
            scope,
        } => {
            registered_for(&client, GrantType::RefreshToken)?;
            let wanted = authorization_code::Wanted {
                resource,
                scope,
                jkt,
            };
            authorization_code::refresh(state, &client, owner, &refresh_token, wanted, now).await
        }
    }
}

fn registered_for(client: &ClientRecord, grant: GrantType) -> Result<(), OAuthError> {
    if client.metadata.has_grant(grant) {
        return Ok(());
    }
    Err(err(
        ErrorKind::UnauthorizedClient,
        format!("this client is not registered for {}", grant.as_str()),
        "grant_not_registered",
    ))
}

fn err(kind: ErrorKind, description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(kind, description.into(), reason)
}

fn invalid_client(description: &'static str, reason: &'static str) -> OAuthError {
    err(ErrorKind::InvalidClient, description, reason)
}

/// Records a single-use identifier; `Ok(false)` for a replay. A replay store that cannot
/// answer refuses the request (`temporarily_unavailable`) rather than risk a replay.
async fn first_use(
    state: &AppState,
    key: &str,
    until: UnixTime,
    now: UnixTime,
) -> Result<bool, OAuthError> {
    state.replay.first_use(key, until, now).await.map_err(|e| {
        tracing::error!(error = %e, "replay store failed");
        OAuthError::new(
            ErrorKind::TemporarilyUnavailable,
            "the server is temporarily unavailable; retry shortly",
            "replay_store_unavailable",
        )
    })
}

fn require_active(client: &ClientRecord) -> Result<String, OAuthError> {
    match (client.status, &client.owner_id) {
        (ClientStatus::Active, Some(owner)) => Ok(owner.clone()),
        (ClientStatus::Pending, _) | (ClientStatus::Active, None) => Err(err(
            ErrorKind::UnauthorizedClient,
            "this agent has not been approved by its owner yet",
            "agent_pending",
        )),
        (ClientStatus::Suspended, _) => Err(err(
            ErrorKind::UnauthorizedClient,
            "this agent is suspended",
            "agent_suspended",
        )),
    }
}

/// Who may hold a person's grant: an active agent (its owner is returned, and must be the
/// person), or an active client identified by a metadata document (no owner).
fn grant_holder(client: &ClientRecord) -> Result<Option<String>, OAuthError> {
    if client.status == ClientStatus::Active
        && client.owner_id.is_none()
        && crate::oauth::client_id_document::is_document_client_id(&client.client_id)
    {
        return Ok(None);
    }
    require_active(client).map(Some)
}

/// Scopes for a skill token: the requested ones if all are granted (and, for an exchange,
/// held by the subject token), else `invalid_scope`; all granted ones when none are asked.
fn narrow_scopes(
    requested: Option<&str>,
    granted: &[String],
    held: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let granted: Vec<&str> = granted.iter().map(String::as_str).collect();
    let held: Option<Vec<&str>> = held.map(scope::parse);
    let allowed: Vec<&str> = match &held {
        Some(h) => granted.iter().copied().filter(|g| h.contains(g)).collect(),
        None => granted,
    };
    let result: Vec<&str> = match requested {
        Some(r) => {
            let r = scope::parse(r);
            if !scope::is_subset(&r, &allowed) {
                return Err(err(
                    ErrorKind::InvalidScope,
                    "the requested scope exceeds what was granted",
                    "scope_exceeds_grant",
                ));
            }
            r
        }
        None => allowed,
    };
    if result.is_empty() {
        return Err(err(
            ErrorKind::InvalidScope,
            "no granted scope of this resource is available",
            "scope_none_granted",
        ));
    }
    Ok(Some(scope::join(&result)))
}

/// Granted scopes the skill still offers: a skill that dropped a scope stops issuing it,
/// whatever older grants say.
fn still_offered(granted: &[String], offered: &str) -> Vec<String> {
    let offered = scope::parse(offered);
    granted
        .iter()
        .filter(|g| offered.contains(&g.as_str()))
        .cloned()
        .collect()
}

fn require_binding(
    client: &ClientRecord,
    skill_requires: bool,
    jkt: &Option<String>,
) -> Result<(), OAuthError> {
    if jkt.is_none() && (client.metadata.dpop_bound_access_tokens || skill_requires) {
        return Err(err(
            ErrorKind::InvalidDpopProof,
            "a DPoP proof is required: this client or skill only gets DPoP-bound tokens",
            "dpop_required",
        ));
    }
    Ok(())
}

fn issue(
    state: &AppState,
    claims: AccessTokenClaims,
    exchange: bool,
) -> Result<Issued, OAuthError> {
    let ring = state.keys.ring();
    let signer = ring.current.as_ref().ok_or_else(|| {
        tracing::error!("no active signing key");
        OAuthError::unavailable()
    })?;
    let token = access_token::sign(signer, &claims).map_err(|e| {
        tracing::error!(error = %e, "signing an access token failed");
        OAuthError::server_error()
    })?;
    let response = TokenResponse {
        access_token: Secret::from(token),
        token_type: if claims.cnf.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        expires_in: claims.exp - claims.iat,
        scope: claims.scope.clone(),
        issued_token_type: exchange.then_some(ACCESS_TOKEN_TYPE),
        refresh_token: None,
    };
    Ok(Issued { claims, response })
}

/// The skill a `resource` or `audience` names (exactly, or a variant of its audience
/// such as `HTTPS://A.EXAMPLE` for `https://a.example/`: RFC 3986 §6.2.2 equivalence),
/// or `invalid_target` (RFC 8707 §2): unknown, or an owner's skill whose audience is not
/// proven yet. From the cache: no database read.
pub(crate) async fn known_skill(
    state: &AppState,
    audience: &str,
) -> Result<Arc<crate::store::models::skills::SkillRow>, OAuthError> {
    let skill = state
        .directory
        .skill(&state.store, audience)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| {
            err(
                ErrorKind::InvalidTarget,
                "unknown resource",
                "audience_unknown",
            )
        })?;
    if state.config.tokens.require_audience_proof && !skill.usable() {
        return Err(err(
            ErrorKind::InvalidTarget,
            "this resource has not proven its audience yet (RFC 9728 metadata naming this server)",
            "skill_unproven",
        ));
    }
    Ok(skill)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_only_narrow() {
        let granted = vec!["read".to_owned(), "write".to_owned()];
        assert_eq!(
            narrow_scopes(None, &granted, None).unwrap().as_deref(),
            Some("read write")
        );
        assert_eq!(
            narrow_scopes(Some("read"), &granted, None)
                .unwrap()
                .as_deref(),
            Some("read")
        );
        assert_eq!(
            narrow_scopes(Some("admin"), &granted, None)
                .unwrap_err()
                .reason(),
            "scope_exceeds_grant"
        );
        // A subject token holding only `read` cannot be exchanged for `write`.
        assert!(narrow_scopes(Some("write"), &granted, Some("read")).is_err());
        assert_eq!(
            narrow_scopes(None, &granted, Some("read"))
                .unwrap()
                .as_deref(),
            Some("read")
        );
    }
}
