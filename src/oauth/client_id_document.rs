//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a
//! `client_id` that is an `https` URL names a JSON document, served at that URL, that
//! describes the client. The rules that need no I/O: which URLs may be client ids, which
//! hosts the operator admits, what a document must say, and how long it is trusted.

use serde_json::Value;

use crate::oauth::client_metadata::{self, ClientMetadata, GrantType, TokenEndpointAuthMethod};
use crate::oauth::error::{ErrorKind, OAuthError};

/// Longest accepted client id URL.
pub const MAX_URL_LEN: usize = 2000;

fn refuse(description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidRequest, description.into(), reason)
}

/// Whether `client_id` claims to be a metadata document URL (and so is never one Patron
/// assigned, which start with `agt_`).
pub fn is_document_client_id(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

/// Parses a document client id: an `https` URL with a path, without fragment, user
/// information, dot segments or query (§3 of the draft), at most [`MAX_URL_LEN`] long.
pub fn parse_client_id(client_id: &str) -> Result<url::Url, OAuthError> {
    if client_id.len() > MAX_URL_LEN {
        return Err(refuse("the client_id URL is too long", "cimd_url_too_long"));
    }
    let url = url::Url::parse(client_id)
        .map_err(|_| refuse("the client_id is not a valid URL", "cimd_url_invalid"))?;
    let dot_segment = client_id
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .split('/')
        .skip(3)
        .any(|seg| seg == "." || seg == "..");
    let problem = if url.scheme() != "https" {
        Some("the client_id URL must use https")
    } else if url.fragment().is_some() {
        Some("the client_id URL must not have a fragment")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("the client_id URL must not carry user information")
    } else if url.query().is_some() {
        Some("the client_id URL must not have a query")
    } else if url.path() == "/" || url.path().is_empty() {
        Some("the client_id URL must have a path")
    } else if dot_segment {
        Some("the client_id URL must not contain dot segments")
    } else if url.as_str() != client_id {
        Some("the client_id URL must be in normal form")
    } else {
        None
    };
    match problem {
        Some(p) => Err(refuse(p, "cimd_url_invalid")),
        None => Ok(url),
    }
}

/// Whether `host` matches a list entry: the host itself, or `*.domain` for its subdomains.
fn listed(host: &str, list: &[String]) -> bool {
    list.iter().any(|entry| match entry.strip_prefix("*.") {
        Some(domain) => host.ends_with(&format!(".{domain}")),
        None => host == entry,
    })
}

/// Whether the operator admits documents from `host`: not denied, and allowed when an
/// allow-list is set.
pub fn host_admitted(host: &str, allow: &[String], deny: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    !listed(&host, deny) && (allow.is_empty() || listed(&host, allow))
}

/// Validates a fetched document for `client_id` under the same rules as registration
/// metadata, plus the document's own: it names itself as `client_id`, carries no secret
/// (a document is public), authenticates with `none` or `private_key_jwt`, and uses the
/// code flow.
pub fn validate_document(client_id: &str, doc: &Value) -> Result<ClientMetadata, OAuthError> {
    let Some(map) = doc.as_object() else {
        return Err(refuse(
            "the client metadata document is not a JSON object",
            "cimd_not_object",
        ));
    };
    if map.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(refuse(
            "the client metadata document must name its own URL as client_id",
            "cimd_client_id_mismatch",
        ));
    }
    if map.contains_key("client_secret") || map.contains_key("client_secret_expires_at") {
        return Err(refuse(
            "a client metadata document must not carry a client secret",
            "cimd_secret",
        ));
    }
    let mut raw = map.clone();
    raw.remove("client_id");
    let meta = client_metadata::validate(&raw).map_err(|e| {
        refuse(
            format!("the client metadata document is invalid: {}", e.description),
            "cimd_metadata_invalid",
        )
    })?;
    if !matches!(
        meta.token_endpoint_auth_method,
        TokenEndpointAuthMethod::None | TokenEndpointAuthMethod::PrivateKeyJwt
    ) {
        return Err(refuse(
            "a client metadata document must use token_endpoint_auth_method none or private_key_jwt",
            "cimd_auth_method",
        ));
    }
    if !meta.has_grant(GrantType::AuthorizationCode) {
        return Err(refuse(
            "a client metadata document client must use the authorization_code grant",
            "cimd_grant_types",
        ));
    }
    Ok(meta)
}

/// How long a fetched document is trusted: its `Cache-Control: max-age` (none when
/// `no-store` or `no-cache`), within `[min, max]` seconds so that neither a flood of
/// refetches nor a document cached for a year is possible.
pub fn cache_lifetime(cache_control: Option<&str>, min: i64, max: i64) -> i64 {
    let mut max_age: Option<i64> = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return min;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse().ok();
        }
    }
    max_age.unwrap_or(min).clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "https://app.example/oauth/client.json";

    #[test]
    fn only_https_urls_with_a_path_in_normal_form_are_client_ids() {
        assert!(parse_client_id(ID).is_ok());
        for bad in [
            "http://app.example/client.json",
            "https://app.example/",
            "https://app.example",
            "https://app.example/c.json#x",
            "https://u:p@app.example/c.json",
            "https://app.example/c.json?x=1",
            "https://app.example/a/../c.json",
            "https://APP.example/c.json",
        ] {
            assert_eq!(
                parse_client_id(bad).unwrap_err().reason(),
                "cimd_url_invalid",
                "{bad}"
            );
        }
        assert!(is_document_client_id(ID));
        assert!(!is_document_client_id("agt_0123"));
    }

    #[test]
    fn hosts_are_allowed_and_denied_by_name_or_domain() {
        let allow = vec!["*.trusted.example".to_owned(), "one.example".to_owned()];
        let deny = vec!["bad.trusted.example".to_owned()];
        assert!(host_admitted("a.trusted.example", &allow, &deny));
        assert!(host_admitted("ONE.example", &allow, &deny));
        assert!(!host_admitted("bad.trusted.example", &allow, &deny));
        assert!(!host_admitted("other.example", &allow, &deny));
        assert!(host_admitted("other.example", &[], &deny));
        assert!(
            !host_admitted("trusted.example", &allow, &[]),
            "*.x does not match x itself"
        );
    }

    #[test]
    fn a_document_must_name_itself_and_carry_no_secret() {
        let good = json!({
            "client_id": ID, "client_name": "App", "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        });
        let meta = validate_document(ID, &good).unwrap();
        assert_eq!(meta.client_name.as_deref(), Some("App"));
        let reason = |doc: Value| validate_document(ID, &doc).unwrap_err().reason();
        let mut other = good.clone();
        other["client_id"] = json!("https://evil.example/c.json");
        assert_eq!(reason(other), "cimd_client_id_mismatch");
        let mut secret = good.clone();
        secret["client_secret"] = json!("s");
        assert_eq!(reason(secret), "cimd_secret");
        let mut basic = good.clone();
        basic["token_endpoint_auth_method"] = json!("client_secret_basic");
        assert_eq!(reason(basic), "cimd_auth_method");
        let mut no_redirect = good.clone();
        no_redirect.as_object_mut().unwrap().remove("redirect_uris");
        assert_eq!(reason(no_redirect), "cimd_metadata_invalid");
        assert_eq!(reason(json!([1])), "cimd_not_object");
    }

    #[test]
    fn cache_lifetimes_are_bounded() {
        assert_eq!(cache_lifetime(Some("max-age=600"), 60, 3600), 600);
        assert_eq!(
            cache_lifetime(Some("public, max-age=999999"), 60, 3600),
            3600
        );
        assert_eq!(cache_lifetime(Some("max-age=1"), 60, 3600), 60);
        assert_eq!(cache_lifetime(Some("no-store"), 60, 3600), 60);
        assert_eq!(cache_lifetime(None, 60, 3600), 60);
    }
}
