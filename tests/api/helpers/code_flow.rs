//! The authorization code flow as a client and a person see it: a registered code-flow
//! client, PKCE pairs, the authorization URL, the consent form, and the token requests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::console::{Browser, Page};
use super::{TestServer, form};

/// The redirect URI code-flow test clients register.
pub const REDIRECT: &str = "http://127.0.0.1/callback";

/// A PKCE verifier and its S256 challenge.
pub struct Pkce {
    /// `code_verifier`.
    pub verifier: String,
    /// `code_challenge`.
    pub challenge: String,
}

impl Pkce {
    /// A fresh pair.
    pub fn new() -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(patron::crypto::random_bytes::<32>());
        let challenge = URL_SAFE_NO_PAD.encode(patron::crypto::sha256(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// A client registered for the code flow.
pub struct CodeClient {
    /// Its `client_id`.
    pub client_id: String,
    /// Its secret, for a confidential client.
    pub secret: Option<String>,
}

impl CodeClient {
    /// Registers a public client (`none`) for the code and refresh grants.
    pub fn public(s: &TestServer) -> Self {
        Self::with(s, json!({"token_endpoint_auth_method": "none"}))
    }

    /// Registers a code-flow client with `extra` metadata over the defaults.
    pub fn with(s: &TestServer, extra: Value) -> Self {
        let mut body = json!({
            "client_name": "Code flow app",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        });
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let reg = s.register_ok(&body);
        Self {
            client_id: reg["client_id"].as_str().expect("client_id").to_owned(),
            secret: reg["client_secret"].as_str().map(str::to_owned),
        }
    }

    /// The `/authorize` path for `resource` with PKCE `pkce`, state `xyz`, and `extra`
    /// parameters (an empty value drops a default).
    pub fn authorize_path(
        &self,
        resources: &[&str],
        pkce: &Pkce,
        extra: &[(&str, &str)],
    ) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", REDIRECT),
            ("state", "xyz"),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            pairs.retain(|(p, _)| p != k);
            if !v.is_empty() {
                pairs.push((k, v));
            }
        }
        for r in resources {
            pairs.push(("resource", r));
        }
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("/authorize?{q}")
    }

    /// Sends `request` with this client's authentication (its secret by Basic, or its
    /// `client_id` in the body for a public client).
    pub fn token(
        &self,
        s: &TestServer,
        extra: &[(&str, &str)],
        dpop: Option<&str>,
    ) -> reqwest::blocking::Response {
        let mut f = form(extra);
        let mut req = s.http.post(s.url("/token"));
        match &self.secret {
            Some(secret) => req = req.basic_auth(&self.client_id, Some(secret)),
            None => f.push(("client_id".into(), self.client_id.clone())),
        }
        if let Some(p) = dpop {
            req = req.header("DPoP", p);
        }
        req.form(&f).send().expect("POST /token")
    }

    /// `POST /token` exchanging `code` with `verifier` (none: no `code_verifier`) and
    /// redirect URI [`REDIRECT`], plus `extra` (which may replace `redirect_uri`).
    pub fn exchange(
        &self,
        s: &TestServer,
        code: &str,
        verifier: Option<&str>,
        extra: &[(&str, &str)],
        dpop: Option<&str>,
    ) -> reqwest::blocking::Response {
        let mut f = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = verifier {
            f.push(("code_verifier", v));
        }
        f.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        f.extend_from_slice(extra);
        self.token(s, &f, dpop)
    }

    /// Exchanges `code` with `verifier` and returns the token response (asserting 200).
    pub fn exchange_ok(
        &self,
        s: &TestServer,
        code: &str,
        verifier: &str,
        extra: &[(&str, &str)],
    ) -> Value {
        ok_json(self.exchange(s, code, Some(verifier), extra, None))
    }

    /// `POST /token` refreshing with `refresh_token`, plus `extra` (`scope`, `resource`).
    pub fn refresh(
        &self,
        s: &TestServer,
        refresh_token: &str,
        extra: &[(&str, &str)],
        dpop: Option<&str>,
    ) -> reqwest::blocking::Response {
        let mut f = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        f.extend_from_slice(extra);
        self.token(s, &f, dpop)
    }

    /// Refreshes with `refresh_token` (asserting 200).
    pub fn refresh_ok(&self, s: &TestServer, refresh_token: &str, dpop: Option<&str>) -> Value {
        ok_json(self.refresh(s, refresh_token, &[], dpop))
    }
}

/// The JSON of a 200 answer.
pub fn ok_json(r: reqwest::blocking::Response) -> Value {
    let status = r.status().as_u16();
    let body: Value = r.json().expect("JSON");
    assert_eq!(status, 200, "{body}");
    body
}

/// The query parameters of a redirect's `Location`.
pub fn redirect_params(page: &Page) -> std::collections::HashMap<String, String> {
    let to = page
        .location
        .as_deref()
        .unwrap_or_else(|| panic!("no redirect: {} {}", page.status, page.body));
    url::Url::parse(to)
        .expect("absolute Location")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl Browser<'_> {
    /// Opens `authorize_path`, expects the consent page, and submits it with `action`
    /// (`approve` or `deny`) and the checked `grants`; returns the answer (a redirect).
    pub fn consent(&self, authorize_path: &str, action: &str, grants: &[&str]) -> Page {
        let page = self.get(authorize_path).expect(200);
        assert!(
            page.contains("consent-form"),
            "not the consent page: {}",
            page.body
        );
        let csrf = page.csrf();
        let mut f = vec![("csrf", csrf.as_str()), ("action", action)];
        for g in grants {
            f.push(("grant", g));
        }
        self.post(authorize_path, &f)
    }

    /// Approves `authorize_path` for `grants` and returns the code (asserting the redirect
    /// carries `state` and `iss`).
    pub fn authorize_code(&self, authorize_path: &str, grants: &[&str]) -> String {
        let page = self.consent(authorize_path, "approve", grants);
        assert_eq!(page.status, 302, "{}", page.body);
        let q = redirect_params(&page);
        assert_eq!(q.get("state").map(String::as_str), Some("xyz"), "{q:?}");
        assert_eq!(q.get("iss"), Some(&self.s.base), "{q:?}");
        q.get("code")
            .unwrap_or_else(|| panic!("no code: {q:?}"))
            .clone()
    }
}
