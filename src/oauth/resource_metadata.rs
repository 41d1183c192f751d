//! OAuth 2.0 Protected Resource Metadata (RFC 9728), used to prove an audience: a skill
//! created by an owner is usable only once the resource at its audience publishes
//! metadata naming that audience as its `resource` and Patron among its
//! `authorization_servers`. Anyone can type an audience into the console; only whoever
//! runs the resource can publish this document.

use serde_json::{Value, json};

use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::Audience;

/// The well-known path suffix (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Why an audience is not proven. The `Display` text is safe to show the skill's operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The document could not be fetched (refused URL, connection, status, size, not JSON).
    #[error("fetching {url} failed: {detail}")]
    Fetch {
        /// Where it was fetched from.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The document is not a JSON object with a string `resource`.
    #[error("the document at {0} is not protected resource metadata with a resource member")]
    Invalid(String),
    /// `resource` names another resource.
    #[error("the document's resource is {found:?}, not the skill's audience {expected:?}")]
    ResourceMismatch {
        /// The skill's audience.
        expected: String,
        /// What the document says.
        found: String,
    },
    /// `authorization_servers` does not list Patron's issuer.
    #[error("the document's authorization_servers does not list {0:?}")]
    IssuerMissing(String),
}

impl ProofError {
    /// Audit reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Fetch { .. } => "proof_fetch_failed",
            Self::Invalid(_) => "proof_document_invalid",
            Self::ResourceMismatch { .. } => "proof_resource_mismatch",
            Self::IssuerMissing(_) => "proof_issuer_missing",
        }
    }
}

impl From<ProofError> for OAuthError {
    fn from(e: ProofError) -> Self {
        Self::new(
            ErrorKind::InvalidTarget,
            format!("the audience is not proven: {e}"),
            e.reason(),
        )
    }
}

/// Where the resource identified by `resource` publishes its metadata (RFC 9728 §3.1): the
/// well-known suffix inserted between the host and the path, a lone `/` path dropped, the
/// query kept. `https://a.example/mcp` → `https://a.example/.well-known/oauth-protected-resource/mcp`.
pub fn metadata_url(resource: &str) -> Result<url::Url, ProofError> {
    let mut url = url::Url::parse(resource).map_err(|_| ProofError::Fetch {
        url: resource.to_owned(),
        detail: "the audience is not a URL".into(),
    })?;
    if url.cannot_be_a_base() {
        return Err(ProofError::Fetch {
            url: resource.to_owned(),
            detail: "the audience has no host to fetch from".into(),
        });
    }
    let path = match url.path() {
        "/" => String::new(),
        p => p.to_owned(),
    };
    url.set_path(&format!("{WELL_KNOWN}{path}"));
    url.set_fragment(None);
    Ok(url)
}

/// The document the resource at `resource` must publish to name `issuer` (RFC 9728 §2).
pub fn document(resource: &str, issuer: &str) -> Value {
    json!({ "resource": resource, "authorization_servers": [issuer] })
}

/// Checks a fetched metadata document: `resource` names the same resource as `audience`
/// (compared by [`Audience::key`], so `https://a.example` matches `https://a.example/`)
/// and `authorization_servers` lists `issuer` exactly (RFC 8414 §2 identifiers).
pub fn verify(doc: &Value, url: &str, audience: &str, issuer: &str) -> Result<(), ProofError> {
    let Some(found) = doc.get("resource").and_then(Value::as_str) else {
        return Err(ProofError::Invalid(url.to_owned()));
    };
    if Audience::key(found) != Audience::key(audience) {
        return Err(ProofError::ResourceMismatch {
            expected: audience.to_owned(),
            found: found.chars().take(200).collect(),
        });
    }
    let listed = doc
        .get("authorization_servers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|s| s.as_str() == Some(issuer)));
    if !listed {
        return Err(ProofError::IssuerMissing(issuer.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS: &str = "https://patron.example";

    #[test]
    fn the_well_known_suffix_goes_between_host_and_path() {
        let u = |s: &str| metadata_url(s).unwrap().to_string();
        assert_eq!(
            u("https://a.example/mcp"),
            "https://a.example/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            u("https://a.example/"),
            "https://a.example/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            u("https://a.example:8443/v1/files/"),
            "https://a.example:8443/.well-known/oauth-protected-resource/v1/files/"
        );
        assert_eq!(
            u("https://a.example/?tenant=7"),
            "https://a.example/.well-known/oauth-protected-resource?tenant=7"
        );
        assert_eq!(
            metadata_url("urn:example:x").unwrap_err().reason(),
            "proof_fetch_failed"
        );
    }

    #[test]
    fn the_document_must_name_the_audience_and_the_issuer() {
        let aud = "https://a.example/mcp";
        let url = "https://a.example/.well-known/oauth-protected-resource/mcp";
        assert_eq!(verify(&document(aud, AS), url, aud, AS), Ok(()));
        assert_eq!(
            verify(&document("HTTPS://A.EXAMPLE:443/mcp", AS), url, aud, AS),
            Ok(()),
            "the same resource in another spelling"
        );
        assert_eq!(
            verify(
                &document("https://a.example/", AS),
                "u",
                "https://a.example",
                AS
            ),
            Ok(())
        );
        let reason = |doc: Value| verify(&doc, url, aud, AS).unwrap_err().reason();
        assert_eq!(
            reason(document("https://a.example/other", AS)),
            "proof_resource_mismatch"
        );
        assert_eq!(
            reason(document(aud, "https://evil.example")),
            "proof_issuer_missing"
        );
        assert_eq!(reason(json!({"resource": aud})), "proof_issuer_missing");
        assert_eq!(
            reason(json!({"resource": aud, "authorization_servers": AS})),
            "proof_issuer_missing"
        );
        assert_eq!(
            reason(document(aud, "https://patron.example/")),
            "proof_issuer_missing",
            "issuers compare exactly"
        );
        assert_eq!(reason(json!([aud])), "proof_document_invalid");
        assert_eq!(
            reason(json!({"authorization_servers": [AS]})),
            "proof_document_invalid"
        );
    }

    #[test]
    fn failures_become_invalid_target_with_their_reason() {
        let e = OAuthError::from(ProofError::IssuerMissing(AS.into()));
        assert_eq!(e.reason(), "proof_issuer_missing");
    }
}
