//! What Patron issues and accepts: the `[tokens]` lifetimes and DPoP rules, and the
//! `[validation]` profile for JWTs it is shown.

use super::raw::{RawTokens, RawValidation};
use super::{ConfigError, Mode, positive};

/// The JWT validation profile's tunables.
#[derive(Debug, Clone, Copy)]
pub struct ValidationConfig {
    /// Allowed clock difference for `exp`, `nbf` and `iat`.
    pub clock_skew_secs: i64,
    /// Largest accepted age (`now - iat`) of a presented JWT.
    pub max_token_age_secs: i64,
}

/// Token issuance settings.
#[derive(Debug, Clone, Copy)]
pub struct TokensConfig {
    /// Lifetime of agent tokens (audience: Patron itself).
    pub agent_ttl_secs: i64,
    /// Lifetime of skill tokens when the skill sets none.
    pub default_skill_ttl_secs: i64,
    /// Longest delegation chain (nested `act`) an exchange may produce.
    pub max_exchange_depth: usize,
    /// Oldest accepted DPoP proof (`iat`).
    pub dpop_max_age_secs: i64,
    /// Whether DPoP proofs must carry a server nonce (RFC 9449 §8).
    pub dpop_require_nonce: bool,
    /// Longest accepted client assertion lifetime (`exp - now`).
    pub assertion_max_lifetime_secs: i64,
    /// Oldest accepted client assertion (`now - iat`): the replay window, and so how long
    /// each assertion's `jti` is remembered.
    pub assertion_max_age_secs: i64,
    /// Whether a client assertion's `aud` must be the issuer identifier alone; otherwise the
    /// token endpoint URL (what Authlib and others send by default) is accepted too.
    pub strict_assertion_audience: bool,
    /// How often revocations recorded by other replicas are loaded from the database.
    pub revocation_sync_secs: u64,
    /// Whether a skill an owner created gets tokens only once its audience is proven by
    /// RFC 9728 metadata (always in production; off by default in development, so that a
    /// first run works without publishing a document).
    pub require_audience_proof: bool,
    /// Lifetime of an authorization code (RFC 6749 §4.1.2 recommends at most 10 minutes).
    pub code_ttl_secs: i64,
    /// A refresh token unused this long expires (each rotation starts the count again).
    pub refresh_idle_secs: i64,
    /// No refresh token of a grant outlives this, counted from the code exchange.
    pub refresh_absolute_secs: i64,
}

/// Validates `[tokens]`. No token may outlive `max_token_lifetime_secs` (from `[keys]`):
/// retired keys stay published only that long.
pub(super) fn validate_tokens(
    raw: &RawTokens,
    max_token_lifetime_secs: i64,
    mode: Mode,
) -> Result<TokensConfig, ConfigError> {
    let require_audience_proof = match (raw.require_audience_proof, mode) {
        (Some(false), Mode::Production) => {
            return Err(ConfigError::new(
                "tokens.require_audience_proof",
                "cannot be switched off in production mode: an owner could name anybody's API as their skill",
            ));
        }
        (Some(v), _) => v,
        (None, m) => m == Mode::Production,
    };
    let tokens = TokensConfig {
        agent_ttl_secs: positive("tokens.agent_ttl_secs", raw.agent_ttl_secs)?,
        default_skill_ttl_secs: positive(
            "tokens.default_skill_ttl_secs",
            raw.default_skill_ttl_secs,
        )?,
        max_exchange_depth: raw.max_exchange_depth.clamp(1, 16) as usize,
        dpop_max_age_secs: positive("tokens.dpop_max_age_secs", raw.dpop_max_age_secs)?,
        dpop_require_nonce: raw.dpop_require_nonce,
        assertion_max_lifetime_secs: positive(
            "tokens.assertion_max_lifetime_secs",
            raw.assertion_max_lifetime_secs,
        )?,
        assertion_max_age_secs: match raw.assertion_max_age_secs {
            // The replay cache holds rate × this window: an hour is the sane ceiling.
            s @ 1..=3600 => s as i64,
            _ => {
                return Err(ConfigError::new(
                    "tokens.assertion_max_age_secs",
                    "must be between 1 and 3600",
                ));
            }
        },
        strict_assertion_audience: raw.strict_assertion_audience,
        revocation_sync_secs: match raw.revocation_sync_secs {
            s @ 1..=3600 => s,
            _ => {
                return Err(ConfigError::new(
                    "tokens.revocation_sync_secs",
                    "must be between 1 and 3600",
                ));
            }
        },
        require_audience_proof,
        code_ttl_secs: match raw.code_ttl_secs {
            s @ 1..=600 => s as i64,
            _ => {
                return Err(ConfigError::new(
                    "tokens.code_ttl_secs",
                    "must be between 1 and 600 (RFC 6749 §4.1.2: codes are short-lived)",
                ));
            }
        },
        refresh_idle_secs: positive("tokens.refresh_idle_secs", raw.refresh_idle_secs)?,
        refresh_absolute_secs: positive("tokens.refresh_absolute_secs", raw.refresh_absolute_secs)?,
    };
    if tokens.refresh_idle_secs > tokens.refresh_absolute_secs {
        return Err(ConfigError::new(
            "tokens.refresh_idle_secs",
            "must not exceed tokens.refresh_absolute_secs",
        ));
    }
    for (setting, ttl) in [
        ("tokens.agent_ttl_secs", tokens.agent_ttl_secs),
        (
            "tokens.default_skill_ttl_secs",
            tokens.default_skill_ttl_secs,
        ),
    ] {
        if ttl > max_token_lifetime_secs {
            return Err(ConfigError::new(
                setting,
                "must not exceed keys.max_token_lifetime_secs (retired keys would vanish before their tokens expire)",
            ));
        }
    }
    Ok(tokens)
}

/// Validates `[validation]`.
pub(super) fn validate_validation(raw: &RawValidation) -> Result<ValidationConfig, ConfigError> {
    Ok(ValidationConfig {
        clock_skew_secs: i64::try_from(raw.clock_skew_secs)
            .map_err(|_| ConfigError::new("validation.clock_skew_secs", "is too large"))?,
        max_token_age_secs: positive("validation.max_token_age_secs", raw.max_token_age_secs)?,
    })
}
