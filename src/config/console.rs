//! The `[console]` section: sessions, admins, the development login and the upstream
//! login providers.

use std::net::SocketAddr;

use super::raw::RawConsole;
use super::{ConfigError, Mode, SecretString, positive};

/// Which kind of upstream identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenID Connect provider, by issuer (owner ids `oidc:<issuer>#<sub>`).
    Oidc,
    /// Google (OpenID Connect; owner ids `google:<sub>`).
    Google,
    /// GitHub (OAuth 2.0 + REST API; owner ids `github:<numeric id>` for github.com,
    /// `github:<host>:<numeric id>` for another host such as GitHub Enterprise).
    Github,
}

/// Google's OpenID issuer, the only one a provider of kind `google` may use.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// An upstream login provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Kind.
    pub kind: ProviderKind,
    /// URL-safe name used in paths (`/console/login/<name>`).
    pub name: String,
    /// OpenID issuer (OIDC and Google).
    pub issuer: Option<String>,
    /// OAuth client id at the provider.
    pub client_id: String,
    /// OAuth client secret at the provider.
    pub client_secret: SecretString,
    /// GitHub authorize URL (default `https://github.com/login/oauth/authorize`).
    pub authorize_url: String,
    /// GitHub token URL (default `https://github.com/login/oauth/access_token`).
    pub token_url: String,
    /// GitHub API base URL (default `https://api.github.com`).
    pub api_url: String,
}

/// Console settings.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Development login (type a name): development mode on loopback only, and there on
    /// unless switched off.
    pub development_login: bool,
    /// Idle session timeout.
    pub session_idle_secs: i64,
    /// Absolute session lifetime.
    pub session_max_secs: i64,
    /// Owner ids with admin rights.
    pub admins: Vec<String>,
    /// Upstream login providers.
    pub providers: Vec<ProviderConfig>,
}

/// Validates `[console]`: the development login only on a loopback listen address (and,
/// unless set, on by default exactly there in development mode), each provider of a known
/// kind with a unique URL-safe name and its credentials, positive session lifetimes.
/// (Production mode's refusal of an explicitly enabled development login is checked with
/// the other production rules.)
pub(super) fn validate_console(
    raw: &RawConsole,
    listen: SocketAddr,
    mode: Mode,
) -> Result<ConsoleConfig, ConfigError> {
    let loopback = listen.ip().is_loopback();
    if raw.development_login == Some(true) && !loopback {
        return Err(ConfigError::new(
            "console.development_login",
            "the development login is only available on a loopback listen address",
        ));
    }
    // A newcomer's first run (development mode, loopback) can claim an agent in the
    // browser without first creating an upstream OAuth app.
    let development_login = raw
        .development_login
        .unwrap_or(mode == Mode::Development && loopback);
    let mut providers = Vec::new();
    for (i, p) in raw.providers.iter().enumerate() {
        let setting = format!("console.providers[{i}]");
        let kind = match p.kind.as_str() {
            "oidc" => ProviderKind::Oidc,
            "google" => ProviderKind::Google,
            "github" => ProviderKind::Github,
            other => {
                return Err(ConfigError::new(
                    &setting,
                    format!("kind `{other}` is not one of oidc, google, github"),
                ));
            }
        };
        let issuer = match (kind, &p.issuer) {
            (ProviderKind::Google, None) => Some(GOOGLE_ISSUER.to_owned()),
            // Owner ids `google:<sub>` are only unique for Google's own issuer.
            (ProviderKind::Google, Some(i)) if i.trim_end_matches('/') != GOOGLE_ISSUER => {
                return Err(ConfigError::new(
                    &setting,
                    format!(
                        "kind `google` uses Google's issuer {GOOGLE_ISSUER}; for issuer {i} use kind `oidc` (owner ids oidc:<issuer>#<sub>)"
                    ),
                ));
            }
            (ProviderKind::Google, Some(_)) => Some(GOOGLE_ISSUER.to_owned()),
            (ProviderKind::Oidc, None) => {
                return Err(ConfigError::new(
                    &setting,
                    "an oidc provider needs `issuer`",
                ));
            }
            (_, i) => i.clone(),
        };
        let name = p.name.clone().unwrap_or_else(|| p.kind.clone());
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || providers.iter().any(|q: &ProviderConfig| q.name == name)
        {
            return Err(ConfigError::new(
                &setting,
                "name must be unique and use only letters, digits, - and _",
            ));
        }
        if p.client_id.is_empty() || p.client_secret.is_empty() {
            return Err(ConfigError::new(
                &setting,
                "client_id and client_secret are required",
            ));
        }
        let api_url = p
            .api_url
            .clone()
            .unwrap_or_else(|| "https://api.github.com".into());
        if kind == ProviderKind::Github
            && url::Url::parse(&api_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .is_none()
        {
            return Err(ConfigError::new(
                &setting,
                "api_url must be an absolute URL with a host (its host goes into owner ids)",
            ));
        }
        providers.push(ProviderConfig {
            kind,
            name,
            issuer,
            client_id: p.client_id.clone(),
            client_secret: SecretString(p.client_secret.clone()),
            authorize_url: p
                .authorize_url
                .clone()
                .unwrap_or_else(|| "https://github.com/login/oauth/authorize".into()),
            token_url: p
                .token_url
                .clone()
                .unwrap_or_else(|| "https://github.com/login/oauth/access_token".into()),
            api_url,
        });
    }
    Ok(ConsoleConfig {
        development_login,
        session_idle_secs: positive("console.session_idle_secs", raw.session_idle_secs)?,
        session_max_secs: positive("console.session_max_secs", raw.session_max_secs)?,
        admins: raw.admins.clone(),
        providers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::RawProvider;

    fn with_provider(kind: &str, issuer: Option<&str>) -> Result<ConsoleConfig, ConfigError> {
        let raw = RawConsole {
            development_login: Some(false),
            session_idle_secs: 60,
            session_max_secs: 600,
            admins: Vec::new(),
            providers: vec![RawProvider {
                kind: kind.into(),
                name: None,
                issuer: issuer.map(str::to_owned),
                client_id: "id".into(),
                client_secret: "secret".into(),
                authorize_url: None,
                token_url: None,
                api_url: None,
            }],
        };
        validate_console(&raw, "127.0.0.1:8080".parse().unwrap(), Mode::Development)
    }

    #[test]
    fn a_google_provider_uses_googles_issuer_only() {
        for ok in [
            None,
            Some(GOOGLE_ISSUER),
            Some("https://accounts.google.com/"),
        ] {
            let c = with_provider("google", ok).unwrap();
            assert_eq!(c.providers[0].issuer.as_deref(), Some(GOOGLE_ISSUER));
        }
        let e = with_provider("google", Some("https://idp.example")).unwrap_err();
        assert_eq!(e.setting, "console.providers[0]");
        assert!(e.to_string().contains("use kind `oidc`"), "{e}");
        assert!(with_provider("oidc", Some("https://idp.example")).is_ok());
    }
}
