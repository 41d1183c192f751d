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
    /// [`MAX_LEN`](Self::MAX_LEN) bytes. Kept as given.
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
}
