//! OpenID Connect login (Google and any other provider, by issuer URL): discovery, the
//! authorization code flow with `state`, `nonce` and PKCE (S256), ID token validation by the
//! `openidconnect` crate, and a verified e-mail address required.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse as _,
};

use crate::config::{ProviderConfig, ProviderKind};
use crate::oauth::ids::OwnerId;
use crate::upstream::{LoginStart, UpstreamError, VerifiedIdentity};

fn unavailable(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Unavailable(e.to_string())
}

async fn metadata(
    provider: &ProviderConfig,
    http: &reqwest::Client,
) -> Result<CoreProviderMetadata, UpstreamError> {
    let issuer = provider
        .issuer
        .as_deref()
        .ok_or_else(|| unavailable("provider has no issuer"))?;
    let issuer = IssuerUrl::new(issuer.to_owned()).map_err(unavailable)?;
    CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(unavailable)
}

/// A client built from the provider's discovery document: authorization endpoint set,
/// token and UserInfo endpoints as the provider advertises them.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Discovers the provider and configures this server as its client.
async fn client(
    provider: &ProviderConfig,
    http: &reqwest::Client,
    redirect_uri: &str,
) -> Result<DiscoveredClient, UpstreamError> {
    let meta = metadata(provider, http).await?;
    Ok(CoreClient::from_provider_metadata(
        meta,
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(
            provider.client_secret.expose().to_owned(),
        )),
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(unavailable)?))
}

/// Starts a login: discovers the provider and builds the authorization URL.
pub async fn start(
    provider: &ProviderConfig,
    http: &reqwest::Client,
    redirect_uri: &str,
) -> Result<LoginStart, UpstreamError> {
    let client = client(provider, http, redirect_uri).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    Ok(LoginStart {
        url: url.to_string(),
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    })
}

/// Completes a login: exchanges the code, validates the ID token (signature, issuer,
/// audience, expiry, nonce) and requires a verified e-mail address.
pub async fn complete(
    provider: &ProviderConfig,
    http: &reqwest::Client,
    redirect_uri: &str,
    code: &str,
    nonce: &str,
    pkce_verifier: &str,
) -> Result<VerifiedIdentity, UpstreamError> {
    let client = client(provider, http, redirect_uri).await?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(unavailable)?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| UpstreamError::Rejected(e.to_string()))?;
    let id_token = token
        .id_token()
        .ok_or_else(|| UpstreamError::Rejected("no ID token in the token response".into()))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
        .map_err(|e| UpstreamError::Rejected(e.to_string()))?;
    let sub = claims.subject().as_str();
    let mut email = match (claims.email(), claims.email_verified()) {
        (Some(e), Some(true)) => Some(e.as_str().to_owned()),
        _ => None,
    };
    let mut name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned());
    // OpenID Connect Core §5.4: with the code flow a provider may release `email` only at
    // the UserInfo endpoint. Ask it, requiring the same subject as the ID token.
    if email.is_none() {
        let info: openidconnect::core::CoreUserInfoClaims = client
            .user_info(token.access_token().clone(), Some(claims.subject().clone()))
            .map_err(|_| UpstreamError::EmailNotVerified)?
            .request_async(http)
            .await
            .map_err(|e| UpstreamError::Rejected(e.to_string()))?;
        if let (Some(e), Some(true)) = (info.email(), info.email_verified()) {
            email = Some(e.as_str().to_owned());
        }
        if name.is_none() {
            name = info
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned());
        }
    }
    let email = email.ok_or(UpstreamError::EmailNotVerified)?;
    let owner_id = match provider.kind {
        ProviderKind::Google => format!("google:{sub}"),
        _ => format!("oidc:{}#{sub}", claims.issuer().as_str()),
    };
    let owner_id = OwnerId::parse(&owner_id)
        .map_err(|_| UpstreamError::Rejected("the provider's subject is not a usable id".into()))?;
    Ok(VerifiedIdentity {
        owner_id,
        email,
        name,
    })
}
