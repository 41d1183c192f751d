//! The registration management protocol (RFC 7592): an agent reads, replaces (for
//! example to rotate its keys) and deletes its own registration with its registration
//! access token.

#[allow(
    clippy::wildcard_imports,
    reason = "the parent module's helpers and imports, shared"
)]
use super::*;

/// Authenticates a registration access token for `client_id` (RFC 7592 §3). Unknown
/// clients and wrong tokens look the same to the caller.
async fn authenticate(
    state: &AppState,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<ClientRow, OAuthError> {
    let token = bearer.ok_or_else(|| {
        invalid_token(
            "a registration access token is required (Authorization: Bearer)",
            "registration_token_missing",
        )
    })?;
    let cid = client_id.to_owned();
    let row = state
        .store
        .read(move |c| clients::find(c, &cid))
        .await
        .map_err(store_failure)?;
    let presented = crypto::sha256_hex(token.as_bytes());
    match row {
        Some(row)
            if !row.is_expired(clock::now())
                && crypto::constant_time_eq(
                    presented.as_bytes(),
                    row.registration_token_hash.as_bytes(),
                ) =>
        {
            Ok(row)
        }
        Some(row) if row.is_expired(clock::now()) => Err(invalid_token(
            "the registration access token is not valid",
            "client_expired",
        )),
        Some(_) => Err(invalid_token(
            "the registration access token is not valid",
            "registration_token_invalid",
        )),
        None => Err(invalid_token(
            "the registration access token is not valid",
            "client_unknown",
        )),
    }
}

fn audit_management(
    state: &AppState,
    caller: &Caller,
    event: &'static str,
    client_id: &str,
    result: &Result<impl Sized, OAuthError>,
    detail: Option<String>,
) {
    let ev = caller
        .audit(
            event,
            if result.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        )
        .client(client_id);
    let ev = match result {
        Ok(_) => {
            state
                .metrics
                .registrations_managed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ev
        }
        Err(e) => ev.reason(e.reason()),
    };
    state.audit.record(match detail {
        Some(d) => ev.detail(d),
        None => ev,
    });
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub async fn read(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<Map<String, Value>, OAuthError> {
    let result = async {
        let row = authenticate(state, client_id, bearer).await?;
        client_information(state, &row)
    }
    .await;
    audit_management(state, caller, "client.read", client_id, &result, None);
    result
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): full replacement, re-validated.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    bearer: Option<&str>,
    body: Result<Map<String, Value>, OAuthError>,
) -> Result<Map<String, Value>, OAuthError> {
    let mut rekeyed = false;
    let result = update_inner(state, caller, client_id, bearer, body, &mut rekeyed).await;
    audit_management(
        state,
        caller,
        "client.update",
        client_id,
        &result,
        rekeyed.then(|| "keys replaced".to_owned()),
    );
    if rekeyed && result.is_ok() {
        owners::notify_owner_of(state, client_id, |name| Notification::AgentRekeyed {
            client_id: client_id.to_owned(),
            client_name: name,
        })
        .await;
    }
    result
}

async fn update_inner(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    bearer: Option<&str>,
    body: Result<Map<String, Value>, OAuthError>,
    rekeyed: &mut bool,
) -> Result<Map<String, Value>, OAuthError> {
    // An update may fetch a new jwks_uri like a registration: the same per-address budget.
    state
        .registration_limiter
        .check(caller.source, clock::monotonic())
        .map_err(|wait| {
            OAuthError::new(
                ErrorKind::TooManyRequests,
                "too many registration updates from this address; retry later",
                "registration_update_rate_limited",
            )
            .with_retry_after(wait)
        })?;
    let row = authenticate(state, client_id, bearer).await?;
    let mut body = body?;
    let now = clock::now();
    match body.get("client_id") {
        None => {}
        Some(Value::String(id)) if id == client_id => {}
        Some(_) => {
            return Err(invalid_metadata(
                "client_id cannot be changed; it must match the registration being updated",
                "client_id_mismatch",
            ));
        }
    }
    // RFC 7592 §2.2: a client_secret in the request must match the current one.
    // Throttled like client authentication at the token endpoint.
    let mut confirmed_secret = None;
    if let Some(sent) = body.get("client_secret") {
        let attempt = state
            .auth_throttle
            .attempt(client_id, caller.source, clock::monotonic())
            .map_err(crate::service::token::client_auth_throttled)?;
        let matches = match (sent.as_str(), &row.client_secret_hash) {
            (Some(s), Some(stored)) => {
                client_secrets::verify(state, client_id, Secret::from(s), stored).await
            }
            _ => false,
        };
        if matches {
            confirmed_secret = sent.as_str().map(Secret::from);
        } else {
            return Err(invalid_metadata(
                "client_secret does not match the current secret; omit it to keep the secret",
                "client_secret_mismatch",
            ));
        }
        attempt.succeeded();
    }
    let statement = apply_software_statement(state, &mut body, now)?;
    let Validated {
        meta,
        key_thumbprints,
    } = validate_metadata(state, &body).await?;
    let metadata_json = stored_metadata(&meta, statement.as_deref())?;

    let old: Option<&ClientMetadata> = row.metadata.parsed();
    if let Some(old) = &old {
        *rekeyed = old.jwks != meta.jwks || old.jwks_uri != meta.jwks_uri;
    }
    // Keep the secret while the method still uses one; issue one when the client switches
    // to a secret-based method; drop it when it switches away.
    let (new_secret, secret_hash) = match (meta.uses_secret(), &row.client_secret_hash) {
        // A confirmed secret is stored keyed, so a legacy hash it matched (and replaced)
        // does not come back with this write.
        (true, Some(existing)) => (
            None,
            Some(
                confirmed_secret
                    .as_ref()
                    .map_or_else(|| existing.clone(), |s| state.secrets.hash(s.expose())),
            ),
        ),
        (true, None) => {
            let (s, h) = client_secrets::issue(state);
            (Some(s), Some(h))
        }
        (false, _) => (None, None),
    };
    let cid = client_id.to_owned();
    let updated = state
        .store
        .write(move |c| {
            if !clients::update_metadata(c, &cid, &metadata_json, secret_hash.as_deref(), now)? {
                return Ok(None);
            }
            clients::set_key_thumbprints(c, &cid, key_thumbprints.as_deref())?;
            clients::find(c, &cid)
        })
        .await
        .map_err(store_failure)?
        .ok_or_else(|| {
            invalid_token(
                "the registration access token is not valid",
                "client_unknown",
            )
        })?;
    peers::announce(state, Notice::Client(client_id.to_owned())).await;
    let mut info = client_information(state, &updated)?;
    if let Some(s) = new_secret {
        info.insert("client_secret".into(), json!(s));
    }
    Ok(info)
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): the client and its grants are removed,
/// so nothing issued to it works any more.
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<(), OAuthError> {
    let result = async {
        let row = authenticate(state, client_id, bearer).await?;
        remove_client(state, client_id).await?;
        Ok::<_, OAuthError>(row)
    }
    .await;
    if let Ok(row) = &result {
        owners::notify_agent_owner(state, row, |client_name| Notification::AgentDeleted {
            client_id: client_id.to_owned(),
            client_name,
            by: "the agent itself (RFC 7592)",
        })
        .await;
    }
    let result = result.map(|_| ());
    audit_management(state, caller, "client.delete", client_id, &result, None);
    result
}
