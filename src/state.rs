//! Application state shared by every request: configuration, storage, keys, precomputed
//! documents, and the in-memory helpers (audit queue, metrics, rate limits, caches).

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::crypto::{Argon2Pool, SecretHasher};
use crate::jose::software_statement::TrustedPublishers;
use crate::metrics::Metrics;
use crate::outbound::Fetcher;
use crate::ratelimit::{AuthFailureThrottle, KeyedLimiter, RateLimiter};
use crate::service::directory::Directory;
use crate::service::keys::KeyService;
use crate::service::replay::ReplayCache;
use crate::service::revocation::RevocationSet;
use crate::service::token::DpopNonces;
use crate::store::Store;

/// Everything a handler needs.
pub struct AppState {
    /// Validated configuration.
    pub config: Config,
    /// The issuer identifier, without a trailing slash.
    pub issuer: String,
    /// Database handles.
    pub store: Store,
    /// Signing keys and the published JWKS.
    pub keys: Arc<KeyService>,
    /// Discovery metadata, serialised at start and when the skills change.
    pub discovery: crate::service::discovery::Discovery,
    /// Audit queue.
    pub audit: AuditLog,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Per-address limit on open registration.
    pub registration_limiter: RateLimiter,
    /// Guarded fetcher for `jwks_uri`.
    pub fetcher: Fetcher,
    /// Trusted software-statement publishers.
    pub publishers: TrustedPublishers,
    /// Keyed hashing of client secrets, under a key derived from the key-encryption key.
    pub secrets: SecretHasher,
    /// Bounded argon2id checks (legacy client-secret hashes, a hashed admin token).
    pub argon2: Argon2Pool,
    /// SHA-256 of the admin token once it matched `admin.token_hash`, so later requests
    /// skip argon2id.
    pub verified_admin_token: std::sync::OnceLock<[u8; 32]>,
    /// Cached clients and skills.
    pub directory: Directory,
    /// Single-use `jti`s (client assertions, DPoP proofs).
    pub replay: ReplayCache,
    /// Access tokens that passed verification, until they expire.
    pub verified_tokens: crate::jose::verified_tokens::VerifiedTokens,
    /// Notices to and from other replicas.
    pub peers: crate::service::peers::Peers,
    /// Revoked token ids.
    pub revocations: Box<dyn RevocationSet>,
    /// DPoP server nonces.
    pub dpop_nonces: DpopNonces,
    /// Per-address limit on user-code lookups in the console.
    pub claim_limiter: RateLimiter,
    /// Per-session limit on user-code lookups (keyed by the session's id hash).
    pub claim_session_limiter: KeyedLimiter<String>,
    /// Global cap on failed user-code lookups.
    pub claim_failure_limiter: KeyedLimiter<()>,
    /// Throttle on failed client authentication.
    pub auth_throttle: AuthFailureThrottle,
    /// Owner notifications.
    pub mailer: crate::mail::Mailer,
    /// Suspicious refusals awaiting the next digest.
    pub suspicion: crate::service::suspicion::Suspicion,
    /// The admin API's own listener address, when configured (set once at start).
    pub admin_addr: std::sync::OnceLock<Option<std::net::SocketAddr>>,
}
