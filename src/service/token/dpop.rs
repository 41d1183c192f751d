//! DPoP at the token endpoint (RFC 9449): the proof check with its replay cache, and the
//! server-issued nonces.

use base64::Engine as _;

use super::{RequestHeaders, err, first_use};
use crate::clock::UnixTime;
use crate::crypto;
use crate::jose::dpop::{self, NonceCheck, ProofRequirements};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::state::AppState;

/// Checks the DPoP proof, if any, and returns the key thumbprint it proves.
pub(super) async fn check_dpop(
    state: &AppState,
    headers: &RequestHeaders,
    htu: &str,
    now: UnixTime,
) -> Result<Option<String>, OAuthError> {
    let proof = match &headers.dpop {
        None => return Ok(None),
        Some(Err(())) => {
            return Err(err(
                ErrorKind::InvalidDpopProof,
                "send exactly one DPoP header",
                "dpop_header_repeated",
            ));
        }
        Some(Ok(p)) => p,
    };
    let nonce_ok = |n: &str| state.dpop_nonces.is_valid(n, now);
    let nonce = if state.config.tokens.dpop_require_nonce {
        NonceCheck::Required(&nonce_ok)
    } else {
        NonceCheck::NotRequired
    };
    let verified = dpop::verify_proof(
        proof,
        &ProofRequirements {
            htm: "POST",
            htu,
            now,
            max_age_secs: state.config.tokens.dpop_max_age_secs,
            skew_secs: state.config.validation.clock_skew_secs,
            nonce,
            access_token: None,
        },
    )
    .map_err(|e| {
        if e.is_nonce_error() {
            err(ErrorKind::UseDpopNonce, e.description(), e.reason())
                .with_dpop_nonce(state.dpop_nonces.current(now))
        } else {
            err(ErrorKind::InvalidDpopProof, e.description(), e.reason())
        }
    })?;
    let key = format!("dpop:{}:{}", verified.jkt, verified.jti);
    let until = verified.iat
        + state.config.tokens.dpop_max_age_secs
        + 2 * state.config.validation.clock_skew_secs;
    if !first_use(state, &key, until, now).await? {
        return Err(err(
            ErrorKind::InvalidDpopProof,
            "the DPoP proof was already used",
            "dpop_jti_replayed",
        ));
    }
    Ok(Some(verified.jkt))
}

/// Server-issued DPoP nonces (RFC 9449 §8): derived from a secret shared by all replicas
/// (the key-encryption key's digest) and the current 5-minute window; the previous window's
/// nonce stays valid so that a nonce never expires the moment it is issued.
pub struct DpopNonces {
    secret: [u8; 32],
}

const NONCE_WINDOW: i64 = 300;

impl DpopNonces {
    /// Nonces derived from `secret`.
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn for_window(&self, window: i64) -> String {
        let mut input = Vec::with_capacity(48);
        input.extend_from_slice(b"patron-dpop-nonce");
        input.extend_from_slice(&self.secret);
        input.extend_from_slice(&window.to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&crypto::sha256(&input)[..18])
    }

    /// The nonce to hand out now.
    pub fn current(&self, now: UnixTime) -> String {
        self.for_window(now.div_euclid(NONCE_WINDOW))
    }

    /// Whether `nonce` is the current or the previous window's nonce.
    pub fn is_valid(&self, nonce: &str, now: UnixTime) -> bool {
        let w = now.div_euclid(NONCE_WINDOW);
        crypto::constant_time_eq(nonce.as_bytes(), self.for_window(w).as_bytes())
            || crypto::constant_time_eq(nonce.as_bytes(), self.for_window(w - 1).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_nonces_rotate_and_the_previous_one_stays_valid() {
        let n = DpopNonces::new([1; 32]);
        let a = n.current(1000);
        assert!(n.is_valid(&a, 1000));
        assert!(n.is_valid(&a, 1000 + NONCE_WINDOW));
        assert!(!n.is_valid(&a, 1000 + 2 * NONCE_WINDOW));
        assert!(!n.is_valid("forged", 1000));
    }
}
