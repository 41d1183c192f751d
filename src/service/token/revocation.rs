//! Revocation (RFC 7009), and loading the revocations other replicas made.

use super::{RequestHeaders, authenticate_active_client};
use crate::audit::{AuditEvent, Outcome};
use crate::clock::{self, UnixTime};
use crate::endpoints;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::jti::Jti;
use crate::oauth::split_token;
use crate::oauth::token_request;
use crate::service::Caller;
use crate::service::peers::{self, Notice};
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::models::{refresh_tokens, revoked_tokens};

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
    let (token, creds) = token_request::parse_token_parameter(&form)?;
    let endpoint = endpoints::url(&state.issuer, endpoints::REVOCATION);
    let ev = AuditEvent::at("token.revoke", Outcome::Success, now)
        .source(&caller.source.to_string())
        .request(&caller.request_id);
    let auth = match authenticate_active_client(state, &headers, creds, &endpoint, now).await {
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
    let claims =
        match state
            .verified_tokens
            .verify(token.expose(), &ring.public, &state.issuer, now)
        {
            Ok(c) => c,
            Err(r) => {
                if token
                    .expose()
                    .starts_with(super::authorization_code::REFRESH_PREFIX)
                {
                    return revoke_refresh(state, ev, &auth.client.client_id, &token, now).await;
                }
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

/// Revokes the family of a refresh token (RFC 7009 §2.1: revoking a refresh token may
/// revoke the access tokens of the same grant, and here it does), if it is `client_id`'s.
async fn revoke_refresh(
    state: &AppState,
    ev: AuditEvent,
    client_id: &str,
    token: &crate::secret::Secret,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let Some((id, secret)) =
        split_token::split(token.expose(), super::authorization_code::REFRESH_PREFIX)
    else {
        state
            .audit
            .record(ev.reason("refresh_unknown").detail("nothing to revoke"));
        return Ok(());
    };
    let (id, secret, cid) = (id.to_owned(), secret.to_owned(), client_id.to_owned());
    let until = revoked_until(state, now);
    let revoked = state
        .store
        .write(move |c| match refresh_tokens::find_token(c, &id)? {
            Some((token, family))
                if family.client_id == cid
                    && split_token::secret_matches(&secret, &token.secret_hash) =>
            {
                refresh_tokens::revoke(
                    c,
                    refresh_tokens::Families::Id(&family.family_id),
                    "refresh_revoked_by_client",
                    now,
                    until,
                )
                .map(Some)
            }
            _ => Ok(None),
        })
        .await
        .map_err(store_failure)?;
    match revoked {
        Some(jtis) => {
            state
                .audit
                .record(ev.detail("the refresh token's grant, with its access tokens"));
            announce_revoked(state, jtis).await;
        }
        None => state
            .audit
            .record(ev.reason("refresh_unknown").detail("nothing to revoke")),
    }
    Ok(())
}

/// Until when a revocation made `now` must be kept when the token's own `exp` is not known:
/// past it, no token Patron issued before `now` can still be valid.
pub fn revoked_until(state: &AppState, now: UnixTime) -> UnixTime {
    now + state.config.keys.max_token_lifetime_secs + state.config.validation.clock_skew_secs
}

/// Tells every replica (this one included) about access tokens whose revocation is already
/// recorded in the database, such as those of a revoked refresh family.
pub async fn announce_revoked(state: &AppState, revoked: Vec<(String, UnixTime)>) {
    for (jti, exp) in revoked {
        peers::announce(state, Notice::Revoked { jti, exp }).await;
    }
}

/// What an operator's revocation by `jti` recorded.
#[derive(Debug, serde::Serialize)]
pub struct JtiRevocation {
    /// The revoked `jti`.
    pub jti: String,
    /// Until when the revocation is kept: past it, no token with this `jti` can still be
    /// valid.
    pub revoked_until: UnixTime,
}

/// Revokes a token by its `jti` alone (the operator, through the admin API), so that a
/// token seen only in an audit line can be stopped. Tokens exchanged from it stop working
/// too (they carry it in their chain), on every replica as with [`revoke`].
///
/// Patron keeps no list of issued tokens, so the `jti` need not be known: it is recorded
/// until the longest token lifetime (`keys.max_token_lifetime_secs`) plus the clock skew
/// has passed, after which no token carrying it can be valid anyway. Revoking twice is
/// not an error.
pub async fn revoke_jti(
    state: &AppState,
    caller: &Caller,
    unverified_jti: &str,
) -> Result<JtiRevocation, OAuthError> {
    let now = clock::now();
    let result = async {
        let jti = Jti::parse(unverified_jti)
            .map_err(|e| OAuthError::new(ErrorKind::InvalidRequest, e.to_string(), e.reason()))?;
        let until = revoked_until(state, now);
        let stored = jti.as_str().to_owned();
        state
            .store
            .write(move |c| revoked_tokens::insert(c, &stored, None, until, now))
            .await
            .map_err(store_failure)?;
        peers::announce(
            state,
            Notice::Revoked {
                jti: jti.as_str().to_owned(),
                exp: until,
            },
        )
        .await;
        Ok(JtiRevocation {
            jti: jti.as_str().to_owned(),
            revoked_until: until,
        })
    }
    .await;
    let ev = caller.audit_result("token.revoke", &result);
    state.audit.record(match &result {
        Ok(r) => ev.jti(&r.jti).detail(format!(
            "by the operator, by jti, until {}",
            r.revoked_until
        )),
        Err(_) => ev.detail("by the operator, by jti"),
    });
    result
}

/// Loads revocations recorded since `since` (by any replica) into memory; returns how many.
pub async fn sync_revocations(
    state: &AppState,
    since: UnixTime,
) -> Result<usize, crate::store::StoreError> {
    let now = clock::now();
    // Tokens verify until `exp` + skew; their revocations are needed that long.
    let expired_before = now.saturating_sub(state.config.validation.clock_skew_secs);
    let rows = state
        .store
        .read(move |c| revoked_tokens::since(c, since, expired_before))
        .await?;
    for (jti, exp) in &rows {
        state.revocations.insert(jti, *exp);
    }
    state.revocations.sweep(now);
    Ok(rows.len())
}
