//! Token identifiers (`jti`, RFC 7519 §4.1.7) as an operator names them when revoking a
//! token: parsed once, so that nothing longer or stranger reaches the revocation store,
//! the replicas' notices or the audit log.

use std::fmt;

/// Longest accepted `jti`, in bytes. Patron's own are 22 characters; the bound leaves room
/// for identifiers of other formats while keeping notices and audit rows small.
pub const MAX_JTI_LEN: usize = 128;

/// A syntactically valid `jti`: 1 to [`MAX_JTI_LEN`] characters from the URL-safe set
/// `A–Z a–z 0–9 - _ . ~` (RFC 3986 §2.3 unreserved), which includes every `jti` Patron
/// issues (base64url).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jti(String);

/// Why a string is not a [`Jti`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JtiError {
    /// It is empty.
    #[error("jti must not be empty")]
    Empty,
    /// It is longer than [`MAX_JTI_LEN`].
    #[error("jti must be at most 128 characters")]
    TooLong,
    /// It has a character outside the accepted set.
    #[error("jti may contain only letters, digits, '-', '_', '.' and '~'")]
    BadCharacter,
}

impl JtiError {
    /// The audit reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Empty => "jti_empty",
            Self::TooLong => "jti_too_long",
            Self::BadCharacter => "jti_bad_character",
        }
    }
}

impl Jti {
    /// Parses an untrusted `jti`.
    pub fn parse(s: &str) -> Result<Self, JtiError> {
        if s.is_empty() {
            return Err(JtiError::Empty);
        }
        if s.len() > MAX_JTI_LEN {
            return Err(JtiError::TooLong);
        }
        let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if !s.bytes().all(ok) {
            return Err(JtiError::BadCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Jti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_identifiers_parse() {
        let j = crate::jose::access_token::new_jti();
        assert_eq!(Jti::parse(&j).unwrap().as_str(), j);
        assert!(Jti::parse("a.b~c-d_e").is_ok());
        assert!(Jti::parse(&"a".repeat(MAX_JTI_LEN)).is_ok());
    }

    #[test]
    fn empty_long_and_odd_identifiers_are_refused() {
        assert_eq!(Jti::parse(""), Err(JtiError::Empty));
        assert_eq!(
            Jti::parse(&"a".repeat(MAX_JTI_LEN + 1)),
            Err(JtiError::TooLong)
        );
        for bad in ["a b", "a\nb", "a/b", "é", "a\0", "a,b"] {
            assert_eq!(Jti::parse(bad), Err(JtiError::BadCharacter), "{bad:?}");
        }
    }
}
