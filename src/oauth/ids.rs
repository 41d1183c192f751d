//! Identifiers at Patron's boundaries, parsed once where they enter (admin API, CLI,
//! console forms) so services take a checked value instead of any string.
//!
//! Each derefs to `str` for storage and comparison; each `parse` names what is wrong.

use std::fmt;
use std::ops::Deref;

/// Why an identifier was refused. The `Display` text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not an owner id.
    #[error(
        "owner must look like github:<numeric id>, github:<host>:<numeric id>, google:<sub> or oidc:<issuer>#<sub>"
    )]
    Owner,
    /// Not a client id.
    #[error("a client_id is 1 to 128 characters of letters, digits, '_', '-' and '.'")]
    Client,
    /// Not an audience URI.
    #[error("{0}")]
    Audience(&'static str),
}

impl IdError {
    /// Audit reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Owner => "owner_id_invalid",
            Self::Client => "client_id_invalid",
            Self::Audience(_) => "audience_invalid",
        }
    }
}

impl From<IdError> for crate::oauth::error::OAuthError {
    fn from(e: IdError) -> Self {
        Self::new(
            crate::oauth::error::ErrorKind::InvalidRequest,
            e.to_string(),
            e.reason(),
        )
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

string_id!(
    /// A human owner: `github:<numeric id>` (github.com), `github:<host>:<numeric id>`
    /// (another GitHub host, such as GitHub Enterprise: its API host, with `:<port>` when
    /// not the default), `google:<sub>`, `oidc:<issuer>#<sub>`, or `dev:<name>` from the
    /// development login. Ids are unique per provider: user 42 of one GitHub host is not
    /// user 42 of another.
    OwnerId
);

impl OwnerId {
    /// Parses an owner id in one of the documented forms (at most 300 characters, no
    /// control characters).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = s.len() <= 300
            && !s.chars().any(char::is_control)
            && (s.strip_prefix("github:").is_some_and(github_user)
                || s.strip_prefix("google:").is_some_and(|r| !r.is_empty())
                || s.strip_prefix("oidc:").is_some_and(|r| r.contains('#'))
                || s.strip_prefix("dev:").is_some_and(|r| !r.is_empty()));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Owner)
        }
    }
}

/// `<numeric id>` or `<host>:<numeric id>` (host: letters, digits, `.`, `-`, with an
/// optional `:<port>`, or a bracketed IPv6 address).
fn github_user(rest: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(rest) {
        return true;
    }
    let Some((host, id)) = rest.rsplit_once(':') else {
        return false;
    };
    digits(id)
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

string_id!(
    /// A registered client (an agent, or a skill acting as a client).
    ClientId
);

impl ClientId {
    /// Longest client id accepted.
    pub const MAX_LEN: usize = 128;

    /// Parses a client id: what Patron issues (`agt_` + base64url) and nothing stranger.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Client)
        }
    }
}

string_id!(
    /// A skill's audience: the absolute URI that names one resource server (RFC 8707).
    Audience
);

impl Audience {
    /// Longest audience, in bytes.
    pub const MAX_LEN: usize = 500;

    /// Parses an audience: an absolute URI without a fragment, at most
    /// [`MAX_LEN`](Self::MAX_LEN) bytes. Kept as given: for naming skills that already
    /// exist; a new skill's audience goes through [`canonical`](Self::canonical).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let uri = url::Url::parse(s)
            .map_err(|_| IdError::Audience("audience must be an absolute URI"))?;
        if uri.fragment().is_some() || s.len() > Self::MAX_LEN {
            return Err(IdError::Audience(
                "audience must not have a fragment and must be at most 500 characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// Parses an audience into its one canonical form, the form new skills are stored in:
    /// an `https` URI (`http` too when `allow_http`, in development mode) with a host, no
    /// user information and no fragment; scheme and host lower-cased, the default port
    /// dropped, an empty path made `/` and dot segments resolved, as the WHATWG URL parser
    /// does (RFC 3986 §6.2.2-§6.2.3 equivalence). The path is otherwise kept, so
    /// `HTTPS://API.Bank.Example:443` and `https://api.bank.example/` are one audience while
    /// `https://api.bank.example/mcp` is another.
    pub fn canonical(s: &str, allow_http: bool) -> Result<Self, IdError> {
        if s.len() > Self::MAX_LEN {
            return Err(IdError::Audience("audience must be at most 500 characters"));
        }
        let uri = url::Url::parse(s)
            .map_err(|_| IdError::Audience("audience must be an absolute URI"))?;
        match uri.scheme() {
            "https" => {}
            "http" if allow_http => {}
            _ if allow_http => {
                return Err(IdError::Audience("audience must be an https or http URI"));
            }
            _ => return Err(IdError::Audience("audience must be an https URI")),
        }
        if uri.host_str().is_none_or(str::is_empty) {
            return Err(IdError::Audience("audience must name a host"));
        }
        if !uri.username().is_empty() || uri.password().is_some() {
            return Err(IdError::Audience(
                "audience must not contain user information",
            ));
        }
        if uri.fragment().is_some() {
            return Err(IdError::Audience("audience must not have a fragment"));
        }
        let canonical = String::from(uri);
        if canonical.len() > Self::MAX_LEN {
            return Err(IdError::Audience("audience must be at most 500 characters"));
        }
        Ok(Self(canonical))
    }

    /// What two audiences are compared by: the [`canonical`](Self::canonical) form of
    /// `s` (http allowed), or `s` itself when it has none (an audience stored before
    /// audiences were canonical, such as a `urn:`). Audiences with equal keys name the
    /// same resource.
    pub fn key(s: &str) -> String {
        Self::canonical(s, true).map_or_else(|_| s.to_owned(), String::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_follow_the_documented_forms() {
        for good in [
            "github:12345",
            "github:ghe.example.com:12345",
            "github:127.0.0.1:8080:7",
            "google:1099",
            "oidc:https://idp.example#abc",
            "dev:alice",
        ] {
            assert_eq!(OwnerId::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "github:abc",
            "github:ghe.example.com:",
            "github::12",
            "github:ghe/example:12",
            "mallory",
            "google:",
            "oidc:no-hash",
            "dev:a\nb",
        ] {
            assert_eq!(OwnerId::parse(bad), Err(IdError::Owner), "{bad:?}");
        }
        assert_eq!(IdError::Owner.reason(), "owner_id_invalid");
    }

    #[test]
    fn client_ids_are_short_and_plain() {
        assert!(ClientId::parse("agt_AbC-12_x").is_ok());
        for bad in ["", "agt/../x", "a b", &"x".repeat(129)] {
            assert_eq!(ClientId::parse(bad), Err(IdError::Client), "{bad:?}");
        }
    }

    #[test]
    fn audiences_are_absolute_uris_without_fragments() {
        assert!(Audience::parse("https://files.example/mcp").is_ok());
        for bad in [
            "files",
            "/relative",
            "https://files.example/#frag",
            &format!("https://a.example/{}", "x".repeat(500)),
        ] {
            assert!(
                matches!(Audience::parse(bad), Err(IdError::Audience(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn canonical_audiences_lower_case_scheme_and_host_and_drop_the_default_port() {
        let c = |s: &str| Audience::canonical(s, false).map(String::from);
        assert_eq!(
            c("HTTPS://API.BANK.EXAMPLE").unwrap(),
            "https://api.bank.example/"
        );
        assert_eq!(
            c("https://api.bank.example/").unwrap(),
            "https://api.bank.example/"
        );
        assert_eq!(
            c("https://api.bank.example:443").unwrap(),
            "https://api.bank.example/"
        );
        assert_eq!(
            c("https://a.example").unwrap(),
            c("https://a.example/").unwrap()
        );
        // The path is kept, case and trailing slash included; only dot segments go.
        assert_eq!(c("https://A.example/MCP").unwrap(), "https://a.example/MCP");
        assert_eq!(
            c("https://a.example/mcp/").unwrap(),
            "https://a.example/mcp/"
        );
        assert_eq!(
            c("https://a.example/x/../mcp").unwrap(),
            "https://a.example/mcp"
        );
        assert_eq!(
            c("https://a.example:8443/mcp").unwrap(),
            "https://a.example:8443/mcp"
        );
        assert_eq!(
            c("https://a.example/s?tenant=1").unwrap(),
            "https://a.example/s?tenant=1"
        );
    }

    #[test]
    fn canonical_audiences_refuse_what_cannot_name_one_resource_server() {
        for (bad, why) in [
            ("files", "audience must be an absolute URI"),
            ("http://a.example/", "audience must be an https URI"),
            ("urn:example:files", "audience must be an https URI"),
            (
                "https://user:pw@a.example/",
                "audience must not contain user information",
            ),
            (
                "https://user@a.example/",
                "audience must not contain user information",
            ),
            ("https://a.example/#x", "audience must not have a fragment"),
            ("https://a.example/#", "audience must not have a fragment"),
        ] {
            assert_eq!(
                Audience::canonical(bad, false),
                Err(IdError::Audience(why)),
                "{bad:?}"
            );
        }
        let long = format!("https://a.example/{}", "x".repeat(500));
        assert!(Audience::canonical(&long, true).is_err());
        assert_eq!(IdError::Audience("x").reason(), "audience_invalid");
    }

    #[test]
    fn plain_http_is_canonical_only_in_development_mode() {
        assert_eq!(
            String::from(Audience::canonical("HTTP://Localhost:80/api", true).unwrap()),
            "http://localhost/api"
        );
        assert_eq!(
            Audience::canonical("urn:example:files", true),
            Err(IdError::Audience("audience must be an https or http URI"))
        );
    }

    #[test]
    fn audience_keys_make_variants_equal_and_keep_what_has_no_canonical_form() {
        assert_eq!(
            Audience::key("HTTPS://API.BANK.EXAMPLE"),
            Audience::key("https://api.bank.example/")
        );
        assert_ne!(
            Audience::key("https://a.example/mcp"),
            Audience::key("https://a.example/")
        );
        assert_eq!(Audience::key("urn:example:files"), "urn:example:files");
    }
}
