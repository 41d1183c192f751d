//! Fetching URLs on a client's behalf (`jwks_uri`) or a skill's (its RFC 9728 metadata),
//! guarded against server-side request forgery: https only, no redirects, every resolved
//! address must be public unless the host is allow-listed, bounded time and size, and
//! results cached (except where a caller asks to check again).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::config::OutboundConfig;

/// Why a fetch was refused or failed. Descriptions are safe to return to the client.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not https.
    #[error("only https URLs are fetched")]
    NotHttps,
    /// The host is or resolves to a non-public address.
    #[error("the host resolves to a non-public address")]
    PrivateAddress,
    /// Connection, TLS, timeout or HTTP status failure.
    #[error("fetching the document failed: {0}")]
    Failed(String),
    /// The document is larger than allowed.
    #[error("the document is larger than {0} bytes")]
    TooLarge(usize),
    /// The document is not JSON.
    #[error("the document is not JSON")]
    NotJson,
}

impl FetchError {
    /// Audit reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotHttps => "jwks_uri_not_https",
            Self::PrivateAddress => "jwks_uri_private_address",
            Self::Failed(_) => "jwks_uri_fetch_failed",
            Self::TooLarge(_) => "jwks_uri_too_large",
            Self::NotJson => "jwks_uri_not_json",
        }
    }
}

/// Whether an address is globally routable (not loopback, private, link-local, shared,
/// documentation, multicast, reserved or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 can reach private IPv4
        || s[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible and other reserved
}

/// A resolver that refuses hosts with any non-public address unless allow-listed.
struct GuardedResolver {
    allow_hosts: Arc<Vec<String>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let allowed = self.allow_hosts.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            if addrs.is_empty() {
                return Err("no addresses".into());
            }
            if !allowed && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(
                    Box::new(PrivateAddressError) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[derive(Debug)]
struct PrivateAddressError;

impl std::fmt::Display for PrivateAddressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("host resolves to a non-public address")
    }
}

impl std::error::Error for PrivateAddressError {}

/// Fetches and caches JSON documents under the SSRF guard.
pub struct Fetcher {
    client: reqwest::Client,
    allow_hosts: Arc<Vec<String>>,
    max_bytes: usize,
    cache_secs: f64,
    cache: Mutex<HashMap<String, (f64, Arc<serde_json::Value>)>>,
}

impl Fetcher {
    /// Builds the HTTP client from configuration.
    pub fn new(config: &OutboundConfig) -> anyhow::Result<Self> {
        let allow_hosts = Arc::new(config.allow_hosts.clone());
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .user_agent(concat!("patron/", env!("CARGO_PKG_VERSION")))
            .https_only(true)
            .dns_resolver(Arc::new(GuardedResolver {
                allow_hosts: allow_hosts.clone(),
            }));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)?;
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        Ok(Self {
            client: builder.build()?,
            allow_hosts,
            max_bytes: config.max_bytes,
            cache_secs: config.cache_secs as f64,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Checks what can be checked without a request: scheme and IP-literal hosts.
    pub fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        if url.scheme() != "https" {
            return Err(FetchError::NotHttps);
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if self.allow_hosts.contains(&host) {
            return Ok(());
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal {
            Some(ip) if !is_public(ip) => Err(FetchError::PrivateAddress),
            _ => Ok(()),
        }
    }

    /// Fetches `url` as JSON, from the cache when fresh.
    pub async fn fetch_json(
        &self,
        url: &Url,
        now: f64,
    ) -> Result<Arc<serde_json::Value>, FetchError> {
        self.check_url(url)?;
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, doc)) = cache.get(url.as_str()) {
                if now - at < self.cache_secs {
                    return Ok(doc.clone());
                }
            }
        }
        let doc = Arc::new(
            self.get_json(url, "application/jwk-set+json, application/json")
                .await?,
        );
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(url.as_str().to_owned(), (now, doc.clone()));
        }
        Ok(doc)
    }

    /// Fetches `url` as JSON now, bypassing the cache: for a check its caller asked for
    /// again (an audience proof), where yesterday's answer is not the answer.
    pub async fn fetch_json_uncached(&self, url: &Url) -> Result<serde_json::Value, FetchError> {
        self.check_url(url)?;
        self.get_json(url, "application/json").await
    }

    async fn get_json(&self, url: &Url, accept: &str) -> Result<serde_json::Value, FetchError> {
        let mut resp = self
            .client
            .get(url.clone())
            .header("accept", accept)
            .send()
            .await
            .map_err(|e| {
                if error_chain_has::<PrivateAddressError>(&e) {
                    FetchError::PrivateAddress
                } else {
                    FetchError::Failed(short_reason(&e))
                }
            })?;
        if !resp.status().is_success() {
            return Err(FetchError::Failed(format!(
                "HTTP status {}",
                resp.status().as_u16()
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Failed(short_reason(&e)))?
        {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| FetchError::NotJson)
    }
}

fn error_chain_has<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<E>() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn short_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_redirect() {
        "redirects are not followed".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "::",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn literal_private_hosts_and_plain_http_are_refused_before_any_request() {
        let f = Fetcher::new(&OutboundConfig {
            allow_hosts: vec!["127.0.0.2".into()],
            ca_file: None,
            timeout_ms: 100,
            max_bytes: 1000,
            cache_secs: 0,
        })
        .unwrap();
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(matches!(
            f.check_url(&u("http://8.8.8.8/k")),
            Err(FetchError::NotHttps)
        ));
        assert!(matches!(
            f.check_url(&u("https://127.0.0.1/k")),
            Err(FetchError::PrivateAddress)
        ));
        assert!(matches!(
            f.check_url(&u("https://[::1]/k")),
            Err(FetchError::PrivateAddress)
        ));
        assert!(f.check_url(&u("https://127.0.0.2/k")).is_ok());
        assert!(f.check_url(&u("https://example.com/k")).is_ok());
    }
}
