//! The `[limits]` section: throttling of failed client authentication, the cap on
//! concurrent password hashing, and the global cap on user-code lookups.

use super::ConfigError;
use super::raw::RawLimits;
use crate::ratelimit::AuthFailureLimits;

/// Abuse limits (in memory, per replica).
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Failed client authentications allowed per client and source address, and from one
    /// source address over all clients.
    pub auth_failures: AuthFailureLimits,
    /// Password hashes (argon2id) running at once; 0 means one per CPU core.
    pub hash_concurrency: usize,
    /// Failed user-code lookups per minute over all callers (0 disables the cap).
    pub claim_lookup_failures_per_minute: u32,
    /// Burst of the global user-code lookup cap.
    pub claim_lookup_failure_burst: u32,
}

/// Validates `[limits]`: bursts are at least 1.
pub(super) fn validate_limits(raw: &RawLimits) -> Result<LimitsConfig, ConfigError> {
    if raw.hash_concurrency > 1024 {
        return Err(ConfigError::new(
            "limits.hash_concurrency",
            "must be at most 1024 (0: one per CPU core)",
        ));
    }
    Ok(LimitsConfig {
        auth_failures: AuthFailureLimits {
            per_client_per_minute: raw.client_auth_failures_per_minute,
            per_client_burst: raw.client_auth_failure_burst.max(1),
            per_address_per_minute: raw.address_auth_failures_per_minute,
            per_address_burst: raw.address_auth_failure_burst.max(1),
        },
        hash_concurrency: raw.hash_concurrency,
        claim_lookup_failures_per_minute: raw.claim_lookup_failures_per_minute,
        claim_lookup_failure_burst: raw.claim_lookup_failure_burst.max(1),
    })
}
