//! Client authentication at the token, introspection and revocation endpoints: HTTP Basic
//! or form secrets (RFC 6749 §2.3.1) and `private_key_jwt` assertions (RFC 7523 §3), each
//! client held to the method it registered.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use base64::Engine as _;

use super::{RequestHeaders, err, first_use, invalid_client};
use crate::clock::{self, UnixTime};
use crate::jose::client_assertion::{self, AssertionRequirements};
use crate::jose::jwks::PublicKeySet;
use crate::oauth::client_metadata::TokenEndpointAuthMethod;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::token_request::{BodyCredentials, JWT_BEARER_ASSERTION};
use crate::outbound::JwksFetchError;
use crate::secret::Secret;
use crate::service::client_secrets;
use crate::service::directory::ClientRecord;
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::models::clients::ClientStatus;

/// A client whose authentication succeeded.
pub struct Authenticated {
    /// The client.
    pub client: Arc<ClientRecord>,
}

/// The client id and secret of an HTTP Basic `Authorization` header value.
fn basic_credentials(header: &Secret) -> Option<(String, Secret)> {
    let header = header.expose();
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
    Some((dec(id)?, Secret::from(dec(secret)?)))
}

/// Authenticates the client at the token, introspection or revocation endpoint. Takes the
/// body credentials by value so that a secret moves, uncopied, to the blocking pool.
///
/// Failed attempts are throttled per client and source address and per source address
/// ([`AuthFailureThrottle`](crate::ratelimit::AuthFailureThrottle)): over the limit, the
/// request is refused (429, `client_auth_throttled`) before any credential is checked.
pub async fn authenticate_client(
    state: &AppState,
    headers: &RequestHeaders,
    creds: BodyCredentials,
    endpoint_url: &str,
    now: UnixTime,
) -> Result<Authenticated, OAuthError> {
    let basic = headers.authorization.as_ref().and_then(basic_credentials);
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
        let id = client_assertion::unverified_client_id(assertion.expose())
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
    // Counted as a failure unless it reaches the end: every early return below is one.
    let source = headers.source.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let attempt = state
        .auth_throttle
        .attempt(&client.client_id, source, clock::monotonic())
        .map_err(client_auth_throttled)?;
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
                .or(creds.client_secret)
                .unwrap_or_else(|| Secret::from(String::new()));
            let stored = client.secret_hash.as_deref().unwrap_or_default();
            if !client_secrets::verify(state, &client.client_id, secret, stored).await {
                return Err(invalid_client(
                    "unknown client or bad credentials",
                    "client_secret_invalid",
                ));
            }
        }
        TokenEndpointAuthMethod::PrivateKeyJwt => {
            let keys = client_keys(state, &client).await?;
            let assertion = creds
                .client_assertion
                .as_ref()
                .map(Secret::expose)
                .unwrap_or_default();
            let both = [state.issuer.as_str(), endpoint_url];
            let audiences = if state.config.tokens.strict_assertion_audience {
                &both[..1]
            } else {
                &both[..]
            };
            let verified = client_assertion::verify_assertion(
                assertion,
                &keys,
                &AssertionRequirements {
                    client_id: &client.client_id,
                    audiences,
                    now,
                    skew_secs: state.config.validation.clock_skew_secs,
                    max_lifetime_secs: state.config.tokens.assertion_max_lifetime_secs,
                    max_age_secs: state.config.tokens.assertion_max_age_secs,
                },
            )
            .map_err(|e| OAuthError::new(ErrorKind::InvalidClient, e.description(), e.reason()))?;
            // RFC 7523 §3: single use while the assertion is acceptable at all.
            let key = format!("ca:{}:{}", client.client_id, verified.jti);
            if !first_use(state, &key, verified.remember_until, now).await? {
                return Err(invalid_client(
                    "the client assertion was already used",
                    "jti_replayed",
                ));
            }
        }
        TokenEndpointAuthMethod::None => {}
    }
    attempt.succeeded();
    Ok(Authenticated { client })
}

/// The refusal of an attempt over the failed-authentication limit (no credential checked).
pub fn client_auth_throttled(wait: u64) -> OAuthError {
    OAuthError::new(
        ErrorKind::TooManyRequests,
        "too many failed authentications for this client from this address; retry later",
        "client_auth_throttled",
    )
    .with_retry_after(wait)
}

/// [`authenticate_client`] for the introspection and revocation endpoints, which also
/// refuses a client that authenticated but may not act: one still pending approval or
/// suspended (`invalid_client`, RFC 6749 §5.2). Such a client gets no tokens either, and
/// must not learn about or interfere with other parties' tokens.
pub async fn authenticate_active_client(
    state: &AppState,
    headers: &RequestHeaders,
    creds: BodyCredentials,
    endpoint_url: &str,
    now: UnixTime,
) -> Result<Authenticated, OAuthError> {
    let auth = authenticate_client(state, headers, creds, endpoint_url, now).await?;
    match auth.client.status {
        ClientStatus::Active => Ok(auth),
        ClientStatus::Pending => Err(invalid_client(
            "the client has not been approved yet",
            "client_pending",
        )),
        ClientStatus::Suspended => Err(invalid_client(
            "the client is suspended",
            "client_suspended",
        )),
    }
}

/// The client a request claims to come from, before authentication proves it.
pub(super) fn claimed_client_id(
    headers: &RequestHeaders,
    creds: &BodyCredentials,
) -> Option<String> {
    headers
        .authorization
        .as_ref()
        .and_then(basic_credentials)
        .map(|(id, _)| id)
        .or_else(|| creds.client_id.clone())
        .or_else(|| {
            creds
                .client_assertion
                .as_ref()
                .and_then(|a| client_assertion::unverified_client_id(a.expose()))
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
    state
        .fetcher
        .fetch_jwks(uri, clock::monotonic())
        .await
        .map_err(|e| match e {
            JwksFetchError::Fetch(e) => {
                invalid_client("the client's jwks_uri could not be fetched", e.reason())
            }
            JwksFetchError::InvalidKeys(_) => invalid_client(
                "the client's jwks_uri holds no usable keys",
                "jwks_uri_invalid_keys",
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let decoded = |h: &str| {
            basic_credentials(&Secret::from(h)).map(|(id, s)| (id, s.expose().to_owned()))
        };
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("agt_1:a%2Bb")
        );
        assert_eq!(decoded(&h), Some(("agt_1".into(), "a+b".into())));
        assert_eq!(decoded("Bearer x"), None);
        assert_eq!(decoded("Basic !!!"), None);
    }
}
