//! Client metadata for dynamic registration (RFC 7591 §2): turns the JSON object a client
//! sends into a checked [`ClientMetadata`], or a [`MetadataError`] that maps directly onto
//! the RFC 7591 §3.2.2 error response.
//!
//! Everything here is pure: no I/O, no storage. Unknown members are ignored, as RFC 7591 §2
//! requires; members the caller handles itself (`client_id`, `client_secret`,
//! `registration_access_token`, `software_statement`) are ignored too.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::{Host, Url};

use crate::jose::jwks::validate_client_jwks;
use crate::oauth::redirect_uri::RedirectUri;
use crate::oauth::scope::Scopes;

/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Most contacts one client may register.
pub const MAX_CONTACTS: usize = 10;
/// Longest URI accepted in a URI-valued member (`logo_uri`, `jwks_uri`, ...), in characters.
pub const MAX_URI_LEN: usize = 2000;
/// Longest `client_name`, in characters.
pub const MAX_CLIENT_NAME_LEN: usize = 200;
/// Longest `software_id`, in characters.
pub const MAX_SOFTWARE_ID_LEN: usize = 200;
/// Longest `software_version`, in characters.
pub const MAX_SOFTWARE_VERSION_LEN: usize = 100;

/// Wire names of the supported `token_endpoint_auth_method` values, for the discovery
/// document (RFC 8414 §2 `token_endpoint_auth_methods_supported`).
pub const SUPPORTED_AUTH_METHODS: &[&str] = &[
    "private_key_jwt",
    "client_secret_basic",
    "client_secret_post",
    "none",
];

/// Wire names of the supported grant types, for the discovery document
/// (RFC 8414 §2 `grant_types_supported`).
pub const SUPPORTED_GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange",
];

/// Wire names of the supported response types, for the discovery document
/// (RFC 8414 §2 `response_types_supported`).
pub const SUPPORTED_RESPONSE_TYPES: &[&str] = &["code"];

/// How a client authenticates at the token endpoint (RFC 7591 §2
/// `token_endpoint_auth_method`).
///
/// `client_secret_jwt` is not offered: it needs the server to keep the secret in a
/// recoverable form, while Patron stores only hashes. `tls_client_auth` is not offered
/// because Patron does not terminate TLS itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    /// A JWT signed with the client's private key (RFC 7523 §2.2, OIDC Core §9).
    PrivateKeyJwt,
    /// Client secret in HTTP Basic (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// Client secret in the request body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A public client: no authentication, PKCE protects the code (RFC 7591 §2,
    /// RFC 7636).
    None,
}

impl TokenEndpointAuthMethod {
    /// Every supported method, in the order of [`SUPPORTED_AUTH_METHODS`].
    pub const ALL: [Self; 4] = [
        Self::PrivateKeyJwt,
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::None,
    ];

    /// The wire name, e.g. `client_secret_basic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }

    /// The method with this wire name, if supported.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl Default for TokenEndpointAuthMethod {
    /// `client_secret_basic`, the RFC 7591 §2 default when the member is omitted.
    fn default() -> Self {
        Self::ClientSecretBasic
    }
}

/// A grant type a client may use (RFC 7591 §2 `grant_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantType {
    /// RFC 6749 §4.1.
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    /// RFC 6749 §6.
    #[serde(rename = "refresh_token")]
    RefreshToken,
    /// RFC 6749 §4.4.
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    /// RFC 8693 §2.1.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

impl GrantType {
    /// Every supported grant type, in the order of [`SUPPORTED_GRANT_TYPES`].
    pub const ALL: [Self; 4] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::TokenExchange,
    ];

    /// The wire name, e.g. `authorization_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    /// The grant type with this wire name, if supported.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// A response type a client may use at the authorization endpoint (RFC 7591 §2
/// `response_types`). Only `code`: the implicit flow is not offered (RFC 9700 §2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResponseType {
    /// The authorization code flow (RFC 6749 §4.1.1).
    #[serde(rename = "code")]
    Code,
}

impl ResponseType {
    /// The wire name, `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
        }
    }

    /// The response type with this wire name, if supported.
    pub fn from_wire(s: &str) -> Option<Self> {
        (s == "code").then_some(Self::Code)
    }
}

/// Checked client metadata.
///
/// Serialises with the RFC 7591 §2 member names, leaving out absent optional members, so
/// `serde_json::to_value(&meta)` is exactly the metadata to echo in a registration response
/// (RFC 7591 §3.2.1). `response_types` is always written, even when empty, because a reader
/// would otherwise assume the default `["code"]`.
///
/// Deserialisation does not re-run [`validate`]: it exists to load values this server
/// stored itself. Untrusted input must go through [`validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Registered redirect URIs, without duplicates, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<RedirectUri>,
    /// How the client authenticates at the token endpoint.
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    /// Grant types, without duplicates, in the order given.
    pub grant_types: Vec<GrantType>,
    /// Response types; empty for clients without the `authorization_code` grant.
    pub response_types: Vec<ResponseType>,
    /// Human-readable name, trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Home page of the client.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_url")]
    pub client_uri: Option<Url>,
    /// Logo of the client.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_url")]
    pub logo_uri: Option<Url>,
    /// Terms of service of the client.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_url")]
    pub tos_uri: Option<Url>,
    /// Privacy policy of the client.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_url")]
    pub policy_uri: Option<Url>,
    /// Contact e-mail addresses, without duplicates, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// Requested scope: distinct tokens joined by single spaces (RFC 6749 §3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client's public keys by value, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Where the client publishes its public keys.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_url")]
    pub jwks_uri: Option<Url>,
    /// Identifier of the client software (RFC 7591 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Version of the client software (RFC 7591 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// Whether every access token of this client must be DPoP-bound (RFC 9449 §5.2).
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
}

impl ClientMetadata {
    /// Whether the client authenticates with a client secret, i.e. one must be issued
    /// (RFC 7591 §3.2.1 `client_secret`).
    pub fn uses_secret(&self) -> bool {
        matches!(
            self.token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic | TokenEndpointAuthMethod::ClientSecretPost
        )
    }

    /// Whether the client registered grant type `g`.
    pub fn has_grant(&self, g: GrantType) -> bool {
        self.grant_types.contains(&g)
    }
}

/// The RFC 7591 §3.2.2 error code of a refused registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataErrorCode {
    /// `invalid_redirect_uri`: one or more redirect URIs are invalid or missing.
    InvalidRedirectUri,
    /// `invalid_client_metadata`: some other member is invalid.
    InvalidClientMetadata,
}

impl MetadataErrorCode {
    /// The wire name, e.g. `invalid_client_metadata`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
        }
    }
}

impl std::fmt::Display for MetadataErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Refused client metadata: an RFC 7591 §3.2.2 `error` code, an `error_description` that is
/// safe to return and names the member, and a stable machine reason for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct MetadataError {
    /// The `error` value of the response.
    pub code: MetadataErrorCode,
    /// The `error_description` value of the response.
    pub description: String,
    /// Machine reason code, e.g. `client_name_too_long`.
    pub reason: &'static str,
}

impl MetadataError {
    fn metadata(reason: &'static str, description: impl Into<String>) -> Self {
        Self {
            code: MetadataErrorCode::InvalidClientMetadata,
            description: description.into(),
            reason,
        }
    }

    fn redirect(reason: &'static str, description: impl Into<String>) -> Self {
        Self {
            code: MetadataErrorCode::InvalidRedirectUri,
            description: description.into(),
            reason,
        }
    }

    fn wrong_type(field: &str, expected: &str) -> Self {
        Self::metadata("field_wrong_type", format!("{field} must be {expected}"))
    }
}

/// Validates RFC 7591 §2 client metadata from a registration (or update) request body.
///
/// Members are checked one by one in a fixed order, then against each other; the first
/// problem found is returned. Defaults follow RFC 7591 §2: `token_endpoint_auth_method`
/// `client_secret_basic`, `grant_types` `["authorization_code"]`, and `response_types`
/// `["code"]` — the latter only when `authorization_code` is among the grant types, since
/// a client without it has no use for the authorization endpoint (RFC 7591 §2.1).
/// JSON `null` counts as absent.
pub fn validate(raw: &Map<String, Value>) -> Result<ClientMetadata, MetadataError> {
    let redirect_uris = redirect_uris(raw)?;
    let token_endpoint_auth_method = match string(raw, "token_endpoint_auth_method")? {
        None => TokenEndpointAuthMethod::default(),
        Some(s) => TokenEndpointAuthMethod::from_wire(s).ok_or_else(|| {
            MetadataError::metadata(
                "auth_method_unsupported",
                format!(
                    "token_endpoint_auth_method {} is not supported; use one of {}",
                    quote(s),
                    SUPPORTED_AUTH_METHODS.join(", ")
                ),
            )
        })?,
    };
    let grant_types = grant_types(raw)?;
    let response_types = response_types(raw, &grant_types)?;
    let client_name = text(raw, &CLIENT_NAME)?;
    let client_uri = https_uri(raw, "client_uri")?;
    let logo_uri = https_uri(raw, "logo_uri")?;
    let tos_uri = https_uri(raw, "tos_uri")?;
    let policy_uri = https_uri(raw, "policy_uri")?;
    let contacts = contacts(raw)?;
    let scope = scope(raw)?;
    let jwks_uri = jwks_uri(raw)?;
    let jwks = match present(raw, "jwks") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => {
            return Err(MetadataError::wrong_type(
                "jwks",
                "a JSON object (a JWK Set)",
            ));
        }
    };
    let software_id = text(raw, &SOFTWARE_ID)?;
    let software_version = text(raw, &SOFTWARE_VERSION)?;
    let dpop_bound_access_tokens = match present(raw, "dpop_bound_access_tokens") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(MetadataError::wrong_type(
                "dpop_bound_access_tokens",
                "a boolean",
            ));
        }
    };

    // Cross-member rules.
    let has_code_grant = grant_types.contains(&GrantType::AuthorizationCode);
    if has_code_grant != response_types.contains(&ResponseType::Code) {
        // RFC 7591 §2.1: grant_types and response_types must be consistent.
        let description = if has_code_grant {
            "grant_types includes authorization_code, so response_types must include code \
             (RFC 7591 §2.1)"
        } else {
            "response_types includes code, so grant_types must include authorization_code \
             (RFC 7591 §2.1)"
        };
        return Err(MetadataError::metadata(
            "grant_response_mismatch",
            description,
        ));
    }
    if has_code_grant && redirect_uris.is_empty() {
        // RFC 6749 §3.1.2.2: registration is required for public clients and for
        // confidential clients using the code flow; Patron requires it for every code-flow
        // client so the redirect is never taken from the request alone.
        return Err(MetadataError::redirect(
            "redirect_uris_missing",
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    if token_endpoint_auth_method == TokenEndpointAuthMethod::None {
        // A public client can only be protected by PKCE in the code flow; letting it use
        // client_credentials or token exchange would hand tokens to anyone who knows the
        // client_id.
        let code_flow_only = has_code_grant
            && grant_types
                .iter()
                .all(|g| matches!(g, GrantType::AuthorizationCode | GrantType::RefreshToken));
        if !code_flow_only {
            return Err(MetadataError::metadata(
                "auth_method_none_without_code",
                "token_endpoint_auth_method none is only allowed when grant_types is \
                 authorization_code, optionally with refresh_token",
            ));
        }
    }
    if jwks.is_some() && jwks_uri.is_some() {
        // RFC 7591 §2: the two MUST NOT both be present.
        return Err(MetadataError::metadata(
            "jwks_and_jwks_uri",
            "jwks and jwks_uri must not both be present (RFC 7591 §2)",
        ));
    }
    if let Some(set) = &jwks {
        validate_client_jwks(set)
            .map_err(|msg| MetadataError::metadata("jwks_invalid", format!("jwks: {msg}")))?;
    }
    if token_endpoint_auth_method == TokenEndpointAuthMethod::PrivateKeyJwt
        && jwks.is_none()
        && jwks_uri.is_none()
    {
        return Err(MetadataError::metadata(
            "private_key_jwt_without_keys",
            "token_endpoint_auth_method private_key_jwt requires jwks or jwks_uri",
        ));
    }

    Ok(ClientMetadata {
        redirect_uris,
        token_endpoint_auth_method,
        grant_types,
        response_types,
        client_name,
        client_uri,
        logo_uri,
        tos_uri,
        policy_uri,
        contacts,
        scope,
        jwks,
        jwks_uri,
        software_id,
        software_version,
        dpop_bound_access_tokens,
    })
}

/// The member's value, treating JSON `null` as absent.
fn present<'a>(raw: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    raw.get(field).filter(|v| !v.is_null())
}

/// An optional string member.
fn string<'a>(raw: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, MetadataError> {
    match present(raw, field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(MetadataError::wrong_type(field, "a string")),
    }
}

/// An optional array-of-strings member; `None` when absent.
fn string_array<'a>(
    raw: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<Vec<&'a str>>, MetadataError> {
    let Some(value) = present(raw, field) else {
        return Ok(None);
    };
    let expected = "an array of strings";
    let items = value
        .as_array()
        .ok_or_else(|| MetadataError::wrong_type(field, expected))?;
    items
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| MetadataError::wrong_type(field, expected))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Removes later duplicates, keeping the first occurrence's position.
fn dedup_in_order<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Quotes untrusted input for an error description: at most 100 characters, with control
/// characters escaped so descriptions cannot carry line breaks into logs or responses.
fn quote(s: &str) -> String {
    const QUOTE_LEN: usize = 100;
    let mut out = String::from("\"");
    for c in s.chars().take(QUOTE_LEN) {
        if c.is_control() || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().nth(QUOTE_LEN).is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

/// Characters that can make displayed text lie about itself: Unicode bidirectional
/// overrides and isolates (the "Trojan Source" class, CVE-2021-42574). A client name shown
/// on a consent screen must read the way it is stored.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

fn redirect_uris(raw: &Map<String, Value>) -> Result<Vec<RedirectUri>, MetadataError> {
    let Some(value) = present(raw, "redirect_uris") else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| MetadataError::wrong_type("redirect_uris", "an array of strings"))?;
    if items.len() > MAX_REDIRECT_URIS {
        return Err(MetadataError::redirect(
            "redirect_uris_too_many",
            format!("redirect_uris must have at most {MAX_REDIRECT_URIS} entries"),
        ));
    }
    let mut uris = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let s = item.as_str().ok_or_else(|| {
            MetadataError::redirect(
                "field_wrong_type",
                format!("redirect_uris[{i}] must be a string"),
            )
        })?;
        let uri = RedirectUri::parse(s).map_err(|e| {
            MetadataError::redirect(
                e.reason(),
                format!("redirect_uris[{i}]: {}", e.description()),
            )
        })?;
        uris.push(uri);
    }
    Ok(dedup_in_order(uris))
}

fn grant_types(raw: &Map<String, Value>) -> Result<Vec<GrantType>, MetadataError> {
    let Some(names) = string_array(raw, "grant_types")? else {
        return Ok(vec![GrantType::AuthorizationCode]);
    };
    if names.is_empty() {
        // An explicit empty list is not "omitted", so the default does not apply, and a
        // client that can use no grant at all is certainly a mistake.
        return Err(MetadataError::metadata(
            "grant_types_empty",
            "grant_types must not be empty",
        ));
    }
    let grants = names
        .into_iter()
        .map(|name| {
            GrantType::from_wire(name).ok_or_else(|| {
                MetadataError::metadata(
                    "grant_type_unsupported",
                    format!(
                        "grant_types: {} is not supported; use one of {}",
                        quote(name),
                        SUPPORTED_GRANT_TYPES.join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dedup_in_order(grants))
}

fn response_types(
    raw: &Map<String, Value>,
    grant_types: &[GrantType],
) -> Result<Vec<ResponseType>, MetadataError> {
    let Some(names) = string_array(raw, "response_types")? else {
        // RFC 7591 §2's default `["code"]` only makes sense for code-flow clients; for the
        // others an omitted member means "none", or every such client would be inconsistent
        // under RFC 7591 §2.1.
        return Ok(if grant_types.contains(&GrantType::AuthorizationCode) {
            vec![ResponseType::Code]
        } else {
            Vec::new()
        });
    };
    let types = names
        .into_iter()
        .map(|name| {
            ResponseType::from_wire(name).ok_or_else(|| {
                MetadataError::metadata(
                    "response_type_unsupported",
                    format!("response_types: {} is not supported; use code", quote(name)),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dedup_in_order(types))
}

/// A human-readable string member and its reason codes (reason codes are `&'static str`,
/// so each member's set is spelled out rather than formatted).
struct TextField {
    name: &'static str,
    max: usize,
    empty: &'static str,
    control_chars: &'static str,
    too_long: &'static str,
}

const CLIENT_NAME: TextField = TextField {
    name: "client_name",
    max: MAX_CLIENT_NAME_LEN,
    empty: "client_name_empty",
    control_chars: "client_name_control_chars",
    too_long: "client_name_too_long",
};

const SOFTWARE_ID: TextField = TextField {
    name: "software_id",
    max: MAX_SOFTWARE_ID_LEN,
    empty: "software_id_empty",
    control_chars: "software_id_control_chars",
    too_long: "software_id_too_long",
};

const SOFTWARE_VERSION: TextField = TextField {
    name: "software_version",
    max: MAX_SOFTWARE_VERSION_LEN,
    empty: "software_version_empty",
    control_chars: "software_version_control_chars",
    too_long: "software_version_too_long",
};

/// An optional human-readable string member: trimmed, non-empty, no control characters,
/// at most `field.max` characters (counted in `char`s, after trimming).
fn text(raw: &Map<String, Value>, field: &TextField) -> Result<Option<String>, MetadataError> {
    let Some(s) = string(raw, field.name)? else {
        return Ok(None);
    };
    let name = field.name;
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(MetadataError::metadata(
            field.empty,
            format!("{name} must not be empty"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() || is_bidi_control(c))
    {
        return Err(MetadataError::metadata(
            field.control_chars,
            format!("{name} must not contain control characters"),
        ));
    }
    if trimmed.chars().count() > field.max {
        return Err(MetadataError::metadata(
            field.too_long,
            format!("{name} must be at most {} characters", field.max),
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

/// Common checks of URI-valued members: length, no control characters or whitespace
/// (`url` would silently strip some), absolute, no user-info. Reason `uri_invalid`.
fn parse_uri(field: &str, s: &str) -> Result<Url, MetadataError> {
    let invalid = |why: &str| MetadataError::metadata("uri_invalid", format!("{field} {why}"));
    if s.chars().count() > MAX_URI_LEN {
        return Err(invalid(&format!(
            "must be at most {MAX_URI_LEN} characters"
        )));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("must not contain whitespace or control characters"));
    }
    let url = Url::parse(s).map_err(|_| invalid("must be an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "must not contain user information (user:password@)",
        ));
    }
    Ok(url)
}

/// Whether `s` is written as `https://host...` with a non-empty host, so the stored URL
/// means what the raw string appears to mean.
fn is_https_with_host(s: &str, url: &Url) -> bool {
    let written_with_authority = match (s.get(..8), s.get(8..)) {
        (Some(prefix), Some(rest)) => {
            prefix.eq_ignore_ascii_case("https://") && !rest.is_empty() && !rest.starts_with('/')
        }
        _ => false,
    };
    let host_ok = match url.host() {
        Some(Host::Domain(d)) => !d.is_empty(),
        Some(_) => true,
        None => false,
    };
    written_with_authority && url.scheme() == "https" && host_ok
}

/// An optional informational URI member (`client_uri`, `logo_uri`, `tos_uri`,
/// `policy_uri`): an absolute `https` URL. Plain `http` is refused even on loopback: these
/// are shown to and followed by end users, never by a local app.
fn https_uri(raw: &Map<String, Value>, field: &str) -> Result<Option<Url>, MetadataError> {
    let Some(s) = string(raw, field)? else {
        return Ok(None);
    };
    let url = parse_uri(field, s)?;
    if !is_https_with_host(s, &url) {
        return Err(MetadataError::metadata(
            "uri_invalid",
            format!("{field} must be an https URL with a host"),
        ));
    }
    Ok(Some(url))
}

fn jwks_uri(raw: &Map<String, Value>) -> Result<Option<Url>, MetadataError> {
    let Some(s) = string(raw, "jwks_uri")? else {
        return Ok(None);
    };
    let url = parse_uri("jwks_uri", s)?;
    if !is_https_with_host(s, &url) {
        // Keys fetched over plain http could be swapped in transit, letting anyone mint
        // client assertions.
        return Err(MetadataError::metadata(
            "jwks_uri_not_https",
            "jwks_uri must be an https URL with a host",
        ));
    }
    if s.contains('#') {
        return Err(MetadataError::metadata(
            "uri_invalid",
            "jwks_uri must not contain a fragment",
        ));
    }
    Ok(Some(url))
}

fn contacts(raw: &Map<String, Value>) -> Result<Vec<String>, MetadataError> {
    let Some(items) = string_array(raw, "contacts")? else {
        return Ok(Vec::new());
    };
    if items.len() > MAX_CONTACTS {
        return Err(MetadataError::metadata(
            "contacts_invalid",
            format!("contacts must have at most {MAX_CONTACTS} entries"),
        ));
    }
    for (i, c) in items.iter().enumerate() {
        if !is_plausible_email(c) {
            return Err(MetadataError::metadata(
                "contacts_invalid",
                format!("contacts[{i}] must be an e-mail address"),
            ));
        }
    }
    Ok(dedup_in_order(
        items.into_iter().map(str::to_owned).collect(),
    ))
}

/// A deliberately loose e-mail check (RFC 7591 §2 only says "e-mail addresses"): 3 to 254
/// characters, one `@`, a non-empty local part, a dotted domain, no whitespace or control
/// characters. Real deliverability is not this module's business.
fn is_plausible_email(s: &str) -> bool {
    let len = s.chars().count();
    if !(3..=254).contains(&len) || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

fn scope(raw: &Map<String, Value>) -> Result<Option<String>, MetadataError> {
    let Some(s) = string(raw, "scope")? else {
        return Ok(None);
    };
    let scopes =
        Scopes::parse(s).map_err(|e| MetadataError::metadata("scope_invalid", e.to_string()))?;
    Ok((!scopes.is_empty()).then(|| scopes.into()))
}

/// Serde for `Option<Url>` as an optional string, so this module does not depend on the
/// `url` crate's `serde` feature.
mod opt_url {
    use serde::{Deserialize, Deserializer, Serializer};
    use url::Url;

    pub fn serialize<S: Serializer>(value: &Option<Url>, ser: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(url) => ser.serialize_some(url.as_str()),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Url>, D::Error> {
        Option::<String>::deserialize(de)?
            .map(|s| Url::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn ok(v: Value) -> ClientMetadata {
        validate(&obj(v)).unwrap()
    }

    fn err(v: Value) -> MetadataError {
        validate(&obj(v)).unwrap_err()
    }

    /// The RFC 7638 §3.1 example key: a real 2048-bit RSA public key.
    fn rsa_public_jwk() -> Value {
        json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "kid": "2011-04-29"
        })
    }

    #[test]
    fn rfc_7591_defaults_are_applied_when_members_are_omitted() {
        let m = ok(json!({"redirect_uris": ["https://app.example.com/cb"]}));
        assert_eq!(
            m.token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(m.response_types, vec![ResponseType::Code]);
        assert!(!m.dpop_bound_access_tokens);
        assert!(m.uses_secret());
        assert!(m.has_grant(GrantType::AuthorizationCode));
        assert!(!m.has_grant(GrantType::ClientCredentials));
    }

    #[test]
    fn a_code_flow_client_without_redirect_uris_is_refused() {
        let e = err(json!({}));
        assert_eq!(e.code, MetadataErrorCode::InvalidRedirectUri);
        assert_eq!(e.reason, "redirect_uris_missing");
        let e = err(json!({"redirect_uris": []}));
        assert_eq!(e.reason, "redirect_uris_missing");
    }

    #[test]
    fn an_invalid_redirect_uri_is_reported_with_its_own_reason() {
        let e = err(json!({"redirect_uris": ["https://ok.example/cb", "https://x.example/cb#f"]}));
        assert_eq!(e.code, MetadataErrorCode::InvalidRedirectUri);
        assert_eq!(e.reason, "redirect_uri_fragment");
        assert!(e.description.starts_with("redirect_uris[1]:"), "{e}");
        let e = err(json!({"redirect_uris": ["http://app.example.com/cb"]}));
        assert_eq!(e.reason, "redirect_uri_http_not_loopback");
    }

    #[test]
    fn duplicate_redirect_uris_are_removed_keeping_order() {
        let m = ok(json!({"redirect_uris": [
            "https://b.example/cb", "https://a.example/cb", "https://b.example/cb"
        ]}));
        let uris: Vec<&str> = m.redirect_uris.iter().map(RedirectUri::as_str).collect();
        assert_eq!(uris, ["https://b.example/cb", "https://a.example/cb"]);
    }

    #[test]
    fn more_than_twenty_redirect_uris_are_refused() {
        let uris: Vec<String> = (0..21)
            .map(|i| format!("https://app.example/cb{i}"))
            .collect();
        let e = err(json!({"redirect_uris": uris}));
        assert_eq!(e.code, MetadataErrorCode::InvalidRedirectUri);
        assert_eq!(e.reason, "redirect_uris_too_many");
    }

    #[test]
    fn client_credentials_without_response_types_gets_no_response_types() {
        let m = ok(json!({"grant_types": ["client_credentials"]}));
        assert_eq!(m.grant_types, vec![GrantType::ClientCredentials]);
        assert!(m.response_types.is_empty());
        assert!(m.redirect_uris.is_empty());
        let echoed = serde_json::to_value(&m).unwrap();
        assert_eq!(echoed["response_types"], json!([]));
        assert!(echoed.get("redirect_uris").is_none());
    }

    #[test]
    fn response_type_code_without_the_code_grant_is_a_mismatch() {
        let e = err(json!({"grant_types": ["client_credentials"], "response_types": ["code"]}));
        assert_eq!(e.code, MetadataErrorCode::InvalidClientMetadata);
        assert_eq!(e.reason, "grant_response_mismatch");
    }

    #[test]
    fn the_code_grant_without_response_type_code_is_a_mismatch() {
        let e = err(json!({"redirect_uris": ["https://a.example/cb"], "response_types": []}));
        assert_eq!(e.reason, "grant_response_mismatch");
        let e = err(json!({
            "redirect_uris": ["https://a.example/cb"],
            "grant_types": ["authorization_code", "client_credentials"],
            "response_types": []
        }));
        assert_eq!(e.reason, "grant_response_mismatch");
    }

    #[test]
    fn unsupported_grant_and_response_types_are_refused() {
        let e = err(json!({"grant_types": ["implicit"]}));
        assert_eq!(e.code, MetadataErrorCode::InvalidClientMetadata);
        assert_eq!(e.reason, "grant_type_unsupported");
        let e =
            err(json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}));
        assert_eq!(e.reason, "response_type_unsupported");
        let e = err(json!({"grant_types": []}));
        assert_eq!(e.reason, "grant_types_empty");
    }

    #[test]
    fn duplicate_grant_types_are_removed_and_token_exchange_is_understood() {
        let m = ok(json!({"grant_types": [
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "client_credentials"
        ]}));
        assert_eq!(
            m.grant_types,
            vec![GrantType::ClientCredentials, GrantType::TokenExchange]
        );
    }

    #[test]
    fn unsupported_auth_methods_are_refused() {
        for method in ["client_secret_jwt", "tls_client_auth", "NONE"] {
            let e = err(json!({
                "redirect_uris": ["https://a.example/cb"],
                "token_endpoint_auth_method": method
            }));
            assert_eq!(e.reason, "auth_method_unsupported", "{method}");
            assert_eq!(e.code, MetadataErrorCode::InvalidClientMetadata);
        }
    }

    #[test]
    fn auth_method_none_with_client_credentials_is_refused() {
        let e = err(json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "none"
        }));
        assert_eq!(e.reason, "auth_method_none_without_code");
        let e = err(json!({
            "redirect_uris": ["https://a.example/cb"],
            "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"],
            "token_endpoint_auth_method": "none"
        }));
        assert_eq!(e.reason, "auth_method_none_without_code");
    }

    #[test]
    fn auth_method_none_with_the_code_flow_is_allowed() {
        let m = ok(json!({
            "redirect_uris": ["http://127.0.0.1/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none"
        }));
        assert_eq!(m.token_endpoint_auth_method, TokenEndpointAuthMethod::None);
        assert!(!m.uses_secret());
    }

    #[test]
    fn private_key_jwt_without_keys_is_refused() {
        let e = err(json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt"
        }));
        assert_eq!(e.reason, "private_key_jwt_without_keys");
    }

    #[test]
    fn private_key_jwt_with_a_jwks_uri_or_jwks_is_accepted() {
        let m = ok(json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://app.example.com/jwks.json"
        }));
        assert_eq!(
            m.jwks_uri.as_ref().map(Url::as_str),
            Some("https://app.example.com/jwks.json")
        );
        assert!(!m.uses_secret());

        let set = json!({"keys": [rsa_public_jwk()]});
        let m = ok(json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": set
        }));
        assert_eq!(m.jwks, Some(set));
    }

    #[test]
    fn jwks_and_jwks_uri_together_are_refused() {
        let e = err(json!({
            "grant_types": ["client_credentials"],
            "jwks": {"keys": [rsa_public_jwk()]},
            "jwks_uri": "https://app.example.com/jwks.json"
        }));
        assert_eq!(e.reason, "jwks_and_jwks_uri");
    }

    #[test]
    fn a_jwks_uri_over_http_is_refused() {
        let e = err(json!({
            "grant_types": ["client_credentials"],
            "jwks_uri": "http://app.example.com/jwks.json"
        }));
        assert_eq!(e.reason, "jwks_uri_not_https");
        let e = err(json!({
            "grant_types": ["client_credentials"],
            "jwks_uri": "https://app.example.com/jwks.json#k"
        }));
        assert_eq!(e.reason, "uri_invalid");
    }

    #[test]
    fn a_jwks_with_private_key_material_is_refused_with_the_jwks_message() {
        let mut key = rsa_public_jwk();
        key["d"] = json!("AAAA");
        let e = err(json!({"grant_types": ["client_credentials"], "jwks": {"keys": [key]}}));
        assert_eq!(e.reason, "jwks_invalid");
        assert!(e.description.starts_with("jwks: "), "{e}");
    }

    #[test]
    fn a_client_name_of_200_characters_is_accepted_and_201_refused() {
        let name = "é".repeat(200);
        let m = ok(json!({"grant_types": ["client_credentials"], "client_name": name}));
        assert_eq!(m.client_name.as_deref(), Some(name.as_str()));

        let e = err(json!({"grant_types": ["client_credentials"], "client_name": "x".repeat(201)}));
        assert_eq!(e.reason, "client_name_too_long");
        assert_eq!(e.description, "client_name must be at most 200 characters");
    }

    #[test]
    fn a_client_name_with_control_characters_is_refused() {
        let e = err(json!({"grant_types": ["client_credentials"], "client_name": "Bell\u{0007}"}));
        assert_eq!(e.reason, "client_name_control_chars");
        let e = err(
            json!({"grant_types": ["client_credentials"], "client_name": "abc\u{202E}fdp.exe"}),
        );
        assert_eq!(e.reason, "client_name_control_chars");
    }

    #[test]
    fn blank_text_members_are_refused_and_others_trimmed() {
        let e = err(json!({"grant_types": ["client_credentials"], "client_name": "   "}));
        assert_eq!(e.reason, "client_name_empty");
        let e = err(
            json!({"grant_types": ["client_credentials"], "software_version": "v".repeat(101)}),
        );
        assert_eq!(e.reason, "software_version_too_long");
        let m = ok(json!({
            "grant_types": ["client_credentials"],
            "client_name": "  My Agent ",
            "software_id": "4NRB1-0XZABZI9E6-5SM3R",
            "software_version": "2.1"
        }));
        assert_eq!(m.client_name.as_deref(), Some("My Agent"));
        assert_eq!(m.software_id.as_deref(), Some("4NRB1-0XZABZI9E6-5SM3R"));
        assert_eq!(m.software_version.as_deref(), Some("2.1"));
    }

    #[test]
    fn members_of_the_wrong_json_type_are_refused_naming_the_member() {
        let cases = [
            (
                json!({"redirect_uris": "https://a.example/cb"}),
                "redirect_uris",
            ),
            (
                json!({"grant_types": ["client_credentials"], "client_name": 5}),
                "client_name",
            ),
            (json!({"grant_types": "client_credentials"}), "grant_types"),
            (
                json!({"grant_types": ["client_credentials"], "contacts": "a@b.example"}),
                "contacts",
            ),
            (
                json!({"grant_types": ["client_credentials"], "scope": ["read"]}),
                "scope",
            ),
            (
                json!({"grant_types": ["client_credentials"], "dpop_bound_access_tokens": "true"}),
                "dpop_bound_access_tokens",
            ),
            (
                json!({"grant_types": ["client_credentials"], "jwks": "keys"}),
                "jwks",
            ),
            (
                json!({"grant_types": ["client_credentials"], "logo_uri": 1}),
                "logo_uri",
            ),
        ];
        for (body, field) in cases {
            let e = err(body);
            assert_eq!(e.reason, "field_wrong_type", "{field}");
            assert_eq!(e.code, MetadataErrorCode::InvalidClientMetadata, "{field}");
            assert!(e.description.starts_with(field), "{e}");
        }
        let e = err(json!({"redirect_uris": [42]}));
        assert_eq!(e.code, MetadataErrorCode::InvalidRedirectUri);
        assert_eq!(e.reason, "field_wrong_type");
    }

    #[test]
    fn null_members_count_as_absent() {
        let m = ok(json!({
            "redirect_uris": ["https://a.example/cb"],
            "client_name": null,
            "grant_types": null,
            "token_endpoint_auth_method": null,
            "dpop_bound_access_tokens": null
        }));
        assert_eq!(m.client_name, None);
        assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(
            m.token_endpoint_auth_method,
            TokenEndpointAuthMethod::ClientSecretBasic
        );
    }

    #[test]
    fn unknown_and_caller_handled_members_are_ignored() {
        let m = ok(json!({
            "redirect_uris": ["https://a.example/cb"],
            "client_id": "attacker-chosen",
            "client_secret": "s3cret",
            "registration_access_token": "t",
            "software_statement": "eyJ...",
            "x_vendor_extension": {"anything": [1, 2, 3]}
        }));
        let echoed = serde_json::to_value(&m).unwrap();
        for member in [
            "client_id",
            "client_secret",
            "software_statement",
            "x_vendor_extension",
        ] {
            assert!(echoed.get(member).is_none(), "{member}");
        }
    }

    #[test]
    fn scope_is_normalised_and_deduplicated() {
        let m = ok(json!({"grant_types": ["client_credentials"], "scope": "  read  write read  "}));
        assert_eq!(m.scope.as_deref(), Some("read write"));
        let m = ok(json!({"grant_types": ["client_credentials"], "scope": "   "}));
        assert_eq!(m.scope, None);
    }

    #[test]
    fn scope_with_forbidden_characters_or_too_many_tokens_is_refused() {
        for bad in ["read \"write\"", "a\\b", "read\twrite", "caf\u{e9}"] {
            let e = err(json!({"grant_types": ["client_credentials"], "scope": bad}));
            assert_eq!(e.reason, "scope_invalid", "{bad}");
        }
        let many: Vec<String> = (0..51).map(|i| format!("s{i}")).collect();
        let e = err(json!({"grant_types": ["client_credentials"], "scope": many.join(" ")}));
        assert_eq!(e.reason, "scope_invalid");
        let e = err(json!({"grant_types": ["client_credentials"], "scope": "x".repeat(129)}));
        assert_eq!(e.reason, "scope_invalid");
    }

    #[test]
    fn contacts_must_be_plausible_email_addresses() {
        let m = ok(json!({
            "grant_types": ["client_credentials"],
            "contacts": ["ops@example.com", "dev@example.org", "ops@example.com"]
        }));
        assert_eq!(m.contacts, ["ops@example.com", "dev@example.org"]);
        for bad in [
            "no-at-sign.example",
            "@example.com",
            "a@b@example.com",
            "a@localhost",
            "a b@example.com",
            "a@.example",
        ] {
            let e = err(json!({"grant_types": ["client_credentials"], "contacts": [bad]}));
            assert_eq!(e.reason, "contacts_invalid", "{bad}");
        }
        let eleven: Vec<String> = (0..11).map(|i| format!("u{i}@example.com")).collect();
        let e = err(json!({"grant_types": ["client_credentials"], "contacts": eleven}));
        assert_eq!(e.reason, "contacts_invalid");
    }

    #[test]
    fn informational_uris_must_be_https_without_user_info() {
        for (field, bad) in [
            ("logo_uri", "http://app.example.com/logo.png"),
            ("client_uri", "https://user:pw@app.example.com/"),
            ("tos_uri", "/tos"),
            ("policy_uri", "javascript:alert(1)"),
            ("client_uri", "http://127.0.0.1/"),
            ("client_uri", "https:app.example.com"),
        ] {
            let e = err(json!({"grant_types": ["client_credentials"], field: bad}));
            assert_eq!(e.reason, "uri_invalid", "{field} {bad}");
            assert!(e.description.starts_with(field), "{e}");
        }
        let m = ok(
            json!({"grant_types": ["client_credentials"], "logo_uri": "https://app.example.com/logo.png"}),
        );
        assert_eq!(
            m.logo_uri.as_ref().map(Url::as_str),
            Some("https://app.example.com/logo.png")
        );
    }

    #[test]
    fn dpop_bound_access_tokens_is_read_and_always_echoed() {
        let m =
            ok(json!({"grant_types": ["client_credentials"], "dpop_bound_access_tokens": true}));
        assert!(m.dpop_bound_access_tokens);
        let m = ok(json!({"grant_types": ["client_credentials"]}));
        assert_eq!(
            serde_json::to_value(&m).unwrap()["dpop_bound_access_tokens"],
            json!(false)
        );
    }

    #[test]
    fn full_metadata_round_trips_through_serde_json_with_rfc_7591_names() {
        let m = ok(json!({
            "redirect_uris": ["https://app.example.com/cb", "com.example.app:/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
            "client_name": "Agent",
            "client_uri": "https://app.example.com/",
            "logo_uri": "https://app.example.com/logo.png",
            "tos_uri": "https://app.example.com/tos",
            "policy_uri": "https://app.example.com/privacy",
            "contacts": ["ops@example.com"],
            "scope": "read write",
            "jwks_uri": "https://app.example.com/jwks.json",
            "software_id": "agent",
            "software_version": "1.0",
            "dpop_bound_access_tokens": true
        }));
        let value = serde_json::to_value(&m).unwrap();
        assert_eq!(
            value["token_endpoint_auth_method"],
            json!("private_key_jwt")
        );
        assert_eq!(
            value["grant_types"],
            json!([
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ])
        );
        assert_eq!(value["response_types"], json!(["code"]));
        assert_eq!(
            value["jwks_uri"],
            json!("https://app.example.com/jwks.json")
        );
        assert!(value.get("jwks").is_none());
        let back: ClientMetadata = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(back, m);
        // The echo is itself valid metadata that validates to the same value.
        assert_eq!(validate(value.as_object().unwrap()).unwrap(), m);
    }

    #[test]
    fn supported_name_lists_match_the_enums() {
        let methods: Vec<&str> = TokenEndpointAuthMethod::ALL
            .iter()
            .map(|m| m.as_str())
            .collect();
        assert_eq!(methods, SUPPORTED_AUTH_METHODS);
        let grants: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
        assert_eq!(grants, SUPPORTED_GRANT_TYPES);
        for g in GrantType::ALL {
            assert_eq!(serde_json::to_value(g).unwrap(), json!(g.as_str()));
        }
        for m in TokenEndpointAuthMethod::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.as_str()));
        }
        assert_eq!(ResponseType::Code.as_str(), SUPPORTED_RESPONSE_TYPES[0]);
    }

    #[test]
    fn metadata_errors_display_code_and_description() {
        let e = err(json!({"grant_types": ["client_credentials"], "client_name": 5}));
        assert_eq!(
            e.to_string(),
            "invalid_client_metadata: client_name must be a string"
        );
        assert_eq!(
            MetadataErrorCode::InvalidRedirectUri.as_str(),
            "invalid_redirect_uri"
        );
    }
}
