//! Building and running the server: open storage, load keys, bind, precompute documents,
//! start background tasks, serve, and flush the audit queue on the way out.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

use crate::audit::AuditLog;
use crate::clock;
use crate::config::{Config, KeyEncryptionKeySource, RedisConfig, issuer_string};
use crate::crypto::{Argon2Pool, SecretHasher};
use crate::jose::jwks::PublicKeySet;
use crate::jose::keys::KeyEncryptionKey;
use crate::jose::software_statement::TrustedPublishers;
use crate::metrics::Metrics;
use crate::outbound::Fetcher;
use crate::ratelimit::{AuthFailureThrottle, KeyedLimiter, RateLimiter};
use crate::service::directory::Directory;
use crate::service::discovery::{self, Discovery, FixedMetadata};
use crate::service::keys::KeyService;
use crate::service::peers::{self, Peers};
use crate::service::redis_link::RedisLink;
use crate::service::registration;
use crate::service::replay::{MemoryReplayCache, ReplayCache};
use crate::service::replay_redis::RedisReplayCache;
use crate::service::revocation::MemoryRevocationSet;
use crate::service::token::{self as token_service, DpopNonces};
use crate::state::AppState;
use crate::store::{ConnectionManager, Store};

/// How often unclaimed registrations past their window are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Loads the key-encryption key the configuration names.
pub fn load_kek(config: &Config) -> anyhow::Result<KeyEncryptionKey> {
    match &config.keys.encryption_key {
        KeyEncryptionKeySource::Inline(bytes) => Ok(KeyEncryptionKey::from_bytes(*bytes)),
        KeyEncryptionKeySource::File(path) => {
            let (kek, generated) =
                KeyEncryptionKey::load_file(path, config.keys.generate_encryption_key)?;
            if generated {
                tracing::warn!(
                    path = %path.display(),
                    "development mode: generated a key-encryption key file (mode 0600); \
                     back it up with the database, and set PATRON_KEY_ENCRYPTION_KEY in production"
                );
            }
            Ok(kek)
        }
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    server: actix_web::dev::Server,
    addr: SocketAddr,
    state: web::Data<AppState>,
}

/// The shared Redis, when `redis.url` is set; it must answer at start.
async fn open_redis(config: &RedisConfig) -> anyhow::Result<Option<Arc<RedisLink>>> {
    let Some(url) = &config.url else {
        return Ok(None);
    };
    let timeout = Duration::from_millis(config.timeout_ms);
    let link = RedisLink::open(url, config.ca_file.as_deref(), &config.prefix, timeout)
        .await
        .map_err(|e| {
            if url.starts_with("rediss:") {
                anyhow::anyhow!(
                    "cannot reach Redis over TLS at redis.url: {e} (its certificate must be \
                     signed by a CA in redis.ca_file, or by a system root when that is unset)"
                )
            } else {
                anyhow::anyhow!("cannot reach Redis at redis.url: {e}")
            }
        })?;
    tracing::info!(prefix = %config.prefix, "replay cache and replica notices in Redis");
    Ok(Some(Arc::new(link)))
}

impl Application {
    /// Opens storage, loads keys, binds the listener and prepares the server.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = Store::open(&config.database_url, config.pool_size, config.writers)
            .context("cannot open the database (database.url)")?;
        let kek = load_kek(&config)?;
        let dpop_nonces = DpopNonces::new(kek.derive(b"dpop-nonce"));
        let secrets = SecretHasher::new(kek.derive(b"client-secret-hmac"));
        let keys = {
            let mut conn = store.connection()?;
            KeyService::open(
                &mut conn,
                config.keys.clone(),
                config.validation.clock_skew_secs,
                kek,
                clock::now(),
            )?
        };

        if config.console.development_login {
            tracing::warn!(
                listen = %config.listen,
                "the development login is on: anyone who can reach this address can log in \
                 to the console as any dev:<name> owner (console.development_login = false \
                 switches it off; it is never on in production mode or off loopback)"
            );
        }

        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {} (listen)", config.listen))?;
        let addr = listener.local_addr()?;
        let issuer = match &config.issuer {
            Some(url) => issuer_string(url),
            None => format!("http://{addr}"),
        };
        let discovery = Discovery::new(FixedMetadata {
            issuer: issuer.clone(),
            signing_alg: config.keys.algorithm.as_str().to_owned(),
            clock_skew_secs: config.validation.clock_skew_secs,
            max_token_age_secs: config.validation.max_token_age_secs,
            client_id_documents: config.client_id_documents.enabled,
        });

        let mailer = crate::mail::Mailer::new(&config.mail, format!("{issuer}/console"))
            .context("e-mail (mail.*)")?;
        let metrics = Arc::new(Metrics::default());
        let audit = AuditLog::start(
            ConnectionManager::new(config.database_url.clone()),
            config.audit.clone(),
            metrics.clone(),
        )?;
        let publishers = TrustedPublishers::new(
            config
                .software_statements
                .publishers
                .iter()
                .map(|p| {
                    PublicKeySet::from_jwks(&p.jwks)
                        .map(|set| (p.issuer.clone(), set))
                        .map_err(|e| anyhow::anyhow!("software_statements.publishers: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            config.software_statements.max_lifetime_secs,
        );
        let redis = open_redis(&config.redis).await?;
        let state = web::Data::new(AppState {
            issuer,
            store,
            keys: Arc::new(keys),
            discovery,
            audit,
            metrics,
            registration_limiter: RateLimiter::new(
                config.registration.rate_limit_per_minute,
                config.registration.rate_limit_burst,
            ),
            fetcher: Fetcher::new(&config.outbound).context("outbound HTTP client (outbound.*)")?,
            publishers,
            secrets,
            argon2: Argon2Pool::new(config.limits.hash_concurrency),
            verified_admin_token: std::sync::OnceLock::new(),
            directory: Directory::default(),
            replay: match &redis {
                Some(link) => ReplayCache::Redis(RedisReplayCache::new(link.clone())),
                None => ReplayCache::Memory(MemoryReplayCache::default()),
            },
            peers: Peers::new(redis.clone()),
            revocations: Box::new(MemoryRevocationSet::new(config.validation.clock_skew_secs)),
            verified_tokens: crate::jose::verified_tokens::VerifiedTokens::new(
                config.validation.clock_skew_secs,
                config.validation.max_token_age_secs,
            ),
            dpop_nonces,
            admin_addr: std::sync::OnceLock::new(),
            claim_limiter: crate::service::agents::claim_limiter(),
            claim_session_limiter: crate::service::agents::claim_limiter_per_session(),
            claim_failure_limiter: KeyedLimiter::new(
                config.limits.claim_lookup_failures_per_minute,
                config.limits.claim_lookup_failure_burst,
            ),
            auth_throttle: AuthFailureThrottle::new(config.limits.auth_failures),
            mailer,
            suspicion: Default::default(),
            config,
        });

        discovery::refresh(&state)
            .await
            .context("cannot read the skills for the discovery document")?;

        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .wrap(from_fn(crate::http::count_responses))
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Referrer-Policy", "no-referrer"))
                        .add((
                            "Content-Security-Policy",
                            crate::http::content_security_policy(None),
                        )),
                )
                .wrap(from_fn(crate::http::request_id))
                .configure(crate::http::configure)
        })
        .shutdown_timeout(10);
        if state.config.workers > 0 {
            server = server.workers(state.config.workers);
        }
        let mut server = server.listen(listener)?;
        let admin_addr = match state.config.admin_listen {
            Some(a) => {
                let l = TcpListener::bind(a)
                    .with_context(|| format!("cannot listen on {a} (admin.listen)"))?;
                let bound = l.local_addr()?;
                server = server.listen(l)?;
                Some(bound)
            }
            None => None,
        };
        let _ = state.admin_addr.set(admin_addr);
        match crate::service::skill_policy::needing_review(&state).await {
            Ok(list) if !list.is_empty() => tracing::warn!(
                skills = %list.join(" "),
                "these skills predate grant policies and admit every owner; choose a policy \
                 (patron admin skill policy AUDIENCE --grantable-by …, or the skill's console page)"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e.description(), "could not list skills needing a grant policy")
            }
        }
        let server = server.run();
        Ok(Self {
            server,
            addr,
            state,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when it has its own.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.state.admin_addr.get().copied().flatten()
    }

    /// The issuer in force.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// Serves until SIGINT/SIGTERM, then drains requests and flushes the audit queue.
    pub async fn run(self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let keys_task = actix_web::rt::spawn(refresh_keys(state.clone()));
        let purge_task = actix_web::rt::spawn(purge_pending(state.clone()));
        let retention_task = actix_web::rt::spawn(audit_retention(state.clone()));
        let revocation_task = actix_web::rt::spawn(sync_revocations(state.clone()));
        let digest_task = actix_web::rt::spawn(suspicion_digests(state.clone()));
        let notices_task = actix_web::rt::spawn(peers::listen(state.clone()));
        let discovery_task = actix_web::rt::spawn(discovery::keep_fresh(state.clone()));
        let result = self.server.await;
        keys_task.abort();
        purge_task.abort();
        retention_task.abort();
        revocation_task.abort();
        digest_task.abort();
        notices_task.abort();
        discovery_task.abort();
        let flushed = state.audit.flush(Duration::from_secs(10));
        tracing::info!(audit_flushed = flushed, "patron stopped");
        result.context("server failed")
    }
}

async fn refresh_keys(state: web::Data<AppState>) {
    let every = Duration::from_secs(state.config.keys.refresh_interval_secs);
    let mut tick = actix_web::rt::time::interval(every);
    loop {
        tick.tick().await;
        let keys = state.keys.clone();
        let result = state
            .store
            .read(move |c| {
                keys.refresh(c, clock::now())
                    .map_err(|e| crate::store::StoreError::Unavailable(e.to_string()))
            })
            .await;
        match result {
            Ok(ring) => {
                let published = ring.jwks_json.matches("\"kid\"").count() as u64;
                state
                    .metrics
                    .keys_published
                    .store(published, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "signing key refresh failed"),
        }
    }
}

async fn purge_pending(state: web::Data<AppState>) {
    let mut tick = actix_web::rt::time::interval(PURGE_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = registration::purge_expired(&state.clone().into_inner()).await {
            tracing::error!(error = %e, "purging unclaimed registrations failed");
        }
        if let Err(e) = crate::service::authorization::purge_expired(&state).await {
            tracing::error!(error = %e, "purging expired codes and refresh tokens failed");
        }
        let now = clock::now();
        let (before, idle_before) = (
            now - crate::service::owner_login::LOGIN_STATE_TTL,
            now - state.config.console.session_idle_secs,
        );
        if let Err(e) = state
            .store
            .write(move |c| crate::store::models::sessions::purge(c, before, idle_before))
            .await
        {
            tracing::error!(error = %e, "purging stale logins and sessions failed");
        }
    }
}

/// Deletes audit events past `audit.retention_days` every `audit.retention_sweep_secs`
/// (never, when events are kept forever).
async fn audit_retention(state: web::Data<AppState>) {
    let Some(days) = state.config.audit.retention_days else {
        return;
    };
    let every = Duration::from_secs(state.config.audit.retention_sweep_secs);
    let mut tick = actix_web::rt::time::interval(every);
    loop {
        tick.tick().await;
        match crate::audit::sweep_expired(&state.store, days, clock::now()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, days, "deleted audit events past retention"),
            Err(e) => tracing::error!(error = %e, "deleting old audit events failed"),
        }
    }
}

/// Pulls revocations made by any replica into memory every `tokens.revocation_sync_secs`
/// (a safety net when Redis notices are configured, the only path otherwise).
async fn sync_revocations(state: web::Data<AppState>) {
    let mut since = 0;
    let every = Duration::from_secs(state.config.tokens.revocation_sync_secs);
    let mut tick = actix_web::rt::time::interval(every);
    loop {
        tick.tick().await;
        let started = clock::now();
        match token_service::sync_revocations(&state, since).await {
            // Overlap by the clock skew so a revocation committed "in the past" by a
            // replica with a slower clock is not missed.
            Ok(_) => since = started - state.config.validation.clock_skew_secs,
            Err(e) => tracing::error!(error = %e, "revocation sync failed"),
        }
    }
}

/// Mails owners a digest of suspicious refusals every five minutes.
async fn suspicion_digests(state: web::Data<AppState>) {
    let mut tick = actix_web::rt::time::interval(Duration::from_secs(300));
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = crate::service::suspicion::send_digests(&state).await {
            tracing::error!(error = %e, "suspicious-activity digest failed");
        }
    }
}
