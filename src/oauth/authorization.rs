//! The rules of the authorization code flow that need no I/O: PKCE (RFC 7636, `S256`
//! only), the resources an authorization request names (RFC 8707 §2), the grants it asks
//! for, what a person's consent covers, and the narrowing of a code or refresh token to
//! one resource at the token endpoint.
//!
//! A grant set maps each skill audience to the space-separated scopes granted of it; it is
//! stored as a JSON object in consents, codes and refresh families.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::crypto::{constant_time_eq, sha256};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::scope::{self, Scopes};

/// Most `resource` parameters one authorization request may carry.
pub const MAX_RESOURCES: usize = 10;

/// The one PKCE method accepted (RFC 9700 §2.1.1: `plain` protects nothing the code does
/// not already reveal).
pub const PKCE_METHOD: &str = "S256";

fn refuse(kind: ErrorKind, description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(kind, description.into(), reason)
}

/// Audience → granted scopes (space-separated, each once, sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthorizedGrants(BTreeMap<String, String>);

fn normalised(tokens: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let set: BTreeSet<String> = tokens
        .into_iter()
        .map(|t| t.as_ref().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    set.into_iter().collect::<Vec<_>>().join(" ")
}

impl AuthorizedGrants {
    /// From `(audience, scopes)` pairs; pairs without scopes are dropped.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (aud, scopes) in pairs {
            let merged = match map.get(&aud) {
                Some(prior) => {
                    normalised(scope::parse(prior).into_iter().chain(scope::parse(&scopes)))
                }
                None => normalised(scope::parse(&scopes)),
            };
            if !merged.is_empty() {
                map.insert(aud, merged);
            }
        }
        Self(map)
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads the stored form.
    pub fn from_json(stored: &str) -> Result<Self, serde_json::Error> {
        let map: BTreeMap<String, String> = serde_json::from_str(stored)?;
        Ok(Self::from_pairs(map))
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The audiences, sorted.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The scopes granted of `audience`.
    pub fn scopes_of(&self, audience: &str) -> Option<Vec<&str>> {
        self.0.get(audience).map(|s| scope::parse(s))
    }

    /// `(audience, scopes)` pairs, for the grant checks of the skill services.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(a, s)| (a.clone(), s.clone())).collect()
    }

    /// Every scope granted, of any audience, each once.
    pub fn all_scopes(&self) -> String {
        normalised(self.0.values().flat_map(|s| scope::parse(s)))
    }

    /// Whether every audience and scope of `asked` is granted here: a consent that covers
    /// a request is not asked again.
    pub fn covers(&self, asked: &AuthorizedGrants) -> bool {
        asked.0.iter().all(|(aud, scopes)| {
            self.scopes_of(aud)
                .is_some_and(|held| scope::is_subset(&scope::parse(scopes), &held))
        })
    }

    /// This set widened by `more` (a consent that a later request widened).
    pub fn union(&self, more: &AuthorizedGrants) -> AuthorizedGrants {
        Self::from_pairs(self.pairs().into_iter().chain(more.pairs()))
    }

    /// The part of this set also in `other`: what is still consented of a code's grants.
    pub fn intersection(&self, other: &AuthorizedGrants) -> AuthorizedGrants {
        Self::from_pairs(self.0.iter().filter_map(|(aud, scopes)| {
            let held = other.scopes_of(aud)?;
            let kept: Vec<&str> = scope::parse(scopes)
                .into_iter()
                .filter(|s| held.contains(s))
                .collect();
            Some((aud.clone(), kept.join(" ")))
        }))
    }
}

/// Checks the PKCE parameters of an authorization request (RFC 7636 §4.3) and returns the
/// challenge. Only `S256` is accepted; a missing method means `plain` (§4.3) and is refused.
pub fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<String, OAuthError> {
    let Some(challenge) = challenge.filter(|c| !c.is_empty()) else {
        return Err(refuse(
            ErrorKind::InvalidRequest,
            "code_challenge is required: this server requires PKCE with S256 (RFC 7636)",
            "pkce_missing",
        ));
    };
    match method {
        Some(PKCE_METHOD) => {}
        Some("plain") | None => {
            return Err(refuse(
                ErrorKind::InvalidRequest,
                "code_challenge_method must be S256; plain is not accepted",
                "pkce_plain",
            ));
        }
        Some(_) => {
            return Err(refuse(
                ErrorKind::InvalidRequest,
                "code_challenge_method must be S256",
                "pkce_method_unsupported",
            ));
        }
    }
    // BASE64URL(SHA-256(verifier)) without padding is always 43 characters.
    let decoded = URL_SAFE_NO_PAD.decode(challenge).ok();
    if challenge.len() != 43 || decoded.is_none_or(|d| d.len() != 32) {
        return Err(refuse(
            ErrorKind::InvalidRequest,
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
            "pkce_challenge_malformed",
        ));
    }
    Ok(challenge.to_owned())
}

/// Checks a `code_verifier` against the stored S256 challenge (RFC 7636 §4.6), in constant
/// time.
pub fn verify_pkce(verifier: Option<&str>, challenge: &str) -> Result<(), OAuthError> {
    let Some(verifier) = verifier else {
        return Err(refuse(
            ErrorKind::InvalidGrant,
            "code_verifier is required (PKCE)",
            "pkce_verifier_missing",
        ));
    };
    // RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
    if !well_formed || !constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
        return Err(refuse(
            ErrorKind::InvalidGrant,
            "code_verifier does not match the code_challenge",
            "pkce_mismatch",
        ));
    }
    Ok(())
}

/// The `resource` values of an authorization request (RFC 8707 §2): absolute URIs without
/// a fragment, at most [`MAX_RESOURCES`], each once, in the order given. At least one is
/// required: Patron's tokens are for one skill each, and the resource names it.
pub fn parse_resources(values: &[String]) -> Result<Vec<String>, OAuthError> {
    if values.is_empty() {
        return Err(refuse(
            ErrorKind::InvalidTarget,
            "name the skill the token is for with the resource parameter (RFC 8707)",
            "resource_missing",
        ));
    }
    if values.len() > MAX_RESOURCES {
        return Err(refuse(
            ErrorKind::InvalidTarget,
            format!("at most {MAX_RESOURCES} resources in one request"),
            "too_many_resources",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !url::Url::parse(v).is_ok_and(|u| u.fragment().is_none()) {
            return Err(refuse(
                ErrorKind::InvalidTarget,
                "resource must be an absolute URI without a fragment (RFC 8707 §2)",
                "resource_malformed",
            ));
        }
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Ok(out)
}

/// What a request asks for: for each named skill `(audience, offered scopes)`, the
/// requested scopes it offers, or all it offers when `scope` is absent. A requested scope
/// no named skill offers, or a named skill none of whose scopes is requested, is
/// `invalid_scope`.
pub fn requested_grants(
    skills: &[(String, String)],
    scope: Option<&str>,
) -> Result<AuthorizedGrants, OAuthError> {
    let requested = match scope.filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(s) => Some(Scopes::parse(s).map_err(|e| {
            refuse(
                ErrorKind::InvalidScope,
                format!("the scope is malformed: {e}"),
                "scope_malformed",
            )
        })?),
    };
    let Some(requested) = requested else {
        return Ok(AuthorizedGrants::from_pairs(skills.iter().cloned()));
    };
    let wanted = requested.tokens();
    for w in &wanted {
        if !skills
            .iter()
            .any(|(_, offered)| scope::parse(offered).contains(w))
        {
            return Err(refuse(
                ErrorKind::InvalidScope,
                format!("scope {w} is not offered by the requested resources"),
                "scope_unknown",
            ));
        }
    }
    let mut pairs = Vec::new();
    for (aud, offered) in skills {
        let offered = scope::parse(offered);
        let mine: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| offered.contains(w))
            .collect();
        if mine.is_empty() {
            return Err(refuse(
                ErrorKind::InvalidScope,
                format!("no requested scope belongs to resource {aud}"),
                "resource_without_scope",
            ));
        }
        pairs.push((aud.clone(), mine.join(" ")));
    }
    Ok(AuthorizedGrants::from_pairs(pairs))
}

/// The part of `asked` a person may grant, given what their skills' policies admit them to
/// (audience → admitted scopes). Audiences of which nothing is admitted are returned apart.
pub fn admitted(
    asked: &AuthorizedGrants,
    admits: &HashMap<String, Vec<String>>,
) -> (AuthorizedGrants, Vec<String>) {
    let mut refused = Vec::new();
    let mut pairs = Vec::new();
    for (aud, scopes) in &asked.0 {
        let allowed = admits.get(aud).map(Vec::as_slice).unwrap_or_default();
        let kept: Vec<&str> = scope::parse(scopes)
            .into_iter()
            .filter(|s| allowed.iter().any(|a| a == s))
            .collect();
        if kept.is_empty() {
            refused.push(aud.clone());
        } else {
            pairs.push((aud.clone(), kept.join(" ")));
        }
    }
    (AuthorizedGrants::from_pairs(pairs), refused)
}

/// What one token request may have of `granted`: the one `resource` it names (or the only
/// audience, when it names none), and the requested scopes if all are granted, else all
/// granted ones. Returns the audience and the scopes.
pub fn select(
    granted: &AuthorizedGrants,
    resource: Option<&str>,
    scope: Option<&str>,
    matches: impl Fn(&str, &str) -> bool,
) -> Result<(String, String), OAuthError> {
    let audience = match resource {
        Some(r) => granted
            .audiences()
            .find(|a| matches(a, r))
            .ok_or_else(|| {
                refuse(
                    ErrorKind::InvalidTarget,
                    "this grant does not cover that resource",
                    "resource_not_granted",
                )
            })?
            .to_owned(),
        None => {
            let mut all = granted.audiences();
            match (all.next(), all.next()) {
                (Some(only), None) => only.to_owned(),
                _ => {
                    return Err(refuse(
                        ErrorKind::InvalidTarget,
                        "this grant covers several resources: name one with resource",
                        "resource_ambiguous",
                    ));
                }
            }
        }
    };
    let held = granted.scopes_of(&audience).unwrap_or_default();
    let scopes = match scope.filter(|s| !s.trim().is_empty()) {
        None => held.join(" "),
        Some(s) => {
            let asked = scope::parse(s);
            if !scope::is_subset(&asked, &held) {
                return Err(refuse(
                    ErrorKind::InvalidScope,
                    "the requested scope exceeds what was granted",
                    "scope_exceeds_grant",
                ));
            }
            scope::join(&asked)
        }
    };
    Ok((audience, scopes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(pairs: &[(&str, &str)]) -> AuthorizedGrants {
        AuthorizedGrants::from_pairs(pairs.iter().map(|(a, s)| ((*a).into(), (*s).into())))
    }

    #[test]
    fn pkce_accepts_only_well_formed_s256() {
        let challenge =
            URL_SAFE_NO_PAD.encode(sha256(b"a-verifier-that-is-long-enough-to-be-valid-1234"));
        assert_eq!(
            check_challenge(Some(&challenge), Some("S256")).unwrap(),
            challenge
        );
        let reason = |c: Option<&str>, m: Option<&str>| check_challenge(c, m).unwrap_err().reason();
        assert_eq!(reason(None, Some("S256")), "pkce_missing");
        assert_eq!(reason(Some(&challenge), None), "pkce_plain");
        assert_eq!(reason(Some(&challenge), Some("plain")), "pkce_plain");
        assert_eq!(
            reason(Some(&challenge), Some("S512")),
            "pkce_method_unsupported"
        );
        assert_eq!(
            reason(Some("short"), Some("S256")),
            "pkce_challenge_malformed"
        );
    }

    #[test]
    fn the_verifier_must_hash_to_the_challenge() {
        let verifier = "a-verifier-that-is-long-enough-to-be-valid-1234";
        let challenge = URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()));
        assert!(verify_pkce(Some(verifier), &challenge).is_ok());
        let wrong = "b-verifier-that-is-long-enough-to-be-valid-1234";
        assert_eq!(
            verify_pkce(Some(wrong), &challenge).unwrap_err().reason(),
            "pkce_mismatch"
        );
        assert_eq!(
            verify_pkce(Some("short"), &challenge).unwrap_err().reason(),
            "pkce_mismatch"
        );
        assert_eq!(
            verify_pkce(None, &challenge).unwrap_err().reason(),
            "pkce_verifier_missing"
        );
    }

    #[test]
    fn resources_are_required_absolute_and_deduplicated() {
        assert_eq!(
            parse_resources(&[]).unwrap_err().reason(),
            "resource_missing"
        );
        let r = parse_resources(&["https://a.example/".into(), "https://a.example/".into()]);
        assert_eq!(r.unwrap(), vec!["https://a.example/".to_owned()]);
        assert_eq!(
            parse_resources(&["a.example".into()]).unwrap_err().reason(),
            "resource_malformed"
        );
        let many: Vec<String> = (0..11).map(|i| format!("https://{i}.example/")).collect();
        assert_eq!(
            parse_resources(&many).unwrap_err().reason(),
            "too_many_resources"
        );
    }

    #[test]
    fn requested_grants_split_the_scope_over_the_resources() {
        let skills = vec![
            (
                "https://files.example/".to_owned(),
                "files:read files:write".to_owned(),
            ),
            ("https://mail.example/".to_owned(), "mail:send".to_owned()),
        ];
        let all = requested_grants(&skills, None).unwrap();
        assert_eq!(
            all,
            grants(&[
                ("https://files.example/", "files:read files:write"),
                ("https://mail.example/", "mail:send")
            ])
        );
        let some = requested_grants(&skills, Some("files:read mail:send")).unwrap();
        assert_eq!(
            some,
            grants(&[
                ("https://files.example/", "files:read"),
                ("https://mail.example/", "mail:send")
            ])
        );
        assert_eq!(
            requested_grants(&skills, Some("admin"))
                .unwrap_err()
                .reason(),
            "scope_unknown"
        );
        assert_eq!(
            requested_grants(&skills, Some("files:read"))
                .unwrap_err()
                .reason(),
            "resource_without_scope"
        );
    }

    #[test]
    fn consent_covers_only_what_it_granted() {
        let consent = grants(&[("https://a/", "r w")]);
        assert!(consent.covers(&grants(&[("https://a/", "r")])));
        assert!(!consent.covers(&grants(&[("https://a/", "r x")])));
        assert!(!consent.covers(&grants(&[("https://b/", "r")])));
        let wider = consent.union(&grants(&[("https://b/", "r")]));
        assert!(wider.covers(&grants(&[("https://a/", "w"), ("https://b/", "r")])));
        assert_eq!(
            wider.intersection(&grants(&[("https://a/", "r")])),
            grants(&[("https://a/", "r")])
        );
        let json = wider.to_json();
        assert_eq!(AuthorizedGrants::from_json(&json).unwrap(), wider);
    }

    #[test]
    fn policy_limits_what_may_be_granted() {
        let asked = grants(&[("https://a/", "r w"), ("https://b/", "x")]);
        let admits = HashMap::from([("https://a/".to_owned(), vec!["r".to_owned()])]);
        let (ok, refused) = admitted(&asked, &admits);
        assert_eq!(ok, grants(&[("https://a/", "r")]));
        assert_eq!(refused, vec!["https://b/".to_owned()]);
    }

    #[test]
    fn a_token_request_selects_one_granted_resource() {
        let g = grants(&[("https://a/", "r w"), ("https://b/", "x")]);
        let eq = |a: &str, b: &str| a == b;
        assert_eq!(
            select(&g, Some("https://a/"), Some("r"), eq).unwrap(),
            ("https://a/".into(), "r".into())
        );
        assert_eq!(
            select(&g, Some("https://b/"), None, eq).unwrap(),
            ("https://b/".into(), "x".into())
        );
        assert_eq!(
            select(&g, None, None, eq).unwrap_err().reason(),
            "resource_ambiguous"
        );
        assert_eq!(
            select(&g, Some("https://c/"), None, eq)
                .unwrap_err()
                .reason(),
            "resource_not_granted"
        );
        assert_eq!(
            select(&g, Some("https://a/"), Some("x"), eq)
                .unwrap_err()
                .reason(),
            "scope_exceeds_grant"
        );
        let one = grants(&[("https://a/", "r")]);
        assert_eq!(select(&one, None, None, eq).unwrap().0, "https://a/");
    }
}
