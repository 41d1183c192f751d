//! GitHub login: the OAuth 2.0 web flow (with PKCE; the code exchange by the `oauth2`
//! crate), then the REST API for the account's numeric id and its primary, verified e-mail
//! address.
//!
//! Owner ids are `github:<numeric id>` for github.com and `github:<host>:<numeric id>` for
//! any other GitHub host (GitHub Enterprise; the host of `api_url`, with its port when not
//! the default): the id never changes, unlike the login name, and is unique per host only.
//! Access tokens and e-mail addresses are never logged, and never put into error details.

use oauth2::basic::{BasicClient, BasicTokenType};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, TokenResponse as _,
    TokenUrl,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::ProviderConfig;
use crate::oauth::ids::OwnerId;
use crate::upstream::{LoginStart, UpstreamError, VerifiedIdentity};

/// Scopes asked for: the profile (numeric id, name) and the e-mail addresses.
const SCOPE: &str = "read:user user:email";

/// Largest response body accepted from GitHub.
const MAX_BODY: usize = 256 * 1024;

/// Starts a login: a fresh `state` and PKCE pair (S256), and the authorize URL that carries
/// them. GitHub's web flow has no `nonce`; it is left empty.
pub fn start(provider: &ProviderConfig, redirect_uri: &str) -> LoginStart {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = CsrfToken::new_random_len(32);
    LoginStart {
        url: authorize_url(provider, redirect_uri, state.secret(), challenge.as_str()),
        state: state.secret().clone(),
        nonce: String::new(),
        pkce_verifier: verifier.secret().clone(),
    }
}

/// The URL to send the browser to: GitHub's authorize endpoint with `client_id`,
/// `redirect_uri`, `scope`, `state` and the PKCE `code_challenge` (method `S256`).
///
/// Parameters already present in the configured URL are kept; all values are
/// query-encoded.
pub fn authorize_url(
    provider: &ProviderConfig,
    redirect_uri: &str,
    state: &str,
    pkce_challenge: &str,
) -> String {
    let params = [
        ("client_id", provider.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("scope", SCOPE),
        ("state", state),
        ("code_challenge", pkce_challenge),
        ("code_challenge_method", "S256"),
    ];
    match url::Url::parse(&provider.authorize_url) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.into()
        }
        // Not a URL: still encode the parameters, and let the browser report the bad base.
        Err(_) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish();
            let sep = if provider.authorize_url.contains('?') {
                '&'
            } else {
                '?'
            };
            format!("{}{sep}{query}", provider.authorize_url)
        }
    }
}

/// Completes a GitHub login: exchanges `code` (with the PKCE verifier) for an access token,
/// then reads the account (`/user`) and its e-mail addresses (`/user/emails`).
///
/// The identity's e-mail address is the one GitHub marks both primary and verified; without
/// one the login fails with [`UpstreamError::EmailNotVerified`]. A refused code, verifier or
/// token is [`UpstreamError::Rejected`]; an unreachable or garbled GitHub is
/// [`UpstreamError::Unavailable`].
///
/// `http` should come from [`crate::upstream::http_client`] (no redirects, bounded time).
pub async fn complete(
    provider: &ProviderConfig,
    http: &reqwest::Client,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
) -> Result<VerifiedIdentity, UpstreamError> {
    let token = exchange_code(provider, http, redirect_uri, code, pkce_verifier).await?;
    let base = provider.api_url.trim_end_matches('/');
    let user: User = api_get(http, &format!("{base}/user"), "GET /user", &token).await?;
    let emails: Vec<Email> = api_get(
        http,
        &format!("{base}/user/emails"),
        "GET /user/emails",
        &token,
    )
    .await?;
    let email = emails
        .into_iter()
        .find(|e| e.primary && e.verified && !e.email.is_empty())
        .map(|e| e.email)
        .ok_or(UpstreamError::EmailNotVerified)?;
    let name = user
        .name
        .filter(|n| !n.trim().is_empty())
        .or(user.login.filter(|l| !l.is_empty()));
    Ok(VerifiedIdentity {
        owner_id: owner_id(&provider.api_url, user.id)
            .ok_or_else(|| UpstreamError::Rejected("GitHub sent an unusable user id".into()))?,
        email,
        name,
    })
}

/// The owner id of GitHub user `id` at the API `api_url`: `github:<id>` for github.com,
/// `github:<host>:<id>` for any other host (GitHub Enterprise), so that user ids of two
/// hosts never collide.
/// `None` when `api_url` has no host (configuration refuses such a URL).
fn owner_id(api_url: &str, id: u64) -> Option<OwnerId> {
    let url = url::Url::parse(api_url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let id = match (host.as_str(), url.port()) {
        (GITHUB_API_HOST, None) => format!("github:{id}"),
        (_, None) => format!("github:{host}:{id}"),
        (_, Some(port)) => format!("github:{host}:{port}:{id}"),
    };
    OwnerId::parse(&id).ok()
}

/// The API host of github.com, whose owner ids carry no host.
const GITHUB_API_HOST: &str = "api.github.com";

/// An OAuth error answer, which GitHub sends with status 200.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

/// `GET /user`, the fields used.
#[derive(Deserialize)]
struct User {
    id: u64,
    login: Option<String>,
    name: Option<String>,
}

/// One entry of `GET /user/emails`.
#[derive(Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// Redeems `code` at the token endpoint, client id and secret in the form as GitHub wants
/// them, and returns the bearer access token.
async fn exchange_code(
    provider: &ProviderConfig,
    http: &reqwest::Client,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
) -> Result<String, UpstreamError> {
    let token_url = TokenUrl::new(provider.token_url.clone()).map_err(|_| {
        UpstreamError::Unavailable("token endpoint: the configured URL is not a URL".into())
    })?;
    let redirect_url = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|_| UpstreamError::Unavailable("redirect_uri is not a URL".into()))?;
    let client = BasicClient::new(ClientId::new(provider.client_id.clone()))
        .set_client_secret(ClientSecret::new(
            provider.client_secret.expose().to_owned(),
        ))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(token_url)
        .set_redirect_uri(redirect_url);
    let send = |request: HttpRequest| send_token_request(http, request);
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(&send)
        .await
        .map_err(token_error)?;
    if *token.token_type() != BasicTokenType::Bearer {
        return Err(UpstreamError::Unavailable(format!(
            "token endpoint issued a token of type {}",
            printable(token.token_type().as_ref())
        )));
    }
    match token.access_token().secret() {
        t if t.is_empty() => Err(UpstreamError::Unavailable(
            "token endpoint answered without an access token".into(),
        )),
        t => Ok(t.clone()),
    }
}

/// Carries one token request for `oauth2` over `http`: a server error or an oversized
/// answer fails here as [`UpstreamError::Unavailable`]; everything else is `oauth2`'s to
/// read.
async fn send_token_request(
    http: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, UpstreamError> {
    const WHAT: &str = "token endpoint";
    let request = reqwest::Request::try_from(request).map_err(|e| unavailable(WHAT, &e))?;
    let response = http
        .execute(request)
        .await
        .map_err(|e| unavailable(WHAT, &e))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(UpstreamError::Unavailable(format!(
            "{WHAT} answered {status}"
        )));
    }
    let headers = response.headers().clone();
    let mut answer = HttpResponse::new(read_body(response, WHAT).await?);
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    Ok(answer)
}

/// Sorts a failed exchange: an OAuth error from GitHub (in an error status, or in a 200
/// answer that therefore holds no token) is [`UpstreamError::Rejected`]; anything else
/// unusable is [`UpstreamError::Unavailable`].
fn token_error(
    error: RequestTokenError<UpstreamError, oauth2::basic::BasicErrorResponse>,
) -> UpstreamError {
    let refused = |code: &str| {
        UpstreamError::Rejected(format!(
            "token endpoint refused the code: {}",
            printable(code)
        ))
    };
    match error {
        RequestTokenError::Request(e) => e,
        RequestTokenError::ServerResponse(e) => refused(e.error().as_ref()),
        RequestTokenError::Parse(e, body) => match serde_json::from_slice::<ErrorAnswer>(&body) {
            Ok(answer) => refused(&answer.error),
            Err(_) => {
                UpstreamError::Unavailable(format!("token endpoint answer is not usable: {e}"))
            }
        },
        RequestTokenError::Other(m) => UpstreamError::Unavailable(format!("token endpoint: {m}")),
    }
}

async fn api_get<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    token: &str,
) -> Result<T, UpstreamError> {
    let response = http
        .get(url)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .header(
            reqwest::header::USER_AGENT,
            concat!("patron/", env!("CARGO_PKG_VERSION")),
        )
        .send()
        .await
        .map_err(|e| unavailable(what, &e))?;
    let status = response.status();
    match status.as_u16() {
        200..=299 => read_json(response, what).await,
        // The token was not accepted, or lacks the scope the endpoint needs.
        401 | 403 | 404 => Err(UpstreamError::Rejected(format!("{what} answered {status}"))),
        _ => Err(UpstreamError::Unavailable(format!(
            "{what} answered {status}"
        ))),
    }
}

/// Reads a bounded JSON body.
async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, UpstreamError> {
    let body = read_body(response, what).await?;
    // serde_json's message names the position and expected type, never the input.
    serde_json::from_slice(&body)
        .map_err(|e| UpstreamError::Unavailable(format!("{what} answer is not usable: {e}")))
}

/// Reads a body of at most [`MAX_BODY`] bytes.
async fn read_body(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, UpstreamError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(UpstreamError::Unavailable(format!(
            "{what} answer is too large"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(what, &e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(UpstreamError::Unavailable(format!(
                "{what} answer is too large"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error, described without its URL (which carries nothing secret, but is noise).
fn unavailable(what: &str, error: &reqwest::Error) -> UpstreamError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    UpstreamError::Unavailable(format!("{what}: request {kind}"))
}

/// A provider-chosen string made safe for logs: short, printable ASCII only.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    /// A provider as `Config::load` builds it from `entry` (a `[[console.providers]]` body).
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail closure returns figment's own (large) error type"
    )]
    fn provider(entry: &str) -> ProviderConfig {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("patron.toml", &format!("[[console.providers]]\n{entry}\n"))?;
            let config = crate::config::Config::load(Some(Path::new("patron.toml")))
                .map_err(|e| e.to_string())?;
            out = config.console.providers.into_iter().next();
            Ok(())
        });
        out.expect("one provider configured")
    }

    fn github() -> ProviderConfig {
        provider(
            "kind = \"github\"\nclient_id = \"Iv1.abc&def\"\nclient_secret = \"s3cret\"\n\
             authorize_url = \"https://gh.example/login/oauth/authorize\"",
        )
    }

    fn query(url: &str) -> (url::Url, HashMap<String, String>) {
        let url = url::Url::parse(url).expect("authorize_url gives a URL");
        let pairs = url.query_pairs().into_owned().collect();
        (url, pairs)
    }

    #[test]
    fn the_authorize_url_carries_every_parameter_of_the_web_flow() {
        let p = github();
        let (url, q) = query(&authorize_url(
            &p,
            "https://patron.example/console/callback/github",
            "st4te",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ));
        assert_eq!(
            (url.scheme(), url.host_str(), url.path()),
            ("https", Some("gh.example"), "/login/oauth/authorize")
        );
        assert_eq!(q["client_id"], "Iv1.abc&def");
        assert_eq!(
            q["redirect_uri"],
            "https://patron.example/console/callback/github"
        );
        assert_eq!(q["scope"], "read:user user:email");
        assert_eq!(q["state"], "st4te");
        assert_eq!(
            q["code_challenge"],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(!q.contains_key("client_secret"));
        assert!(
            !url.as_str().contains("s3cret"),
            "the secret stays out of the URL"
        );
    }

    #[test]
    fn the_authorize_url_encodes_reserved_characters_in_values() {
        let p = github();
        let raw = authorize_url(
            &p,
            "https://patron.example/cb?x=1&y=2#frag",
            "a b&c=d#e",
            "x",
        );
        let encoded = raw.split_once('?').expect("a query").1;
        assert!(!raw.contains('#'), "no raw fragment: {raw}");
        assert!(encoded.contains("client_id=Iv1.abc%26def"), "{raw}");
        assert!(encoded.contains("state=a+b%26c%3Dd%23e"), "{raw}");
        assert!(
            encoded
                .contains("redirect_uri=https%3A%2F%2Fpatron.example%2Fcb%3Fx%3D1%26y%3D2%23frag"),
            "{raw}"
        );
        assert!(encoded.contains("scope=read%3Auser+user%3Aemail"), "{raw}");
        let (_, q) = query(&raw);
        assert_eq!(q["state"], "a b&c=d#e");
        assert_eq!(q["redirect_uri"], "https://patron.example/cb?x=1&y=2#frag");
    }

    #[test]
    fn the_authorize_url_defaults_to_github_and_keeps_configured_parameters() {
        let default = provider("kind = \"github\"\nclient_id = \"c\"\nclient_secret = \"s\"");
        let (url, q) = query(&authorize_url(&default, "https://p.example/cb", "s", "c"));
        assert_eq!(
            url.as_str().split_once('?').map(|(base, _)| base),
            Some("https://github.com/login/oauth/authorize")
        );
        assert_eq!(q["client_id"], "c");

        let extra = provider(
            "kind = \"github\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
             authorize_url = \"https://gh.example/authorize?allow_signup=false\"",
        );
        let (_, q) = query(&authorize_url(&extra, "https://p.example/cb", "s", "c"));
        assert_eq!(q["allow_signup"], "false");
        assert_eq!(q["state"], "s");
    }

    #[test]
    fn a_login_starts_with_a_fresh_state_and_an_s256_pkce_pair_in_the_url() {
        use base64::Engine as _;
        let p = github();
        let first = start(&p, "https://p.example/cb");
        let second = start(&p, "https://p.example/cb");
        let (_, q) = query(&first.url);
        assert_eq!(q["state"], first.state);
        assert_eq!(first.state.len(), 43, "32 random bytes, base64url");
        assert_ne!(first.state, second.state);
        assert_ne!(first.pkce_verifier, second.pkce_verifier);
        assert!(first.nonce.is_empty(), "GitHub's web flow has no nonce");
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(crate::crypto::sha256(first.pkce_verifier.as_bytes()));
        assert_eq!(q["code_challenge"], challenge);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["redirect_uri"], "https://p.example/cb");
    }

    #[test]
    fn owner_ids_carry_the_host_for_anything_but_github_com() {
        let id = |api: &str| owner_id(api, 42).map(String::from);
        assert_eq!(id("https://api.github.com").as_deref(), Some("github:42"));
        assert_eq!(id("https://API.github.com/").as_deref(), Some("github:42"));
        assert_eq!(
            id("https://ghe.example.com/api/v3").as_deref(),
            Some("github:ghe.example.com:42")
        );
        assert_eq!(
            id("http://127.0.0.1:8080").as_deref(),
            Some("github:127.0.0.1:8080:42")
        );
        assert_eq!(
            id("https://api.github.com:8443").as_deref(),
            Some("github:api.github.com:8443:42")
        );
        assert_eq!(id("not a url"), None);
    }

    #[test]
    fn provider_error_codes_are_trimmed_to_short_printable_text() {
        assert_eq!(printable("bad_verification_code"), "bad_verification_code");
        assert_eq!(printable("a\nb\u{1b}[31mc"), "ab[31mc");
        assert_eq!(printable(&"x".repeat(500)).len(), 64);
    }
}
