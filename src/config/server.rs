//! The server process: its listen address and issuer, the admin API, the audit writer and
//! the Redis server shared by replicas.

use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

use super::raw::{RawAdmin, RawAudit, RawRedis};
use super::{ConfigError, SecretString};

/// Audit writer settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Longest time an event waits in memory before it is written.
    pub flush_interval_ms: u64,
    /// Most events written in one transaction.
    pub batch_size: usize,
    /// Events held in memory before new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Events older than this many days are deleted; `None` keeps them forever.
    pub retention_days: Option<u64>,
    /// How often events past the retention are looked for.
    pub retention_sweep_secs: u64,
    /// Where every written event is also streamed as a JSON line, if anywhere.
    pub export: Option<AuditExport>,
}

/// A stream of audit events as JSON lines, for a SIEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditExport {
    /// Standard output (logs go to standard error).
    Stdout,
    /// A file, appended to (created if missing).
    File(PathBuf),
}

/// A Redis server shared by all replicas: single-use identifiers (client assertion and
/// DPoP proof `jti`s) and notices of revocations and changed clients.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db`, or `rediss://…` for TLS. Unset: identifiers are remembered
    /// in this process's memory, which protects one replica only, and other replicas learn
    /// of changes from the database within a second.
    pub url: Option<String>,
    /// PEM file of the CA certificates that sign the Redis server's certificate (`rediss://`
    /// only); unset: the operating system's roots.
    pub ca_file: Option<PathBuf>,
    /// Prefix of every key and channel Patron uses in Redis.
    pub prefix: String,
    /// Longest wait for Redis before a request is refused (`temporarily_unavailable`).
    pub timeout_ms: u64,
}

/// Validates `listen`: an address like `127.0.0.1:8080`.
pub(super) fn validate_listen(raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.parse().map_err(|_| {
        ConfigError::new(
            "listen",
            format!("`{raw}` is not an address like 127.0.0.1:8080"),
        )
    })
}

/// Validates `issuer`, if set: an http(s) URL without query or fragment.
pub(super) fn validate_issuer(raw: Option<&str>) -> Result<Option<Url>, ConfigError> {
    raw.map(parse_issuer).transpose()
}

fn parse_issuer(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::new("issuer", format!("not a URL: {e}")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(ConfigError::new("issuer", "must be an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            "issuer",
            "must not have a query or fragment (RFC 8414 §2)",
        ));
    }
    Ok(url)
}

/// The issuer string without a trailing slash, as it appears in `iss` claims.
pub fn issuer_string(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// Production mode wants an https issuer; http passes on a loopback host only, and without
/// an issuer (derived from the bound address) the server must listen on loopback.
pub(super) fn require_production_issuer(
    issuer: Option<&Url>,
    listen: SocketAddr,
) -> Result<(), ConfigError> {
    if let Some(issuer) = issuer {
        if issuer.scheme() == "http" && !is_loopback_host(issuer) {
            return Err(ConfigError::new(
                "issuer",
                "production mode needs an https issuer (http is allowed on loopback only)",
            ));
        }
    } else if !listen.ip().is_loopback() {
        return Err(ConfigError::new(
            "issuer",
            "production mode on a non-loopback address needs an explicit https issuer",
        ));
    }
    Ok(())
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Shortest admin token accepted, in clear (`admin.token`) or to hash (`patron admin
/// hash-token`).
pub const ADMIN_TOKEN_MIN_LEN: usize = 32;

/// The admin API's bearer token as configured.
#[derive(Debug, Clone)]
pub enum AdminToken {
    /// `admin.token`: the token itself, compared in constant time.
    Plain(SecretString),
    /// `admin.token_hash`: an argon2id PHC string (`patron admin hash-token`), so the
    /// configuration need not hold the token in clear text.
    Argon2id(String),
}

/// The validated `[admin]` section.
pub(super) struct AdminSettings {
    pub(super) token: Option<AdminToken>,
    pub(super) listen: Option<SocketAddr>,
}

/// Validates `[admin]`: at most one of a token of at least 32 characters and an argon2id
/// hash of one, a listen address if given.
pub(super) fn validate_admin(raw: &RawAdmin) -> Result<AdminSettings, ConfigError> {
    let token = match (&raw.token, &raw.token_hash) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "admin.token_hash",
                "set either admin.token or admin.token_hash, not both",
            ));
        }
        (None, None) => None,
        (Some(t), None) if t.len() < ADMIN_TOKEN_MIN_LEN => {
            return Err(ConfigError::new(
                "admin.token",
                "must be at least 32 characters (e.g. `openssl rand -base64 32`)",
            ));
        }
        (Some(t), None) => Some(AdminToken::Plain(SecretString(t.clone()))),
        (None, Some(h)) if !crate::crypto::is_argon2id_phc(h.trim()) => {
            return Err(ConfigError::new(
                "admin.token_hash",
                "must be an argon2id PHC string ($argon2id$…); make one with `patron admin hash-token`",
            ));
        }
        (None, Some(h)) => Some(AdminToken::Argon2id(h.trim().to_owned())),
    };
    let listen = match &raw.listen {
        None => None,
        Some(l) => Some(l.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "admin.listen",
                format!("`{l}` is not an address like 127.0.0.1:8081"),
            )
        })?),
    };
    Ok(AdminSettings { token, listen })
}

/// Validates `[audit]`: batches and queue hold at least one event, the retention is at
/// most 100 years (0: forever), the sweep runs every 1 s to 1 day, and `export` is `stdout`
/// or a file path.
pub(super) fn validate_audit(raw: &RawAudit) -> Result<AuditConfig, ConfigError> {
    if raw.batch_size == 0 || raw.queue_capacity == 0 {
        return Err(ConfigError::new(
            "audit",
            "batch_size and queue_capacity must be greater than zero",
        ));
    }
    if raw.retention_days > 36_500 {
        return Err(ConfigError::new(
            "audit.retention_days",
            "must be at most 36500 (0 keeps events forever)",
        ));
    }
    if !(1..=86_400).contains(&raw.retention_sweep_secs) {
        return Err(ConfigError::new(
            "audit.retention_sweep_secs",
            "must be between 1 and 86400",
        ));
    }
    let export = match raw.export.as_deref().map(str::trim) {
        None => None,
        Some("") => return Err(ConfigError::new("audit.export", "`stdout` or a file path")),
        Some("stdout") => Some(AuditExport::Stdout),
        Some(path) => Some(AuditExport::File(PathBuf::from(path))),
    };
    Ok(AuditConfig {
        flush_interval_ms: raw.flush_interval_ms.max(1),
        batch_size: raw.batch_size,
        queue_capacity: raw.queue_capacity,
        retention_days: (raw.retention_days > 0).then_some(raw.retention_days),
        retention_sweep_secs: raw.retention_sweep_secs,
        export,
    })
}

/// Validates `[redis]`: a `redis://` or `rediss://` URL if set (no fragment: the redis
/// crate reads `#insecure` as "skip certificate checks"), a CA file only for `rediss://`,
/// a short prefix without spaces, a timeout of 10 ms to 10 s.
pub(super) fn validate_redis(raw: &RawRedis) -> Result<RedisConfig, ConfigError> {
    let tls = match &raw.url {
        None => false,
        Some(url) => {
            let parsed = Url::parse(url)
                .map_err(|e| ConfigError::new("redis.url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "redis" | "rediss")
                || parsed.host_str().is_none_or(str::is_empty)
                || parsed.fragment().is_some()
            {
                return Err(ConfigError::new(
                    "redis.url",
                    "must be a redis://host[:port][/db] or rediss://host[:port][/db] URL",
                ));
            }
            parsed.scheme() == "rediss"
        }
    };
    if let Some(ca) = &raw.ca_file {
        if !tls {
            return Err(ConfigError::new(
                "redis.ca_file",
                "needs a rediss:// redis.url (TLS)",
            ));
        }
        if !ca.is_file() {
            return Err(ConfigError::new(
                "redis.ca_file",
                format!("{} is not a readable file", ca.display()),
            ));
        }
    }
    if raw.prefix.len() > 64 || raw.prefix.chars().any(|c| c.is_whitespace()) {
        return Err(ConfigError::new(
            "redis.prefix",
            "must be at most 64 characters without spaces",
        ));
    }
    if !(10..=10_000).contains(&raw.timeout_ms) {
        return Err(ConfigError::new(
            "redis.timeout_ms",
            "must be between 10 and 10000",
        ));
    }
    Ok(RedisConfig {
        url: raw.url.clone(),
        ca_file: raw.ca_file.clone(),
        prefix: raw.prefix.clone(),
        timeout_ms: raw.timeout_ms,
    })
}
