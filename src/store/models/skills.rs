//! Skills: resource servers identified by an audience URI.

use diesel::prelude::*;

use crate::clock::UnixTime;
use crate::oauth::grant_policy::GrantPolicy;
use crate::store::schema::skills;
use crate::store::{DbConnection, StoreError};

/// A stored skill.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq, Eq)]
#[diesel(table_name = skills)]
pub struct SkillRow {
    /// Audience URI (the `aud` of its tokens).
    pub audience: String,
    /// Display name.
    pub name: String,
    /// Space-separated scopes the skill understands.
    pub scopes: String,
    /// Lifetime of tokens for it.
    pub ttl_secs: i64,
    /// Whether its tokens must be DPoP-bound.
    pub require_dpop: bool,
    /// Owner who registered it (none for admin-registered skills).
    pub owner_id: Option<String>,
    /// Created.
    pub created_at: UnixTime,
    /// Last change.
    pub updated_at: UnixTime,
    /// The registered client that is this skill, for delegation (RFC 8693 `act`).
    pub client_id: Option<String>,
    /// Whose agents may hold grants for it (stored as a JSON array of entries).
    #[diesel(deserialize_as = String)]
    pub grant_policy: GrantPolicy,
    /// Set on skills that predate grant policies (they admit anyone) until their operator
    /// chooses one.
    pub policy_needs_review: bool,
    /// When its audience was last proven (RFC 9728 metadata naming Patron); none when the
    /// last attempt failed or none was made. Only owner-created skills need it.
    pub proven_at: Option<UnixTime>,
    /// Why the last proof attempt failed, as shown to the skill's operator.
    pub proof_error: Option<String>,
    /// Audiences its delegate client may exchange tokens toward, space-separated (absolute
    /// URIs without whitespace); empty: none. See [`SkillRow::may_delegate_to`].
    pub delegate_audiences: String,
}

impl SkillRow {
    /// The audiences this skill's delegate client may exchange tokens toward.
    pub fn delegate_audiences(&self) -> impl Iterator<Item = &str> {
        self.delegate_audiences.split(' ').filter(|a| !a.is_empty())
    }

    /// Whether this skill's operator allowed its delegate client to exchange tokens toward
    /// `audience` (compared exactly with the stored audience of the target skill).
    pub fn may_delegate_to(&self, audience: &str) -> bool {
        self.delegate_audiences().any(|a| a == audience)
    }

    /// Whether tokens may be issued for it: an admin's skill always, an owner's once its
    /// audience is proven.
    pub fn usable(&self) -> bool {
        self.owner_id.is_none() || self.proven_at.is_some()
    }
}

/// Inserts or replaces a skill by audience.
pub fn upsert(conn: &mut DbConnection, row: &SkillRow) -> Result<(), StoreError> {
    let existing = find(conn, &row.audience)?;
    let created_at = existing.map(|e| e.created_at).unwrap_or(row.created_at);
    diesel::delete(skills::table.find(&row.audience))
        .execute(conn)
        .map_err(StoreError::from_diesel)?;
    diesel::insert_into(skills::table)
        .values((
            skills::audience.eq(&row.audience),
            skills::name.eq(&row.name),
            skills::scopes.eq(&row.scopes),
            skills::ttl_secs.eq(row.ttl_secs),
            skills::require_dpop.eq(row.require_dpop),
            skills::owner_id.eq(&row.owner_id),
            skills::created_at.eq(created_at),
            skills::updated_at.eq(row.updated_at),
            skills::client_id.eq(&row.client_id),
            skills::grant_policy.eq(row.grant_policy.to_json()),
            skills::policy_needs_review.eq(row.policy_needs_review),
            skills::proven_at.eq(row.proven_at),
            skills::proof_error.eq(&row.proof_error),
            skills::delegate_audiences.eq(&row.delegate_audiences),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Records the outcome of a proof attempt for the skill stored under `audience`.
pub fn record_proof(
    conn: &mut DbConnection,
    audience: &str,
    proven_at: Option<UnixTime>,
    proof_error: Option<&str>,
) -> Result<(), StoreError> {
    diesel::update(skills::table.find(audience))
        .set((
            skills::proven_at.eq(proven_at),
            skills::proof_error.eq(proof_error),
        ))
        .execute(conn)
        .map(|_| ())
        .map_err(StoreError::from_diesel)
}

/// Looks a skill up by audience.
pub fn find(conn: &mut DbConnection, audience: &str) -> Result<Option<SkillRow>, StoreError> {
    skills::table
        .find(audience)
        .select(SkillRow::as_select())
        .first(conn)
        .optional()
        .map_err(StoreError::from_diesel)
}

/// All skills.
pub fn all(conn: &mut DbConnection) -> Result<Vec<SkillRow>, StoreError> {
    skills::table
        .order(skills::audience.asc())
        .select(SkillRow::as_select())
        .load(conn)
        .map_err(StoreError::from_diesel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skill_delegates_only_to_listed_audiences() {
        let mut row = SkillRow {
            audience: "https://files.example/api".into(),
            name: "Files".into(),
            scopes: "files:read".into(),
            ttl_secs: 60,
            require_dpop: false,
            owner_id: None,
            created_at: 0,
            updated_at: 0,
            client_id: Some("agt_files".into()),
            grant_policy: GrantPolicy::default(),
            policy_needs_review: false,
            proven_at: None,
            proof_error: None,
            delegate_audiences: String::new(),
        };
        assert!(!row.may_delegate_to("https://mail.example/api"));
        assert!(!row.may_delegate_to(""));
        row.delegate_audiences = "https://mail.example/api https://b.example/".into();
        assert!(row.may_delegate_to("https://mail.example/api"));
        assert!(row.may_delegate_to("https://b.example/"));
        assert!(!row.may_delegate_to("https://mail.example/api/"));
        assert!(!row.may_delegate_to("https://mail.example"));
    }
}
