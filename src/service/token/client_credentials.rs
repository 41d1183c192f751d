//! The `client_credentials` grant (RFC 6749 §4.4): an agent token, or with `resource`
//! (RFC 8707) a token for one skill the agent was granted.

use super::{Issued, err, issue, known_skill, narrow_scopes, require_binding, still_offered};
use crate::clock::UnixTime;
use crate::jose::access_token::{self, AccessTokenClaims, Confirmation};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::directory::ClientRecord;
use crate::state::AppState;

#[allow(clippy::too_many_arguments)]
/// Issues a `client_credentials` token to `client`, an active agent of `owner`.
pub(super) async fn grant(
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
