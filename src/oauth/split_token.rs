//! Single-use credentials in two parts, `<id>.<secret>`: the id is time-sortable and is
//! the row's key, the secret is 256 random bits of which only the SHA-256 is stored and
//! which is compared in constant time. Authorization codes and refresh tokens take this
//! form, so that the rows they are stored in are inserted next to each other (one hot page
//! per batch, not a random page per row) and a lookup by a guessed value reveals nothing
//! through timing. The id reveals when the credential was made, to the millisecond.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::{constant_time_eq, random_bytes, sha256_hex, sortable_id};

/// Longest accepted credential (an id of about 40 characters, a 43-character secret).
const MAX_LEN: usize = 128;

/// A new credential: the value to hand out, its id (the key), and the hash to store.
#[derive(Debug)]
pub struct Minted {
    /// `<id>.<secret>`.
    pub value: String,
    /// The id.
    pub id: String,
    /// SHA-256 (hex) of the secret.
    pub secret_hash: String,
}

/// Mints a credential whose id starts with `prefix` (`pac_`, `prt_`).
pub fn mint(prefix: &str, now_millis: u64) -> Minted {
    let id = sortable_id(prefix, now_millis);
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    Minted {
        value: format!("{id}.{secret}"),
        secret_hash: sha256_hex(secret.as_bytes()),
        id,
    }
}

/// The id and secret of a presented credential, if it has the form of one with `prefix`.
pub fn split<'a>(value: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    if value.len() > MAX_LEN {
        return None;
    }
    let (id, secret) = value.split_once('.')?;
    (id.starts_with(prefix) && id.len() > prefix.len() && !secret.is_empty())
        .then_some((id, secret))
}

/// Whether `secret` is the one whose hash is `stored`, in constant time.
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    constant_time_eq(sha256_hex(secret.as_bytes()).as_bytes(), stored.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_credential_splits_back_and_only_its_secret_matches() {
        let m = mint("prt_", 1_700_000_000_000);
        let (id, secret) = split(&m.value, "prt_").unwrap();
        assert_eq!(id, m.id);
        assert!(secret_matches(secret, &m.secret_hash));
        assert!(!secret_matches("another", &m.secret_hash));
        assert_eq!(split(&m.value, "pac_"), None, "the prefix names the kind");
        assert_eq!(split("prt_abc", "prt_"), None);
        assert_eq!(split("prt_.x", "prt_"), None);
        assert_eq!(split(&"x".repeat(200), "prt_"), None);
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let a = mint("pac_", 1_700_000_000_000);
        let b = mint("pac_", 1_700_000_000_001);
        assert!(a.id < b.id);
    }
}
