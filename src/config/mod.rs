//! Configuration: defaults, then an optional TOML file, then `PATRON_*` environment
//! variables; then a validation pass that turns the raw settings into a typed [`Config`]
//! and names the offending setting when something is wrong.
//!
//! Environment variables use `__` to reach nested settings (`PATRON_DATABASE__POOL_SIZE`);
//! the most common ones also have short aliases (`PATRON_DATABASE_URL`,
//! `PATRON_KEY_ENCRYPTION_KEY`, `PATRON_KEY_ENCRYPTION_KEY_FILE`).
//!
//! `raw` holds the settings as deserialised; each section module holds its typed settings
//! and the `validate_*` function that produces them: `server` (listen address, issuer,
//! admin API, audit writer, Redis), `database`, `keys`, `registration` (with outbound
//! fetches and software statements), `tokens` (with the JWT validation profile),
//! `console` (with the login providers), `mail` and `limits`.

mod console;
mod database;
mod keys;
mod limits;
mod mail;
mod raw;
mod registration;
mod server;
mod tokens;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

pub use console::{ConsoleConfig, ProviderConfig, ProviderKind};
pub use database::{Backend, DatabaseUrl};
pub use keys::{KeyEncryptionKeySource, KeysConfig};
pub use limits::LimitsConfig;
pub use mail::{MailConfig, MailTransport, SmtpTls};
pub use registration::{
    ClientIdDocumentsConfig, OutboundConfig, Publisher, RegistrationConfig, SoftwareStatementConfig,
};
pub use server::{
    ADMIN_TOKEN_MIN_LEN, AdminToken, AuditConfig, AuditExport, RedisConfig, issuer_string,
};
pub use tokens::{TokensConfig, ValidationConfig};

use raw::RawConfig;

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
    /// Client ID Metadata Documents.
    pub client_id_documents: ClientIdDocumentsConfig,
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
    /// Bearer token of the admin API (or its argon2id hash); the API is disabled without
    /// one.
    pub admin_token: Option<AdminToken>,
    /// A separate address for the admin API; when set, `/admin/` answers only there.
    pub admin_listen: Option<SocketAddr>,
    /// State shared by replicas.
    pub redis: RedisConfig,
    /// Abuse limits.
    pub limits: LimitsConfig,
}

/// Maps short environment aliases to dotted setting paths.
fn env_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    match key.as_str() {
        "database_url" => "database.url".into(),
        "key_encryption_key" => "keys.encryption_key".into(),
        "key_encryption_key_file" => "keys.encryption_key_file".into(),
        "admin_token" => "admin.token".into(),
        "admin_token_hash" => "admin.token_hash".into(),
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

impl RawConfig {
    /// Validates section by section, in the order that decides which of several bad
    /// settings is reported.
    fn validate(self) -> Result<Config, ConfigError> {
        let listen = server::validate_listen(&self.listen)?;
        let issuer = server::validate_issuer(self.issuer.as_deref())?;
        let database = database::validate_database(&self.database)?;
        let database_dir = database.url.sqlite_dir();
        let keys = keys::validate_keys(&self.keys, self.mode, database_dir.clone())?;
        let registration = registration::validate_registration(&self.registration)?;
        let outbound = registration::validate_outbound(&self.outbound)?;
        let client_id_documents =
            registration::validate_client_id_documents(&self.client_id_documents, &outbound)?;
        let software_statements =
            registration::validate_software_statements(&self.software_statements)?;
        let audit = server::validate_audit(&self.audit)?;
        if self.mode == Mode::Production {
            server::require_production_issuer(issuer.as_ref(), listen)?;
            if self.console.development_login == Some(true) {
                return Err(ConfigError::new(
                    "console.development_login",
                    "the development login cannot be enabled in production mode",
                ));
            }
        }
        let tokens =
            tokens::validate_tokens(&self.tokens, keys.max_token_lifetime_secs, self.mode)?;
        let redis = server::validate_redis(&self.redis)?;
        let admin = server::validate_admin(&self.admin)?;
        let console = console::validate_console(&self.console, listen, self.mode)?;
        let mail = mail::validate_mail(&self.mail, self.mode, database_dir)?;
        let validation = tokens::validate_validation(&self.validation)?;
        let limits = limits::validate_limits(&self.limits)?;
        Ok(Config {
            mode: self.mode,
            listen,
            issuer,
            workers: self.workers,
            database_url: database.url,
            pool_size: database.pool_size,
            writers: database.writers,
            keys,
            registration,
            outbound,
            client_id_documents,
            software_statements,
            validation,
            audit,
            development_login: console.development_login,
            console,
            mail,
            tokens,
            admin_token: admin.token,
            admin_listen: admin.listen,
            redis,
            limits,
        })
    }
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
    fn the_admin_token_is_given_in_clear_or_as_an_argon2id_hash_not_both() {
        let token = "t".repeat(ADMIN_TOKEN_MIN_LEN);
        let phc = crate::crypto::hash_argon2id(&token).unwrap();
        let c = load(&[("PATRON_ADMIN_TOKEN_HASH", &phc)]).unwrap();
        assert!(matches!(&c.admin_token, Some(AdminToken::Argon2id(h)) if *h == phc));
        let c = load(&[("PATRON_ADMIN__TOKEN", &token)]).unwrap();
        assert!(matches!(c.admin_token, Some(AdminToken::Plain(_))));
        let e = load(&[
            ("PATRON_ADMIN_TOKEN", &token),
            ("PATRON_ADMIN_TOKEN_HASH", &phc),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "admin.token_hash");
        assert!(e.to_string().contains("not both"), "{e}");
        for bad in [
            token.as_str(),
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            let e = load(&[("PATRON_ADMIN_TOKEN_HASH", bad)]).unwrap_err();
            assert_eq!(e.setting, "admin.token_hash");
            assert!(e.to_string().contains("patron admin hash-token"), "{e}");
        }
    }

    #[test]
    fn audience_proof_is_required_in_production_and_optional_in_development() {
        let c = load(&[]).unwrap();
        assert!(
            !c.tokens.require_audience_proof,
            "off by default in development"
        );
        let c = load(&[("PATRON_TOKENS__REQUIRE_AUDIENCE_PROOF", "true")]).unwrap();
        assert!(c.tokens.require_audience_proof);
        let e = tokens::validate_tokens(
            &raw::RawTokens {
                require_audience_proof: Some(false),
                ..RawConfig::default().tokens
            },
            3600,
            Mode::Production,
        )
        .unwrap_err();
        assert_eq!(e.setting, "tokens.require_audience_proof");
        let on =
            tokens::validate_tokens(&RawConfig::default().tokens, 3600, Mode::Production).unwrap();
        assert!(on.require_audience_proof, "on by default in production");
    }

    #[test]
    fn audit_retention_and_export_are_validated() {
        let c = load(&[]).unwrap();
        assert_eq!(c.audit.retention_days, Some(90));
        assert_eq!(c.audit.export, None);
        let c = load(&[
            ("PATRON_AUDIT__RETENTION_DAYS", "0"),
            ("PATRON_AUDIT__EXPORT", "stdout"),
        ])
        .unwrap();
        assert_eq!(c.audit.retention_days, None, "0 keeps events forever");
        assert_eq!(c.audit.export, Some(AuditExport::Stdout));
        let c = load(&[("PATRON_AUDIT__EXPORT", "/var/log/patron/audit.jsonl")]).unwrap();
        assert_eq!(
            c.audit.export,
            Some(AuditExport::File("/var/log/patron/audit.jsonl".into()))
        );
        for (k, v, setting) in [
            (
                "PATRON_AUDIT__RETENTION_DAYS",
                "40000",
                "audit.retention_days",
            ),
            (
                "PATRON_AUDIT__RETENTION_SWEEP_SECS",
                "0",
                "audit.retention_sweep_secs",
            ),
            ("PATRON_AUDIT__EXPORT", " ", "audit.export"),
        ] {
            assert_eq!(load(&[(k, v)]).unwrap_err().setting, setting, "{k}={v}");
        }
    }

    #[test]
    fn the_shared_redis_is_validated() {
        let c = load(&[]).unwrap();
        assert!(c.redis.url.is_none(), "memory by default");
        let c = load(&[("PATRON_REDIS__URL", "redis://127.0.0.1:6379/2")]).unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("redis://127.0.0.1:6379/2"));
        assert_eq!(c.redis.prefix, "patron:");
        let c = load(&[("PATRON_REDIS__URL", "rediss://cache.example:6380")]).unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("rediss://cache.example:6380"));
        for bad in [
            "rediss://",
            "rediss://cache.example/#insecure",
            "http://cache.example",
            "redis://",
            "cache:6379",
        ] {
            let e = load(&[("PATRON_REDIS__URL", bad)]).unwrap_err();
            assert_eq!(e.setting, "redis.url", "{bad}");
        }
        let ca = tempfile::NamedTempFile::new().unwrap();
        let ca_path = ca.path().to_str().unwrap();
        let e = load(&[
            ("PATRON_REDIS__URL", "redis://cache.example"),
            ("PATRON_REDIS__CA_FILE", ca_path),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "redis.ca_file", "a CA file without TLS");
        let e = load(&[
            ("PATRON_REDIS__URL", "rediss://cache.example"),
            ("PATRON_REDIS__CA_FILE", "/nonexistent/ca.pem"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "redis.ca_file");
        let c = load(&[
            ("PATRON_REDIS__URL", "rediss://cache.example"),
            ("PATRON_REDIS__CA_FILE", ca_path),
        ])
        .unwrap();
        assert_eq!(c.redis.ca_file.as_deref(), Some(ca.path()));
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
    fn the_development_login_is_on_by_default_only_in_development_on_loopback() {
        let kek = (
            "PATRON_KEY_ENCRYPTION_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        );
        let dev = load(&[("PATRON_LISTEN", "127.0.0.1:8080")]).unwrap();
        assert!(dev.console.development_login && dev.development_login);
        let dev_v6 = load(&[("PATRON_LISTEN", "[::1]:8080")]).unwrap();
        assert!(dev_v6.console.development_login);
        let off = load(&[
            ("PATRON_LISTEN", "127.0.0.1:8080"),
            ("PATRON_CONSOLE__DEVELOPMENT_LOGIN", "false"),
        ])
        .unwrap();
        assert!(!off.console.development_login && !off.development_login);
        let open = load(&[("PATRON_LISTEN", "0.0.0.0:8080")]).unwrap();
        assert!(
            !open.console.development_login,
            "not on a non-loopback address"
        );
        let e = load(&[
            ("PATRON_LISTEN", "0.0.0.0:8080"),
            ("PATRON_CONSOLE__DEVELOPMENT_LOGIN", "true"),
        ])
        .unwrap_err();
        assert_eq!(e.setting, "console.development_login");
        let prod = load(&[
            ("PATRON_MODE", "production"),
            ("PATRON_LISTEN", "127.0.0.1:8080"),
            ("PATRON_ISSUER", "https://auth.example.com"),
            kek,
        ])
        .unwrap();
        assert!(!prod.console.development_login, "never in production mode");
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
}
