//! Redirect URIs a client may register, checked against RFC 6749 §3.1.2, RFC 8252 §7 and
//! the OAuth 2.0 Security BCP (RFC 9700 §2.1, §4.1).
//!
//! The checks are deliberately strict: a redirect URI is where authorization codes are
//! delivered, so anything that could send a code to a place the client does not control
//! (open wildcards, plain `http` on the network, script schemes, ambiguous user-info) is
//! refused at registration time rather than discovered at authorization time.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// Longest redirect URI accepted, in characters. Long enough for any real callback, short
/// enough to keep stored metadata and `Location` headers bounded.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// How much of an offending URI an error message quotes, in characters.
const QUOTE_LEN: usize = 100;

/// Schemes that run code or read local data in a user agent; a redirect to them would hand
/// the authorization response to something other than the client (RFC 9700 §4.1,
/// RFC 6819 §4.4.1.7).
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "vbscript", "file", "blob", "about"];

/// A registered redirect URI that passed [`RedirectUri::parse`].
///
/// The string is kept exactly as the client sent it (not normalised by `url::Url`),
/// because authorization requests are matched by simple string comparison
/// (RFC 6749 §3.1.2.3, RFC 9700 §2.1); normalising here would make the client's own
/// string fail to match.
///
/// Deserialisation is transparent and does not re-validate: it exists to load values this
/// server stored itself. Untrusted input must go through [`RedirectUri::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RedirectUri(String);

/// Why a redirect URI was refused.
///
/// Each kind has a stable machine reason code ([`RedirectUriErrorKind::reason`]) for logs
/// and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedirectUriErrorKind {
    /// Longer than [`MAX_REDIRECT_URI_LEN`].
    TooLong,
    /// Contains control characters or whitespace.
    ControlChars,
    /// Contains a fragment (RFC 6749 §3.1.2).
    Fragment,
    /// Contains a `*` wildcard (RFC 9700 §2.1 requires exact matching).
    Wildcard,
    /// Not an absolute URI (RFC 6749 §3.1.2).
    NotAbsolute,
    /// Uses a scheme that executes code or reads local data.
    SchemeForbidden,
    /// Contains user-info (`user:pass@`), which can disguise the real host.
    Userinfo,
    /// An `http`/`https` URI without a host.
    NoHost,
    /// Plain `http` on a host that is not loopback (RFC 8252 §7.3, §8.3).
    HttpNotLoopback,
    /// A private-use scheme that is not a reverse domain name (RFC 8252 §7.1).
    PrivateSchemeNotReverseDomain,
}

impl RedirectUriErrorKind {
    /// The machine reason code, e.g. `redirect_uri_fragment`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLong => "redirect_uri_too_long",
            Self::ControlChars => "redirect_uri_control_chars",
            Self::Fragment => "redirect_uri_fragment",
            Self::Wildcard => "redirect_uri_wildcard",
            Self::NotAbsolute => "redirect_uri_not_absolute",
            Self::SchemeForbidden => "redirect_uri_scheme_forbidden",
            Self::Userinfo => "redirect_uri_userinfo",
            Self::NoHost => "redirect_uri_no_host",
            Self::HttpNotLoopback => "redirect_uri_http_not_loopback",
            Self::PrivateSchemeNotReverseDomain => "redirect_uri_private_scheme_not_reverse_domain",
        }
    }
}

/// A refused redirect URI: a kind plus a description that is safe to return to the client
/// in `error_description` (it quotes at most the first 100 characters of the URI, with
/// control characters escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{description}")]
pub struct RedirectUriError {
    kind: RedirectUriErrorKind,
    description: String,
}

impl RedirectUriError {
    fn new(kind: RedirectUriErrorKind, description: String) -> Self {
        Self { kind, description }
    }

    /// What was wrong.
    pub fn kind(&self) -> RedirectUriErrorKind {
        self.kind
    }

    /// The machine reason code, e.g. `redirect_uri_http_not_loopback`.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// The human-readable description, safe to show to the client.
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// Quotes untrusted input for an error message: at most [`QUOTE_LEN`] characters, with
/// control characters and whitespace escaped so the message cannot carry line breaks or
/// terminal escapes into logs or responses.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars().take(QUOTE_LEN) {
        if c.is_control() || (c.is_whitespace() && c != ' ') || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().nth(QUOTE_LEN).is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

/// Whether a parsed host is loopback in the sense of RFC 8252 §7.3 / §8.3: any `127.0.0.0/8`
/// literal, `[::1]`, or the name `localhost`.
fn is_loopback_host(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        // `url` lowercases domains of special schemes already; comparing case-insensitively
        // keeps this correct even if that ever changes.
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The authority part of a raw `scheme://authority/...` string, if it has one.
fn raw_authority(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

impl RedirectUri {
    /// Validates a redirect URI a client wants to register.
    ///
    /// Rules, in the order they are checked:
    /// - at most [`MAX_REDIRECT_URI_LEN`] characters;
    /// - no control characters or whitespace (`url` would silently strip some of them,
    ///   making the stored string differ from what the browser is sent to);
    /// - no fragment (RFC 6749 §3.1.2);
    /// - no `*` wildcard (RFC 9700 §2.1: redirect URIs are matched exactly);
    /// - an absolute URI (RFC 6749 §3.1.2);
    /// - not `javascript`, `data`, `vbscript`, `file`, `blob` or `about`;
    /// - no user-info (RFC 9700 §4.1; `https://good.example@evil.example/` fools people);
    /// - `https` with a host;
    /// - `http` only on a loopback host: `127.0.0.0/8`, `[::1]` or `localhost`
    ///   (RFC 8252 §7.3, §8.3);
    /// - any other scheme is a private-use scheme and must be a reverse domain name
    ///   containing a `.`, e.g. `com.example.app:/callback` (RFC 8252 §7.1).
    pub fn parse(s: &str) -> Result<RedirectUri, RedirectUriError> {
        use RedirectUriErrorKind as K;

        if s.chars().count() > MAX_REDIRECT_URI_LEN {
            return Err(RedirectUriError::new(
                K::TooLong,
                format!("redirect URI must be at most {MAX_REDIRECT_URI_LEN} characters"),
            ));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(RedirectUriError::new(
                K::ControlChars,
                format!(
                    "redirect URI {} must not contain whitespace or control characters",
                    quote(s)
                ),
            ));
        }
        if s.contains('#') {
            return Err(RedirectUriError::new(
                K::Fragment,
                format!(
                    "redirect URI {} must not contain a fragment (RFC 6749 §3.1.2)",
                    quote(s)
                ),
            ));
        }
        if s.contains('*') {
            return Err(RedirectUriError::new(
                K::Wildcard,
                format!(
                    "redirect URI {} must not contain a wildcard; redirect URIs are matched \
                     exactly",
                    quote(s)
                ),
            ));
        }
        let url = Url::parse(s).map_err(|e| {
            RedirectUriError::new(
                K::NotAbsolute,
                format!("redirect URI {} is not an absolute URI ({e})", quote(s)),
            )
        })?;
        let scheme = url.scheme();
        if FORBIDDEN_SCHEMES.contains(&scheme) {
            return Err(RedirectUriError::new(
                K::SchemeForbidden,
                format!(
                    "redirect URI {} uses the forbidden scheme \"{scheme}\"",
                    quote(s)
                ),
            ));
        }
        // `url` reports no user-info for `https://@host/`, so the raw authority is checked
        // too: any `@` there means something other than the host was written.
        let raw_has_at = raw_authority(s).is_some_and(|a| a.contains('@'));
        if !url.username().is_empty() || url.password().is_some() || raw_has_at {
            return Err(RedirectUriError::new(
                K::Userinfo,
                format!(
                    "redirect URI {} must not contain user information (user:password@)",
                    quote(s)
                ),
            ));
        }
        match scheme {
            "https" | "http" => {
                // `url` accepts `https:host` and `https:///host` and rewrites them to
                // `https://host/`; requiring the `//host` form keeps the stored string equal
                // to what the browser will actually be sent to.
                let has_authority = raw_authority(s).is_some_and(|a| !a.is_empty());
                if !has_authority || url.host_str().is_none_or(str::is_empty) {
                    return Err(RedirectUriError::new(
                        K::NoHost,
                        format!(
                            "redirect URI {} must have the form {scheme}://host/path",
                            quote(s)
                        ),
                    ));
                }
                if scheme == "http" && !is_loopback_host(url.host()) {
                    return Err(RedirectUriError::new(
                        K::HttpNotLoopback,
                        format!(
                            "redirect URI {} uses http, which is only allowed for loopback \
                             hosts (127.0.0.1, [::1], localhost); use https",
                            quote(s)
                        ),
                    ));
                }
            }
            _ => {
                // RFC 8252 §7.1: private-use schemes must be based on a domain name the app
                // controls, in reverse order, so unrelated apps cannot claim them.
                if !scheme.contains('.') {
                    return Err(RedirectUriError::new(
                        K::PrivateSchemeNotReverseDomain,
                        format!(
                            "redirect URI {} uses the scheme \"{scheme}\"; private-use schemes \
                             must be a reverse domain name such as com.example.app \
                             (RFC 8252 §7.1)",
                            quote(s)
                        ),
                    ));
                }
            }
        }
        Ok(RedirectUri(s.to_owned()))
    }

    /// The URI exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `requested` (the `redirect_uri` of an authorization or token request) matches
    /// this registered URI.
    ///
    /// Matching is exact string comparison (RFC 6749 §3.1.2.3, RFC 9700 §2.1), with the one
    /// exception RFC 8252 §7.3 requires: for `http` loopback URIs the port may differ,
    /// because native apps bind an ephemeral port at run time. The port exception applies
    /// only when `requested` itself is a valid loopback redirect URI.
    pub fn matches(&self, requested: &str) -> bool {
        if self.0 == requested {
            return true;
        }
        let (Some(registered), Some(requested_uri)) = (
            loopback_without_port(&self.0),
            loopback_without_port(requested),
        ) else {
            return false;
        };
        registered == requested_uri && RedirectUri::parse(requested).is_ok()
    }
}

/// For an `http` loopback URI, the raw string with its `:port` removed; `None` for anything
/// else. Works on the raw string, not on `url`'s normalised form, so that apart from the
/// port the comparison stays exact.
fn loopback_without_port(raw: &str) -> Option<String> {
    let url = Url::parse(raw).ok()?;
    if url.scheme() != "http" || !is_loopback_host(url.host()) {
        return None;
    }
    let (prefix, rest) = raw.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The port follows the last `:` after any IPv6 bracket, e.g. `[::1]:8080`.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    let host = match authority[host_end..].rfind(':') {
        Some(i) => &authority[..host_end + i],
        None => authority,
    };
    Some(format!("{prefix}://{host}{tail}"))
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RedirectUri {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason_for(s: &str) -> &'static str {
        RedirectUri::parse(s).unwrap_err().reason()
    }

    #[test]
    fn an_https_redirect_uri_is_accepted_and_kept_verbatim() {
        let uri = RedirectUri::parse("https://App.Example.com/cb?x=1").unwrap();
        assert_eq!(uri.as_str(), "https://App.Example.com/cb?x=1");
        assert_eq!(uri.to_string(), "https://App.Example.com/cb?x=1");
    }

    #[test]
    fn a_fragment_in_a_redirect_uri_is_refused() {
        assert_eq!(
            reason_for("https://app.example.com/cb#frag"),
            "redirect_uri_fragment"
        );
        assert_eq!(
            reason_for("https://app.example.com/cb#"),
            "redirect_uri_fragment"
        );
    }

    #[test]
    fn a_wildcard_in_a_redirect_uri_is_refused() {
        assert_eq!(
            reason_for("https://*.example.com/cb"),
            "redirect_uri_wildcard"
        );
        assert_eq!(
            reason_for("https://app.example.com/*"),
            "redirect_uri_wildcard"
        );
    }

    #[test]
    fn script_and_local_schemes_are_refused() {
        for uri in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "blob:https://example.com/uuid",
            "about:blank",
            "JavaScript:alert(1)",
        ] {
            assert_eq!(reason_for(uri), "redirect_uri_scheme_forbidden", "{uri}");
        }
    }

    #[test]
    fn http_on_a_public_host_is_refused_with_a_loopback_hint() {
        let err = RedirectUri::parse("http://app.example.com/cb").unwrap_err();
        assert_eq!(err.reason(), "redirect_uri_http_not_loopback");
        assert_eq!(err.kind(), RedirectUriErrorKind::HttpNotLoopback);
        assert!(err.description().contains("loopback"), "{err}");
        assert_eq!(
            reason_for("http://10.0.0.1/cb"),
            "redirect_uri_http_not_loopback"
        );
        assert_eq!(
            reason_for("http://localhost.evil.com/cb"),
            "redirect_uri_http_not_loopback"
        );
        assert_eq!(
            reason_for("http://[::ffff:127.0.0.1]/cb"),
            "redirect_uri_http_not_loopback"
        );
    }

    #[test]
    fn http_on_loopback_addresses_is_allowed() {
        for uri in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:8123/cb",
            "http://127.9.8.7/cb",
            "http://[::1]:5000/callback",
            "http://localhost/cb",
            "http://LocalHost:3000/cb",
        ] {
            assert!(RedirectUri::parse(uri).is_ok(), "{uri}");
        }
    }

    #[test]
    fn a_private_use_scheme_with_a_dot_is_allowed() {
        let uri = RedirectUri::parse("com.example.app:/oauth2redirect").unwrap();
        assert_eq!(uri.as_str(), "com.example.app:/oauth2redirect");
    }

    #[test]
    fn a_private_use_scheme_without_a_dot_is_refused() {
        assert_eq!(
            reason_for("myapp://callback"),
            "redirect_uri_private_scheme_not_reverse_domain"
        );
        assert_eq!(
            reason_for("ftp://example.com/x"),
            "redirect_uri_private_scheme_not_reverse_domain"
        );
    }

    #[test]
    fn user_info_in_a_redirect_uri_is_refused() {
        assert_eq!(
            reason_for("https://user:pass@app.example.com/cb"),
            "redirect_uri_userinfo"
        );
        assert_eq!(
            reason_for("https://good.example@evil.example/cb"),
            "redirect_uri_userinfo"
        );
        assert_eq!(
            reason_for("https://@evil.example/cb"),
            "redirect_uri_userinfo"
        );
    }

    #[test]
    fn a_relative_redirect_uri_is_refused() {
        assert_eq!(reason_for("/callback"), "redirect_uri_not_absolute");
        assert_eq!(reason_for(""), "redirect_uri_not_absolute");
    }

    #[test]
    fn an_https_redirect_uri_without_a_double_slash_host_is_refused() {
        assert_eq!(
            reason_for("https:app.example.com/cb"),
            "redirect_uri_no_host"
        );
        assert_eq!(
            reason_for("https:///app.example.com/cb"),
            "redirect_uri_no_host"
        );
    }

    #[test]
    fn whitespace_and_control_characters_are_refused_and_escaped_in_the_message() {
        let err = RedirectUri::parse("https://app.example.com/cb\r\nSet-Cookie:x").unwrap_err();
        assert_eq!(err.reason(), "redirect_uri_control_chars");
        assert!(!err.description().contains('\n'), "{err}");
        assert_eq!(
            reason_for(" https://app.example.com/cb"),
            "redirect_uri_control_chars"
        );
        assert_eq!(
            reason_for("https://app.example.com/c b"),
            "redirect_uri_control_chars"
        );
    }

    #[test]
    fn an_overlong_redirect_uri_is_refused_and_quoted_truncated() {
        let long = format!(
            "https://app.example.com/{}",
            "a".repeat(MAX_REDIRECT_URI_LEN)
        );
        assert_eq!(reason_for(&long), "redirect_uri_too_long");
        let almost = format!("http://example.com/{}", "a".repeat(500));
        let err = RedirectUri::parse(&almost).unwrap_err();
        assert!(err.description().len() < 300, "{err}");
        assert!(err.description().contains('…'), "{err}");
    }

    #[test]
    fn a_redirect_uri_of_exactly_the_maximum_length_is_accepted() {
        let prefix = "https://app.example.com/";
        let uri = format!(
            "{prefix}{}",
            "a".repeat(MAX_REDIRECT_URI_LEN - prefix.len())
        );
        assert!(RedirectUri::parse(&uri).is_ok());
    }

    #[test]
    fn a_redirect_uri_serializes_as_a_plain_string_and_round_trips() {
        let uri = RedirectUri::parse("https://app.example.com/cb").unwrap();
        let json = serde_json::to_value(&uri).unwrap();
        assert_eq!(json, serde_json::json!("https://app.example.com/cb"));
        let back: RedirectUri = serde_json::from_value(json).unwrap();
        assert_eq!(back, uri);
    }

    #[test]
    fn matching_is_exact_except_for_the_loopback_port() {
        let https = RedirectUri::parse("https://app.example.com/cb").unwrap();
        assert!(https.matches("https://app.example.com/cb"));
        assert!(!https.matches("https://app.example.com/cb/"));
        assert!(!https.matches("https://APP.example.com/cb"));
        assert!(!https.matches("https://app.example.com:8443/cb"));

        let loopback = RedirectUri::parse("http://127.0.0.1/cb").unwrap();
        assert!(loopback.matches("http://127.0.0.1:49152/cb"));
        assert!(!loopback.matches("http://127.0.0.1:49152/other"));
        assert!(!loopback.matches("http://127.0.0.2:49152/cb"));

        let v6 = RedirectUri::parse("http://[::1]:8080/cb").unwrap();
        assert!(v6.matches("http://[::1]:9090/cb"));
        assert!(v6.matches("http://[::1]/cb"));
        assert!(!v6.matches("http://[::1]:9090/cb#x"));
    }
}
