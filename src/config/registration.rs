//! How clients register: the `[registration]` limits, the `[outbound]` rules for documents
//! the server fetches itself (`jwks_uri`), and the trusted `[software_statements]`
//! publishers.

use std::net::IpAddr;
use std::path::PathBuf;

use super::raw::{RawClientIdDocuments, RawOutbound, RawRegistration, RawSoftwareStatements};
use super::{ConfigError, positive};

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
    /// How long a fetched key set is cached.
    pub cache_secs: i64,
    /// Most bytes of fetched documents whose key sets are cached at once.
    pub cache_max_bytes: usize,
}

/// Client ID Metadata Documents: `client_id`s that are `https` URLs.
#[derive(Debug, Clone)]
pub struct ClientIdDocumentsConfig {
    /// Whether such client ids are accepted at all.
    pub enabled: bool,
    /// Hosts (or `*.domain`) whose documents are accepted; empty: any public host.
    pub allow_hosts: Vec<String>,
    /// Hosts (or `*.domain`) whose documents are refused.
    pub deny_hosts: Vec<String>,
    /// Largest accepted document.
    pub max_bytes: usize,
    /// Shortest time a fetched document is trusted (also for `no-store`).
    pub min_cache_secs: i64,
    /// Longest time a fetched document is trusted, whatever its `max-age`.
    pub max_cache_secs: i64,
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
    /// Longest accepted remaining lifetime of a statement (`exp - now`).
    pub max_lifetime_secs: i64,
    /// Trusted publishers.
    pub publishers: Vec<Publisher>,
}

/// Validates `[registration]`: trusted proxies are IP addresses, the burst is at least 1.
pub(super) fn validate_registration(
    raw: &RawRegistration,
) -> Result<RegistrationConfig, ConfigError> {
    let trusted_proxies = raw
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
    Ok(RegistrationConfig {
        open: raw.open,
        rate_limit_per_minute: raw.rate_limit_per_minute,
        rate_limit_burst: raw.rate_limit_burst.max(1),
        pending_ttl_secs: positive("registration.pending_ttl_secs", raw.pending_ttl_secs)?,
        trusted_proxies,
    })
}

/// Validates `[outbound]`: a body limit of at most 1 MiB, a CA file that exists, host names
/// compared in lower case.
pub(super) fn validate_outbound(raw: &RawOutbound) -> Result<OutboundConfig, ConfigError> {
    if raw.max_bytes == 0 || raw.max_bytes > 1024 * 1024 {
        return Err(ConfigError::new(
            "outbound.max_bytes",
            "must be between 1 and 1048576",
        ));
    }
    if let Some(ca) = &raw.ca_file {
        if !ca.is_file() {
            return Err(ConfigError::new(
                "outbound.ca_file",
                format!("{} is not a readable file", ca.display()),
            ));
        }
    }
    Ok(OutboundConfig {
        allow_hosts: raw
            .allow_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        ca_file: raw.ca_file.clone(),
        timeout_ms: positive("outbound.timeout_ms", raw.timeout_ms)? as u64,
        max_bytes: raw.max_bytes,
        cache_secs: i64::try_from(raw.cache_secs)
            .map_err(|_| ConfigError::new("outbound.cache_secs", "is too large"))?,
        cache_max_bytes: raw.cache_max_bytes,
    })
}

/// Validates `[client_id_documents]`.
pub(super) fn validate_client_id_documents(
    raw: &RawClientIdDocuments,
    outbound: &OutboundConfig,
) -> Result<ClientIdDocumentsConfig, ConfigError> {
    if raw.max_bytes == 0 || raw.max_bytes > outbound.max_bytes {
        return Err(ConfigError::new(
            "client_id_documents.max_bytes",
            "must be between 1 and outbound.max_bytes",
        ));
    }
    let min = positive("client_id_documents.min_cache_secs", raw.min_cache_secs)?;
    let max = positive("client_id_documents.max_cache_secs", raw.max_cache_secs)?;
    if min > max {
        return Err(ConfigError::new(
            "client_id_documents.min_cache_secs",
            "must not exceed client_id_documents.max_cache_secs",
        ));
    }
    let hosts = |list: &[String], setting: &str| -> Result<Vec<String>, ConfigError> {
        list.iter()
            .map(|h| {
                let h = h.trim().to_ascii_lowercase();
                let bare = h.strip_prefix("*.").unwrap_or(&h);
                if bare.is_empty() || bare.contains(['/', ':', '*', ' ']) {
                    Err(ConfigError::new(
                        setting,
                        format!("{h:?} is not a host name or *.domain"),
                    ))
                } else {
                    Ok(h)
                }
            })
            .collect()
    };
    Ok(ClientIdDocumentsConfig {
        enabled: raw.enabled,
        allow_hosts: hosts(&raw.allow_hosts, "client_id_documents.allow_hosts")?,
        deny_hosts: hosts(&raw.deny_hosts, "client_id_documents.deny_hosts")?,
        max_bytes: raw.max_bytes,
        min_cache_secs: min,
        max_cache_secs: max,
    })
}

/// Validates `[software_statements]`: each publisher has an issuer and exactly one usable
/// JWK Set (inline or from a file), and `required` needs at least one publisher.
pub(super) fn validate_software_statements(
    raw: &RawSoftwareStatements,
) -> Result<SoftwareStatementConfig, ConfigError> {
    let mut publishers = Vec::new();
    for (i, p) in raw.publishers.iter().enumerate() {
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
    if raw.required && publishers.is_empty() {
        return Err(ConfigError::new(
            "software_statements.required",
            "is true but no publishers are configured",
        ));
    }
    Ok(SoftwareStatementConfig {
        required: raw.required,
        max_lifetime_secs: super::positive(
            "software_statements.max_lifetime_secs",
            raw.max_lifetime_secs,
        )?,
        publishers,
    })
}
