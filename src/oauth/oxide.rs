//! The one module that speaks oxide-auth: its authorization flow
//! (`oxide_auth::endpoint::AuthorizationFlow`) run over what the service layer loaded
//! beforehand, with Patron's rules as its primitives:
//!
//! - the **registrar** binds the client and its redirect URI (exact match, loopback ports
//!   excepted: [`RedirectUri::matches`]) and negotiates the scope against the skills the
//!   request names (`resource`, RFC 8707, which oxide-auth has no notion of: the resources
//!   are resolved before the flow and handed to the registrar);
//! - an authorization **extension** requires PKCE with `S256` ([`authorization::check_challenge`]);
//! - the **owner solicitor** asks for a login, shows the consent page, or approves from a
//!   stored consent, limited to what the person's skill policies admit;
//! - the **authorizer** mints the code; the service stores its hash after the flow.
//!
//! Around the flow: RFC 9207 `iss` is added to every redirect, and refusals that
//! oxide-auth's error types cannot name (`invalid_target`, `unauthorized_client`) or
//! describe are rewritten from the refusal Patron recorded. Codes are redeemed by Patron's
//! token service (`service::token::authorization_code`), not through oxide-auth's access
//! token flow, which knows neither `private_key_jwt`, DPoP nor resource indicators; so no
//! oxide-auth issuer is implemented.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use oxide_auth::code_grant::authorization::{
    Extension as AuthorizationExtension, Request as AuthorizationRequest,
};
use oxide_auth::endpoint::{
    AuthorizationFlow, Authorizer, Endpoint, Extension, Issuer, NormalizedParameter,
    OAuthError as OxideError, OwnerConsent, OwnerSolicitor, QueryParameter, Registrar, Scope,
    Scopes, Solicitation, Template, WebRequest, WebResponse,
};
use oxide_auth::primitives::grant::{Extensions, Grant};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, ExactUrl, PreGrant, RegisteredUrl, RegistrarError,
};
use url::Url;

use crate::oauth::authorization::{self, AuthorizedGrants};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::redirect_uri::RedirectUri;
use crate::oauth::split_token;
use crate::secret::Secret;

/// The prefix of authorization codes' ids.
pub const CODE_PREFIX: &str = "pac_";

/// The client as the flow needs it.
#[derive(Debug, Clone)]
pub struct FlowClient {
    /// `client_id`.
    pub client_id: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<RedirectUri>,
    /// Whether it registered the `authorization_code` grant.
    pub code_grant: bool,
    /// Whether it is suspended.
    pub suspended: bool,
    /// Its owner, once claimed.
    pub owner_id: Option<String>,
}

/// Who is at the browser.
#[derive(Debug, Clone)]
pub enum Person {
    /// Nobody logged in.
    Anonymous,
    /// A logged-in person.
    LoggedIn {
        /// Their owner id.
        owner_id: String,
        /// What they consented to for this client before.
        consent: Option<AuthorizedGrants>,
        /// What their skills' policies admit them to grant: audience → scopes.
        admits: HashMap<String, Vec<String>>,
    },
}

/// What the person chose on the consent page (a `POST`), or nothing yet (a `GET`).
#[derive(Debug, Clone)]
pub enum Decision {
    /// No choice made: approve from a covering consent, else ask.
    Ask,
    /// Approve these audiences (of those offered).
    Approve(Vec<String>),
    /// Deny.
    Deny,
}

/// Everything the flow decides on, loaded before it runs.
#[derive(Debug)]
pub struct Prepared {
    /// The client, if `client_id` names one.
    pub client: Option<FlowClient>,
    /// The skills the `resource` parameters name, `(audience, offered scopes)`, or why not.
    pub skills: Result<Vec<(String, String)>, OAuthError>,
    /// The person.
    pub person: Person,
    /// Their choice.
    pub decision: Decision,
}

/// A code the flow issued, for the service to store before the redirect is sent.
#[derive(Debug)]
pub struct IssuedCode {
    /// The code.
    pub code: Secret,
    /// Its id, the key it is stored under.
    pub code_id: String,
    /// SHA-256 (hex) of its secret.
    pub secret_hash: String,
    /// The client.
    pub client_id: String,
    /// The person.
    pub owner_id: String,
    /// The `redirect_uri` of the request, if it named one (the token request must repeat it).
    pub redirect_uri: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: String,
    /// What the code grants.
    pub grants: AuthorizedGrants,
    /// Set when the person approved on the consent page just now (to record and, for an
    /// unclaimed agent, to claim it with); `None` when a stored consent covered the request.
    pub approved: Option<AuthorizedGrants>,
}

/// What the person asked to approve sees.
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    /// The client.
    pub client_id: String,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// What may be granted (requested and admitted).
    pub offered: AuthorizedGrants,
    /// Requested audiences the person's policies do not admit.
    pub refused: Vec<String>,
    /// Whether this person consented to this client before.
    pub consented_before: bool,
}

/// The result of running the flow.
#[derive(Debug)]
pub enum Outcome {
    /// Send the browser back to the client: with a code, or with an error (RFC 6749
    /// §4.1.2.1); `iss` is included either way.
    Redirect {
        /// The target, parameters included.
        to: String,
        /// The code issued, when the request succeeded.
        code: Option<Box<IssuedCode>>,
        /// The refusal, when it did not.
        refusal: Option<OAuthError>,
    },
    /// The client or redirect URI cannot be trusted: show an error, never redirect.
    ErrorPage(OAuthError),
    /// Nobody is logged in: send them to the login page and back.
    Login,
    /// Ask the person.
    Consent(ConsentRequest),
}

/// Per-request state the primitives share.
#[derive(Default)]
struct Context {
    failure: Option<OAuthError>,
    challenge: Option<String>,
    requested: Option<AuthorizedGrants>,
    code_grants: Option<AuthorizedGrants>,
    approved: Option<AuthorizedGrants>,
    issued: Option<(split_token::Minted, Grant)>,
    consent: Option<ConsentRequest>,
    login: bool,
}

fn fail(kind: ErrorKind, description: impl Into<String>, reason: &'static str) -> OAuthError {
    OAuthError::new(kind, description.into(), reason)
}

struct Flow<'a> {
    prepared: &'a Prepared,
    /// Parameters given more than once (RFC 6749 §3.1: none may repeat but `resource`).
    repeated: Vec<String>,
    redirect_uri_param: Option<String>,
    issuer: &'a str,
    cx: RefCell<Context>,
}

impl Flow<'_> {
    fn record(&self, e: OAuthError) {
        let mut cx = self.cx.borrow_mut();
        if cx.failure.is_none() {
            cx.failure = Some(e);
        }
    }
}

/// The request as oxide-auth reads it: the query, repeated keys poisoned.
struct Request {
    query: NormalizedParameter,
}

/// The response oxide-auth builds: a redirect, or nothing (a page the service renders).
#[derive(Default)]
struct Reply {
    redirect: Option<Url>,
}

/// The flow could not produce a redirect: why is in the context.
struct Stop;

impl WebResponse for Reply {
    type Error = Stop;

    fn ok(&mut self) -> Result<(), Stop> {
        Ok(())
    }

    fn redirect(&mut self, url: Url) -> Result<(), Stop> {
        self.redirect = Some(url);
        Ok(())
    }

    fn client_error(&mut self) -> Result<(), Stop> {
        Err(Stop)
    }

    fn unauthorized(&mut self, _: &str) -> Result<(), Stop> {
        Err(Stop)
    }

    fn body_text(&mut self, _: &str) -> Result<(), Stop> {
        Ok(())
    }

    fn body_json(&mut self, _: &str) -> Result<(), Stop> {
        Ok(())
    }
}

impl WebRequest for Request {
    type Error = Stop;
    type Response = Reply;

    fn query(&mut self) -> Result<Cow<'_, dyn QueryParameter + 'static>, Stop> {
        Ok(Cow::Borrowed(
            &self.query as &(dyn QueryParameter + 'static),
        ))
    }

    fn urlbody(&mut self) -> Result<Cow<'_, dyn QueryParameter + 'static>, Stop> {
        Ok(Cow::Borrowed(
            &self.query as &(dyn QueryParameter + 'static),
        ))
    }

    fn authheader(&mut self) -> Result<Option<Cow<'_, str>>, Stop> {
        Ok(None)
    }
}

impl Registrar for Flow<'_> {
    fn bound_redirect<'b>(&self, bound: ClientUrl<'b>) -> Result<BoundClient<'b>, RegistrarError> {
        let client = match &self.prepared.client {
            Some(c) if c.client_id == bound.client_id.as_ref() => c,
            _ => {
                self.record(fail(
                    ErrorKind::InvalidRequest,
                    "unknown client_id",
                    "client_unknown",
                ));
                return Err(RegistrarError::Unspecified);
            }
        };
        let chosen = match &self.redirect_uri_param {
            Some(requested) => client
                .redirect_uris
                .iter()
                .any(|r| r.matches(requested))
                .then(|| requested.clone()),
            None => match client.redirect_uris.as_slice() {
                [only] => Some(only.as_str().to_owned()),
                _ => {
                    self.record(fail(
                        ErrorKind::InvalidRequest,
                        "redirect_uri is required: this client registered several",
                        "redirect_uri_missing",
                    ));
                    return Err(RegistrarError::Unspecified);
                }
            },
        };
        let Some(exact) = chosen.and_then(|u| u.parse::<ExactUrl>().ok()) else {
            self.record(fail(
                ErrorKind::InvalidRequest,
                "redirect_uri does not match a redirect URI registered by this client",
                "redirect_uri_mismatch",
            ));
            return Err(RegistrarError::Unspecified);
        };
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Exact(exact)),
        })
    }

    fn negotiate(
        &self,
        bound: BoundClient<'_>,
        scope: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        let skills = match &self.prepared.skills {
            Ok(s) => s,
            Err(e) => {
                self.record(e.clone());
                return Err(RegistrarError::Unspecified);
            }
        };
        let scope = scope.map(|s| s.to_string());
        let requested = authorization::requested_grants(skills, scope.as_deref()).map_err(|e| {
            self.record(e);
            RegistrarError::Unspecified
        })?;
        let pre_scope = requested.all_scopes().parse::<Scope>().map_err(|_| {
            self.record(fail(
                ErrorKind::InvalidScope,
                "the scope is malformed",
                "scope_malformed",
            ));
            RegistrarError::Unspecified
        })?;
        self.cx.borrow_mut().requested = Some(requested);
        Ok(PreGrant {
            client_id: bound.client_id.into_owned(),
            redirect_uri: bound.redirect_uri.into_owned(),
            scope: pre_scope,
        })
    }

    fn check(&self, _client_id: &str, _passphrase: Option<&[u8]>) -> Result<(), RegistrarError> {
        // Client authentication happens at Patron's token endpoint, never through oxide-auth.
        Err(RegistrarError::Unspecified)
    }
}

impl AuthorizationExtension for Flow<'_> {
    fn extend(&mut self, request: &dyn AuthorizationRequest) -> Result<Extensions, ()> {
        if let Some(key) = self.repeated.first() {
            self.record(fail(
                ErrorKind::InvalidRequest,
                format!("parameter {key} is repeated"),
                "parameter_repeated",
            ));
            return Err(());
        }
        if let Some(client) = &self.prepared.client {
            if !client.code_grant {
                self.record(fail(
                    ErrorKind::UnauthorizedClient,
                    "this client is not registered for the authorization_code grant",
                    "grant_not_registered",
                ));
                return Err(());
            }
            if client.suspended {
                self.record(fail(
                    ErrorKind::UnauthorizedClient,
                    "this agent is suspended",
                    "agent_suspended",
                ));
                return Err(());
            }
        }
        let challenge = request.extension("code_challenge");
        let method = request.extension("code_challenge_method");
        let challenge = authorization::check_challenge(challenge.as_deref(), method.as_deref())
            .map_err(|e| self.record(e))?;
        self.cx.borrow_mut().challenge = Some(challenge);
        Ok(Extensions::new())
    }
}

impl Extension for Flow<'_> {
    fn authorization(&mut self) -> Option<&mut dyn AuthorizationExtension> {
        Some(self)
    }
}

impl Authorizer for Flow<'_> {
    fn authorize(&mut self, grant: Grant) -> Result<String, ()> {
        let minted = split_token::mint(CODE_PREFIX, crate::clock::now_millis());
        let code = minted.value.clone();
        self.cx.borrow_mut().issued = Some((minted, grant));
        Ok(code)
    }

    fn extract(&mut self, _code: &str) -> Result<Option<Grant>, ()> {
        // Codes are redeemed from the store by the token service.
        Ok(None)
    }
}

impl OwnerSolicitor<Request> for Flow<'_> {
    fn check_consent(
        &mut self,
        _: &mut Request,
        solicitation: Solicitation<'_>,
    ) -> OwnerConsent<Reply> {
        let Person::LoggedIn {
            owner_id,
            consent,
            admits,
        } = &self.prepared.person
        else {
            self.cx.borrow_mut().login = true;
            return OwnerConsent::InProgress(Reply::default());
        };
        if let Some(client) = &self.prepared.client {
            if client.owner_id.as_ref().is_some_and(|o| o != owner_id) {
                self.record(fail(
                    ErrorKind::AccessDenied,
                    "this agent belongs to another person",
                    "agent_owned_by_other",
                ));
                return OwnerConsent::Denied;
            }
        }
        let requested = self.cx.borrow().requested.clone().unwrap_or_default();
        let (offered, refused) = authorization::admitted(&requested, admits);
        if offered.is_empty() {
            self.record(fail(
                ErrorKind::AccessDenied,
                "none of the requested skills' policies admit this person",
                "grant_not_permitted",
            ));
            return OwnerConsent::Denied;
        }
        match &self.prepared.decision {
            Decision::Deny => {
                self.record(fail(
                    ErrorKind::AccessDenied,
                    "the person denied the request",
                    "consent_denied",
                ));
                OwnerConsent::Denied
            }
            Decision::Approve(chosen) => {
                let grants = AuthorizedGrants::from_pairs(
                    offered
                        .pairs()
                        .into_iter()
                        .filter(|(aud, _)| chosen.contains(aud)),
                );
                if grants.is_empty() {
                    self.record(fail(
                        ErrorKind::AccessDenied,
                        "no skill was chosen",
                        "consent_nothing_chosen",
                    ));
                    return OwnerConsent::Denied;
                }
                let mut cx = self.cx.borrow_mut();
                cx.code_grants = Some(grants.clone());
                cx.approved = Some(grants);
                OwnerConsent::Authorized(owner_id.clone())
            }
            Decision::Ask => {
                if refused.is_empty() && consent.as_ref().is_some_and(|c| c.covers(&offered)) {
                    self.cx.borrow_mut().code_grants = Some(offered);
                    return OwnerConsent::Authorized(owner_id.clone());
                }
                self.cx.borrow_mut().consent = Some(ConsentRequest {
                    client_id: solicitation.pre_grant().client_id.clone(),
                    redirect_uri: solicitation.pre_grant().redirect_uri.to_string(),
                    offered,
                    refused,
                    consented_before: consent.is_some(),
                });
                OwnerConsent::InProgress(Reply::default())
            }
        }
    }
}

impl Endpoint<Request> for Flow<'_> {
    type Error = Stop;

    fn registrar(&self) -> Option<&dyn Registrar> {
        Some(self)
    }

    fn authorizer_mut(&mut self) -> Option<&mut dyn Authorizer> {
        Some(self)
    }

    fn issuer_mut(&mut self) -> Option<&mut dyn Issuer> {
        None
    }

    fn owner_solicitor(&mut self) -> Option<&mut dyn OwnerSolicitor<Request>> {
        Some(self)
    }

    fn scopes(&mut self) -> Option<&mut dyn Scopes<Request>> {
        None
    }

    fn response(&mut self, _: &mut Request, mut kind: Template<'_>) -> Result<Reply, Stop> {
        if let Some(error) = kind.authorization_error() {
            let described = self
                .cx
                .borrow()
                .failure
                .as_ref()
                .map(|f| f.description().to_owned());
            let description = described.unwrap_or_else(|| match error.kind().as_ref() {
                "unsupported_response_type" => "response_type must be code".to_owned(),
                other => other.to_owned(),
            });
            error.explain(description);
        }
        Ok(Reply::default())
    }

    fn error(&mut self, _: OxideError) -> Stop {
        Stop
    }

    fn web_error(&mut self, err: Stop) -> Stop {
        err
    }

    fn extension(&mut self) -> Option<&mut dyn Extension> {
        Some(self)
    }
}

/// The redirect with RFC 9207 `iss` added. For an error, `error` and `error_description`
/// come from the refusal Patron recorded (oxide-auth cannot name `invalid_target` or
/// `unauthorized_client`, and writes its description as `description`).
fn finish_redirect(mut url: Url, issuer: &str, failure: Option<&OAuthError>) -> String {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let oxide_error = pairs
        .iter()
        .find(|(k, _)| k == "error")
        .map(|(_, v)| v.clone());
    let oxide_description = pairs
        .iter()
        .find(|(k, _)| k == "description")
        .map(|(_, v)| v.clone());
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            let dropped = k == "iss"
                || (oxide_error.is_some()
                    && matches!(
                        k.as_str(),
                        "error" | "description" | "uri" | "error_description"
                    ));
            if !dropped {
                q.append_pair(k, v);
            }
        }
        if let Some(code) = &oxide_error {
            let (code, description) = match failure {
                Some(f) => (f.kind().code().to_owned(), Some(f.description().to_owned())),
                None => (code.clone(), oxide_description),
            };
            q.append_pair("error", &code);
            if let Some(d) = description {
                q.append_pair("error_description", &d);
            }
        }
        q.append_pair("iss", issuer);
    }
    url.to_string()
}

/// Runs oxide-auth's authorization flow over `prepared` for the request parameters `pairs`.
pub fn run(prepared: &Prepared, pairs: &[(String, String)], issuer: &str) -> Outcome {
    let mut query = NormalizedParameter::new();
    let mut repeated: Vec<String> = Vec::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if k == "resource" {
            continue;
        }
        if pairs[..i].iter().any(|(prior, _)| prior == k) && !repeated.contains(k) {
            repeated.push(k.clone());
        }
        query.insert_or_poison(Cow::Owned(k.clone()), Cow::Owned(v.clone()));
    }
    if let Some(key) = repeated
        .iter()
        .find(|k| matches!(k.as_str(), "client_id" | "redirect_uri"))
    {
        return Outcome::ErrorPage(fail(
            ErrorKind::InvalidRequest,
            format!("parameter {key} is repeated"),
            "parameter_repeated",
        ));
    }
    if query.unique_value("client_id").is_none() {
        return Outcome::ErrorPage(fail(
            ErrorKind::InvalidRequest,
            "client_id is missing",
            "client_id_missing",
        ));
    }
    let redirect_uri_param = query.unique_value("redirect_uri").map(Cow::into_owned);
    let mut flow = Flow {
        prepared,
        repeated,
        redirect_uri_param: redirect_uri_param.clone(),
        issuer,
        cx: RefCell::new(Context::default()),
    };
    let request = Request { query };
    let result = match AuthorizationFlow::prepare(&mut flow) {
        Ok(mut f) => f.execute(request),
        Err(e) => Err(e),
    };
    let issuer = flow.issuer;
    let cx = flow.cx.into_inner();
    let failure = cx.failure;
    let reply = match result {
        Ok(reply) => reply,
        Err(Stop) => {
            return Outcome::ErrorPage(failure.unwrap_or_else(|| {
                fail(
                    ErrorKind::InvalidRequest,
                    "the authorization request is malformed",
                    "authorization_malformed",
                )
            }));
        }
    };
    if cx.login {
        return Outcome::Login;
    }
    if let Some(consent) = cx.consent {
        return Outcome::Consent(consent);
    }
    let Some(url) = reply.redirect else {
        return Outcome::ErrorPage(failure.unwrap_or_else(|| {
            fail(
                ErrorKind::InvalidRequest,
                "the authorization request is malformed",
                "authorization_malformed",
            )
        }));
    };
    let code = match (cx.issued, cx.challenge, cx.code_grants) {
        (Some((code, grant)), Some(code_challenge), Some(grants)) if failure.is_none() => {
            Some(Box::new(IssuedCode {
                code: Secret::from(code.value),
                code_id: code.id,
                secret_hash: code.secret_hash,
                client_id: grant.client_id,
                owner_id: grant.owner_id,
                redirect_uri: redirect_uri_param,
                code_challenge,
                grants,
                approved: cx.approved,
            }))
        }
        _ => None,
    };
    let refusal = match (&code, failure) {
        (Some(_), _) => None,
        (None, Some(f)) => Some(f),
        (None, None) => Some(match url.query_pairs().find(|(k, _)| k == "error") {
            Some((_, e)) if e == "unsupported_response_type" => fail(
                ErrorKind::UnsupportedResponseType,
                "response_type must be code",
                "response_type_unsupported",
            ),
            _ => fail(
                ErrorKind::InvalidRequest,
                "the authorization request was refused",
                "authorization_refused",
            ),
        }),
    };
    Outcome::Redirect {
        to: finish_redirect(url, issuer, refusal.as_ref()),
        code,
        refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const ISS: &str = "https://as.example";
    const VERIFIER: &str = "a-verifier-that-is-long-enough-to-be-valid-1234";
    const FILES: &str = "https://files.example/";

    fn challenge() -> String {
        URL_SAFE_NO_PAD.encode(crate::crypto::sha256(VERIFIER.as_bytes()))
    }

    fn client() -> FlowClient {
        FlowClient {
            client_id: "agt_1".into(),
            redirect_uris: vec![
                RedirectUri::parse("https://app.example/cb").unwrap(),
                RedirectUri::parse("http://127.0.0.1/cb").unwrap(),
            ],
            code_grant: true,
            suspended: false,
            owner_id: None,
        }
    }

    fn person(consent: Option<&str>) -> Person {
        Person::LoggedIn {
            owner_id: "dev:alice".into(),
            consent: consent
                .map(|s| AuthorizedGrants::from_pairs([(FILES.to_owned(), s.to_owned())])),
            admits: HashMap::from([(
                FILES.to_owned(),
                vec!["files:read".to_owned(), "files:write".to_owned()],
            )]),
        }
    }

    fn prepared(person: Person, decision: Decision) -> Prepared {
        Prepared {
            client: Some(client()),
            skills: Ok(vec![(
                FILES.to_owned(),
                "files:read files:write".to_owned(),
            )]),
            person,
            decision,
        }
    }

    fn params(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let c = challenge();
        let mut base: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", "agt_1"),
            ("redirect_uri", "https://app.example/cb"),
            ("state", "xyz"),
            ("code_challenge", c.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", FILES),
        ];
        for (k, v) in extra {
            base.retain(|(b, _)| b != k);
            if !v.is_empty() {
                base.push((k, v));
            }
        }
        base.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn query_of(to: &str) -> HashMap<String, String> {
        Url::parse(to)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn anonymous_visitors_log_in_first() {
        let out = run(
            &prepared(Person::Anonymous, Decision::Ask),
            &params(&[]),
            ISS,
        );
        assert!(matches!(out, Outcome::Login), "{out:?}");
    }

    #[test]
    fn a_person_without_consent_is_asked() {
        let out = run(&prepared(person(None), Decision::Ask), &params(&[]), ISS);
        let Outcome::Consent(c) = out else {
            panic!("{out:?}")
        };
        assert_eq!(
            c.offered.scopes_of(FILES).unwrap(),
            vec!["files:read", "files:write"]
        );
        assert_eq!(c.redirect_uri, "https://app.example/cb");
    }

    #[test]
    fn approval_issues_a_code_with_state_and_iss() {
        let out = run(
            &prepared(person(None), Decision::Approve(vec![FILES.into()])),
            &params(&[("scope", "files:read")]),
            ISS,
        );
        let Outcome::Redirect {
            to,
            code: Some(code),
            refusal: None,
        } = out
        else {
            panic!("{out:?}")
        };
        let q = query_of(&to);
        assert_eq!(q["code"], code.code.expose());
        assert_eq!(q["state"], "xyz");
        assert_eq!(q["iss"], ISS);
        assert_eq!(code.grants.scopes_of(FILES).unwrap(), vec!["files:read"]);
        assert_eq!(code.code_challenge, challenge());
        assert!(code.approved.is_some());
        assert!(to.starts_with("https://app.example/cb?"), "{to}");
    }

    #[test]
    fn a_covering_consent_is_not_asked_again_but_a_wider_request_is() {
        let out = run(
            &prepared(person(Some("files:read")), Decision::Ask),
            &params(&[("scope", "files:read")]),
            ISS,
        );
        assert!(
            matches!(&out, Outcome::Redirect { code: Some(c), .. } if c.approved.is_none()),
            "{out:?}"
        );
        let out = run(
            &prepared(person(Some("files:read")), Decision::Ask),
            &params(&[]),
            ISS,
        );
        assert!(matches!(out, Outcome::Consent(_)), "{out:?}");
    }

    fn refusal(out: Outcome) -> (String, &'static str) {
        match out {
            Outcome::Redirect {
                to,
                code: None,
                refusal: Some(r),
            } => {
                let q = query_of(&to);
                assert_eq!(q["iss"], ISS);
                assert_eq!(q["state"], "xyz");
                assert_eq!(q["error_description"], r.description());
                (q["error"].clone(), r.reason())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pkce_faults_are_redirected_with_their_reason() {
        let p = prepared(person(None), Decision::Ask);
        assert_eq!(
            refusal(run(&p, &params(&[("code_challenge", "")]), ISS)),
            ("invalid_request".into(), "pkce_missing")
        );
        assert_eq!(
            refusal(run(&p, &params(&[("code_challenge_method", "plain")]), ISS)),
            ("invalid_request".into(), "pkce_plain")
        );
    }

    #[test]
    fn target_and_scope_faults_keep_their_codes() {
        let mut p = prepared(person(None), Decision::Ask);
        assert_eq!(
            refusal(run(&p, &params(&[("scope", "admin")]), ISS)),
            ("invalid_scope".into(), "scope_unknown")
        );
        p.skills = Err(fail(
            ErrorKind::InvalidTarget,
            "unknown resource",
            "audience_unknown",
        ));
        assert_eq!(
            refusal(run(&p, &params(&[]), ISS)),
            ("invalid_target".into(), "audience_unknown")
        );
        let mut p = prepared(person(None), Decision::Ask);
        p.client.as_mut().unwrap().code_grant = false;
        assert_eq!(
            refusal(run(&p, &params(&[]), ISS)),
            ("unauthorized_client".into(), "grant_not_registered")
        );
        let p = prepared(person(None), Decision::Deny);
        assert_eq!(
            refusal(run(&p, &params(&[]), ISS)),
            ("access_denied".into(), "consent_denied")
        );
        let p = prepared(person(None), Decision::Ask);
        assert_eq!(
            refusal(run(&p, &params(&[("response_type", "token")]), ISS)).0,
            "unsupported_response_type"
        );
    }

    #[test]
    fn a_policy_that_admits_nothing_denies() {
        let mut p = prepared(person(None), Decision::Ask);
        p.person = Person::LoggedIn {
            owner_id: "dev:bob".into(),
            consent: None,
            admits: HashMap::new(),
        };
        assert_eq!(
            refusal(run(&p, &params(&[]), ISS)),
            ("access_denied".into(), "grant_not_permitted")
        );
    }

    #[test]
    fn bad_clients_and_redirect_uris_are_never_redirected_to() {
        let p = prepared(person(None), Decision::Ask);
        let reason = |out: Outcome| match out {
            Outcome::ErrorPage(e) => e.reason(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(run(&p, &params(&[("client_id", "agt_2")]), ISS)),
            "client_unknown"
        );
        assert_eq!(
            reason(run(
                &p,
                &params(&[("redirect_uri", "https://evil.example/cb")]),
                ISS
            )),
            "redirect_uri_mismatch"
        );
        assert_eq!(
            reason(run(&p, &params(&[("redirect_uri", "")]), ISS)),
            "redirect_uri_missing"
        );
        let mut repeated = params(&[]);
        repeated.push(("client_id".into(), "agt_1".into()));
        assert_eq!(reason(run(&p, &repeated, ISS)), "parameter_repeated");
    }

    #[test]
    fn loopback_redirects_may_use_any_port() {
        let p = prepared(person(None), Decision::Approve(vec![FILES.into()]));
        let out = run(
            &p,
            &params(&[("redirect_uri", "http://127.0.0.1:53123/cb")]),
            ISS,
        );
        let Outcome::Redirect {
            to, code: Some(_), ..
        } = out
        else {
            panic!("{out:?}")
        };
        assert!(to.starts_with("http://127.0.0.1:53123/cb?"), "{to}");
    }
}
