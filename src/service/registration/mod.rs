//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).
//!
//! Every outcome, accepted or refused, is audited here with a precise reason code; the
//! HTTP layer only parses the request and renders the result. The management protocol
//! (RFC 7592: read, update, delete) is in [`manage`].

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::audit::{AuditEvent, Outcome};
use crate::clock::{self, UnixTime};
use crate::crypto;
use crate::endpoints;
use crate::jose::jwks::PublicKeySet;
use crate::jose::software_statement::StatementError;
use crate::mail::Notification;
use crate::oauth::client_metadata::{self, ClientMetadata, MetadataErrorCode};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::outbound::JwksFetchError;
use crate::secret::Secret;
use crate::service::enrollment::{self, Enrollment};
use crate::service::peers::{self, Notice};
use crate::service::{Caller, client_secrets, owners, store_failure};
use crate::state::AppState;
use crate::store::models::clients::{self, ClientRow, ClientStatus, NewClient};
use crate::store::models::{enrollment_tokens, grants, owners as owner_rows};
use crate::store::{DbConnection, StoreError};

mod manage;

pub use manage::{delete, read, update};

/// Prefix of client identifiers.
pub const CLIENT_ID_PREFIX: &str = "agt_";
/// Prefix of registration access tokens.
pub const REGISTRATION_TOKEN_PREFIX: &str = "patron_rat_";

/// Characters of user codes: no vowels (no words), no look-alikes (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// Generates a user code (stored without the dash, shown as `XXXX-XXXX`).
fn new_user_code() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..USER_CODE_LEN)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.random_range(0..USER_CODE_ALPHABET.len())]))
        .collect()
}

/// Formats a stored user code for humans.
pub fn display_user_code(code: &str) -> String {
    if code.len() == USER_CODE_LEN {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

fn metadata_error(e: client_metadata::MetadataError) -> OAuthError {
    let kind = match e.code {
        MetadataErrorCode::InvalidRedirectUri => ErrorKind::InvalidRedirectUri,
        MetadataErrorCode::InvalidClientMetadata => ErrorKind::InvalidClientMetadata,
    };
    OAuthError::new(kind, e.description, e.reason)
}

fn invalid_metadata(description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidClientMetadata, description.into(), reason)
}

fn invalid_token(description: &'static str, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidToken, description, reason)
}

/// Applies a software statement, if any: verified claims replace request members
/// (RFC 7591 §2.3). Returns the statement to echo back.
fn apply_software_statement(
    state: &AppState,
    body: &mut Map<String, Value>,
    now: UnixTime,
) -> Result<Option<String>, OAuthError> {
    let statement = match body.remove("software_statement") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(OAuthError::new(
                ErrorKind::InvalidSoftwareStatement,
                "software_statement must be a string (a signed JWT)",
                "software_statement_wrong_type",
            ));
        }
    };
    let Some(statement) = statement else {
        if state.config.software_statements.required {
            return Err(OAuthError::new(
                ErrorKind::InvalidSoftwareStatement,
                "this server requires a software statement from a trusted publisher",
                "software_statement_required",
            ));
        }
        return Ok(None);
    };
    let claims = state
        .publishers
        .verify(&statement, state.config.validation.clock_skew_secs, now)
        .map_err(|e| match e {
            StatementError::Unapproved => OAuthError::new(
                ErrorKind::UnapprovedSoftwareStatement,
                "the software statement is not from a publisher this server trusts",
                "software_statement_unapproved",
            ),
            StatementError::LifetimeTooLong => OAuthError::new(
                ErrorKind::InvalidSoftwareStatement,
                "software statement rejected: it is valid for too long (exp)",
                "software_statement_lifetime_too_long",
            ),
            StatementError::Invalid(reason) => OAuthError::new(
                ErrorKind::InvalidSoftwareStatement,
                format!("software statement rejected: {}", reason.description()),
                reason.as_str(),
            ),
        })?;
    for (k, v) in claims {
        body.insert(k, v);
    }
    Ok(Some(statement))
}

/// Validated metadata and the [thumbprints](PublicKeySet::thumbprints) of the client's
/// keys (given in `jwks` or fetched from `jwks_uri`), when it has keys.
struct Validated {
    meta: ClientMetadata,
    key_thumbprints: Option<String>,
}

/// Validates metadata, including a `jwks_uri` document fetched under the SSRF guard.
async fn validate_metadata(
    state: &AppState,
    body: &Map<String, Value>,
) -> Result<Validated, OAuthError> {
    let meta = client_metadata::validate(body).map_err(metadata_error)?;
    let keys = match (&meta.jwks, &meta.jwks_uri) {
        (Some(jwks), _) => {
            Some(Arc::new(PublicKeySet::from_jwks(jwks).map_err(|e| {
                invalid_metadata(format!("jwks: {e}"), "jwks_invalid")
            })?))
        }
        (None, Some(uri)) => Some(
            state
                .fetcher
                .fetch_jwks(uri, clock::monotonic())
                .await
                .map_err(|e| match e {
                    JwksFetchError::Fetch(e) => {
                        invalid_metadata(format!("jwks_uri: {e}"), e.reason())
                    }
                    JwksFetchError::InvalidKeys(e) => {
                        invalid_metadata(format!("jwks_uri document: {e}"), "jwks_uri_invalid_keys")
                    }
                })?,
        ),
        (None, None) => None,
    };
    Ok(Validated {
        meta,
        key_thumbprints: keys.map(|k| k.thumbprints()),
    })
}

/// The stored form of metadata: the validated metadata plus the software statement.
fn stored_metadata(meta: &ClientMetadata, statement: Option<&str>) -> Result<String, OAuthError> {
    let mut value = serde_json::to_value(meta).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise client metadata");
        OAuthError::server_error()
    })?;
    if let (Some(s), Some(obj)) = (statement, value.as_object_mut()) {
        obj.insert("software_statement".into(), Value::String(s.to_owned()));
    }
    Ok(value.to_string())
}

/// Builds the client information response (RFC 7591 §3.2.1, RFC 7592 §3).
fn client_information(state: &AppState, row: &ClientRow) -> Result<Map<String, Value>, OAuthError> {
    let mut out = match serde_json::from_str::<Value>(row.metadata.json()) {
        Ok(Value::Object(map)) => map,
        _ => {
            tracing::error!(client_id = %row.client_id, "stored client metadata is not a JSON object");
            return Err(OAuthError::server_error());
        }
    };
    out.insert("client_id".into(), json!(row.client_id));
    out.insert("client_id_issued_at".into(), json!(row.created_at));
    if row.client_secret_hash.is_some() {
        // Secrets never expire on their own; they are replaced through RFC 7592.
        out.insert("client_secret_expires_at".into(), json!(0));
    }
    out.insert(
        "registration_client_uri".into(),
        json!(endpoints::client_configuration_url(
            &state.issuer,
            &row.client_id
        )),
    );
    out.insert("owner_status".into(), json!(row.status.as_str()));
    if let (Some(code), Some(exp)) = (&row.user_code, row.expires_at) {
        if row.status == ClientStatus::Pending {
            let shown = display_user_code(code);
            out.insert("user_code".into(), json!(shown));
            out.insert(
                "verification_uri".into(),
                json!(endpoints::url(&state.issuer, endpoints::CLAIM)),
            );
            out.insert(
                "verification_uri_complete".into(),
                json!(endpoints::claim_url_with_code(&state.issuer, &shown)),
            );
            out.insert("user_code_expires_at".into(), json!(exp));
        }
    }
    Ok(out)
}

/// Secrets handed out once, in the registration (or update) response.
struct IssuedSecrets {
    registration_access_token: String,
    client_secret: Option<String>,
}

/// `POST /register` (RFC 7591 §3). `body` is the parsed request or the reason it could not
/// be parsed, so that malformed requests are audited here like every other refusal.
pub async fn register(
    state: &AppState,
    caller: &Caller,
    initial_access_token: Option<&str>,
    body: Result<Map<String, Value>, OAuthError>,
) -> Result<Map<String, Value>, OAuthError> {
    let result = register_inner(state, caller, initial_access_token, body).await;
    match &result {
        Ok(done) => {
            if !done.renewed {
                state
                    .metrics
                    .registrations_created
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let client_id = done
                .info
                .get("client_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            state.audit.record(
                caller
                    .audit("client.register", Outcome::Success)
                    .client(client_id)
                    .owner(done.owner.as_deref())
                    .detail(match (&done.owner, done.renewed) {
                        (Some(_), _) => "active (enrollment token)",
                        (None, true) => "re-registration of a pending agent",
                        (None, false) => "pending",
                    }),
            );
        }
        Err(e) => {
            state
                .metrics
                .registrations_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            state.audit.record(
                caller
                    .audit("client.register", Outcome::Failure)
                    .reason(e.reason()),
            );
        }
    }
    result.map(|done| done.info)
}

/// An accepted registration.
struct Registered {
    /// The client information response.
    info: Map<String, Value>,
    /// The owner, when an enrollment token linked it to one.
    owner: Option<String>,
    /// Whether it is an earlier pending registration handed back (see [`PendingRow`]).
    renewed: bool,
}

async fn register_inner(
    state: &AppState,
    caller: &Caller,
    initial_access_token: Option<&str>,
    body: Result<Map<String, Value>, OAuthError>,
) -> Result<Registered, OAuthError> {
    let now = clock::now();
    let enrollment = match initial_access_token {
        Some(token) => {
            let found = enrollment::check(state, token, now).await?;
            Some(enrollment::within_policy(state, caller, found).await?)
        }
        None if !state.config.registration.open => {
            return Err(invalid_token(
                "this server requires an initial access token to register",
                "initial_access_token_required",
            ));
        }
        None => {
            state
                .registration_limiter
                .check(caller.source, clock::monotonic())
                .map_err(|wait| {
                    OAuthError::new(
                        ErrorKind::TooManyRequests,
                        "too many registrations from this address; retry later",
                        "registration_rate_limited",
                    )
                    .with_retry_after(wait)
                })?;
            None
        }
    };
    let mut body = body?;
    let statement = apply_software_statement(state, &mut body, now)?;
    let Validated {
        meta,
        key_thumbprints,
    } = validate_metadata(state, &body).await?;
    let metadata_json = stored_metadata(&meta, statement.as_deref())?;

    let client_id = crypto::sortable_id(CLIENT_ID_PREFIX, clock::now_millis());
    let (client_secret, secret_hash) = if meta.uses_secret() {
        let (secret, hash) = client_secrets::issue(state);
        (Some(secret), Some(hash))
    } else {
        (None, None)
    };
    let secrets = IssuedSecrets {
        registration_access_token: crypto::random_token(REGISTRATION_TOKEN_PREFIX),
        client_secret,
    };
    let rat_hash = crypto::sha256_hex(secrets.registration_access_token.as_bytes());
    let source = caller.source.to_string();
    let pending_ttl = state.config.registration.pending_ttl_secs;

    let owner_id = enrollment.as_ref().map(|e| e.owner_id.clone());
    let enrollment = Arc::new(enrollment);
    let write = Arc::new(PendingRow {
        client_id: client_id.clone(),
        metadata: metadata_json,
        secret_hash,
        rat_hash,
        source,
        key_thumbprints,
    });
    // A user-code collision (20^8 codes) fails the job's savepoint with a conflict; retry
    // with a fresh code. Nothing else in the job can conflict.
    let mut attempt = 0;
    let row = loop {
        let (w, e) = (write.clone(), enrollment.clone());
        let result = state
            .store
            .write(move |c| insert_registration(c, &w, e.as_ref().as_ref(), now, pending_ttl))
            .await;
        match result {
            Err(StoreError::Conflict) if attempt < 3 => attempt += 1,
            Err(other) => return Err(store_failure(other)),
            Ok(None) => {
                return Err(invalid_token(
                    "the initial access token has been used up",
                    "enrollment_token_exhausted",
                ));
            }
            Ok(Some(row)) => break row,
        }
    };
    let (row, renewed) = match row {
        Stored::New(row) => (row, false),
        Stored::Renewed(row) => {
            // Whatever was cached of the old registration is void.
            peers::announce(state, Notice::Client(row.client_id.clone())).await;
            (row, true)
        }
    };

    let mut info = client_information(state, &row)?;
    info.insert(
        "registration_access_token".into(),
        json!(secrets.registration_access_token),
    );
    if let Some(secret) = secrets.client_secret {
        info.insert("client_secret".into(), json!(secret));
    }
    Ok(Registered {
        info,
        owner: owner_id,
        renewed,
    })
}

/// The columns of a new registration that do not depend on the enrollment path.
///
/// An open registration (no enrollment token) with keys, from the address of a pending,
/// unexpired registration with the same keys, is that agent registering again (a crash
/// loop, a lost registration response): it gets the pending registration back, with this
/// request's metadata and fresh credentials (the old registration access token and user
/// code stop working), instead of a second row in its owner's console.
struct PendingRow {
    client_id: String,
    metadata: String,
    secret_hash: Option<String>,
    rat_hash: String,
    source: String,
    key_thumbprints: Option<String>,
}

/// What [`insert_registration`] stored.
enum Stored {
    /// A new registration.
    New(ClientRow),
    /// An earlier pending registration, renewed.
    Renewed(ClientRow),
}

/// Renews the pending registration `w` repeats, if any (see [`PendingRow`]).
fn renew_duplicate(
    c: &mut DbConnection,
    w: &PendingRow,
    now: UnixTime,
    pending_ttl: i64,
) -> Result<Option<ClientRow>, StoreError> {
    let Some(prints) = &w.key_thumbprints else {
        return Ok(None);
    };
    let Some(earlier) = clients::find_pending_duplicate(c, prints, &w.source, now)? else {
        return Ok(None);
    };
    let code = new_user_code();
    let renewed = clients::RenewedPending {
        metadata: &w.metadata,
        client_secret_hash: w.secret_hash.as_deref(),
        registration_token_hash: &w.rat_hash,
        user_code: &code,
        expires_at: now + pending_ttl,
    };
    if !clients::renew_pending(c, &earlier.client_id, &renewed, now)? {
        return Ok(None);
    }
    clients::find(c, &earlier.client_id)
}

/// Inserts a registration, or renews the pending one it repeats (one group-commit job).
/// `Ok(None)`: the enrollment token was used up meanwhile, and nothing was written.
fn insert_registration(
    c: &mut DbConnection,
    w: &PendingRow,
    enrollment: Option<&Enrollment>,
    now: UnixTime,
    pending_ttl: i64,
) -> Result<Option<Stored>, StoreError> {
    if enrollment.is_none() {
        if let Some(row) = renew_duplicate(c, w, now, pending_ttl)? {
            return Ok(Some(Stored::Renewed(row)));
        }
    }
    let (status, owner, expires_at) = match enrollment {
        Some(e) => {
            if !enrollment_tokens::consume(c, &e.id, now)? {
                return Ok(None);
            }
            owner_rows::ensure(c, &e.owner_id, now)?;
            (ClientStatus::Active, Some(e.owner_id.as_str()), None)
        }
        None => (ClientStatus::Pending, None, Some(now + pending_ttl)),
    };
    let code = (status == ClientStatus::Pending).then(new_user_code);
    clients::insert(
        c,
        NewClient {
            client_id: &w.client_id,
            status,
            owner_id: owner,
            metadata: &w.metadata,
            client_secret_hash: w.secret_hash.as_deref(),
            registration_token_hash: &w.rat_hash,
            user_code: code.as_deref(),
            source_addr: Some(&w.source),
            created_at: now,
            updated_at: now,
            expires_at,
            key_thumbprints: w.key_thumbprints.as_deref(),
        },
    )?;
    if let Some(e) = enrollment {
        for (aud, scopes) in &e.grants {
            grants::upsert(c, &w.client_id, aud, scopes, now)?;
        }
    }
    // Built from what was inserted: no read-back round trip.
    Ok(Some(Stored::New(ClientRow {
        client_id: w.client_id.clone(),
        status,
        owner_id: owner.map(str::to_owned),
        metadata: w.metadata.clone().into(),
        client_secret_hash: w.secret_hash.clone(),
        registration_token_hash: w.rat_hash.clone(),
        user_code: code,
        source_addr: Some(w.source.clone()),
        created_at: now,
        updated_at: now,
        expires_at,
        tokens_revoked_before: None,
        suspended_by: None,
    })))
}

/// Deletes a registration (and by cascade its grants) and forgets everything cached about
/// it, so nothing issued to it works any more on this replica at once (others follow
/// within the directory's one-second freshness).
pub async fn remove_client(state: &AppState, client_id: &str) -> Result<bool, OAuthError> {
    let cid = client_id.to_owned();
    let removed = state
        .store
        .write(move |c| clients::delete(c, &cid))
        .await
        .map_err(store_failure)?;
    peers::announce(state, Notice::Client(client_id.to_owned())).await;
    Ok(removed)
}

/// Deletes unclaimed registrations past their window (run periodically).
pub async fn purge_expired(state: &Arc<AppState>) -> Result<usize, StoreError> {
    let now = clock::now();
    let n = state
        .store
        .write(move |c| clients::purge_expired_pending(c, now))
        .await?;
    if n > 0 {
        state
            .metrics
            .pending_purged
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            purged = n,
            "purged unclaimed registrations past their claim window"
        );
        state.audit.record(
            AuditEvent::at("client.purge", Outcome::Success, now)
                .detail(format!("{n} unclaimed registrations")),
        );
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_unambiguous_alphabet() {
        for _ in 0..100 {
            let c = new_user_code();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)), "{c}");
        }
        assert_eq!(display_user_code("BCDFGHJK"), "BCDF-GHJK");
    }
}
