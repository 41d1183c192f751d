//! Upstream identity providers for owner login: any OpenID Connect provider (Google is one),
//! and GitHub (OAuth 2.0 plus its REST API). Each yields a [`VerifiedIdentity`] whose e-mail
//! address the provider has verified, or an error; nothing else logs an owner in.
//!
//! [`start`] and [`complete`] are the entry pair: they pick the flow by the provider's kind.
//! Outbound requests never follow redirects.

pub mod github;
pub mod oidc;

use crate::config::{ProviderConfig, ProviderKind};

/// What the login start hands the browser and what must be kept for the callback.
#[derive(Debug)]
pub struct LoginStart {
    /// Where to send the browser.
    pub url: String,
    /// The `state` value (kept hashed, single use).
    pub state: String,
    /// The `nonce` expected in the ID token (empty for GitHub, which issues none).
    pub nonce: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
}

/// Starts a login at `provider`: a fresh `state`, `nonce` (OpenID only) and PKCE pair, and
/// the authorization URL that carries them. OpenID providers are discovered first, through
/// `http` (from [`http_client`]); GitHub needs no request.
pub async fn start(
    provider: &ProviderConfig,
    http: &reqwest::Client,
    redirect_uri: &str,
) -> Result<LoginStart, UpstreamError> {
    match provider.kind {
        ProviderKind::Github => Ok(github::start(provider, redirect_uri)),
        ProviderKind::Oidc | ProviderKind::Google => {
            oidc::start(provider, http, redirect_uri).await
        }
    }
}

/// Completes a login at `provider` with the `code` from the callback and what [`start`]
/// kept (`nonce`, ignored for GitHub, and `pkce_verifier`); yields the owner only with an
/// e-mail address the provider has verified.
pub async fn complete(
    provider: &ProviderConfig,
    http: &reqwest::Client,
    redirect_uri: &str,
    code: &str,
    nonce: &str,
    pkce_verifier: &str,
) -> Result<VerifiedIdentity, UpstreamError> {
    match provider.kind {
        ProviderKind::Github => {
            github::complete(provider, http, redirect_uri, code, pkce_verifier).await
        }
        ProviderKind::Oidc | ProviderKind::Google => {
            oidc::complete(provider, http, redirect_uri, code, nonce, pkce_verifier).await
        }
    }
}

/// An owner as the provider vouches for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// Stable owner id: `github:<numeric id>`, `google:<sub>` or `oidc:<issuer>#<sub>`.
    pub owner_id: crate::oauth::ids::OwnerId,
    /// Verified e-mail address.
    pub email: String,
    /// Display name, if the provider gives one.
    pub name: Option<String>,
}

/// Why an upstream login failed. Descriptions are safe to show the person logging in.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider could not be reached or answered badly.
    #[error("the identity provider could not be reached or gave an unusable answer")]
    Unavailable(String),
    /// The provider refused the code or the token did not verify.
    #[error("the identity provider did not confirm this login")]
    Rejected(String),
    /// The account has no verified e-mail address.
    #[error("your account at the identity provider has no verified e-mail address")]
    EmailNotVerified,
}

impl UpstreamError {
    /// Audit reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "upstream_unavailable",
            Self::Rejected(_) => "upstream_rejected",
            Self::EmailNotVerified => "email_not_verified",
        }
    }
}

/// An HTTP client for provider calls: no redirects, no proxy from the environment
/// (`HTTPS_PROXY` and the like), bounded time.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("patron/", env!("CARGO_PKG_VERSION")))
        .build()?)
}
