//! Services: the one place each domain's rules live. The JSON API, the admin API, the CLI
//! and the owner console all call them, so a rule (an ownership check, a grant check, an
//! owner notification) holds on every path. They combine protocol checks (`oauth`, `jose`)
//! with storage (`store`), auditing and mail.
//!
//! - [`agents`]: claiming, grants, suspension, deletion and owner-scoped views of agents;
//! - [`skills`]: the skills (resource servers) tokens are issued for;
//! - [`owners`]: owner ids, the kill switch, and owner notifications;
//! - [`sessions`] and [`owner_login`]: console sessions and upstream logins;
//! - [`enrollment`]: enrollment (initial access) tokens;
//! - [`registration`]: RFC 7591 / RFC 7592, and [`client_secrets`]: the secrets it issues;
//! - [`token`]: the token, introspection and revocation endpoints;
//! - [`discovery`]: the discovery document, refreshed when skills change;
//! - the rest: caches, replicas and keys the above share.

pub mod agents;
pub mod authorization;
pub mod client_documents;
pub mod client_secrets;
pub mod directory;
pub mod discovery;
pub mod enrollment;
pub mod health;
pub mod keys;
pub mod operator;
pub mod owner_login;
pub mod owners;
pub mod peers;
pub mod redis_link;
pub mod registration;
pub mod replay;
pub mod replay_redis;
pub mod revocation;
pub mod sessions;
pub mod skill_policy;
pub mod skills;
pub mod suspicion;
pub mod token;

use std::net::IpAddr;

use crate::audit::{AuditEvent, Outcome};
use crate::oauth::error::OAuthError;
use crate::store::StoreError;
use crate::store::models::clients::ClientRow;

/// Who is calling, for auditing and rate limits.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Source address (after trusted-proxy resolution).
    pub source: IpAddr,
    /// Request id.
    pub request_id: String,
}

impl Caller {
    /// An audit event stamped with this caller's address and request id.
    pub fn audit(&self, event: &'static str, outcome: Outcome) -> AuditEvent {
        AuditEvent::new(event, outcome)
            .source(&self.source.to_string())
            .request(&self.request_id)
    }

    /// An audit event for `result`: success, or failure with the error's reason code.
    pub fn audit_result<T>(
        &self,
        event: &'static str,
        result: &Result<T, OAuthError>,
    ) -> AuditEvent {
        match result {
            Ok(_) => self.audit(event, Outcome::Success),
            Err(e) => self.audit(event, Outcome::Failure).reason(e.reason()),
        }
    }
}

/// On whose authority a change is made: the operator (admin API and CLI, trusted with every
/// agent), or a logged-in owner, who may touch only their own agents unless they are one of
/// the console's admins.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// The admin API or CLI.
    Operator,
    /// A console session.
    Owner {
        /// The logged-in owner.
        owner_id: &'a str,
        /// Whether the owner is named in `console.admins`.
        admin: bool,
    },
}

impl Actor<'_> {
    /// Whether this actor may see and change `row`.
    pub fn may_see(&self, row: &ClientRow) -> bool {
        match self {
            Self::Operator => true,
            Self::Owner { owner_id, admin } => *admin || row.owner_id.as_deref() == Some(*owner_id),
        }
    }

    /// Whether this actor has every agent in view (the operator, or a console admin).
    pub fn sees_all(&self) -> bool {
        match self {
            Self::Operator => true,
            Self::Owner { admin, .. } => *admin,
        }
    }

    /// The owner acting, if a person in the console.
    pub fn owner_id(&self) -> Option<&str> {
        match self {
            Self::Operator => None,
            Self::Owner { owner_id, .. } => Some(owner_id),
        }
    }
}

/// Maps a storage failure to the OAuth error the caller sees, logging the cause once.
pub fn store_failure(e: StoreError) -> OAuthError {
    match e {
        StoreError::Unavailable(msg) => {
            tracing::error!(error = %msg, "database unavailable");
            OAuthError::unavailable()
        }
        other => {
            tracing::error!(error = %other, "database operation failed");
            OAuthError::server_error()
        }
    }
}
