//! GitHub login (`patron::upstream::github`) against a stand-in for GitHub's OAuth and REST
//! endpoints (`tests/support/github_standin.py`, run with `python3`).

use std::path::PathBuf;

use base64::Engine as _;
use patron::config::{Config, ProviderConfig, ProviderKind};
use patron::upstream::{UpstreamError, VerifiedIdentity, github};
use sha2::{Digest, Sha256};

use crate::helpers::{GithubStandIn, runtime};

const REDIRECT_URI: &str = "http://127.0.0.1:1/cb";

/// A GitHub provider with every URL under `base`, as `patron serve` would load it from its
/// configuration file.
fn provider_at(base: &str) -> ProviderConfig {
    let dir = tempfile::tempdir().expect("temp dir");
    let file: PathBuf = dir.path().join("patron.toml");
    std::fs::write(
        &file,
        format!(
            "[[console.providers]]\nkind = \"github\"\nclient_id = \"test-client\"\n\
             client_secret = \"test-secret\"\n\
             authorize_url = \"{base}/login/oauth/authorize\"\n\
             token_url = \"{base}/login/oauth/access_token\"\n\
             api_url = \"{base}\"\n"
        ),
    )
    .expect("write config");
    let config = Config::load(Some(&file)).expect("config with a github provider loads");
    let provider = config
        .console
        .providers
        .into_iter()
        .next()
        .expect("one provider");
    assert_eq!(provider.kind, ProviderKind::Github);
    provider
}

/// A PKCE pair: (verifier, S256 challenge).
fn pkce() -> (String, String) {
    let verifier =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Plays the browser: follows `authorize_url` for `user` up to the redirect back to Patron,
/// checks `state`, and returns the code.
fn authorize(
    rt: &tokio::runtime::Runtime,
    provider: &ProviderConfig,
    user: &str,
    challenge: &str,
) -> String {
    let state = format!("st-{}", super::helpers::unique());
    let url = github::authorize_url(provider, REDIRECT_URI, &state, challenge);
    let url = format!("{url}&login_hint={user}");
    let http = patron::upstream::http_client().expect("http client");
    let response = rt
        .block_on(async { http.get(&url).send().await })
        .expect("the stand-in answers the authorize request");
    assert_eq!(response.status().as_u16(), 302, "authorize redirects back");
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("a Location header")
        .to_str()
        .expect("ASCII Location");
    let back = url::Url::parse(location).expect("Location is a URL");
    assert!(
        location.starts_with(&format!("{REDIRECT_URI}?")),
        "redirected to our redirect_uri: {location}"
    );
    let param = |k: &str| {
        back.query_pairs()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(
        param("state").as_deref(),
        Some(state.as_str()),
        "state round-trips"
    );
    param("code").expect("a code")
}

fn complete(
    rt: &tokio::runtime::Runtime,
    provider: &ProviderConfig,
    code: &str,
    verifier: &str,
) -> Result<VerifiedIdentity, UpstreamError> {
    let http = patron::upstream::http_client().expect("http client");
    rt.block_on(github::complete(
        provider,
        &http,
        REDIRECT_URI,
        code,
        verifier,
    ))
}

#[test]
fn a_github_user_with_a_verified_primary_address_logs_in() {
    let standin = GithubStandIn::start();
    let provider = provider_at(&standin.url(""));
    let rt = runtime();
    let (verifier, challenge) = pkce();
    let code = authorize(&rt, &provider, "octocat", &challenge);

    let identity = complete(&rt, &provider, &code, &verifier).expect("login succeeds");

    // Not github.com: the host is part of the id, so GitHub user 583231 of this host is not
    // github.com's user 583231 (nor an admin named by that id).
    assert_eq!(identity.owner_id, standin.owner_id(583231).as_str());
    assert_ne!(identity.owner_id, "github:583231");
    assert_eq!(identity.email, "octocat@example.com");
    assert_eq!(identity.name.as_deref(), Some("The Octocat"));
}

#[test]
fn a_github_user_whose_primary_address_is_unverified_is_refused() {
    let standin = GithubStandIn::start();
    let provider = provider_at(&standin.url(""));
    let rt = runtime();
    let (verifier, challenge) = pkce();
    let code = authorize(&rt, &provider, "unverified", &challenge);

    let result = complete(&rt, &provider, &code, &verifier);

    // A verified secondary address does not stand in for the primary one.
    assert!(
        matches!(result, Err(UpstreamError::EmailNotVerified)),
        "{result:?}"
    );
    assert_eq!(result.expect_err("refused").reason(), "email_not_verified");
}

#[test]
fn a_github_code_cannot_be_redeemed_twice() {
    let standin = GithubStandIn::start();
    let provider = provider_at(&standin.url(""));
    let rt = runtime();
    let (verifier, challenge) = pkce();
    let code = authorize(&rt, &provider, "octocat", &challenge);
    complete(&rt, &provider, &code, &verifier).expect("the first redemption succeeds");

    let again = complete(&rt, &provider, &code, &verifier);

    assert!(
        matches!(again, Err(UpstreamError::Rejected(_))),
        "{again:?}"
    );
    assert_eq!(again.expect_err("refused").reason(), "upstream_rejected");
}

#[test]
fn a_github_code_with_the_wrong_pkce_verifier_is_rejected() {
    let standin = GithubStandIn::start();
    let provider = provider_at(&standin.url(""));
    let rt = runtime();
    let (_, challenge) = pkce();
    let (other_verifier, _) = pkce();
    let code = authorize(&rt, &provider, "octocat", &challenge);

    let result = complete(&rt, &provider, &code, &other_verifier);

    assert!(
        matches!(result, Err(UpstreamError::Rejected(_))),
        "{result:?}"
    );
}

#[test]
fn a_github_code_redeemed_under_another_client_id_is_rejected() {
    let standin = GithubStandIn::start();
    let good = provider_at(&standin.url(""));
    let rt = runtime();
    let (verifier, challenge) = pkce();
    let code = authorize(&rt, &good, "octocat", &challenge);
    let mut bad = good.clone();
    bad.client_id = "someone-else".into();

    let result = complete(&rt, &bad, &code, &verifier);

    let err = result.expect_err("refused");
    assert!(matches!(err, UpstreamError::Rejected(_)), "{err:?}");
    let detail = format!("{err:?} {err}");
    assert!(!detail.contains("test-secret"), "{detail}");
}

#[test]
fn an_unreachable_github_is_reported_as_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let provider = provider_at("http://127.0.0.1:1");
    let rt = runtime();
    let (verifier, _) = pkce();

    let result = complete(&rt, &provider, "octocat.x", &verifier);

    assert!(
        matches!(result, Err(UpstreamError::Unavailable(_))),
        "{result:?}"
    );
}
