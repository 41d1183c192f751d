//! Introspection (RFC 7662): only the parties to a token may see it.

use super::{RequestHeaders, authenticate_active_client, validate_issued};
use crate::audit::{AuditEvent, Outcome};
use crate::clock;
use crate::endpoints;
use crate::oauth::error::OAuthError;
use crate::oauth::introspection::Introspection;
use crate::oauth::token_request;
use crate::service::Caller;
use crate::service::store_failure;
use crate::state::AppState;

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
    let (token, creds) = token_request::parse_token_parameter(&form)?;
    let endpoint = endpoints::url(&state.issuer, endpoints::INTROSPECTION);
    let auth = authenticate_active_client(state, &headers, creds, &endpoint, now).await;
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
    let (claims, _) = match validate_issued(state, token.expose(), now).await {
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
