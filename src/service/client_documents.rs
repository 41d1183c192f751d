//! Clients identified by a Client ID Metadata Document: when an authorization request
//! names an `https` URL as its `client_id`, the document is fetched through the SSRF-guarded
//! fetcher (bounded in size and time, from hosts the operator admits), validated like
//! registration metadata, and kept as a client row so that the token endpoint, consents and
//! the audit trail treat it like any other client. The row is refreshed when the document's
//! cache lifetime (its `max-age`, within the configured bounds) has passed; the token
//! endpoint never fetches.
//!
//! Such a client has no owner: many people may use it, each with a consent of their own.

use crate::clock::{self, UnixTime};
use crate::crypto::{random_token, sha256_hex};
use crate::oauth::client_id_document::{self, cache_lifetime, host_admitted, validate_document};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::outbound::FetchError;
use crate::service::peers::{self, Notice};
use crate::service::{Caller, store_failure};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::clients::{self, ClientStatus, NewClient};

fn refuse(description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidRequest, description.into(), reason)
}

fn fetch_refusal(e: &FetchError) -> OAuthError {
    match e {
        FetchError::PrivateAddress => refuse(
            "the client metadata document's host resolves to a private address",
            "cimd_private_address",
        ),
        FetchError::TooLarge(n) => refuse(
            format!("the client metadata document is larger than {n} bytes"),
            "cimd_too_large",
        ),
        FetchError::NotJson => refuse("the client metadata document is not JSON", "cimd_not_json"),
        FetchError::NotHttps => refuse("the client_id URL must use https", "cimd_url_invalid"),
        FetchError::Failed(why) => refuse(
            format!("the client metadata document could not be fetched: {why}"),
            "cimd_fetch_failed",
        ),
    }
}

/// Makes sure the client row of document client id `client_id` is fresh, fetching the
/// document when it is missing or stale. Refusals are audited.
pub async fn ensure_fresh(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
) -> Result<(), OAuthError> {
    let now = clock::now();
    let result = refresh(state, client_id, now).await;
    match &result {
        Ok(false) => {}
        Ok(true) => state.audit.record(
            caller
                .audit("client_document.fetch", crate::audit::Outcome::Success)
                .client(client_id),
        ),
        Err(e) => state.audit.record(
            caller
                .audit_result::<()>("client_document.fetch", &Err(e.clone()))
                .client(&client_id.chars().take(200).collect::<String>())
                .detail(e.description().to_owned()),
        ),
    }
    result.map(|_| ())
}

/// Whether it fetched.
async fn refresh(state: &AppState, client_id: &str, now: UnixTime) -> Result<bool, OAuthError> {
    let config = &state.config.client_id_documents;
    if !config.enabled {
        return Err(refuse(
            "this server does not accept client ID metadata documents; register the client",
            "cimd_disabled",
        ));
    }
    let url = client_id_document::parse_client_id(client_id)?;
    let host = url.host_str().unwrap_or_default();
    if !host_admitted(host, &config.allow_hosts, &config.deny_hosts) {
        return Err(refuse(
            format!("client metadata documents from {host} are not accepted here"),
            "cimd_host_refused",
        ));
    }
    let cid = client_id.to_owned();
    let existing = state
        .store
        .read(move |c| clients::find(c, &cid))
        .await
        .map_err(store_failure)?;
    if let Some(row) = &existing {
        if !client_id_document::is_document_client_id(&row.client_id) {
            return Err(refuse("unknown client_id", "client_unknown"));
        }
        if row.expires_at.is_some_and(|t| t > now) {
            return Ok(false);
        }
    }
    let (doc, cache_control) = state
        .fetcher
        .fetch_document(&url, config.max_bytes)
        .await
        .map_err(|e| fetch_refusal(&e))?;
    let meta = validate_document(client_id, &doc)?;
    let metadata = serde_json::to_string(&meta).map_err(|_| OAuthError::server_error())?;
    let fresh_until = now
        + cache_lifetime(
            cache_control.as_deref(),
            config.min_cache_secs,
            config.max_cache_secs,
        );
    let thumbprints = meta
        .jwks
        .as_ref()
        .and_then(|j| crate::jose::jwks::PublicKeySet::from_jwks(j).ok())
        .map(|set| set.thumbprints());
    let cid = client_id.to_owned();
    let is_new = existing.is_none();
    state
        .store
        .write(move |c| {
            if is_new {
                // Nobody manages a document client through RFC 7592: its registration
                // token is a random value whose hash is kept and which nobody knows.
                let unusable = sha256_hex(random_token("").as_bytes());
                clients::insert(
                    c,
                    NewClient {
                        client_id: &cid,
                        status: ClientStatus::Active,
                        owner_id: None,
                        metadata: &metadata,
                        client_secret_hash: None,
                        registration_token_hash: &unusable,
                        user_code: None,
                        source_addr: None,
                        created_at: now,
                        updated_at: now,
                        expires_at: Some(fresh_until),
                        key_thumbprints: thumbprints.as_deref(),
                    },
                )
            } else {
                clients::update_document(
                    c,
                    &cid,
                    &metadata,
                    thumbprints.as_deref(),
                    fresh_until,
                    now,
                )
            }
        })
        .await
        .or_else(|e| match e {
            // Another request fetched it at the same moment.
            StoreError::Conflict => Ok(()),
            other => Err(other),
        })
        .map_err(store_failure)?;
    peers::announce(state, Notice::Client(client_id.to_owned())).await;
    Ok(true)
}
