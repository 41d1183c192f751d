//! Token endpoint requests (RFC 6749 §4.1.3, §4.4 and §6, RFC 8693 §2.1, RFC 8707 §2): a lenient raw form
//! is parsed into one typed request per grant, so each defect maps to the right error.
//! Introspection and revocation requests (RFC 7662 §2.1, RFC 7009 §2.1) are parsed here too.

use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::scope::Scopes;
use crate::secret::Secret;

/// Grant type URI of token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// Token type URI of access tokens (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Assertion type of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Most parameters accepted in one form (each may repeat only where the RFC allows).
const MAX_PARAMS: usize = 32;

/// Client credentials as presented in the request body (header credentials are separate).
#[derive(Debug, Default)]
pub struct BodyCredentials {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `client_secret` (client_secret_post).
    pub client_secret: Option<Secret>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// `client_assertion` (private_key_jwt).
    pub client_assertion: Option<Secret>,
}

/// A parsed token request.
#[derive(Debug)]
pub enum TokenRequest {
    /// `client_credentials`, optionally for one resource.
    ClientCredentials {
        /// Target skill (RFC 8707), or none for an agent token.
        resource: Option<String>,
        /// Requested scopes.
        scope: Option<String>,
    },
    /// `authorization_code` (RFC 6749 §4.1.3, PKCE RFC 7636 §4.5).
    AuthorizationCode {
        /// The code.
        code: Secret,
        /// The `redirect_uri` of the authorization request, if it named one.
        redirect_uri: Option<String>,
        /// The PKCE verifier.
        code_verifier: Option<String>,
        /// The one skill the token is for (RFC 8707), when the code covers several.
        resource: Option<String>,
        /// Requested scopes (a subset of the code's).
        scope: Option<String>,
    },
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken {
        /// The refresh token.
        refresh_token: Secret,
        /// The one skill the token is for (RFC 8707), when the grant covers several.
        resource: Option<String>,
        /// Requested scopes (a subset of the grant's).
        scope: Option<String>,
    },
    /// RFC 8693 token exchange.
    TokenExchange {
        /// The token being exchanged.
        subject_token: Secret,
        /// The one target (from `resource` or `audience`).
        target: String,
        /// Requested scopes.
        scope: Option<String>,
    },
}

fn invalid(description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidRequest, description.into(), reason)
}

/// Parses form pairs into a request and the body credentials. Parameters other than
/// `resource` and `audience` must not repeat (RFC 6749 §3.2).
pub fn parse(pairs: &[(String, String)]) -> Result<(TokenRequest, BodyCredentials), OAuthError> {
    if pairs.len() > MAX_PARAMS {
        return Err(invalid("too many parameters", "too_many_parameters"));
    }
    let mut single: Vec<(&str, &str)> = Vec::new();
    let mut resources: Vec<&str> = Vec::new();
    let mut audiences: Vec<&str> = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "resource" => resources.push(v),
            "audience" => audiences.push(v),
            key => {
                if single.iter().any(|(s, _)| *s == key) {
                    return Err(invalid(
                        format!("parameter {key} is repeated"),
                        "parameter_repeated",
                    ));
                }
                single.push((key, v));
            }
        }
    }
    let get = |name: &str| {
        single
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let creds = BodyCredentials {
        client_id: get("client_id"),
        client_secret: get("client_secret").map(Secret::from),
        client_assertion_type: get("client_assertion_type"),
        client_assertion: get("client_assertion").map(Secret::from),
    };
    let scope = get("scope").filter(|s| !s.trim().is_empty());
    let scope = match scope {
        Some(s) => Some(
            Scopes::parse(&s)
                .map_err(|e| {
                    OAuthError::new(
                        ErrorKind::InvalidScope,
                        format!("the scope is malformed: {e}"),
                        "scope_malformed",
                    )
                })?
                .into(),
        ),
        None => None,
    };
    if resources.len() + audiences.len() > 1 {
        return Err(OAuthError::new(
            ErrorKind::InvalidTarget,
            "request a token for one resource (or audience) at a time",
            "multiple_targets",
        ));
    }
    for r in &resources {
        let ok = url::Url::parse(r).is_ok_and(|u| u.fragment().is_none());
        if !ok {
            return Err(OAuthError::new(
                ErrorKind::InvalidTarget,
                "resource must be an absolute URI without a fragment (RFC 8707 §2)",
                "resource_malformed",
            ));
        }
    }
    let target = resources
        .first()
        .or(audiences.first())
        .map(|s| s.to_string());
    let grant =
        get("grant_type").ok_or_else(|| invalid("grant_type is missing", "grant_type_missing"))?;
    let request = match grant.as_str() {
        "client_credentials" => TokenRequest::ClientCredentials {
            resource: target,
            scope,
        },
        "authorization_code" => TokenRequest::AuthorizationCode {
            code: Secret::from(
                get("code")
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| invalid("code is missing", "code_missing"))?,
            ),
            redirect_uri: get("redirect_uri"),
            code_verifier: get("code_verifier"),
            resource: target,
            scope,
        },
        "refresh_token" => TokenRequest::RefreshToken {
            refresh_token: Secret::from(
                get("refresh_token")
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| invalid("refresh_token is missing", "refresh_token_missing"))?,
            ),
            resource: target,
            scope,
        },
        TOKEN_EXCHANGE => {
            let subject_token = get("subject_token")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| invalid("subject_token is missing", "subject_token_missing"))?;
            match get("subject_token_type").as_deref() {
                Some(ACCESS_TOKEN_TYPE) => {}
                Some(_) => {
                    return Err(invalid(
                        "subject_token_type must be urn:ietf:params:oauth:token-type:access_token",
                        "subject_token_type_unsupported",
                    ));
                }
                None => {
                    return Err(invalid(
                        "subject_token_type is missing",
                        "subject_token_type_missing",
                    ));
                }
            }
            if get("actor_token").is_some() {
                return Err(invalid(
                    "actor_token is not supported; the authenticated client is the actor",
                    "actor_token_unsupported",
                ));
            }
            match get("requested_token_type").as_deref() {
                None | Some(ACCESS_TOKEN_TYPE) => {}
                Some(_) => {
                    return Err(invalid(
                        "only access tokens can be requested",
                        "requested_token_type_unsupported",
                    ));
                }
            }
            let target = target.ok_or_else(|| {
                OAuthError::new(
                    ErrorKind::InvalidTarget,
                    "name the skill with resource or audience",
                    "target_missing",
                )
            })?;
            TokenRequest::TokenExchange {
                subject_token: Secret::from(subject_token),
                target,
                scope,
            }
        }
        other => {
            return Err(OAuthError::new(
                ErrorKind::UnsupportedGrantType,
                format!(
                    "grant_type {} is not supported",
                    other.chars().take(80).collect::<String>()
                ),
                "grant_type_unsupported",
            ));
        }
    };
    Ok((request, creds))
}

/// Most parameters accepted by introspection and revocation, which take fewer.
const MAX_TOKEN_PARAMETER_PARAMS: usize = 16;

/// Parses the form of an introspection (RFC 7662 §2.1) or revocation (RFC 7009 §2.1)
/// request into its `token` and the body credentials. The first occurrence of each
/// parameter counts; `token_type_hint` is not needed (Patron issues one kind of token).
pub fn parse_token_parameter(
    pairs: &[(String, String)],
) -> Result<(Secret, BodyCredentials), OAuthError> {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if pairs.len() > MAX_TOKEN_PARAMETER_PARAMS {
        return Err(invalid("too many parameters", "too_many_parameters"));
    }
    let token = get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("token is missing", "token_missing"))?;
    let creds = BodyCredentials {
        client_id: get("client_id"),
        client_secret: get("client_secret").map(Secret::from),
        client_assertion_type: get("client_assertion_type"),
        client_assertion: get("client_assertion").map(Secret::from),
    };
    Ok((Secret::from(token), creds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn client_credentials_with_one_resource_parses() {
        let (r, c) = parse(&form(&[
            ("grant_type", "client_credentials"),
            ("resource", "https://skill.example/api"),
            ("scope", "read"),
            ("client_id", "agt_1"),
        ]))
        .unwrap();
        assert!(
            matches!(r, TokenRequest::ClientCredentials { resource: Some(ref x), scope: Some(ref s) } if x == "https://skill.example/api" && s == "read")
        );
        assert_eq!(c.client_id.as_deref(), Some("agt_1"));
    }

    #[test]
    fn defects_map_to_their_rfc_codes() {
        let code = |pairs: &[(&str, &str)]| parse(&form(pairs)).unwrap_err().kind();
        assert_eq!(code(&[]), ErrorKind::InvalidRequest);
        assert_eq!(
            code(&[("grant_type", "password")]),
            ErrorKind::UnsupportedGrantType
        );
        assert_eq!(
            code(&[
                ("grant_type", "client_credentials"),
                ("resource", "https://a"),
                ("resource", "https://b")
            ]),
            ErrorKind::InvalidTarget
        );
        assert_eq!(
            code(&[
                ("grant_type", "client_credentials"),
                ("resource", "not a uri")
            ]),
            ErrorKind::InvalidTarget
        );
        assert_eq!(
            code(&[("grant_type", "client_credentials"), ("grant_type", "x")]),
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            code(&[("grant_type", TOKEN_EXCHANGE), ("audience", "https://a")]),
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            code(&[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", "t"),
                ("subject_token_type", ACCESS_TOKEN_TYPE)
            ]),
            ErrorKind::InvalidTarget
        );
        assert_eq!(
            code(&[("grant_type", "client_credentials"), ("scope", "a\"b")]),
            ErrorKind::InvalidScope
        );
    }

    #[test]
    fn token_exchange_takes_audience_as_its_target() {
        let (r, _) = parse(&form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", "tok"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", "https://skill.example"),
        ]))
        .unwrap();
        assert!(
            matches!(r, TokenRequest::TokenExchange { ref target, .. } if target == "https://skill.example")
        );
    }

    #[test]
    fn introspection_and_revocation_forms_need_a_token() {
        let (token, c) = parse_token_parameter(&form(&[
            ("token", "tok"),
            ("client_id", "agt_1"),
            ("token", "second"),
        ]))
        .unwrap();
        assert_eq!(token.expose(), "tok");
        assert_eq!(c.client_id.as_deref(), Some("agt_1"));
        let reason = |pairs: &[(&str, &str)]| parse_token_parameter(&form(pairs)).unwrap_err();
        assert_eq!(reason(&[("token", "")]).reason(), "token_missing");
        assert_eq!(
            reason(&[("client_id", "a")]).kind(),
            ErrorKind::InvalidRequest
        );
        let many: Vec<(&str, &str)> = (0..17).map(|_| ("x", "y")).collect();
        assert_eq!(reason(&many).reason(), "too_many_parameters");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let (r, c) = parse(&form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", "sekrit-subject"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", "https://skill.example"),
            ("client_id", "agt_1"),
            ("client_secret", "sekrit-secret"),
        ]))
        .unwrap();
        let (t, _) = parse_token_parameter(&form(&[("token", "sekrit-token")])).unwrap();
        let shown = format!("{r:?} {c:?} {t:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(shown.contains("agt_1"), "{shown}");
    }
}
