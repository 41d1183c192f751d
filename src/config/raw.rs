//! Settings as figment deserialises them from defaults, the TOML file and the environment:
//! lenient types (strings, plain integers, optional fields) that the `validate_*`
//! functions of the section modules turn into the typed [`Config`](super::Config).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Mode;

/// Settings as read from files and environment, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) mode: Mode,
    pub(super) listen: String,
    pub(super) issuer: Option<String>,
    pub(super) workers: usize,
    pub(super) database: RawDatabase,
    pub(super) keys: RawKeys,
    pub(super) registration: RawRegistration,
    pub(super) outbound: RawOutbound,
    pub(super) client_id_documents: RawClientIdDocuments,
    pub(super) software_statements: RawSoftwareStatements,
    pub(super) validation: RawValidation,
    pub(super) audit: RawAudit,
    pub(super) console: RawConsole,
    pub(super) tokens: RawTokens,
    pub(super) admin: RawAdmin,
    pub(super) mail: RawMail,
    pub(super) redis: RawRedis,
    pub(super) limits: RawLimits,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) client_auth_failures_per_minute: u32,
    pub(super) client_auth_failure_burst: u32,
    pub(super) address_auth_failures_per_minute: u32,
    pub(super) address_auth_failure_burst: u32,
    pub(super) hash_concurrency: usize,
    pub(super) claim_lookup_failures_per_minute: u32,
    pub(super) claim_lookup_failure_burst: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub(super) url: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) prefix: String,
    pub(super) timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    pub(super) agent_ttl_secs: u64,
    pub(super) default_skill_ttl_secs: u64,
    pub(super) max_exchange_depth: u32,
    pub(super) dpop_max_age_secs: u64,
    pub(super) dpop_require_nonce: bool,
    pub(super) assertion_max_lifetime_secs: u64,
    pub(super) assertion_max_age_secs: u64,
    pub(super) strict_assertion_audience: bool,
    pub(super) revocation_sync_secs: u64,
    pub(super) require_audience_proof: Option<bool>,
    pub(super) code_ttl_secs: u64,
    pub(super) refresh_idle_secs: u64,
    pub(super) refresh_absolute_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) token: Option<String>,
    pub(super) token_hash: Option<String>,
    pub(super) listen: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) url: String,
    pub(super) pool_size: u32,
    pub(super) writers: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeys {
    pub(super) algorithm: String,
    pub(super) encryption_key: Option<String>,
    pub(super) encryption_key_file: Option<PathBuf>,
    pub(super) rotation_interval_secs: u64,
    pub(super) promote_delay_secs: u64,
    pub(super) max_token_lifetime_secs: u64,
    pub(super) refresh_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistration {
    pub(super) open: bool,
    pub(super) rate_limit_per_minute: u32,
    pub(super) rate_limit_burst: u32,
    pub(super) pending_ttl_secs: u64,
    pub(super) trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbound {
    pub(super) allow_hosts: Vec<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) timeout_ms: u64,
    pub(super) max_bytes: usize,
    pub(super) cache_secs: u64,
    pub(super) cache_max_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClientIdDocuments {
    pub(super) enabled: bool,
    pub(super) allow_hosts: Vec<String>,
    pub(super) deny_hosts: Vec<String>,
    pub(super) max_bytes: usize,
    pub(super) min_cache_secs: u64,
    pub(super) max_cache_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSoftwareStatements {
    pub(super) required: bool,
    pub(super) max_lifetime_secs: u64,
    pub(super) publishers: Vec<RawPublisher>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPublisher {
    pub(super) issuer: String,
    pub(super) jwks: Option<serde_json::Value>,
    pub(super) jwks_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValidation {
    pub(super) clock_skew_secs: u64,
    pub(super) max_token_age_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) flush_interval_ms: u64,
    pub(super) batch_size: usize,
    pub(super) queue_capacity: usize,
    pub(super) retention_days: u64,
    pub(super) retention_sweep_secs: u64,
    pub(super) export: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    /// `None`: on in development mode on a loopback listener, off otherwise.
    pub(super) development_login: Option<bool>,
    pub(super) session_idle_secs: u64,
    pub(super) session_max_secs: u64,
    pub(super) admins: Vec<String>,
    pub(super) providers: Vec<RawProvider>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) kind: String,
    pub(super) name: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) authorize_url: Option<String>,
    pub(super) token_url: Option<String>,
    pub(super) api_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMail {
    pub(super) transport: String,
    pub(super) from: String,
    pub(super) dir: Option<PathBuf>,
    pub(super) smtp_host: Option<String>,
    pub(super) smtp_port: Option<u16>,
    pub(super) smtp_tls: String,
    pub(super) smtp_username: Option<String>,
    pub(super) smtp_password: Option<String>,
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
                cache_max_bytes: 4 * 1024 * 1024,
            },
            client_id_documents: RawClientIdDocuments {
                enabled: true,
                allow_hosts: Vec::new(),
                deny_hosts: Vec::new(),
                max_bytes: 16 * 1024,
                min_cache_secs: 60,
                max_cache_secs: 24 * 3600,
            },
            software_statements: RawSoftwareStatements {
                required: false,
                max_lifetime_secs: 365 * 24 * 3600,
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
                retention_days: 90,
                retention_sweep_secs: 3600,
                export: None,
            },
            console: RawConsole {
                development_login: None,
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
                // Authlib's and Google's client libraries sign hour-long assertions.
                assertion_max_lifetime_secs: 3600,
                assertion_max_age_secs: 300,
                strict_assertion_audience: false,
                revocation_sync_secs: 1,
                code_ttl_secs: 60,
                refresh_idle_secs: 14 * 24 * 3600,
                refresh_absolute_secs: 90 * 24 * 3600,
                require_audience_proof: None,
            },
            admin: RawAdmin {
                token: None,
                token_hash: None,
                listen: None,
            },
            redis: RawRedis {
                url: None,
                ca_file: None,
                prefix: "patron:".into(),
                timeout_ms: 500,
            },
            limits: RawLimits {
                client_auth_failures_per_minute: 10,
                client_auth_failure_burst: 10,
                address_auth_failures_per_minute: 60,
                address_auth_failure_burst: 60,
                hash_concurrency: 0,
                claim_lookup_failures_per_minute: 60,
                claim_lookup_failure_burst: 30,
            },
        }
    }
}
