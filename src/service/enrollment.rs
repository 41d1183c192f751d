//! Enrollment (initial access) tokens: an owner pre-authorises agents, which register with
//! the token and are linked to the owner at once with the token's grants.

use serde_json::Value;

use crate::audit::Outcome;
use crate::clock::{self, UnixTime};
use crate::crypto;
use crate::oauth::error::{ErrorKind, OAuthError};
use crate::service::{Caller, skills, store_failure};
use crate::state::AppState;
use crate::store::models::{enrollment_tokens, owners};
use crate::store::{DbConnection, StoreError};

/// Prefix of enrollment (initial access) tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "patron_iat_";
/// Most registrations one token allows.
pub const MAX_USES: i32 = 100;
/// Longest lifetime of a token, in hours.
pub const MAX_HOURS: i64 = 720;

fn invalid_token(description: &'static str, reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorKind::InvalidToken, description, reason)
}

/// An enrollment token that authorised a registration.
pub struct Enrollment {
    /// Its public id.
    pub id: String,
    /// The owner the registration is linked to.
    pub owner_id: String,
    /// Preset grants: (audience, space-separated scopes).
    pub grants: Vec<(String, String)>,
}

/// The live enrollment token `token`, or why it cannot be used.
pub async fn check(state: &AppState, token: &str, now: UnixTime) -> Result<Enrollment, OAuthError> {
    let hash = crypto::sha256_hex(token.as_bytes());
    let row = state
        .store
        .read(move |c| enrollment_tokens::find_by_hash(c, &hash))
        .await
        .map_err(store_failure)?
        .ok_or_else(|| {
            invalid_token(
                "the initial access token is not valid",
                "enrollment_token_unknown",
            )
        })?;
    if row.expires_at <= now {
        return Err(invalid_token(
            "the initial access token has expired",
            "enrollment_token_expired",
        ));
    }
    if row.uses_left <= 0 {
        return Err(invalid_token(
            "the initial access token has been used up",
            "enrollment_token_exhausted",
        ));
    }
    let grants = match serde_json::from_str::<Value>(&row.grants) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter_map(|(aud, scopes)| scopes.as_str().map(|s| (aud, s.to_owned())))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Enrollment {
        id: row.id,
        owner_id: row.owner_id,
        grants,
    })
}

/// The token's grants that the skills' policies still admit for its owner (policies may
/// have narrowed since it was minted). Grants no longer admitted are dropped, audited.
pub async fn within_policy(
    state: &AppState,
    caller: &Caller,
    mut enrollment: Enrollment,
) -> Result<Enrollment, OAuthError> {
    let mut kept = Vec::with_capacity(enrollment.grants.len());
    for (aud, scopes) in std::mem::take(&mut enrollment.grants) {
        let grant = vec![(aud.clone(), scopes.clone())];
        match skills::check_grants(state, caller, &enrollment.owner_id, grant).await {
            Ok(mut g) => kept.append(&mut g),
            // A grant for a skill not (yet) registered is kept as minted: it yields no token
            // until the skill exists, and creating the skill brings it within its policy.
            Err(e) if e.reason() == "skill_unknown" => kept.push((aud, scopes)),
            Err(e) if e.kind() == ErrorKind::InvalidRequest => {}
            Err(e) => return Err(e),
        }
    }
    enrollment.grants = kept;
    Ok(enrollment)
}

/// A minted token, shown once.
pub struct Minted {
    /// The token itself.
    pub token: String,
    /// Registrations it allows.
    pub uses: i32,
    /// Hours it lives.
    pub hours: i64,
}

/// Mints an enrollment token for `owner_id` with `grants` (checked against the skills),
/// allowing `uses` registrations (default 1, at most [`MAX_USES`]) within `hours` (default
/// 24, at most [`MAX_HOURS`]).
pub async fn mint(
    state: &AppState,
    caller: &Caller,
    owner_id: &str,
    grants: Vec<(String, String)>,
    uses: Option<i32>,
    hours: Option<i64>,
) -> Result<Minted, OAuthError> {
    let uses = uses.unwrap_or(1).clamp(1, MAX_USES);
    let hours = hours.unwrap_or(24).clamp(1, MAX_HOURS);
    let grants = skills::check_grants(state, caller, owner_id, grants).await?;
    let owner = owner_id.to_owned();
    let now = clock::now();
    let (token, id) = state
        .store
        .write(move |c| insert_token(c, &owner, &grants, uses, hours * 3600, now))
        .await
        .map_err(store_failure)?;
    state.audit.record(
        caller
            .audit("enrollment.mint", Outcome::Success)
            .owner(Some(owner_id))
            .detail(format!("{id}: {uses} use(s), {hours} h")),
    );
    Ok(Minted { token, uses, hours })
}

/// Stores a new enrollment token for `owner_id` with preset grants (the CLI calls this
/// directly on the database; the console through [`mint`]).
/// Returns the token (shown once) and its public id.
pub fn insert_token(
    conn: &mut DbConnection,
    owner_id: &str,
    grants: &[(String, String)],
    uses: i32,
    ttl_secs: i64,
    now: UnixTime,
) -> Result<(String, String), StoreError> {
    use diesel::Connection as _;
    let token = crypto::random_token(ENROLLMENT_TOKEN_PREFIX);
    let id = crypto::random_id("enr_");
    let hash = crypto::sha256_hex(token.as_bytes());
    let grants_json = Value::Object(
        grants
            .iter()
            .map(|(a, s)| (a.clone(), Value::String(s.clone())))
            .collect(),
    )
    .to_string();
    conn.transaction(|c| {
        owners::ensure(c, owner_id, now)?;
        enrollment_tokens::insert(
            c,
            &enrollment_tokens::NewEnrollmentToken {
                id: &id,
                token_hash: &hash,
                owner_id,
                grants: &grants_json,
                uses_left: uses,
                expires_at: now + ttl_secs,
                created_at: now,
            },
        )
    })?;
    Ok((token, id))
}
