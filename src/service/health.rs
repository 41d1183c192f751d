//! Readiness: whether this replica can serve tokens (the database answers and a signing key
//! is active).

use crate::state::AppState;

/// What readiness found.
pub struct Readiness {
    /// The database answered.
    pub database: bool,
    /// A signing key is active.
    pub signing_key: bool,
}

impl Readiness {
    /// Whether the replica is ready.
    pub fn ready(&self) -> bool {
        self.database && self.signing_key
    }
}

/// Checks readiness.
pub async fn readiness(state: &AppState) -> Readiness {
    Readiness {
        database: state.store.ping().await,
        signing_key: state.keys.ring().current.is_some(),
    }
}
