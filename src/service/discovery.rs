//! The discovery document (RFC 8414) as served: computed once at start and again whenever
//! the skills change, never per request.
//!
//! Everything in it is fixed at start except `scopes_supported`, the union of the skills'
//! scopes. A skill changed through this replica refreshes it at once, through another
//! replica within the notice's arrival (`redis.url`) or else within
//! [`REFRESH_EVERY`].

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::oauth::discovery::{self, MetadataInput};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::models::skills;

/// How often each replica reloads the skills' scopes from the database (the path for
/// changes made through another replica when there is no Redis to announce them).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// The fixed inputs of the document.
#[derive(Debug, Clone)]
pub struct FixedMetadata {
    /// Issuer identifier without trailing slash.
    pub issuer: String,
    /// Signing algorithm of Patron's own tokens.
    pub signing_alg: String,
    /// Allowed clock skew in seconds.
    pub clock_skew_secs: i64,
    /// Largest accepted JWT age in seconds.
    pub max_token_age_secs: i64,
    /// Whether `client_id`s may be metadata document URLs.
    pub client_id_documents: bool,
}

struct Document {
    scopes: Vec<String>,
    json: Arc<str>,
}

/// The current discovery document.
pub struct Discovery {
    fixed: FixedMetadata,
    current: ArcSwap<Document>,
}

impl Discovery {
    /// The document with no scopes yet (see [`refresh`]).
    pub fn new(fixed: FixedMetadata) -> Self {
        let current = ArcSwap::from_pointee(render(&fixed, Vec::new()));
        Self { fixed, current }
    }

    /// The serialised document.
    pub fn json(&self) -> Arc<str> {
        self.current.load().json.clone()
    }

    /// Publishes `scopes` (sorted, without duplicates); a no-op when they are unchanged.
    fn set_scopes(&self, scopes: Vec<String>) {
        if self.current.load().scopes != scopes {
            self.current.store(Arc::new(render(&self.fixed, scopes)));
        }
    }
}

fn render(fixed: &FixedMetadata, scopes: Vec<String>) -> Document {
    let json = discovery::metadata(&MetadataInput {
        issuer: &fixed.issuer,
        signing_alg: &fixed.signing_alg,
        clock_skew_secs: fixed.clock_skew_secs,
        max_token_age_secs: fixed.max_token_age_secs,
        client_id_documents: fixed.client_id_documents,
        scopes: &scopes,
    })
    .to_string()
    .into();
    Document { scopes, json }
}

/// Every scope some skill defines, sorted, each once.
fn scopes_of(rows: &[skills::SkillRow]) -> Vec<String> {
    let mut scopes: Vec<String> = rows
        .iter()
        .flat_map(|s| s.scopes.split(' '))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

/// Reloads the skills' scopes into the document.
pub async fn refresh(state: &AppState) -> Result<(), StoreError> {
    let rows = state.store.read(skills::all).await?;
    state.discovery.set_scopes(scopes_of(&rows));
    Ok(())
}

/// Refreshes the document every [`REFRESH_EVERY`] until the process stops.
pub async fn keep_fresh(state: actix_web::web::Data<AppState>) {
    let mut tick = actix_web::rt::time::interval(REFRESH_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = refresh(&state).await {
            tracing::error!(error = %e, "refreshing the discovery document failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> FixedMetadata {
        FixedMetadata {
            issuer: "https://as.example".into(),
            signing_alg: "ES256".into(),
            clock_skew_secs: 60,
            max_token_age_secs: 3600,
            client_id_documents: true,
        }
    }

    fn skill(scopes: &str) -> skills::SkillRow {
        skills::SkillRow {
            audience: "https://s.example".into(),
            name: "s".into(),
            scopes: scopes.into(),
            ttl_secs: 60,
            require_dpop: false,
            owner_id: None,
            created_at: 0,
            updated_at: 0,
            client_id: None,
            grant_policy: Default::default(),
            policy_needs_review: false,
            proven_at: None,
            proof_error: None,
            delegate_audiences: String::new(),
        }
    }

    #[test]
    fn scopes_are_the_sorted_union_of_the_skills_scopes() {
        let rows = [
            skill("files:read files:write"),
            skill("mail:send  files:read"),
        ];
        assert_eq!(scopes_of(&rows), ["files:read", "files:write", "mail:send"]);
    }

    #[test]
    fn new_scopes_replace_the_served_document() {
        let d = Discovery::new(fixed());
        let before: serde_json::Value = serde_json::from_str(&d.json()).unwrap();
        assert_eq!(before["scopes_supported"], serde_json::json!([]));
        d.set_scopes(vec!["mail:send".into()]);
        let after: serde_json::Value = serde_json::from_str(&d.json()).unwrap();
        assert_eq!(after["scopes_supported"], serde_json::json!(["mail:send"]));
        assert_eq!(after["issuer"], "https://as.example");
    }
}
