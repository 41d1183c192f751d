//! Configuration: defaults, then an optional TOML file, then `PATRON_*` environment
//! variables; then a validation pass that turns the raw settings into a typed [`Config`]
//! and names the offending setting when something is wrong.
//!
//! Environment variables use `__` to reach nested settings (`PATRON_DATABASE__POOL_SIZE`);
//! the most common ones also have short aliases (`PATRON_DATABASE_URL`,
//! `PATRON_KEY_ENCRYPTION_KEY`, `PATRON_KEY_ENCRYPTION_KEY_FILE`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::jose::keys::SigningAlgorithm;

/// A configuration error that names the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    /// Dotted name of the setting (`database.url`), or `config` for file-level problems.
    pub setting: String,
    /// What is wrong and, where possible, what would be right.
    pub message: String,
}

impl ConfigError {
    fn new(setting: &str, message: impl Into<String>) -> Self {
        Self {
            setting: setting.to_owned(),
            message: message.into(),
        }
    }
}

/// Deployment mode. Production refuses unsafe settings that development tolerates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Laptop defaults: generated key-encryption key on disk, http issuer allowed.
    Development,
    /// Refuses an http issuer on a non-loopback host, a missing key-encryption key, and the
    /// development login.
    Production,
}

/// Settings as read from files and environment, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    mode: Mode,
    listen: String,
    issuer: Option<String>,
    workers: usize,
    database: RawDatabase,
    keys: RawKeys,
    registration: RawRegistration,
    outbound: RawOutbound,
    software_statements: RawSoftwareStatements,
    validation: RawValidation,
    audit: RawAudit,
    console: RawConsole,
    tokens: RawTokens,
    admin: RawAdmin,
    mail: RawMail,
    redis: RawRedis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: Option<String>,
    prefix: String,
    timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    agent_ttl_secs: u64,
    default_skill_ttl_secs: u64,
    max_exchange_depth: u32,
    dpop_max_age_secs: u64,
    dpop_require_nonce: bool,
    assertion_max_lifetime_secs: u64,
    revocation_sync_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: Option<String>,
    listen: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
    pool_size: u32,
    writers: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    algorithm: String,
    encryption_key: Option<String>,
    encryption_key_file: Option<PathBuf>,
    rotation_interval_secs: u64,
    promote_delay_secs: u64,
    max_token_lifetime_secs: u64,
    refresh_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistration {
    open: bool,
    rate_limit_per_minute: u32,
    rate_limit_burst: u32,
    pending_ttl_secs: u64,
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    allow_hosts: Vec<String>,
    ca_file: Option<PathBuf>,
    timeout_ms: u64,
    max_bytes: usize,
    cache_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoftwareStatements {
    required: bool,
    publishers: Vec<RawPublisher>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublisher {
    issuer: String,
    jwks: Option<serde_json::Value>,
    jwks_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidation {
    clock_skew_secs: u64,
    max_token_age_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    flush_interval_ms: u64,
    batch_size: usize,
    queue_capacity: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    development_login: bool,
    session_idle_secs: u64,
    session_max_secs: u64,
    admins: Vec<String>,
    providers: Vec<RawProvider>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: String,
    name: Option<String>,
    issuer: Option<String>,
    client_id: String,
    client_secret: String,
    authorize_url: Option<String>,
    token_url: Option<String>,
    api_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    transport: String,
    from: String,
    dir: Option<PathBuf>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: String,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Development,
            listen: "127.0.0.1:8080".into(),
            issuer: None,
            workers: 0,
            database: RawDatabase {
                url: "sqlite://patron.db".into(),
                pool_size: 8,
                writers: None,
            },
            keys: RawKeys {
                algorithm: "ES256".into(),
                encryption_key: None,
                encryption_key_file: None,
                rotation_interval_secs: 30 * 24 * 3600,
                promote_delay_secs: 3600,
                max_token_lifetime_secs: 3600,
                refresh_interval_secs: 10,
            },
            registration: RawRegistration {
                open: true,
                rate_limit_per_minute: 30,
                rate_limit_burst: 10,
                pending_ttl_secs: 24 * 3600,
                trusted_proxies: Vec::new(),
            },
            outbound: RawOutbound {
                allow_hosts: Vec::new(),
                ca_file: None,
                timeout_ms: 3000,
                max_bytes: 64 * 1024,
                cache_secs: 300,
            },
            software_statements: RawSoftwareStatements {
                required: false,
                publishers: Vec::new(),
            },
            validation: RawValidation {
                clock_skew_secs: 60,
                max_token_age_secs: 3600,
            },
            audit: RawAudit {
                flush_interval_ms: 200,
                batch_size: 500,
                queue_capacity: 100_000,
            },
            console: RawConsole {
                development_login: false,
                session_idle_secs: 1800,
                session_max_secs: 12 * 3600,
                admins: Vec::new(),
                providers: Vec::new(),
            },
            mail: RawMail {
                transport: "files".into(),
                from: "Patron <patron@localhost>".into(),
                dir: None,
                smtp_host: None,
                smtp_port: None,
                smtp_tls: "starttls".into(),
                smtp_username: None,
                smtp_password: None,
            },
            tokens: RawTokens {
                agent_ttl_secs: 300,
                default_skill_ttl_secs: 300,
                max_exchange_depth: 3,
                dpop_max_age_secs: 300,
                dpop_require_nonce: false,
                assertion_max_lifetime_secs: 600,
                revocation_sync_secs: 1,
            },
            admin: RawAdmin {
                token: None,
                listen: None,
            },
            redis: RawRedis {
                url: None,
                prefix: "patron:".into(),
                timeout_ms: 500,
            },
        }
    }
}

/// Which database backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (`sqlite://path`, `sqlite:path` or a plain path).
    Sqlite,
    /// A PostgreSQL server (`postgres://` or `postgresql://`).
    Postgres,
}

/// A database URL with its backend decided from the scheme.
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: Backend,
    /// What the diesel connection takes: a file path for SQLite, the URL for PostgreSQL.
    connect: String,
}

impl DatabaseUrl {
    /// Parses a database URL; the scheme alone picks the backend.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self {
                backend: Backend::Postgres,
                connect: raw.to_owned(),
            });
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.contains("://") {
            return Err("unsupported scheme: use sqlite://PATH or postgres://…".into());
        }
        if path.is_empty() {
            return Err("sqlite URL has no file path".into());
        }
        Ok(Self {
            backend: Backend::Sqlite,
            connect: path.to_owned(),
        })
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection string handed to diesel.
    pub fn connect_string(&self) -> &str {
        &self.connect
    }

    /// For SQLite, the directory that holds the database file.
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        match self.backend {
            Backend::Sqlite => Some(
                Path::new(&self.connect)
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            ),
            Backend::Postgres => None,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    // The URL may carry a password; show only the backend.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.backend)
    }
}

/// Where the key-encryption key comes from.
#[derive(Clone)]
pub enum KeyEncryptionKeySource {
    /// Given in configuration (base64 of 32 bytes).
    Inline([u8; 32]),
    /// Read from (or, in development mode, generated into) a file.
    File(PathBuf),
}

impl fmt::Debug for KeyEncryptionKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline([redacted])"),
            Self::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

/// Signing-key settings.
#[derive(Debug, Clone)]
pub struct KeysConfig {
    /// Algorithm of newly generated keys.
    pub algorithm: SigningAlgorithm,
    /// Source of the key-encryption key.
    pub encryption_key: KeyEncryptionKeySource,
    /// Whether the key-encryption key file may be generated when missing.
    pub generate_encryption_key: bool,
    /// Age after which a scheduled rotation pre-publishes the next key.
    pub rotation_interval_secs: i64,
    /// How long a new key is published before it signs.
    pub promote_delay_secs: i64,
    /// Longest lifetime of anything Patron signs; retired keys stay published this long.
    pub max_token_lifetime_secs: i64,
    /// How often a server reloads keys from the database (rotations by other replicas or
    /// the CLI).
    pub refresh_interval_secs: u64,
}

/// Registration settings.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// Whether registration without an initial access token is allowed.
    pub open: bool,
    /// Open registrations per source address per minute (0 disables the limit).
    pub rate_limit_per_minute: u32,
    /// Burst size of the per-address limit.
    pub rate_limit_burst: u32,
    /// How long an unclaimed registration lives.
    pub pending_ttl_secs: i64,
    /// Proxies whose `X-Forwarded-For` is believed for the source address.
    pub trusted_proxies: Vec<IpAddr>,
}

/// Settings for URLs the server fetches itself (`jwks_uri`).
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Host names or IP addresses that may resolve to non-public addresses.
    pub allow_hosts: Vec<String>,
    /// An extra PEM root certificate to trust (private PKI, tests).
    pub ca_file: Option<PathBuf>,
    /// Connect + read timeout.
    pub timeout_ms: u64,
    /// Largest accepted response body.
    pub max_bytes: usize,
    /// How long a fetched document is cached.
    pub cache_secs: i64,
}

/// A software-statement publisher trusted by this server.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// Expected `iss` of its statements.
    pub issuer: String,
    /// Its public keys (a JWK Set).
    pub jwks: serde_json::Value,
}

/// Software-statement settings.
#[derive(Debug, Clone)]
pub struct SoftwareStatementConfig {
    /// Whether every registration must carry a statement from a trusted publisher.
    pub required: bool,
    /// Trusted publishers.
    pub publishers: Vec<Publisher>,
}

/// The JWT validation profile's tunables.
#[derive(Debug, Clone, Copy)]
pub struct ValidationConfig {
    /// Allowed clock difference for `exp`, `nbf` and `iat`.
    pub clock_skew_secs: i64,
    /// Largest accepted age (`now - iat`) of a presented JWT.
    pub max_token_age_secs: i64,
}

/// Audit writer settings.
#[derive(Debug, Clone, Copy)]
pub struct AuditConfig {
    /// Longest time an event waits in memory before it is written.
    pub flush_interval_ms: u64,
    /// Most events written in one transaction.
    pub batch_size: usize,
    /// Events held in memory before new ones are dropped (and counted).
    pub queue_capacity: usize,
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
    /// How often revocations recorded by other replicas are loaded from the database.
    pub revocation_sync_secs: u64,
}

/// Which kind of upstream identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenID Connect provider, by issuer (owner ids `oidc:<issuer>#<sub>`).
    Oidc,
    /// Google (OpenID Connect; owner ids `google:<sub>`).
    Google,
    /// GitHub (OAuth 2.0 + REST API; owner ids `github:<numeric id>`).
    Github,
}

/// An upstream login provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Kind.
    pub kind: ProviderKind,
    /// URL-safe name used in paths (`/console/login/<name>`).
    pub name: String,
    /// OpenID issuer (OIDC and Google).
    pub issuer: Option<String>,
    /// OAuth client id at the provider.
    pub client_id: String,
    /// OAuth client secret at the provider.
    pub client_secret: SecretString,
    /// GitHub authorize URL (default `https://github.com/login/oauth/authorize`).
    pub authorize_url: String,
    /// GitHub token URL (default `https://github.com/login/oauth/access_token`).
    pub token_url: String,
    /// GitHub API base URL (default `https://api.github.com`).
    pub api_url: String,
}

/// Console settings.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Development login (type a name): development mode on loopback only.
    pub development_login: bool,
    /// Idle session timeout.
    pub session_idle_secs: i64,
    /// Absolute session lifetime.
    pub session_max_secs: i64,
    /// Owner ids with admin rights.
    pub admins: Vec<String>,
    /// Upstream login providers.
    pub providers: Vec<ProviderConfig>,
}

/// How TLS is used towards the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No TLS: only for a relay on this host (tests, a local MTA).
    None,
}

/// Where e-mail goes.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// Written as `.eml` files into a directory (development).
    Files(PathBuf),
    /// Sent through an SMTP server.
    Smtp {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// TLS mode.
        tls: SmtpTls,
        /// Credentials, if the server wants them.
        credentials: Option<(String, SecretString)>,
    },
}

/// E-mail settings.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Transport.
    pub transport: MailTransport,
    /// `From` header.
    pub from: String,
}

/// A secret configuration value, redacted in `Debug`.
#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    /// The secret, exposed explicitly.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Deployment mode.
    pub mode: Mode,
    /// Address to bind.
    pub listen: SocketAddr,
    /// Configured issuer; `None` means derived from the bound address at start.
    pub issuer: Option<Url>,
    /// HTTP worker threads (0: one per available core).
    pub workers: usize,
    /// Database URL.
    pub database_url: DatabaseUrl,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Group-commit writer threads (1 on SQLite).
    pub writers: usize,
    /// Signing keys.
    pub keys: KeysConfig,
    /// Registration.
    pub registration: RegistrationConfig,
    /// Outbound fetches.
    pub outbound: OutboundConfig,
    /// Software statements.
    pub software_statements: SoftwareStatementConfig,
    /// JWT validation profile.
    pub validation: ValidationConfig,
    /// Audit writer.
    pub audit: AuditConfig,
    /// Whether the development login is enabled.
    pub development_login: bool,
    /// Console.
    pub console: ConsoleConfig,
    /// E-mail.
    pub mail: MailConfig,
    /// Token issuance.
    pub tokens: TokensConfig,
    /// Bearer token of the admin API; the API is disabled without one.
    pub admin_token: Option<SecretString>,
    /// A separate address for the admin API; when set, `/admin/` answers only there.
    pub admin_listen: Option<SocketAddr>,
    /// State shared by replicas.
    pub redis: RedisConfig,
}

/// A Redis server shared by all replicas: single-use identifiers (client assertion and
/// DPoP proof `jti`s) and notices of revocations and changed clients.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db`. Unset: identifiers are remembered in this process's memory,
    /// which protects one replica only, and other replicas learn of changes from the
    /// database within a second.
    pub url: Option<String>,
    /// Prefix of every key and channel Patron uses in Redis.
    pub prefix: String,
    /// Longest wait for Redis before a request is refused (`temporarily_unavailable`).
    pub timeout_ms: u64,
}

/// Maps short environment aliases to dotted setting paths.
fn env_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    match key.as_str() {
        "database_url" => "database.url".into(),
        "key_encryption_key" => "keys.encryption_key".into(),
        "key_encryption_key_file" => "keys.encryption_key_file".into(),
        "admin_token" => "admin.token".into(),
        other => other.replace("__", "."),
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then the environment, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("PATRON_"), None)
    }

    /// Like [`load`](Self::load), with a `listen` address from the command line that takes
    /// precedence over file and environment.
    pub fn load_with_listen(
        file: Option<&Path>,
        listen: Option<&str>,
    ) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("PATRON_"), listen)
    }

    fn load_from(file: Option<&Path>, env: Env, listen: Option<&str>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::new(
                    "config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = env
            .ignore(&["config", "server", "test_database_url", "log_format"])
            .map(|k| env_key(k.as_str()).into());
        figment = figment.merge(env);
        if let Some(l) = listen {
            figment = figment.merge(Serialized::default("listen", l));
        }
        let raw: RawConfig = figment.extract().map_err(|e| {
            let setting = e.path.join(".");
            let setting = if setting.is_empty() {
                "config".to_owned()
            } else {
                setting
            };
            ConfigError::new(&setting, e.kind.to_string())
        })?;
        raw.validate()
    }
}

fn positive(setting: &str, value: u64) -> Result<i64, ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(setting, "must be greater than zero"));
    }
    i64::try_from(value).map_err(|_| ConfigError::new(setting, "is too large"))
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn decode_kek(setting: &str, value: &str) -> Result<[u8; 32], ConfigError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value.trim()))
        .map_err(|_| ConfigError::new(setting, "must be base64 (32 random bytes)"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        ConfigError::new(
            setting,
            format!(
                "must decode to exactly 32 bytes, got {}; generate one with `openssl rand -base64 32`",
                bytes.len()
            ),
        )
    })
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!("`{}` is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;

        let issuer = match &self.issuer {
            None => None,
            Some(raw) => Some(parse_issuer(raw)?),
        };

        let database_url = DatabaseUrl::parse(&self.database.url)
            .map_err(|m| ConfigError::new("database.url", m))?;
        if self.database.pool_size == 0 || self.database.pool_size > 512 {
            return Err(ConfigError::new(
                "database.pool_size",
                "must be between 1 and 512",
            ));
        }

        let algorithm: SigningAlgorithm = self
            .keys
            .algorithm
            .parse()
            .map_err(|m: String| ConfigError::new("keys.algorithm", m))?;
        let (encryption_key, generate_encryption_key) =
            match (&self.keys.encryption_key, &self.keys.encryption_key_file) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::new(
                        "keys.encryption_key",
                        "set either keys.encryption_key or keys.encryption_key_file, not both",
                    ));
                }
                (Some(v), None) => (
                    KeyEncryptionKeySource::Inline(decode_kek("keys.encryption_key", v)?),
                    false,
                ),
                (None, Some(path)) => (KeyEncryptionKeySource::File(path.clone()), false),
                (None, None) => {
                    if self.mode == Mode::Production {
                        return Err(ConfigError::new(
                            "keys.encryption_key",
                            "production mode needs an explicit key-encryption key \
                             (PATRON_KEY_ENCRYPTION_KEY or PATRON_KEY_ENCRYPTION_KEY_FILE)",
                        ));
                    }
                    let dir = database_url.sqlite_dir().unwrap_or_default();
                    (KeyEncryptionKeySource::File(dir.join("patron.kek")), true)
                }
            };
        let keys = KeysConfig {
            algorithm,
            encryption_key,
            generate_encryption_key,
            rotation_interval_secs: positive(
                "keys.rotation_interval_secs",
                self.keys.rotation_interval_secs,
            )?,
            promote_delay_secs: i64::try_from(self.keys.promote_delay_secs)
                .map_err(|_| ConfigError::new("keys.promote_delay_secs", "is too large"))?,
            max_token_lifetime_secs: positive(
                "keys.max_token_lifetime_secs",
                self.keys.max_token_lifetime_secs,
            )?,
            refresh_interval_secs: positive(
                "keys.refresh_interval_secs",
                self.keys.refresh_interval_secs,
            )? as u64,
        };

        let trusted_proxies = self
            .registration
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<IpAddr>().map_err(|_| {
                    ConfigError::new(
                        "registration.trusted_proxies",
                        format!("`{p}` is not an IP address"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let registration = RegistrationConfig {
            open: self.registration.open,
            rate_limit_per_minute: self.registration.rate_limit_per_minute,
            rate_limit_burst: self.registration.rate_limit_burst.max(1),
            pending_ttl_secs: positive(
                "registration.pending_ttl_secs",
                self.registration.pending_ttl_secs,
            )?,
            trusted_proxies,
        };

        if self.outbound.max_bytes == 0 || self.outbound.max_bytes > 1024 * 1024 {
            return Err(ConfigError::new(
                "outbound.max_bytes",
                "must be between 1 and 1048576",
            ));
        }
        if let Some(ca) = &self.outbound.ca_file {
            if !ca.is_file() {
                return Err(ConfigError::new(
                    "outbound.ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        let outbound = OutboundConfig {
            allow_hosts: self
                .outbound
                .allow_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            ca_file: self.outbound.ca_file.clone(),
            timeout_ms: positive("outbound.timeout_ms", self.outbound.timeout_ms)? as u64,
            max_bytes: self.outbound.max_bytes,
            cache_secs: i64::try_from(self.outbound.cache_secs)
                .map_err(|_| ConfigError::new("outbound.cache_secs", "is too large"))?,
        };

        let mut publishers = Vec::new();
        for (i, p) in self.software_statements.publishers.iter().enumerate() {
            let setting = format!("software_statements.publishers[{i}]");
            if p.issuer.trim().is_empty() {
                return Err(ConfigError::new(&setting, "issuer must not be empty"));
            }
            let jwks = match (&p.jwks, &p.jwks_file) {
                (Some(v), None) => v.clone(),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        ConfigError::new(&setting, format!("cannot read {}: {e}", path.display()))
                    })?;
                    serde_json::from_str(&text).map_err(|e| {
                        ConfigError::new(&setting, format!("{} is not JSON: {e}", path.display()))
                    })?
                }
                _ => {
                    return Err(ConfigError::new(
                        &setting,
                        "give exactly one of jwks or jwks_file",
                    ));
                }
            };
            crate::jose::jwks::PublicKeySet::from_jwks(&jwks)
                .map_err(|e| ConfigError::new(&setting, format!("jwks: {e}")))?;
            publishers.push(Publisher {
                issuer: p.issuer.clone(),
                jwks,
            });
        }
        if self.software_statements.required && publishers.is_empty() {
            return Err(ConfigError::new(
                "software_statements.required",
                "is true but no publishers are configured",
            ));
        }

        if self.audit.batch_size == 0 || self.audit.queue_capacity == 0 {
            return Err(ConfigError::new(
                "audit",
                "batch_size and queue_capacity must be greater than zero",
            ));
        }

        if self.mode == Mode::Production {
            if let Some(issuer) = &issuer {
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
            if self.console.development_login {
                return Err(ConfigError::new(
                    "console.development_login",
                    "the development login cannot be enabled in production mode",
                ));
            }
        }

        let tokens = TokensConfig {
            agent_ttl_secs: positive("tokens.agent_ttl_secs", self.tokens.agent_ttl_secs)?,
            default_skill_ttl_secs: positive(
                "tokens.default_skill_ttl_secs",
                self.tokens.default_skill_ttl_secs,
            )?,
            max_exchange_depth: self.tokens.max_exchange_depth.clamp(1, 16) as usize,
            dpop_max_age_secs: positive("tokens.dpop_max_age_secs", self.tokens.dpop_max_age_secs)?,
            dpop_require_nonce: self.tokens.dpop_require_nonce,
            assertion_max_lifetime_secs: positive(
                "tokens.assertion_max_lifetime_secs",
                self.tokens.assertion_max_lifetime_secs,
            )?,
            revocation_sync_secs: match self.tokens.revocation_sync_secs {
                s @ 1..=3600 => s,
                _ => {
                    return Err(ConfigError::new(
                        "tokens.revocation_sync_secs",
                        "must be between 1 and 3600",
                    ));
                }
            },
        };
        for (setting, ttl) in [
            ("tokens.agent_ttl_secs", tokens.agent_ttl_secs),
            (
                "tokens.default_skill_ttl_secs",
                tokens.default_skill_ttl_secs,
            ),
        ] {
            if ttl > keys.max_token_lifetime_secs {
                return Err(ConfigError::new(
                    setting,
                    "must not exceed keys.max_token_lifetime_secs (retired keys would vanish before their tokens expire)",
                ));
            }
        }
        let redis = validate_redis(&self.redis)?;
        let admin_token = match &self.admin.token {
            None => None,
            Some(t) if t.len() < 32 => {
                return Err(ConfigError::new(
                    "admin.token",
                    "must be at least 32 characters (e.g. `openssl rand -base64 32`)",
                ));
            }
            Some(t) => Some(SecretString(t.clone())),
        };
        if self.console.development_login && !listen.ip().is_loopback() {
            return Err(ConfigError::new(
                "console.development_login",
                "the development login is only available on a loopback listen address",
            ));
        }
        let mut providers = Vec::new();
        for (i, p) in self.console.providers.iter().enumerate() {
            let setting = format!("console.providers[{i}]");
            let kind = match p.kind.as_str() {
                "oidc" => ProviderKind::Oidc,
                "google" => ProviderKind::Google,
                "github" => ProviderKind::Github,
                other => {
                    return Err(ConfigError::new(
                        &setting,
                        format!("kind `{other}` is not one of oidc, google, github"),
                    ));
                }
            };
            let issuer = match (kind, &p.issuer) {
                (ProviderKind::Google, None) => Some("https://accounts.google.com".to_owned()),
                (ProviderKind::Oidc, None) => {
                    return Err(ConfigError::new(
                        &setting,
                        "an oidc provider needs `issuer`",
                    ));
                }
                (_, i) => i.clone(),
            };
            let name = p.name.clone().unwrap_or_else(|| p.kind.clone());
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                || providers.iter().any(|q: &ProviderConfig| q.name == name)
            {
                return Err(ConfigError::new(
                    &setting,
                    "name must be unique and use only letters, digits, - and _",
                ));
            }
            if p.client_id.is_empty() || p.client_secret.is_empty() {
                return Err(ConfigError::new(
                    &setting,
                    "client_id and client_secret are required",
                ));
            }
            providers.push(ProviderConfig {
                kind,
                name,
                issuer,
                client_id: p.client_id.clone(),
                client_secret: SecretString(p.client_secret.clone()),
                authorize_url: p
                    .authorize_url
                    .clone()
                    .unwrap_or_else(|| "https://github.com/login/oauth/authorize".into()),
                token_url: p
                    .token_url
                    .clone()
                    .unwrap_or_else(|| "https://github.com/login/oauth/access_token".into()),
                api_url: p
                    .api_url
                    .clone()
                    .unwrap_or_else(|| "https://api.github.com".into()),
            });
        }
        let console = ConsoleConfig {
            development_login: self.console.development_login,
            session_idle_secs: positive(
                "console.session_idle_secs",
                self.console.session_idle_secs,
            )?,
            session_max_secs: positive("console.session_max_secs", self.console.session_max_secs)?,
            admins: self.console.admins.clone(),
            providers,
        };
        let mail_transport = match self.mail.transport.as_str() {
            "files" => MailTransport::Files(
                self.mail
                    .dir
                    .clone()
                    .unwrap_or_else(|| database_url.sqlite_dir().unwrap_or_default().join("mail")),
            ),
            "smtp" => {
                let host = self.mail.smtp_host.clone().ok_or_else(|| {
                    ConfigError::new("mail.smtp_host", "is required with transport = \"smtp\"")
                })?;
                let tls = match self.mail.smtp_tls.as_str() {
                    "starttls" => SmtpTls::Starttls,
                    "tls" => SmtpTls::Tls,
                    "none" => SmtpTls::None,
                    other => {
                        return Err(ConfigError::new(
                            "mail.smtp_tls",
                            format!("`{other}` is not one of starttls, tls, none"),
                        ));
                    }
                };
                let port = self.mail.smtp_port.unwrap_or(match tls {
                    SmtpTls::Tls => 465,
                    _ => 587,
                });
                let credentials = match (&self.mail.smtp_username, &self.mail.smtp_password) {
                    (Some(u), Some(p)) => Some((u.clone(), SecretString(p.clone()))),
                    (None, None) => None,
                    _ => {
                        return Err(ConfigError::new(
                            "mail.smtp_username",
                            "set both smtp_username and smtp_password, or neither",
                        ));
                    }
                };
                MailTransport::Smtp {
                    host,
                    port,
                    tls,
                    credentials,
                }
            }
            other => {
                return Err(ConfigError::new(
                    "mail.transport",
                    format!("`{other}` is not one of files, smtp"),
                ));
            }
        };
        if self.mode == Mode::Production && matches!(mail_transport, MailTransport::Files(_)) {
            tracing::warn!("production mode with mail.transport = \"files\": owners get no e-mail");
        }
        let mail = MailConfig {
            transport: mail_transport,
            from: self.mail.from.clone(),
        };
        let admin_listen = match &self.admin.listen {
            None => None,
            Some(l) => Some(l.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    "admin.listen",
                    format!("`{l}` is not an address like 127.0.0.1:8081"),
                )
            })?),
        };
        let writers = match database_url.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => self.database.writers.unwrap_or(4).clamp(1, 64) as usize,
        };
        Ok(Config {
            mode: self.mode,
            listen,
            issuer,
            workers: self.workers,
            database_url,
            pool_size: self.database.pool_size,
            writers,
            keys,
            registration,
            outbound,
            software_statements: SoftwareStatementConfig {
                required: self.software_statements.required,
                publishers,
            },
            validation: ValidationConfig {
                clock_skew_secs: i64::try_from(self.validation.clock_skew_secs)
                    .map_err(|_| ConfigError::new("validation.clock_skew_secs", "is too large"))?,
                max_token_age_secs: positive(
                    "validation.max_token_age_secs",
                    self.validation.max_token_age_secs,
                )?,
            },
            audit: AuditConfig {
                flush_interval_ms: self.audit.flush_interval_ms.max(1),
                batch_size: self.audit.batch_size,
                queue_capacity: self.audit.queue_capacity,
            },
            development_login: self.console.development_login,
            console,
            mail,
            tokens,
            admin_token,
            admin_listen,
            redis,
        })
    }
}

fn validate_redis(raw: &RawRedis) -> Result<RedisConfig, ConfigError> {
    if let Some(url) = &raw.url {
        let parsed = Url::parse(url)
            .map_err(|e| ConfigError::new("redis.url", format!("not a URL: {e}")))?;
        if parsed.scheme() != "redis" || parsed.host_str().is_none() {
            return Err(ConfigError::new(
                "redis.url",
                "must be a redis://host[:port][/db] URL (TLS to Redis is not supported)",
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
        prefix: raw.prefix.clone(),
        timeout_ms: raw.timeout_ms,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail closure returns figment's own (large) error type"
    )]
    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in pairs {
                jail.set_env(k, v);
            }
            let result = Config::load(None);
            // Smuggle the result out of the jail closure.
            RESULT.with(|r| *r.borrow_mut() = Some(result));
            Ok(())
        });
        RESULT.with(|r| r.borrow_mut().take().expect("set above"))
    }

    thread_local! {
        static RESULT: std::cell::RefCell<Option<Result<Config, ConfigError>>> =
            const { std::cell::RefCell::new(None) };
    }

    #[test]
    fn defaults_are_a_working_development_setup() {
        let c = load(&[]).unwrap();
        assert_eq!(c.mode, Mode::Development);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.backend(), Backend::Sqlite);
        assert_eq!(c.database_url.connect_string(), "patron.db");
        assert!(c.keys.generate_encryption_key);
    }

    #[test]
    fn short_environment_aliases_are_honoured() {
        let c = load(&[
            ("PATRON_LISTEN", "127.0.0.1:9999"),
            ("PATRON_DATABASE_URL", "postgres://u@localhost/x"),
            ("PATRON_ISSUER", "https://auth.example.com"),
            ("PATRON_DATABASE__POOL_SIZE", "3"),
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.database_url.backend(), Backend::Postgres);
        assert_eq!(c.pool_size, 3);
        assert_eq!(
            issuer_string(c.issuer.as_ref().unwrap()),
            "https://auth.example.com"
        );
    }

    #[test]
    fn a_bad_setting_is_named() {
        let e = load(&[("PATRON_LISTEN", "nowhere")]).unwrap_err();
        assert_eq!(e.setting, "listen");
        let e = load(&[("PATRON_DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(e.setting, "database.url");
        let e = load(&[("PATRON_KEYS__ALGORITHM", "HS256")]).unwrap_err();
        assert_eq!(e.setting, "keys.algorithm");
        let e = load(&[("PATRON_KEY_ENCRYPTION_KEY", "c2hvcnQ=")]).unwrap_err();
        assert_eq!(e.setting, "keys.encryption_key");
    }

    #[test]
    fn the_shared_redis_is_validated() {
        let c = load(&[]).unwrap();
        assert!(c.redis.url.is_none(), "memory by default");
        let c = load(&[("PATRON_REDIS__URL", "redis://127.0.0.1:6379/2")]).unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("redis://127.0.0.1:6379/2"));
        assert_eq!(c.redis.prefix, "patron:");
        for bad in [
            "rediss://cache.example",
            "http://cache.example",
            "redis://",
            "cache:6379",
        ] {
            let e = load(&[("PATRON_REDIS__URL", bad)]).unwrap_err();
            assert_eq!(e.setting, "redis.url", "{bad}");
        }
        let e = load(&[("PATRON_REDIS__PREFIX", "a b")]).unwrap_err();
        assert_eq!(e.setting, "redis.prefix");
        let e = load(&[("PATRON_REDIS__TIMEOUT_MS", "0")]).unwrap_err();
        assert_eq!(e.setting, "redis.timeout_ms");
    }

    #[test]
    fn production_refuses_an_http_issuer_on_a_public_host() {
        let e = load(&[
            ("PATRON_MODE", "production"),
            ("PATRON_ISSUER", "http://auth.example.com"),
            (
                "PATRON_KEY_ENCRYPTION_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "issuer");
    }

    #[test]
    fn production_refuses_a_missing_key_encryption_key() {
        let e = load(&[
            ("PATRON_MODE", "production"),
            ("PATRON_ISSUER", "https://auth.example.com"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "keys.encryption_key");
    }

    #[test]
    fn production_refuses_the_development_login() {
        let e = load(&[
            ("PATRON_MODE", "production"),
            ("PATRON_ISSUER", "https://auth.example.com"),
            (
                "PATRON_KEY_ENCRYPTION_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            ("PATRON_CONSOLE__DEVELOPMENT_LOGIN", "true"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "console.development_login");
    }

    #[test]
    fn production_accepts_a_sound_setup() {
        let c = load(&[
            ("PATRON_MODE", "production"),
            ("PATRON_ISSUER", "https://auth.example.com"),
            (
                "PATRON_KEY_ENCRYPTION_KEY",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Production);
        assert!(!c.keys.generate_encryption_key);
    }

    #[test]
    fn database_urls_pick_their_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db")
                .unwrap()
                .connect_string(),
            "/tmp/x.db"
        );
        assert_eq!(
            DatabaseUrl::parse("data/p.db").unwrap().backend(),
            Backend::Sqlite
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://h/d").unwrap().backend(),
            Backend::Postgres
        );
        assert!(DatabaseUrl::parse("redis://x").is_err());
        assert!(DatabaseUrl::parse("").is_err());
    }
}
