//! One module per table: a `Row` to read, a borrowed `New*` to insert, and the queries.

pub mod audit_events;
pub mod authorization_codes;
pub mod clients;
pub mod consents;
pub mod enrollment_tokens;
pub mod grants;
pub mod owners;
pub mod refresh_tokens;
pub mod revoked_tokens;
pub mod sessions;
pub mod signing_keys;
pub mod skills;
