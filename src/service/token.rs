//! The token service: client authentication, `client_credentials` (RFC 6749 §4.4 with
//! RFC 8707 resources), token exchange (RFC 8693), DPoP binding (RFC 9449), introspection
//! (RFC 7662) and revocation (RFC 7009).
//!
//! Every issuance and every refusal is audited with its reason code. The hot path makes no
//! database round trip: clients, grants and skills come from the [`Directory`] cache,
//! replayed `jti`s from the in-memory replay cache, revocations from the in-memory set.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::audit::{AuditEvent, Outcome};
use crate::clock::{self, UnixTime};
use crate::crypto;
use crate::endpoints;
use crate::jose::access_token::{self, AccessTokenClaims, Confirmation};
use crate::jose::client_assertion::{self, AssertionRequirements};
use crate::jose::dpop::{self, NonceCheck, ProofRequirements};
use crate::jose::jwks::PublicKeySet;
use crate::oauth::client_metadata::{GrantType, TokenEndpointAuthMethod};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::introspection::Introspection;
use crate::oauth::scope;
use crate::oauth::token_request::{
    self, ACCESS_TOKEN_TYPE, BodyCredentials, JWT_BEARER_ASSERTION, TokenRequest,
};
use crate::service::directory::ClientRecord;
use crate::service::peers::{self, Notice};
use crate::service::registration::Caller;
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::models::clients::ClientStatus;
use crate::store::models::revoked_tokens;

/// What the HTTP layer hands over besides the form.
#[derive(Debug, Default)]
pub struct RequestHeaders {
    /// `Authorization` header value.
    pub authorization: Option<String>,
    /// `DPoP` header value; `Err` when the header was repeated.
    pub dpop: Option<Result<String, ()>>,
}

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Debug, serde::Serialize)]
pub struct TokenResponse {
    /// The token.
    pub access_token: String,
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
}

fn err(kind: ErrorKind, description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(kind, description.into(), reason)
}

fn invalid_client(description: &'static str, reason: &'static str) -> OAuthError {
    err(ErrorKind::InvalidClient, description, reason)
}

/// A client whose authentication succeeded.
pub struct Authenticated {
    /// The client.
    pub client: Arc<ClientRecord>,
}

fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded.
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((dec(id)?, dec(secret)?))
}

/// Authenticates the client at the token, introspection or revocation endpoint.
pub async fn authenticate_client(
    state: &AppState,
    headers: &RequestHeaders,
    creds: &BodyCredentials,
    endpoint_url: &str,
    now: UnixTime,
) -> Result<Authenticated, OAuthError> {
    let basic = headers.authorization.as_deref().and_then(basic_credentials);
    let methods = usize::from(basic.is_some())
        + usize::from(creds.client_secret.is_some())
        + usize::from(creds.client_assertion.is_some());
    if methods > 1 {
        return Err(err(
            ErrorKind::InvalidRequest,
            "use exactly one client authentication method",
            "multiple_auth_methods",
        ));
    }
    let (client_id, method) = if let Some((id, _)) = &basic {
        (id.clone(), TokenEndpointAuthMethod::ClientSecretBasic)
    } else if creds.client_secret.is_some() {
        let id = creds.client_id.clone().ok_or_else(|| {
            invalid_client(
                "client_id is required with client_secret",
                "client_id_missing",
            )
        })?;
        (id, TokenEndpointAuthMethod::ClientSecretPost)
    } else if let Some(assertion) = &creds.client_assertion {
        if creds.client_assertion_type.as_deref() != Some(JWT_BEARER_ASSERTION) {
            return Err(invalid_client(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "assertion_type_unsupported",
            ));
        }
        let id = client_assertion::unverified_client_id(assertion)
            .ok_or_else(|| invalid_client("the client assertion is malformed", "jwt_malformed"))?;
        if creds.client_id.as_ref().is_some_and(|c| *c != id) {
            return Err(invalid_client(
                "client_id does not match the client assertion",
                "assertion_client_id_mismatch",
            ));
        }
        (id, TokenEndpointAuthMethod::PrivateKeyJwt)
    } else if let Some(id) = &creds.client_id {
        (id.clone(), TokenEndpointAuthMethod::None)
    } else {
        return Err(invalid_client(
            "client authentication is required",
            "client_auth_missing",
        ));
    };
    if client_id.len() > 200 {
        return Err(invalid_client("unknown client", "client_unknown"));
    }
    let client = state
        .directory
        .client(&state.store, &client_id)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| invalid_client("unknown client or bad credentials", "client_unknown"))?;
    if client.metadata.token_endpoint_auth_method != method {
        return Err(invalid_client(
            "the client must authenticate with its registered method",
            "auth_method_mismatch",
        ));
    }
    match method {
        TokenEndpointAuthMethod::ClientSecretBasic | TokenEndpointAuthMethod::ClientSecretPost => {
            let secret = basic
                .map(|(_, s)| s)
                .or_else(|| creds.client_secret.clone())
                .unwrap_or_default();
            let phc = client.secret_hash.clone().unwrap_or_default();
            let ok = if state.secrets.verify_fast(&client.client_id, &secret, &phc) {
                true
            } else {
                // argon2id only on the first success per process, and on every failure.
                let (cid, st) = (client.client_id.clone(), state.secrets.clone());
                tokio::task::spawn_blocking(move || st.verify(&cid, &secret, &phc).0)
                    .await
                    .unwrap_or(false)
            };
            if !ok {
                return Err(invalid_client(
                    "unknown client or bad credentials",
                    "client_secret_invalid",
                ));
            }
        }
        TokenEndpointAuthMethod::PrivateKeyJwt => {
            let keys = client_keys(state, &client).await?;
            let assertion = creds.client_assertion.as_deref().unwrap_or_default();
            let audiences = [state.issuer.as_str(), endpoint_url];
            let verified = client_assertion::verify_assertion(
                assertion,
                &keys,
                &AssertionRequirements {
                    client_id: &client.client_id,
                    audiences: &audiences,
                    now,
                    skew_secs: state.config.validation.clock_skew_secs,
                    max_lifetime_secs: state.config.tokens.assertion_max_lifetime_secs,
                },
            )
            .map_err(|e| OAuthError::new(ErrorKind::InvalidClient, e.description(), e.reason()))?;
            // RFC 7523 §3: single use for the assertion's lifetime.
            let key = format!("ca:{}:{}", client.client_id, verified.jti);
            let until = verified.exp + state.config.validation.clock_skew_secs;
            if !first_use(state, &key, until, now).await? {
                return Err(invalid_client(
                    "the client assertion was already used",
                    "jti_replayed",
                ));
            }
        }
        TokenEndpointAuthMethod::None => {}
    }
    Ok(Authenticated { client })
}

/// The client a request claims to come from, before authentication proves it.
fn claimed_client_id(headers: &RequestHeaders, creds: &BodyCredentials) -> Option<String> {
    headers
        .authorization
        .as_deref()
        .and_then(basic_credentials)
        .map(|(id, _)| id)
        .or_else(|| creds.client_id.clone())
        .or_else(|| {
            creds
                .client_assertion
                .as_deref()
                .and_then(client_assertion::unverified_client_id)
        })
        .filter(|id| id.len() <= 200)
}

async fn client_keys(
    state: &AppState,
    client: &ClientRecord,
) -> Result<Arc<PublicKeySet>, OAuthError> {
    if let Some(k) = &client.keys {
        return Ok(k.clone());
    }
    let Some(uri) = &client.metadata.jwks_uri else {
        return Err(invalid_client(
            "the client has no registered keys",
            "client_keys_missing",
        ));
    };
    let doc = state
        .fetcher
        .fetch_json(uri, clock::monotonic())
        .await
        .map_err(|e| invalid_client("the client's jwks_uri could not be fetched", e.reason()))?;
    PublicKeySet::from_jwks(&doc).map(Arc::new).map_err(|_| {
        invalid_client(
            "the client's jwks_uri holds no usable keys",
            "jwks_uri_invalid_keys",
        )
    })
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

/// Checks the DPoP proof, if any, and returns the key thumbprint it proves.
async fn check_dpop(
    state: &AppState,
    headers: &RequestHeaders,
    htu: &str,
    now: UnixTime,
) -> Result<Option<String>, OAuthError> {
    let proof = match &headers.dpop {
        None => return Ok(None),
        Some(Err(())) => {
            return Err(err(
                ErrorKind::InvalidDpopProof,
                "send exactly one DPoP header",
                "dpop_header_repeated",
            ));
        }
        Some(Ok(p)) => p,
    };
    let nonce_ok = |n: &str| state.dpop_nonces.is_valid(n, now);
    let nonce = if state.config.tokens.dpop_require_nonce {
        NonceCheck::Required(&nonce_ok)
    } else {
        NonceCheck::NotRequired
    };
    let verified = dpop::verify_proof(
        proof,
        &ProofRequirements {
            htm: "POST",
            htu,
            now,
            max_age_secs: state.config.tokens.dpop_max_age_secs,
            skew_secs: state.config.validation.clock_skew_secs,
            nonce,
            access_token: None,
        },
    )
    .map_err(|e| {
        if e.is_nonce_error() {
            err(ErrorKind::UseDpopNonce, e.description(), e.reason())
                .with_dpop_nonce(state.dpop_nonces.current(now))
        } else {
            err(ErrorKind::InvalidDpopProof, e.description(), e.reason())
        }
    })?;
    let key = format!("dpop:{}:{}", verified.jkt, verified.jti);
    let until = verified.iat
        + state.config.tokens.dpop_max_age_secs
        + 2 * state.config.validation.clock_skew_secs;
    if !first_use(state, &key, until, now).await? {
        return Err(err(
            ErrorKind::InvalidDpopProof,
            "the DPoP proof was already used",
            "dpop_jti_replayed",
        ));
    }
    Ok(Some(verified.jkt))
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
    *client_id_out = claimed_client_id(headers, &creds);
    let endpoint = endpoints::url(&state.issuer, endpoints::TOKEN);
    let auth = authenticate_client(state, headers, &creds, &endpoint, now).await?;
    let client = auth.client;
    *client_id_out = Some(client.client_id.clone());
    let jkt = check_dpop(state, headers, &endpoint, now).await?;
    let owner = require_active(&client)?;
    match request {
        TokenRequest::ClientCredentials { resource, scope } => {
            if !client.metadata.has_grant(GrantType::ClientCredentials) {
                return Err(err(
                    ErrorKind::UnauthorizedClient,
                    "this client is not registered for client_credentials",
                    "grant_not_registered",
                ));
            }
            client_credentials(state, &client, owner, resource, scope, jkt, now).await
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
            exchange(state, &client, &subject_token, &target, scope, jkt, now).await
        }
    }
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
        access_token: token,
        token_type: if claims.cnf.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        expires_in: claims.exp - claims.iat,
        scope: claims.scope.clone(),
        issued_token_type: exchange.then_some(ACCESS_TOKEN_TYPE),
    };
    Ok(Issued { claims, response })
}

#[allow(clippy::too_many_arguments)]
async fn client_credentials(
    state: &AppState,
    client: &ClientRecord,
    owner: String,
    resource: Option<String>,
    scope: Option<String>,
    jkt: Option<String>,
    now: UnixTime,
) -> Result<Issued, OAuthError> {
    let (aud, ttl, scope, require_dpop) = match resource {
        None => {
            if scope.is_some() {
                return Err(err(
                    ErrorKind::InvalidScope,
                    "an agent token carries no scope; ask for a skill with resource",
                    "scope_without_resource",
                ));
            }
            (
                state.issuer.clone(),
                state.config.tokens.agent_ttl_secs,
                None,
                false,
            )
        }
        Some(resource) => {
            let skill = known_skill(state, &resource).await?;
            let granted = client.grants.get(&skill.audience).ok_or_else(|| {
                err(
                    ErrorKind::InvalidTarget,
                    "this agent has not been granted that resource",
                    "grant_missing",
                )
            })?;
            let granted = still_offered(granted, &skill.scopes);
            let scope = narrow_scopes(scope.as_deref(), &granted, None)?;
            (
                skill.audience.clone(),
                skill.ttl_secs,
                scope,
                skill.require_dpop,
            )
        }
    };
    require_binding(client, require_dpop, &jkt)?;
    let claims = AccessTokenClaims {
        iss: state.issuer.clone(),
        sub: client.client_id.clone(),
        aud,
        client_id: client.client_id.clone(),
        scope,
        iat: now,
        exp: now + ttl,
        jti: access_token::new_jti(),
        owner,
        cnf: jkt.map(|jkt| Confirmation { jkt }),
        act: None,
        patron_chain: Vec::new(),
    };
    issue(state, claims, false)
}

/// The skill a `resource` or `audience` names, or `invalid_target` (RFC 8707 §2).
async fn known_skill(
    state: &AppState,
    audience: &str,
) -> Result<Arc<crate::store::models::skills::SkillRow>, OAuthError> {
    state
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
        })
}

fn act_depth(act: Option<&Value>) -> usize {
    let mut depth = 0;
    let mut cur = act;
    while let Some(a) = cur {
        depth += 1;
        cur = a.get("act");
    }
    depth
}

/// Validates a token Patron issued, including revocation and the state of its agent.
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
        .client(&state.store, &claims.sub)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| {
            err(
                ErrorKind::InvalidGrant,
                "the token's agent no longer exists",
                "agent_deleted",
            )
        })?;
    match agent.status {
        ClientStatus::Active => {}
        ClientStatus::Suspended => {
            return Err(err(
                ErrorKind::InvalidGrant,
                "the token's agent is suspended",
                "agent_suspended",
            ));
        }
        ClientStatus::Pending => {
            return Err(err(
                ErrorKind::InvalidGrant,
                "the token's agent is not approved",
                "agent_pending",
            ));
        }
    }
    if agent.revoked_at(claims.iat) {
        return Err(err(
            ErrorKind::InvalidGrant,
            "the token has been revoked",
            "token_revoked",
        ));
    }
    Ok((claims, agent))
}

async fn exchange(
    state: &AppState,
    requester: &ClientRecord,
    subject_token: &str,
    target: &str,
    scope: Option<String>,
    jkt: Option<String>,
    now: UnixTime,
) -> Result<Issued, OAuthError> {
    let (subject, agent) = validate_issued(state, subject_token, now).await?;
    let skill = known_skill(state, target).await?;

    // Who may exchange: the agent itself, or the skill the subject token was issued to
    // (delegation, recorded in `act`).
    let act = if requester.client_id == subject.sub {
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
    // A subject token for a skill limits the scopes further; an agent token does not.
    let held = (subject.aud != state.issuer).then_some(subject.scope.as_deref().unwrap_or(""));
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

/// `POST /introspect` (RFC 7662 §2). Inactive, unknown, revoked or foreign tokens all
/// answer `{"active": false}`.
pub async fn introspect(
    state: &AppState,
    caller: &Caller,
    headers: RequestHeaders,
    form: Result<Vec<(String, String)>, OAuthError>,
) -> Result<Introspection, OAuthError> {
    let now = clock::now();
    let form = form?;
    let (creds, token) = auxiliary_form(&form)?;
    let endpoint = endpoints::url(&state.issuer, endpoints::INTROSPECTION);
    let auth = authenticate_client(state, &headers, &creds, &endpoint, now).await;
    let auth = match auth {
        Ok(a) => a,
        Err(e) => {
            state.audit.record(
                AuditEvent::at("token.introspect", Outcome::Failure, now)
                    .reason(e.reason())
                    .source(&caller.source.to_string())
                    .request(&caller.request_id),
            );
            return Err(e);
        }
    };
    let ev = AuditEvent::at("token.introspect", Outcome::Success, now)
        .client(&auth.client.client_id)
        .source(&caller.source.to_string())
        .request(&caller.request_id);
    let (claims, _) = match validate_issued(state, &token, now).await {
        Ok(v) => v,
        Err(e) => {
            state.audit.record(ev.reason(e.reason()).detail("inactive"));
            return Ok(Introspection::inactive());
        }
    };
    // Only parties to the token may see it: its agent, its requester, or its skill.
    let me = &auth.client.client_id;
    let skill_client = state
        .directory
        .skill(&state.store, &claims.aud)
        .await
        .map_err(store_failure)?
        .and_then(|s| s.client_id.clone());
    let party = *me == claims.sub
        || *me == claims.client_id
        || skill_client.as_deref() == Some(me.as_str());
    if !party {
        state.audit.record(
            ev.reason("introspection_not_party")
                .jti(&claims.jti)
                .detail("inactive"),
        );
        return Ok(Introspection::inactive());
    }
    state.audit.record(
        ev.jti(&claims.jti)
            .audience(&claims.aud)
            .owner(Some(&claims.owner)),
    );
    Ok(Introspection::active(claims))
}

fn auxiliary_form(form: &[(String, String)]) -> Result<(BodyCredentials, String), OAuthError> {
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if form.len() > 16 {
        return Err(err(
            ErrorKind::InvalidRequest,
            "too many parameters",
            "too_many_parameters",
        ));
    }
    let token = get("token").filter(|t| !t.is_empty()).ok_or_else(|| {
        err(
            ErrorKind::InvalidRequest,
            "token is missing",
            "token_missing",
        )
    })?;
    Ok((
        BodyCredentials {
            client_id: get("client_id"),
            client_secret: get("client_secret"),
            client_assertion_type: get("client_assertion_type"),
            client_assertion: get("client_assertion"),
        },
        token,
    ))
}

/// `POST /revoke` (RFC 7009 §2). A client may revoke tokens issued to it or for it; the
/// answer is 200 whether or not the token was valid (§2.2). Tokens exchanged from a revoked
/// token stop working too (they carry it in their chain).
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    headers: RequestHeaders,
    form: Result<Vec<(String, String)>, OAuthError>,
) -> Result<(), OAuthError> {
    let now = clock::now();
    let form = form?;
    let (creds, token) = auxiliary_form(&form)?;
    let endpoint = endpoints::url(&state.issuer, endpoints::REVOCATION);
    let ev = AuditEvent::at("token.revoke", Outcome::Success, now)
        .source(&caller.source.to_string())
        .request(&caller.request_id);
    let auth = match authenticate_client(state, &headers, &creds, &endpoint, now).await {
        Ok(a) => a,
        Err(e) => {
            state.audit.record(
                AuditEvent::at("token.revoke", Outcome::Failure, now)
                    .reason(e.reason())
                    .source(&caller.source.to_string())
                    .request(&caller.request_id),
            );
            return Err(e);
        }
    };
    let ev = ev.client(&auth.client.client_id);
    let ring = state.keys.ring();
    let claims = match state
        .verified_tokens
        .verify(&token, &ring.public, &state.issuer, now)
    {
        Ok(c) => c,
        Err(r) => {
            state
                .audit
                .record(ev.reason(r.as_str()).detail("nothing to revoke"));
            return Ok(());
        }
    };
    let me = &auth.client.client_id;
    if *me != claims.sub && *me != claims.client_id {
        state.audit.record(
            ev.reason("revocation_not_party")
                .jti(&claims.jti)
                .detail("not revoked"),
        );
        return Ok(());
    }
    let (jti, exp, cid) = (claims.jti.clone(), claims.exp, me.clone());
    state
        .store
        .write(move |c| revoked_tokens::insert(c, &jti, Some(&cid), exp, now))
        .await
        .map_err(store_failure)?;
    let revoked = Notice::Revoked {
        jti: claims.jti.clone(),
        exp: claims.exp,
    };
    peers::announce(state, revoked).await;
    state.audit.record(
        ev.jti(&claims.jti)
            .audience(&claims.aud)
            .owner(Some(&claims.owner)),
    );
    Ok(())
}

/// Loads revocations recorded since `since` (by any replica) into memory; returns how many.
pub async fn sync_revocations(
    state: &AppState,
    since: UnixTime,
) -> Result<usize, crate::store::StoreError> {
    let now = clock::now();
    let rows = state
        .store
        .read(move |c| revoked_tokens::since(c, since, now))
        .await?;
    for (jti, exp) in &rows {
        state.revocations.insert(jti, *exp);
    }
    state.revocations.sweep(now);
    Ok(rows.len())
}

/// Server-issued DPoP nonces (RFC 9449 §8): derived from a secret shared by all replicas
/// (the key-encryption key's digest) and the current 5-minute window; the previous window's
/// nonce stays valid so that a nonce never expires the moment it is issued.
pub struct DpopNonces {
    secret: [u8; 32],
}

const NONCE_WINDOW: i64 = 300;

impl DpopNonces {
    /// Nonces derived from `secret`.
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn for_window(&self, window: i64) -> String {
        let mut input = Vec::with_capacity(48);
        input.extend_from_slice(b"patron-dpop-nonce");
        input.extend_from_slice(&self.secret);
        input.extend_from_slice(&window.to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&crypto::sha256(&input)[..18])
    }

    /// The nonce to hand out now.
    pub fn current(&self, now: UnixTime) -> String {
        self.for_window(now.div_euclid(NONCE_WINDOW))
    }

    /// Whether `nonce` is the current or the previous window's nonce.
    pub fn is_valid(&self, nonce: &str, now: UnixTime) -> bool {
        let w = now.div_euclid(NONCE_WINDOW);
        crypto::constant_time_eq(nonce.as_bytes(), self.for_window(w).as_bytes())
            || crypto::constant_time_eq(nonce.as_bytes(), self.for_window(w - 1).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("agt_1:a%2Bb")
        );
        assert_eq!(basic_credentials(&h), Some(("agt_1".into(), "a+b".into())));
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

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

    #[test]
    fn act_depth_counts_nesting() {
        assert_eq!(act_depth(None), 0);
        assert_eq!(act_depth(Some(&json!({"sub": "a"}))), 1);
        assert_eq!(
            act_depth(Some(&json!({"sub": "a", "act": {"sub": "b"}}))),
            2
        );
    }

    #[test]
    fn dpop_nonces_rotate_and_the_previous_one_stays_valid() {
        let n = DpopNonces::new([1; 32]);
        let a = n.current(1000);
        assert!(n.is_valid(&a, 1000));
        assert!(n.is_valid(&a, 1000 + NONCE_WINDOW));
        assert!(!n.is_valid(&a, 1000 + 2 * NONCE_WINDOW));
        assert!(!n.is_valid("forged", 1000));
    }
}
