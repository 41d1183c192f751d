//! The authorization endpoint (RFC 6749 §4.1.1, PKCE, RFC 8707 resources, RFC 9207 `iss`)
//! and the consents it records.
//!
//! The request is judged by oxide-auth's flow over what is loaded here first
//! ([`crate::oauth::oxide`]): the client, the skills its `resource`s name, the person at
//! the browser, their earlier consent and what their skills' policies admit. When the flow
//! issues a code, this module makes it real before the browser is sent back: a person who
//! approved an unclaimed agent becomes its owner (the same race-safe claim as the user-code
//! page, with the same policy checks), the consent is recorded, and the code's hash stored.

use std::collections::HashMap;

use serde_json::json;

use crate::clock::{self, UnixTime};
use crate::oauth::authorization::{self, AuthorizedGrants};
use crate::oauth::client_id_document::{self, is_document_client_id};
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::oauth::ids::OwnerId;
use crate::oauth::oxide::{
    self, ConsentRequest, Decision, FlowClient, IssuedCode, Outcome, Person, Prepared,
};
use crate::service::sessions::Session;
use crate::service::token::{announce_revoked, known_skill};
use crate::service::{Caller, agents, client_documents, skill_policy, skills, store_failure};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::authorization_codes::{self, CodeRow};
use crate::store::models::clients::{self, ClientRow, ClientStatus};
use crate::store::models::{consents, refresh_tokens};

/// Most parameters one authorization request may carry.
const MAX_PARAMS: usize = 40;

/// Most consents listed on the console.
const MAX_LISTED: i64 = 200;

/// A skill as the consent page names it.
#[derive(Debug, Clone)]
pub struct SkillAsked {
    /// Audience.
    pub audience: String,
    /// Display name.
    pub name: String,
    /// Scopes that would be granted, space-separated.
    pub scopes: String,
}

/// Everything the consent page shows.
#[derive(Debug)]
pub struct ConsentPage {
    /// The request as the flow judged it.
    pub request: ConsentRequest,
    /// The client's stored registration.
    pub client: ClientRow,
    /// Whether approving makes this person the agent's owner.
    pub claims_agent: bool,
    /// For a client identified by a metadata document: the host that vouches for it.
    pub vouched_by: Option<String>,
    /// The host the code is sent to.
    pub redirect_host: String,
    /// The skills offered.
    pub offered: Vec<SkillAsked>,
    /// The skills asked for that this person may not grant.
    pub refused: Vec<String>,
}

/// What the endpoint answers.
#[derive(Debug)]
pub enum Answer {
    /// Redirect the browser back to the client.
    Redirect(String),
    /// Show an error; do not redirect.
    ErrorPage(OAuthError),
    /// Log in first, then come back.
    Login,
    /// Ask the person.
    Consent(Box<ConsentPage>),
}

fn loaded_client(row: &crate::service::directory::ClientRecord) -> FlowClient {
    FlowClient {
        client_id: row.client_id.clone(),
        redirect_uris: row.metadata.redirect_uris.clone(),
        code_grant: row
            .metadata
            .has_grant(crate::oauth::client_metadata::GrantType::AuthorizationCode),
        suspended: row.status == ClientStatus::Suspended,
        owner_id: row.owner_id.clone(),
    }
}

async fn resolve_skills(
    state: &AppState,
    pairs: &[(String, String)],
) -> Result<Vec<(String, String)>, OAuthError> {
    let values: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "resource")
        .map(|(_, v)| v.clone())
        .collect();
    let mut out = Vec::new();
    for resource in authorization::parse_resources(&values)? {
        let skill = known_skill(state, &resource).await?;
        if !out
            .iter()
            .any(|(a, _): &(String, String)| *a == skill.audience)
        {
            out.push((skill.audience.clone(), skill.scopes.clone()));
        }
    }
    Ok(out)
}

async fn person(
    state: &AppState,
    session: Option<&Session>,
    client_id: Option<&str>,
) -> Result<Person, OAuthError> {
    let Some(session) = session else {
        return Ok(Person::Anonymous);
    };
    let owner_id = session.owner_id.as_str().to_owned();
    let consent = match client_id {
        Some(cid) => {
            let (o, c) = (owner_id.clone(), cid.to_owned());
            state
                .store
                .read(move |conn| consents::find(conn, &o, &c))
                .await
                .map_err(store_failure)?
        }
        None => None,
    };
    let consent = match consent {
        Some(row) => {
            Some(AuthorizedGrants::from_json(&row.grants).map_err(|_| OAuthError::server_error())?)
        }
        None => None,
    };
    let admits: HashMap<String, Vec<String>> = skill_policy::grantable(state, &owner_id)
        .await?
        .into_iter()
        .map(|g| {
            let scopes = crate::oauth::scope::parse(&g.scopes)
                .into_iter()
                .map(str::to_owned)
                .collect();
            (g.skill.audience, scopes)
        })
        .collect();
    Ok(Person::LoggedIn {
        owner_id,
        consent,
        admits,
    })
}

/// Handles `GET /authorize` (`decision` [`Decision::Ask`]) and the consent form's `POST`.
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    pairs: Vec<(String, String)>,
    session: Option<&Session>,
    decision: Decision,
) -> Answer {
    let answer = authorize_inner(state, caller, &pairs, session, decision).await;
    let client_id = pairs
        .iter()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.as_str());
    let refusal = match &answer {
        Err(e) => Some(e.clone()),
        Ok((_, refusal)) => refusal.clone(),
    };
    if let Some(e) = refusal {
        let ev = caller
            .audit_result::<()>("authorize", &Err(e.clone()))
            .detail(e.description().to_owned());
        let ev = match client_id {
            Some(c) => ev.client(&c.chars().take(200).collect::<String>()),
            None => ev,
        };
        state
            .audit
            .record(ev.owner(session.map(|s| s.owner_id.as_str())));
    }
    match answer {
        Ok((a, _)) => a,
        Err(e) => Answer::ErrorPage(e),
    }
}

async fn authorize_inner(
    state: &AppState,
    caller: &Caller,
    pairs: &[(String, String)],
    session: Option<&Session>,
    decision: Decision,
) -> Result<(Answer, Option<OAuthError>), OAuthError> {
    if pairs.len() > MAX_PARAMS {
        return Err(OAuthError::new(
            ErrorKind::InvalidRequest,
            "too many parameters",
            "too_many_parameters",
        ));
    }
    let client_id = pairs
        .iter()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.clone());
    if let Some(cid) = client_id.as_deref().filter(|c| is_document_client_id(c)) {
        client_documents::ensure_fresh(state, caller, cid).await?;
    }
    let client = match &client_id {
        Some(cid) if cid.len() <= client_id_document::MAX_URL_LEN => state
            .directory
            .client(&state.store, cid)
            .await
            .map_err(store_failure)?,
        _ => None,
    };
    let prepared = Prepared {
        client: client.as_deref().map(loaded_client),
        skills: resolve_skills(state, pairs).await,
        person: person(
            state,
            session,
            client.as_ref().map(|c| c.client_id.as_str()),
        )
        .await?,
        decision,
    };
    match oxide::run(&prepared, pairs, &state.issuer) {
        Outcome::Login => Ok((Answer::Login, None)),
        Outcome::ErrorPage(e) => Err(e),
        Outcome::Consent(request) => Ok((
            Answer::Consent(Box::new(consent_page(state, request).await?)),
            None,
        )),
        Outcome::Redirect {
            to,
            code: None,
            refusal,
        } => Ok((Answer::Redirect(to), refusal)),
        Outcome::Redirect {
            to,
            code: Some(code),
            ..
        } => {
            // An unowned agent (not a shared document client) is claimed by approving.
            let claimable = prepared
                .client
                .as_ref()
                .is_some_and(|c| c.owner_id.is_none() && !is_document_client_id(&c.client_id));
            issue_code(state, caller, *code, claimable).await?;
            Ok((Answer::Redirect(to), None))
        }
    }
}

/// The client's stored registration (the flow has seen it in the cache already).
async fn stored_client(state: &AppState, client_id: &str) -> Result<ClientRow, OAuthError> {
    let cid = client_id.to_owned();
    state
        .store
        .read(move |c| clients::find(c, &cid))
        .await
        .map_err(store_failure)?
        .ok_or_else(|| {
            OAuthError::new(
                ErrorKind::InvalidRequest,
                "unknown client_id",
                "client_unknown",
            )
        })
}

async fn consent_page(
    state: &AppState,
    request: ConsentRequest,
) -> Result<ConsentPage, OAuthError> {
    let client = stored_client(state, &request.client_id).await?;
    let mut offered = Vec::new();
    for (aud, scopes) in request.offered.pairs() {
        let name = match state
            .directory
            .skill(&state.store, &aud)
            .await
            .map_err(store_failure)?
        {
            Some(s) => s.name.clone(),
            None => aud.clone(),
        };
        offered.push(SkillAsked {
            audience: aud,
            name,
            scopes,
        });
    }
    let vouched_by = is_document_client_id(&client.client_id)
        .then(|| {
            url::Url::parse(&client.client_id)
                .ok()?
                .host_str()
                .map(str::to_owned)
        })
        .flatten();
    Ok(ConsentPage {
        claims_agent: client.owner_id.is_none() && client.status == ClientStatus::Pending,
        vouched_by,
        redirect_host: url::Url::parse(&request.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| request.redirect_uri.clone()),
        refused: request.refused.clone(),
        offered,
        client,
        request,
    })
}

/// Makes an issued code real: claims the agent and records the consent when the person
/// approved just now, then stores the code (its id and the hash of its secret).
async fn issue_code(
    state: &AppState,
    caller: &Caller,
    code: IssuedCode,
    claimable: bool,
) -> Result<(), OAuthError> {
    let owner = OwnerId::parse(&code.owner_id)?;
    if let Some(approved) = &code.approved {
        if claimable {
            // The same claim as the user-code page: pending only, policy-checked, race-safe.
            agents::claim(
                state,
                caller,
                &code.client_id,
                owner.as_str(),
                approved.pairs(),
            )
            .await?;
        } else {
            // An agent the person owns, or a client many people share (a metadata
            // document client, which nobody owns): the consent is theirs alone.
            skills::check_grants(state, caller, owner.as_str(), approved.pairs()).await?;
        }
        let (o, cid, now) = (
            owner.as_str().to_owned(),
            code.client_id.clone(),
            clock::now(),
        );
        let approved_now = approved.clone();
        state
            .store
            .write(move |c| {
                let prior = consents::find(c, &o, &cid)?
                    .and_then(|row| AuthorizedGrants::from_json(&row.grants).ok())
                    .unwrap_or_default();
                consents::upsert(c, &o, &cid, &prior.union(&approved_now).to_json(), now)
            })
            .await
            .map_err(store_failure)?;
        state.audit.record(
            caller
                .audit("consent.grant", crate::audit::Outcome::Success)
                .client(&code.client_id)
                .owner(Some(owner.as_str()))
                .detail(approved.to_json()),
        );
    }
    let now = clock::now();
    let row = CodeRow {
        code_id: code.code_id.clone(),
        secret_hash: code.secret_hash.clone(),
        client_id: code.client_id.clone(),
        owner_id: owner.as_str().to_owned(),
        redirect_uri: code.redirect_uri.clone(),
        code_challenge: code.code_challenge.clone(),
        grants: code.grants.to_json(),
        created_at: now,
        expires_at: now + state.config.tokens.code_ttl_secs,
        used_at: None,
        family_id: None,
    };
    state
        .store
        .write(move |c| authorization_codes::insert(c, &row))
        .await
        .map_err(store_failure)?;
    state.audit.record(
        caller
            .audit("authorize", crate::audit::Outcome::Success)
            .client(&code.client_id)
            .owner(Some(owner.as_str()))
            .detail(format!("code for {}", code.grants.to_json())),
    );
    Ok(())
}

/// A consent as the console lists it.
#[derive(Debug)]
pub struct ConsentLine {
    /// The client.
    pub client_id: String,
    /// Its name, when it gave one.
    pub client_name: Option<String>,
    /// What was granted.
    pub grants: AuthorizedGrants,
    /// When last widened.
    pub updated_at: UnixTime,
}

/// The consents `owner_id` gave ("apps you have authorized"), newest first.
pub async fn consents_of(state: &AppState, owner_id: &str) -> Result<Vec<ConsentLine>, OAuthError> {
    let o = owner_id.to_owned();
    let rows = state
        .store
        .read(move |c| {
            let rows = consents::for_owner(c, &o, MAX_LISTED)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let client = clients::find(c, &row.client_id)?;
                out.push((row, client));
            }
            Ok(out)
        })
        .await
        .map_err(store_failure)?;
    Ok(rows
        .into_iter()
        .map(|(row, client)| ConsentLine {
            client_name: client.as_ref().and_then(crate::service::owners::agent_name),
            grants: AuthorizedGrants::from_json(&row.grants).unwrap_or_default(),
            client_id: row.client_id,
            updated_at: row.updated_at,
        })
        .collect())
}

/// Revokes `owner_id`'s consent for `client_id`: later requests ask again, and every
/// refresh token and access token issued under it stops working, on every replica.
pub async fn revoke_consent(
    state: &AppState,
    caller: &Caller,
    owner_id: &str,
    client_id: &str,
) -> Result<serde_json::Value, OAuthError> {
    let now = clock::now();
    let until = crate::service::token::revoked_until(state, now);
    let (o, cid) = (owner_id.to_owned(), client_id.to_owned());
    let result = state
        .store
        .write(move |c| {
            let existed = consents::delete(c, &o, &cid)?;
            let revoked = refresh_tokens::revoke(
                c,
                refresh_tokens::Families::Consent {
                    owner_id: &o,
                    client_id: &cid,
                },
                "consent_revoked",
                now,
                until,
            )?;
            Ok::<_, StoreError>((existed, revoked))
        })
        .await
        .map_err(store_failure)
        .and_then(|(existed, revoked)| {
            if existed {
                Ok(revoked)
            } else {
                Err(OAuthError::new(
                    ErrorKind::NotFound,
                    "no such consent",
                    "consent_unknown",
                ))
            }
        });
    state.audit.record(
        caller
            .audit_result("consent.revoke", &result)
            .client(client_id)
            .owner(Some(owner_id)),
    );
    let revoked = result?;
    let count = revoked.len();
    announce_revoked(state, revoked).await;
    Ok(json!({"client_id": client_id, "tokens_revoked": count}))
}

/// Deletes expired authorization codes, refresh tokens and refresh families (run
/// periodically). Codes go by the time in their id: every code made more than its lifetime
/// ago has expired.
pub async fn purge_expired(state: &AppState) -> Result<usize, StoreError> {
    let now = clock::now();
    let horizon_ms =
        clock::now_millis().saturating_sub((state.config.tokens.code_ttl_secs as u64 + 60) * 1000);
    let bound = crate::crypto::sortable_id(oxide::CODE_PREFIX, horizon_ms);
    state
        .store
        .write(move |c| {
            let codes = authorization_codes::purge_before(c, &bound)?;
            let refresh = refresh_tokens::purge_expired(c, now)?;
            Ok(codes + refresh)
        })
        .await
}
