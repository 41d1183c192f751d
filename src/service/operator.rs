//! The operator's credential: the admin token that guards the admin API (and so the
//! `patron admin` CLI). Refusals are audited.
//!
//! The token is configured in clear (`admin.token`) or as an argon2id hash
//! (`admin.token_hash`). A hashed token costs one argon2id run, on the blocking pool, the
//! first time it is presented; its SHA-256 is then remembered, so later admin requests are
//! checked with one SHA-256 and a constant-time comparison. Wrong tokens never enter that
//! memory and always pay argon2id, bounded by [`crate::crypto::Argon2Pool`].

use crate::audit::Outcome;
use crate::config::AdminToken;
use crate::crypto::{constant_time_eq, sha256};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::secret::Secret;
use crate::service::Caller;
use crate::state::AppState;

/// Checks a presented admin token. Without a configured token the admin API does not
/// exist (404); a missing or wrong token is 401, audited.
pub async fn check_admin_token(
    state: &AppState,
    caller: &Caller,
    presented: Option<&str>,
) -> Result<(), OAuthError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(disabled());
    };
    let ok = match (presented, expected) {
        (None, _) => false,
        (Some(t), AdminToken::Plain(e)) => constant_time_eq(t.as_bytes(), e.expose().as_bytes()),
        (Some(t), AdminToken::Argon2id(phc)) => matches_hash(state, t, phc).await,
    };
    if ok {
        return Ok(());
    }
    state.audit.record(
        caller
            .audit("admin.auth", Outcome::Failure)
            .reason("admin_token_invalid"),
    );
    Err(OAuthError::new(
        ErrorKind::InvalidToken,
        "a valid admin token is required",
        "admin_token_invalid",
    ))
}

/// Whether `presented` matches the configured argon2id hash: from memory after the first
/// success, otherwise by argon2id on the blocking pool.
async fn matches_hash(state: &AppState, presented: &str, phc: &str) -> bool {
    let digest = sha256(presented.as_bytes());
    if let Some(known) = state.verified_admin_token.get() {
        if constant_time_eq(known, &digest) {
            return true;
        }
    }
    let ok = state
        .argon2
        .verify(Secret::from(presented), phc.to_owned())
        .await;
    if ok {
        // Only the configured token can match, so the first value set is the only one.
        let _ = state.verified_admin_token.set(digest);
    }
    ok
}

/// The answer where the admin API is not offered.
pub fn disabled() -> OAuthError {
    OAuthError::new(
        ErrorKind::NotFound,
        "no such endpoint",
        "admin_api_disabled",
    )
}
