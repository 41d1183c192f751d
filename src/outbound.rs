//! Fetching URLs on a client's behalf (`jwks_uri`) or a skill's (its RFC 9728 metadata),
//! guarded against server-side request forgery: https only, no redirects, every resolved
//! address must be public unless the host is allow-listed, no proxy, bounded time and size,
//! and validated key sets cached (nothing else is).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::config::OutboundConfig;
use crate::jose::jwks::PublicKeySet;
use crate::lru::Lru;

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
/// documentation, multicast, reserved or unspecified). IPv6 addresses that embed an IPv4
/// address (IPv4-mapped, IPv4-translated, NAT64, 6to4) are judged by the embedded address;
/// other IPv6 addresses must be global unicast (2000::/3) outside the special ranges.
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
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 192.88.99.0/24 6to4 relay anycast
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240) // reserved
}

/// The IPv4 address an IPv6 address reaches through a standard translation: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-translated (`::ffff:0:0:0/96`), NAT64's well-known prefix
/// (`64:ff9b::/96`) and 6to4 (`2002::/16`).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let last = Ipv4Addr::from(u32::from(s[6]) << 16 | u32::from(s[7]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from(u32::from(hi) << 16 | u32::from(lo))),
        _ => None,
    }
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_ipv4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // Everything outside 2000::/3 is loopback, unspecified, IPv4-compatible, NAT64
    // local-use (64:ff9b:1::/48, whose embedding depends on the local prefix), discard-only
    // (100::/64), unique local, link- and site-local, multicast, SRv6 (5f00::/16) or
    // unassigned.
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    // 2001::/23 IETF protocol assignments: Teredo (whose embedded client address is
    // hidden), benchmarking, ORCHID…
    let protocol_assignment = s[0] == 0x2001 && s[1] < 0x0200;
    let documentation = (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] < 0x1000);
    global_unicast && !protocol_assignment && !documentation
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

/// A `jwks_uri` key set that passed validation, and when it was fetched.
struct CachedKeys {
    fetched_at: f64,
    keys: Arc<PublicKeySet>,
}

/// Why a `jwks_uri` key set could not be had. Descriptions are safe to return.
#[derive(Debug, thiserror::Error)]
pub enum JwksFetchError {
    /// The document could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document is not a usable JWK Set.
    #[error("{0}")]
    InvalidKeys(String),
}

impl JwksFetchError {
    /// Audit reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Fetch(e) => e.reason(),
            Self::InvalidKeys(_) => "jwks_uri_invalid_keys",
        }
    }
}

/// What a `jwks_uri` fetch accepts.
const JWKS_ACCEPT: &str = "application/jwk-set+json, application/json";

/// Fetches JSON documents under the SSRF guard and caches validated `jwks_uri` key sets.
///
/// Only key sets that passed validation are cached, in an LRU map bounded by the bytes of
/// the documents they came from (`outbound.cache_max_bytes`), so unique URLs serving
/// large or invalid documents cannot grow memory: a failed document is not kept at all,
/// and a flood of valid ones evicts the least recently used.
pub struct Fetcher {
    client: reqwest::Client,
    allow_hosts: Arc<Vec<String>>,
    max_bytes: usize,
    cache_secs: f64,
    cache: Mutex<Lru<String, CachedKeys>>,
}

impl Fetcher {
    /// Builds the HTTP client from configuration. Proxy environment variables
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`) are ignored: a proxy would connect to
    /// addresses the guard never saw.
    pub fn new(config: &OutboundConfig) -> anyhow::Result<Self> {
        let allow_hosts = Arc::new(config.allow_hosts.clone());
        let mut builder = reqwest::Client::builder()
            .no_proxy()
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
            cache: Mutex::new(Lru::new(config.cache_max_bytes)),
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

    /// Fetches `url` as JSON (not cached: only validated key sets are, see
    /// [`fetch_jwks`](Self::fetch_jwks)). `_now` is kept for callers of the cached form.
    pub async fn fetch_json(
        &self,
        url: &Url,
        _now: f64,
    ) -> Result<Arc<serde_json::Value>, FetchError> {
        let body = self.fetch_body(url, JWKS_ACCEPT).await?;
        serde_json::from_slice(&body)
            .map(Arc::new)
            .map_err(|_| FetchError::NotJson)
    }

    /// Fetches `url` as JSON now, for a check its caller asked for again (an audience
    /// proof), where yesterday's answer is not the answer.
    pub async fn fetch_json_uncached(&self, url: &Url) -> Result<serde_json::Value, FetchError> {
        let body = self.fetch_body(url, "application/json").await?;
        serde_json::from_slice(&body).map_err(|_| FetchError::NotJson)
    }

    /// The validated client key set at `url` (a `jwks_uri`), from the cache when fresh.
    pub async fn fetch_jwks(
        &self,
        url: &Url,
        now: f64,
    ) -> Result<Arc<PublicKeySet>, JwksFetchError> {
        self.check_url(url)?;
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(hit) = cache.get_mut(url.as_str()) {
                if now - hit.fetched_at < self.cache_secs {
                    return Ok(hit.keys.clone());
                }
            }
        }
        let body = self.fetch_body(url, JWKS_ACCEPT).await?;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| FetchError::NotJson)?;
        let keys = Arc::new(PublicKeySet::from_jwks(&doc).map_err(JwksFetchError::InvalidKeys)?);
        if self.cache_secs > 0.0 {
            if let Ok(mut cache) = self.cache.lock() {
                let cost = body.len() + url.as_str().len();
                let cached = CachedKeys {
                    fetched_at: now,
                    keys: keys.clone(),
                };
                cache.insert(url.as_str().to_owned(), cached, cost);
            }
        }
        Ok(keys)
    }

    /// A client metadata document (or any JSON document) at `url`, at most `max_bytes`
    /// (and never more than `outbound.max_bytes`), with its `Cache-Control` header.
    pub async fn fetch_document(
        &self,
        url: &Url,
        max_bytes: usize,
    ) -> Result<(serde_json::Value, Option<String>), FetchError> {
        let (body, headers) = self
            .fetch_with_headers(url, "application/json", max_bytes.min(self.max_bytes))
            .await?;
        let doc = serde_json::from_slice(&body).map_err(|_| FetchError::NotJson)?;
        let cache_control = headers
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((doc, cache_control))
    }

    /// The body at `url`, within the size limit.
    async fn fetch_body(&self, url: &Url, accept: &str) -> Result<Vec<u8>, FetchError> {
        self.fetch_with_headers(url, accept, self.max_bytes)
            .await
            .map(|(body, _)| body)
    }

    /// The body at `url`, at most `max_bytes`, and the response headers.
    async fn fetch_with_headers(
        &self,
        url: &Url,
        accept: &str,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, reqwest::header::HeaderMap), FetchError> {
        self.check_url(url)?;
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
        if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(FetchError::TooLarge(max_bytes));
        }
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Failed(short_reason(&e)))?
        {
            if body.len() + chunk.len() > max_bytes {
                return Err(FetchError::TooLarge(max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, headers))
    }

    /// Bytes of documents whose key sets are cached now.
    pub fn cached_bytes(&self) -> usize {
        self.cache.lock().map(|c| c.cost()).unwrap_or(0)
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

    fn public(a: &str) -> bool {
        is_public(a.parse().unwrap())
    }

    /// IPv4 addresses no fetch may reach, directly or embedded in IPv6.
    const PRIVATE_V4: &[&str] = &[
        "127.0.0.1",
        "127.255.255.254",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.255",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.255",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.0.8",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "198.18.0.1",
        "198.19.255.255",
        "192.88.99.1",
    ];

    /// IPv4 addresses that are public, next to the private ranges' edges.
    const PUBLIC_V4: &[&str] = &[
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
    ];

    /// The IPv6 forms that embed `v4`: mapped, translated, NAT64 well-known prefix, 6to4.
    fn embeddings(v4: &str) -> Vec<String> {
        let o = v4.parse::<Ipv4Addr>().unwrap().octets();
        let (hi, lo) = (
            u16::from_be_bytes([o[0], o[1]]),
            u16::from_be_bytes([o[2], o[3]]),
        );
        vec![
            format!("::ffff:{v4}"),
            format!("::ffff:0:{hi:x}:{lo:x}"),
            format!("64:ff9b::{v4}"),
            format!("2002:{hi:x}:{lo:x}::1"),
            format!("2002:{hi:x}:{lo:x}:ffff:ffff:ffff:ffff:ffff"),
        ]
    }

    #[test]
    fn private_and_special_ipv4_addresses_are_not_public() {
        for a in PRIVATE_V4 {
            assert!(!public(a), "{a}");
        }
        for a in PUBLIC_V4 {
            assert!(public(a), "{a}");
        }
    }

    #[test]
    fn ipv6_that_embeds_ipv4_is_judged_by_the_embedded_address() {
        for v4 in PRIVATE_V4 {
            for a in embeddings(v4) {
                assert!(!public(&a), "{a} embeds {v4}");
            }
        }
        for v4 in PUBLIC_V4 {
            for a in embeddings(v4) {
                assert!(public(&a), "{a} embeds {v4}");
            }
        }
        assert_eq!(
            embedded_ipv4("2002:a00:1::".parse().unwrap()),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(
            embedded_ipv4("::ffff:0:7f00:1".parse().unwrap()),
            Some(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn special_ipv6_ranges_are_not_public() {
        for a in [
            "::",
            "::1",
            "::127.0.0.1", // IPv4-compatible (deprecated)
            "::8.8.8.8",
            "::ffff:1:0:0:1",   // neither mapped nor translated
            "64:ff9b:1::a00:1", // NAT64 local use: the embedding depends on the prefix
            "64:ff9b:1:ffff::808:808",
            "64:ff9b:0:1::808:808", // within 64:ff9b::/32 but not the /96
            "100::1",               // discard only
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1", // site local (deprecated)
            "ff02::1",
            "ff0e::1",
            "2001::1", // Teredo
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",  // benchmarking
            "2001:10::1", // ORCHID
            "2001:20::1", // ORCHIDv2
            "2001:1ff::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "3fff::1", // documentation (RFC 9637)
            "3fff:fff::1",
            "5f00::1", // SRv6 segment identifiers
            "4000::1", // unassigned
            "e000::1",
        ] {
            assert!(!public(a), "{a}");
        }
        for a in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2a00:1450:4001:80b::200e",
            "3ffe::1",
            "3fff:1000::1",
            "2001:db9::1",
        ] {
            assert!(public(a), "{a}");
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
            cache_max_bytes: 1000,
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
