//! Scopes (RFC 6749 §3.3): space-separated tokens, compared as sets.
//!
//! [`Scopes::parse`] is the one scope grammar: client metadata, skills, grants and token
//! requests all go through it. The borrowing helpers below ([`parse`], [`is_subset`],
//! [`join`]) are the set operations on strings already known to be valid.

use std::fmt;

/// Most distinct scope tokens in one scope value.
pub const MAX_SCOPE_TOKENS: usize = 50;
/// Longest single scope token, in characters.
pub const MAX_SCOPE_TOKEN_LEN: usize = 128;
/// Longest scope value, in characters.
pub const MAX_SCOPE_LEN: usize = 2000;

/// A valid scope value: distinct tokens, in their first order, joined by single spaces
/// (runs of spaces in the input are tolerated and normalised away). May be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(String);

/// Why a scope value is not valid. The `Display` text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeError {
    /// Longer than [`MAX_SCOPE_LEN`].
    TooLong,
    /// A token has a character outside `%x21 / %x23-5B / %x5D-7E`.
    BadCharacter(String),
    /// A token is longer than [`MAX_SCOPE_TOKEN_LEN`].
    TokenTooLong,
    /// More than [`MAX_SCOPE_TOKENS`] distinct tokens.
    TooMany,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "scope must be at most {MAX_SCOPE_LEN} characters"),
            Self::BadCharacter(token) => write!(
                f,
                "scope token {token} contains characters not allowed by RFC 6749 §3.3"
            ),
            Self::TokenTooLong => write!(
                f,
                "scope tokens must be at most {MAX_SCOPE_TOKEN_LEN} characters"
            ),
            Self::TooMany => write!(
                f,
                "scope must have at most {MAX_SCOPE_TOKENS} distinct tokens"
            ),
        }
    }
}

/// Whether `c` may appear in a scope token: `%x21 / %x23-5B / %x5D-7E` (RFC 6749 §3.3).
fn is_scope_char(c: char) -> bool {
    matches!(c, '\u{21}' | '\u{23}'..='\u{5B}' | '\u{5D}'..='\u{7E}')
}

/// A token quoted for an error message: bounded, with control characters, quotes and
/// backslashes escaped (the input is hostile).
fn quoted(token: &str) -> String {
    let mut out = String::from("\"");
    for c in token.chars().take(100) {
        if c.is_control() || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

impl Scopes {
    /// Parses a scope value under the grammar and limits above.
    pub fn parse(value: &str) -> Result<Self, ScopeError> {
        if value.chars().count() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong);
        }
        let mut tokens: Vec<&str> = Vec::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if !token.chars().all(is_scope_char) {
                return Err(ScopeError::BadCharacter(quoted(token)));
            }
            if token.len() > MAX_SCOPE_TOKEN_LEN {
                return Err(ScopeError::TokenTooLong);
            }
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
        if tokens.len() > MAX_SCOPE_TOKENS {
            return Err(ScopeError::TooMany);
        }
        Ok(Self(tokens.join(" ")))
    }

    /// The normalised value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tokens.
    pub fn tokens(&self) -> Vec<&str> {
        parse(&self.0)
    }

    /// Whether every token is among `allowed`'s.
    pub fn is_subset_of(&self, allowed: &Scopes) -> bool {
        is_subset(&self.tokens(), &allowed.tokens())
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Scopes> for String {
    fn from(s: Scopes) -> Self {
        s.0
    }
}

/// Splits a scope string into its distinct tokens, keeping their first order.
pub fn parse(scope: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Whether every requested scope is among the allowed ones.
pub fn is_subset(requested: &[&str], allowed: &[&str]) -> bool {
    requested.iter().all(|r| allowed.contains(r))
}

/// Joins scopes with single spaces.
pub fn join(scopes: &[&str]) -> String {
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_deduplicated_and_compared_as_sets() {
        assert_eq!(parse("a  b a c"), ["a", "b", "c"]);
        assert!(is_subset(&["b", "a"], &["a", "b", "c"]));
        assert!(!is_subset(&["a", "d"], &["a", "b"]));
        assert!(is_subset(&[], &["a"]));
    }

    #[test]
    fn quotes_backslashes_and_controls_are_invalid() {
        assert!(Scopes::parse("read write:files").is_ok());
        for bad in ["a\"b", "a\\b", "a\tb", "caf\u{e9}"] {
            assert!(
                matches!(Scopes::parse(bad), Err(ScopeError::BadCharacter(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn scopes_are_normalised_and_bounded() {
        assert_eq!(
            Scopes::parse("  read  write read ").unwrap().as_str(),
            "read write"
        );
        assert!(Scopes::parse("   ").unwrap().is_empty());
        let many: Vec<String> = (0..=MAX_SCOPE_TOKENS).map(|i| format!("s{i}")).collect();
        assert_eq!(Scopes::parse(&many.join(" ")), Err(ScopeError::TooMany));
        assert_eq!(
            Scopes::parse(&"x".repeat(MAX_SCOPE_TOKEN_LEN + 1)),
            Err(ScopeError::TokenTooLong)
        );
        assert_eq!(
            Scopes::parse(&"a ".repeat(MAX_SCOPE_LEN)),
            Err(ScopeError::TooLong)
        );
        let bad = Scopes::parse("ok a\"b").unwrap_err().to_string();
        assert_eq!(
            bad,
            "scope token \"a\\\"b\" contains characters not allowed by RFC 6749 §3.3"
        );
        let wide = Scopes::parse("files:read mail:send").unwrap();
        assert!(Scopes::parse("mail:send").unwrap().is_subset_of(&wide));
        assert!(!Scopes::parse("files:write").unwrap().is_subset_of(&wide));
    }
}
