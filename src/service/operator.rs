//! The operator's credential: the admin token that guards the admin API (and so the
//! `patron admin` CLI). Refusals are audited.

use crate::audit::Outcome;
use crate::crypto::constant_time_eq;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::Caller;
use crate::state::AppState;

/// Checks a presented admin token. Without a configured token the admin API does not
/// exist (404); a missing or wrong token is 401, audited.
pub fn check_admin_token(
    state: &AppState,
    caller: &Caller,
    presented: Option<&str>,
) -> Result<(), OAuthError> {
    let Some(expected) = &state.config.admin_token else {
        return Err(disabled());
    };
    match presented {
        Some(t) if constant_time_eq(t.as_bytes(), expected.expose().as_bytes()) => Ok(()),
        _ => {
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
    }
}

/// The answer where the admin API is not offered.
pub fn disabled() -> OAuthError {
    OAuthError::new(
        ErrorKind::NotFound,
        "no such endpoint",
        "admin_api_disabled",
    )
}
