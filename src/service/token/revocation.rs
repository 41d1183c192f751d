//! Revocation (RFC 7009), and loading the revocations other replicas made.

use super::{RequestHeaders, authenticate_active_client};
use crate::audit::{AuditEvent, Outcome};
use crate::clock::{self, UnixTime};
use crate::endpoints;
use crate::oauth::error::OAuthError;
use crate::oauth::token_request;
use crate::service::Caller;
use crate::service::peers::{self, Notice};
use crate::service::store_failure;
use crate::state::AppState;
use crate::store::models::revoked_tokens;

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
