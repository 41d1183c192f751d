//! Grant policies: whose agents may hold grants for a skill, and for which of its scopes.
//!
//! A policy is a list of entries, each admitting a set of owners, optionally capped to some
//! scopes:
//!
//! - `any`: every verified owner;
//! - `owner:<owner id>`: one owner;
//! - `domain:<domain>`: owners whose verified e-mail address is at that domain (or a
//!   subdomain of it), the way a company's Workspace users would be admitted;
//!
//! each optionally followed by `=<scopes>` (commas or spaces between them) to cap what the
//! entry admits, e.g. `any=files:read` and `domain:example.com=files:read,files:write`.
//! The skill's operator is always admitted with every scope; an empty policy admits the
//! operator alone (the default for a new skill). An owner admitted by several entries gets
//! the union of their caps, within the scopes the skill offers.

use std::fmt;

use crate::oauth::ids::OwnerId;
use crate::oauth::scope::{self, Scopes};

/// Most entries one policy may hold.
pub const MAX_ENTRIES: usize = 50;

/// Who an entry admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admits {
    /// Every verified owner.
    Any,
    /// One owner.
    Owner(OwnerId),
    /// Owners with a verified e-mail address at this domain (lower-case) or below it.
    Domain(String),
}

/// One policy entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    /// Who it admits.
    pub admits: Admits,
    /// The scopes it admits them to (`None`: every scope the skill offers).
    pub cap: Option<Scopes>,
}

/// Why a policy entry was refused. The `Display` text is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not one of the entry forms.
    #[error(
        "{0}: a policy entry is any, owner:<owner id> or domain:<domain>, optionally followed by =<scopes>"
    )]
    Form(String),
    /// The owner id is not one.
    #[error("{0}: {1}")]
    Owner(String, String),
    /// The domain is not a domain name.
    #[error("{0}: not a domain name")]
    Domain(String),
    /// The scope cap is malformed or empty.
    #[error("{0}: {1}")]
    Scopes(String, String),
    /// Too many entries.
    #[error("a grant policy has at most {MAX_ENTRIES} entries")]
    TooMany,
}

fn is_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl PolicyEntry {
    /// Parses one entry in its text form (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let text = text.trim();
        let shown = || text.chars().take(100).collect::<String>();
        // The cap follows the last '=': owner ids and domains of the documented forms hold
        // none, scope tokens rarely do.
        let (who, cap) = match text.rsplit_once('=') {
            Some((who, cap)) => (who, Some(cap)),
            None => (text, None),
        };
        let admits = if who == "any" {
            Admits::Any
        } else if let Some(id) = who.strip_prefix("owner:") {
            Admits::Owner(
                OwnerId::parse(id).map_err(|e| PolicyError::Owner(shown(), e.to_string()))?,
            )
        } else if let Some(domain) = who.strip_prefix("domain:") {
            let domain = domain.to_ascii_lowercase();
            if !is_domain(&domain) {
                return Err(PolicyError::Domain(shown()));
            }
            Admits::Domain(domain)
        } else {
            return Err(PolicyError::Form(shown()));
        };
        let cap = match cap {
            None => None,
            Some(c) => {
                let scopes = Scopes::parse(&c.replace(',', " "))
                    .map_err(|e| PolicyError::Scopes(shown(), e.to_string()))?;
                if scopes.is_empty() {
                    return Err(PolicyError::Scopes(
                        shown(),
                        "name at least one scope after '='".into(),
                    ));
                }
                Some(scopes)
            }
        };
        Ok(Self { admits, cap })
    }

    fn admits(&self, who: &Grantee<'_>) -> bool {
        match &self.admits {
            Admits::Any => true,
            Admits::Owner(id) => id.as_str() == who.owner_id,
            Admits::Domain(d) => who.email.is_some_and(|e| email_at(e, d)),
        }
    }
}

/// Whether `email` is at `domain` or one of its subdomains (case-insensitive).
fn email_at(email: &str, domain: &str) -> bool {
    let Some((_, host)) = email.rsplit_once('@') else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

impl fmt::Display for PolicyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.admits {
            Admits::Any => f.write_str("any")?,
            Admits::Owner(id) => write!(f, "owner:{id}")?,
            Admits::Domain(d) => write!(f, "domain:{d}")?,
        }
        match &self.cap {
            Some(c) => write!(f, "={}", c.as_str().replace(' ', ",")),
            None => Ok(()),
        }
    }
}

/// The owner a grant would be for.
#[derive(Debug, Clone, Copy)]
pub struct Grantee<'a> {
    /// Their owner id.
    pub owner_id: &'a str,
    /// Their verified e-mail address, if known.
    pub email: Option<&'a str>,
    /// Whether they operate the skill (its creator, or an admin for an admin's skill).
    pub is_operator: bool,
}

/// A skill's grant policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantPolicy(Vec<PolicyEntry>);

impl TryFrom<String> for GrantPolicy {
    type Error = PolicyError;

    /// Reads the stored form (a JSON array of entries).
    fn try_from(stored: String) -> Result<Self, PolicyError> {
        let entries: Vec<String> =
            serde_json::from_str(&stored).map_err(|_| PolicyError::Form(stored.clone()))?;
        Self::parse(&entries)
    }
}

impl GrantPolicy {
    /// The policy that admits every verified owner to every scope.
    pub fn any() -> Self {
        Self(vec![PolicyEntry {
            admits: Admits::Any,
            cap: None,
        }])
    }

    /// Parses entries in their text form.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, PolicyError> {
        if entries.len() > MAX_ENTRIES {
            return Err(PolicyError::TooMany);
        }
        let mut out: Vec<PolicyEntry> = Vec::with_capacity(entries.len());
        for e in entries {
            let entry = PolicyEntry::parse(e.as_ref())?;
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
        Ok(Self(out))
    }

    /// The stored form: a JSON array of entry strings.
    pub fn to_json(&self) -> String {
        serde_json::Value::from(self.entries_text()).to_string()
    }

    /// Reads the stored form; `None` if it is not one.
    pub fn from_json(stored: &str) -> Option<Self> {
        Self::try_from(stored.to_owned()).ok()
    }

    /// The entries in their text form.
    pub fn entries_text(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether the policy admits only the operator.
    pub fn is_operator_only(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes of `offered` that `who` may be granted, in `offered`'s order; empty when
    /// the policy does not admit them.
    pub fn admitted<'s>(&self, who: &Grantee<'_>, offered: &[&'s str]) -> Vec<&'s str> {
        if who.is_operator {
            return offered.to_vec();
        }
        let mut allowed: Vec<&str> = Vec::new();
        for entry in self.0.iter().filter(|e| e.admits(who)) {
            match &entry.cap {
                None => return offered.to_vec(),
                Some(cap) => allowed.extend(scope::parse(cap.as_str())),
            }
        }
        offered
            .iter()
            .copied()
            .filter(|s| allowed.contains(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>(owner_id: &'a str, email: Option<&'a str>) -> Grantee<'a> {
        Grantee {
            owner_id,
            email,
            is_operator: false,
        }
    }

    const OFFERED: &[&str] = &["files:read", "files:write", "files:admin"];

    #[test]
    fn entries_parse_and_print_in_their_text_form() {
        for text in [
            "any",
            "any=files:read",
            "owner:github:42",
            "owner:github:42=files:read,files:write",
            "domain:example.com=files:read",
        ] {
            assert_eq!(PolicyEntry::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            PolicyEntry::parse(" domain:Example.COM ")
                .unwrap()
                .to_string(),
            "domain:example.com"
        );
        for bad in [
            "",
            "anyone",
            "owner:mallory",
            "domain:localhost",
            "domain:a..b",
            "any=",
            "any=a\"b",
        ] {
            assert!(PolicyEntry::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_operator_alone_is_admitted_by_an_empty_policy() {
        let p = GrantPolicy::default();
        assert!(p.admitted(&who("github:1", None), OFFERED).is_empty());
        let op = Grantee {
            is_operator: true,
            ..who("github:1", None)
        };
        assert_eq!(p.admitted(&op, OFFERED), OFFERED);
    }

    #[test]
    fn caps_limit_and_entries_add_up() {
        let p = GrantPolicy::parse(&[
            "any=files:read",
            "domain:team.example=files:write",
            "owner:github:7",
        ])
        .unwrap();
        assert_eq!(p.admitted(&who("github:1", None), OFFERED), ["files:read"]);
        assert_eq!(
            p.admitted(&who("google:9", Some("ann@Team.Example")), OFFERED),
            ["files:read", "files:write"]
        );
        assert_eq!(
            p.admitted(&who("google:9", Some("ann@eng.team.example")), OFFERED),
            ["files:read", "files:write"]
        );
        // A lookalike domain is not a subdomain.
        assert_eq!(
            p.admitted(&who("google:9", Some("ann@evilteam.example")), OFFERED),
            ["files:read"]
        );
        assert_eq!(p.admitted(&who("github:7", None), OFFERED), OFFERED);
        // A cap never admits a scope the skill does not offer.
        let p = GrantPolicy::parse(&["any=mail:send"]).unwrap();
        assert!(p.admitted(&who("github:1", None), OFFERED).is_empty());
    }

    #[test]
    fn the_stored_form_round_trips() {
        let p = GrantPolicy::parse(&["any=files:read", "owner:dev:ann"]).unwrap();
        assert_eq!(GrantPolicy::from_json(&p.to_json()), Some(p));
        assert_eq!(
            GrantPolicy::from_json("[\"any\"]"),
            Some(GrantPolicy::any())
        );
        assert_eq!(GrantPolicy::from_json("not json"), None);
        let many: Vec<String> = (0..=MAX_ENTRIES)
            .map(|i| format!("owner:dev:u{i}"))
            .collect();
        assert_eq!(GrantPolicy::parse(&many), Err(PolicyError::TooMany));
    }
}
