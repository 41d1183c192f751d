//! Services: the operations the HTTP handlers, the CLI and (later) the console share. They
//! combine protocol checks (`oauth`, `jose`) with storage (`store`) and auditing.

pub mod admin;
pub mod console;
pub mod directory;
pub mod keys;
pub mod peers;
pub mod redis_link;
pub mod registration;
pub mod replay;
pub mod replay_redis;
pub mod revocation;
pub mod suspicion;
pub mod token;

use crate::oauth::error::OAuthError;
use crate::store::StoreError;

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
