//! A redacted secret for credentials and tokens that requests carry or responses hand out:
//! client secrets, client assertions, the `Authorization` header, bearer, access and
//! subject tokens.
//!
//! `Debug` shows no content and there is no `Display`, so a secret cannot reach a log line
//! or an error message through a derived `Debug`; [`Secret::expose`] is the one way to read
//! it, which makes each use visible in review.

use std::fmt;

/// A secret string. Not `Clone`: every copy is one more place a secret lives, and no caller
/// needs one (a secret that must outlive a borrow, such as one checked on the blocking pool,
/// is moved there).
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the code that must check, hash or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// Serialises the secret itself, for the one response that hands it out
/// (`#[serde(serialize_with = "crate::secret::serialize_exposed")]`).
pub fn serialize_exposed<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// Serialises an optional secret's value (for response bodies that carry one).
pub fn serialize_exposed_option<S: serde::Serializer>(
    secret: &Option<Secret>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(v) => s.serialize_str(v.expose()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_content() {
        let s = Secret::from("patron_cs_hunter2");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(format!("{:?}", Some(s)), "Some(Secret(..))");
    }

    #[test]
    fn expose_and_serialize_give_the_value() {
        #[derive(serde::Serialize)]
        struct Out {
            #[serde(serialize_with = "serialize_exposed")]
            token: Secret,
        }
        let s = Secret::new(String::from("tok"));
        assert_eq!(s.expose(), "tok");
        let json = serde_json::to_string(&Out { token: s }).unwrap();
        assert_eq!(json, r#"{"token":"tok"}"#);
    }
}
