//! Owner login: the upstream providers (GitHub, Google, any OpenID provider) and the
//! development login. A login is bound to the browser that started it (its `state` is in
//! a cookie and stored hashed, single use) and ends in a fresh console session.

use crate::audit::Outcome;
use crate::clock::{self, UnixTime};
use crate::config::{Mode, ProviderConfig, ProviderKind};
use crate::crypto;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::OwnerId;
use crate::service::{Caller, sessions, store_failure};
use crate::state::AppState;
use crate::store::models::{owners, sessions as session_rows};
use crate::upstream::{self, VerifiedIdentity};

/// How long an upstream login may take.
pub const LOGIN_STATE_TTL: i64 = 600;

/// A login provider as the login page lists it: (name in URLs, label on the button).
pub fn providers(state: &AppState) -> Vec<(String, String)> {
    state
        .config
        .console
        .providers
        .iter()
        .map(|p| {
            let label = match p.kind {
                ProviderKind::Github => "GitHub".to_owned(),
                ProviderKind::Google => "Google".to_owned(),
                ProviderKind::Oidc => p.name.clone(),
            };
            (p.name.clone(), label)
        })
        .collect()
}

/// Whether the development login is offered: development mode, switched on, and only on a
/// loopback listener.
pub fn dev_login_enabled(state: &AppState) -> bool {
    state.config.mode == Mode::Development
        && state.config.console.development_login
        && state.config.listen.ip().is_loopback()
}

/// Where a provider sends the browser back to.
pub fn callback_url(state: &AppState, provider: &str) -> String {
    format!("{}/console/callback/{provider}", state.issuer)
}

fn refused(kind: ErrorKind, description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(kind, description.into(), reason)
}

fn provider<'a>(state: &'a AppState, name: &str) -> Result<&'a ProviderConfig, OAuthError> {
    state
        .config
        .console
        .providers
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            refused(
                ErrorKind::NotFound,
                "No such login provider.",
                "provider_unknown",
            )
        })
}

/// A started upstream login: where to send the browser, and the `state` to bind to it.
pub struct StartedLogin {
    /// The provider's authorization URL.
    pub url: String,
    /// The `state` value, for the browser-binding cookie.
    pub login_state: String,
}

/// Starts a login with `provider_name`, remembering where to return to afterwards.
pub async fn start(
    state: &AppState,
    caller: &Caller,
    provider_name: &str,
    return_to: Option<&str>,
) -> Result<StartedLogin, OAuthError> {
    let provider = provider(state, provider_name)?;
    // Each start stores a pending login: bound them per address.
    if state
        .claim_limiter
        .check(caller.source, clock::monotonic())
        .is_err()
    {
        return Err(refused(
            ErrorKind::TooManyRequests,
            "Too many logins from this address. Wait a minute and try again.",
            "login_rate_limited",
        ));
    }
    let return_to = sessions::safe_return_to(return_to);
    let redirect_uri = callback_url(state, &provider.name);
    let http = upstream::http_client().map_err(|_| OAuthError::server_error())?;
    let started = upstream::start(provider, &http, &redirect_uri)
        .await
        .map_err(|e| {
            tracing::warn!(provider = %provider.name, error = ?e, "upstream login could not start");
            refused(ErrorKind::UpstreamUnavailable, e.to_string(), e.reason())
        })?;
    let row = (
        crypto::sha256_hex(started.state.as_bytes()),
        provider.name.clone(),
        started.nonce,
        started.pkce_verifier,
        return_to,
        clock::now(),
    );
    state
        .store
        .write(move |c| {
            let (h, p, n, v, r, now) = &row;
            session_rows::insert_login_state(c, h, p, n, v, r, *now)
        })
        .await
        .map_err(store_failure)?;
    Ok(StartedLogin {
        url: started.url,
        login_state: started.state,
    })
}

/// What a provider's callback carries.
pub struct Callback<'a> {
    /// The authorization code.
    pub code: Option<&'a str>,
    /// The `state` in the query.
    pub state: Option<&'a str>,
    /// The `state` in the browser's login cookie, if any.
    pub bound_state: Option<&'a str>,
    /// Whether the provider reported an error instead.
    pub error: bool,
}

/// A finished login: the new session's cookie value and where to go.
pub struct LoggedIn {
    /// The session cookie value.
    pub cookie: String,
    /// A local path.
    pub return_to: String,
}

/// Finishes a login at the provider's callback: checks it belongs to this browser and to a
/// live pending login, redeems the code, records the owner and starts a session. Every
/// refusal is audited with its reason.
pub async fn finish(
    state: &AppState,
    caller: &Caller,
    provider_name: &str,
    callback: Callback<'_>,
) -> Result<LoggedIn, OAuthError> {
    let provider = provider(state, provider_name)?;
    let result = finish_inner(state, caller, provider, callback).await;
    if let Err(e) = &result {
        if e.kind() == ErrorKind::InvalidRequest {
            state.audit.record(
                caller
                    .audit("owner.login", Outcome::Failure)
                    .reason(e.reason())
                    .detail(format!("provider {provider_name}")),
            );
        }
    }
    result
}

fn login_failed(description: &str, reason: &'static str) -> OAuthError {
    refused(ErrorKind::InvalidRequest, description, reason)
}

async fn finish_inner(
    state: &AppState,
    caller: &Caller,
    provider: &ProviderConfig,
    callback: Callback<'_>,
) -> Result<LoggedIn, OAuthError> {
    if callback.error {
        return Err(login_failed(
            "The identity provider did not log you in.",
            "upstream_denied",
        ));
    }
    // The callback must arrive in the browser that started the login: its cookie holds the
    // same `state`. Otherwise an attacker's callback link would log the victim in as the
    // attacker.
    let presented = callback.state.unwrap_or("");
    let bound = callback
        .bound_state
        .is_some_and(|c| crypto::constant_time_eq(c.as_bytes(), presented.as_bytes()));
    if !bound {
        return Err(login_failed(
            "This login was started in another browser, or its cookie expired. Start again from the login page.",
            "login_not_bound",
        ));
    }
    let pending = match take_login_state(state, presented).await? {
        Some(p) if p.provider == provider.name => p,
        _ => {
            return Err(login_failed(
                "This login link has expired or was already used. Start again from the login page.",
                "login_state_invalid",
            ));
        }
    };
    let Some(code) = callback.code.filter(|c| !c.is_empty() && c.len() < 2048) else {
        return Err(login_failed(
            "The identity provider sent no code.",
            "upstream_code_missing",
        ));
    };
    let http = upstream::http_client().map_err(|_| OAuthError::server_error())?;
    let redirect_uri = callback_url(state, &provider.name);
    let identity = upstream::complete(
        provider,
        &http,
        &redirect_uri,
        code,
        &pending.nonce,
        &pending.pkce_verifier,
    )
    .await
    .map_err(|e| {
        tracing::warn!(provider = %provider.name, error = ?e, "upstream login refused");
        login_failed(&e.to_string(), e.reason())
    })?;
    let cookie = log_in(
        state,
        caller,
        &identity,
        &format!("login with {}", provider.name),
    )
    .await?;
    Ok(LoggedIn {
        cookie,
        return_to: sessions::safe_return_to(Some(&pending.return_to)),
    })
}

/// The development login: any name, as `dev:<name>` with `<name>@dev.invalid`. Only where
/// [`dev_login_enabled`].
pub async fn dev_login(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<String, OAuthError> {
    if !dev_login_enabled(state) {
        return Err(refused(
            ErrorKind::NotFound,
            "The development login is disabled.",
            "dev_login_disabled",
        ));
    }
    let name = name.trim();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        return Err(refused(
            ErrorKind::InvalidRequest,
            "Use letters, digits, dots, dashes and underscores.",
            "dev_login_name_invalid",
        ));
    }
    let identity = VerifiedIdentity {
        owner_id: OwnerId::parse(&format!("dev:{name}"))?,
        email: format!("{name}@dev.invalid"),
        name: Some(name.to_owned()),
    };
    log_in(state, caller, &identity, "development login").await
}

/// Records the owner (creating or refreshing it), audits the login and starts a session.
async fn log_in(
    state: &AppState,
    caller: &Caller,
    identity: &VerifiedIdentity,
    method: &str,
) -> Result<String, OAuthError> {
    let (o, e, n, now) = (
        identity.owner_id.clone(),
        identity.email.clone(),
        identity.name.clone(),
        clock::now(),
    );
    state
        .store
        .write(move |c| owners::upsert_login(c, &o, &e, n.as_deref(), now))
        .await
        .map_err(store_failure)?;
    state.audit.record(
        caller
            .audit("owner.login", Outcome::Success)
            .owner(Some(&identity.owner_id))
            .detail(method.to_owned()),
    );
    sessions::start(state, &identity.owner_id).await
}

/// A pending login taken back at the callback.
struct PendingLogin {
    provider: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
}

/// Takes (and deletes) the pending login for a `state`; a replayed or stale state is `None`.
async fn take_login_state(
    state: &AppState,
    login_state: &str,
) -> Result<Option<PendingLogin>, OAuthError> {
    if login_state.is_empty() || login_state.len() > 200 {
        return Ok(None);
    }
    let h = crypto::sha256_hex(login_state.as_bytes());
    let row = state
        .store
        .write(move |c| session_rows::take_login_state(c, &h))
        .await
        .map_err(store_failure)?;
    Ok(row.and_then(
        |(provider, nonce, pkce_verifier, return_to, created): (
            String,
            String,
            String,
            String,
            UnixTime,
        )| {
            (clock::now() - created <= LOGIN_STATE_TTL).then_some(PendingLogin {
                provider,
                nonce,
                pkce_verifier,
                return_to,
            })
        },
    ))
}
