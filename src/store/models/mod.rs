//! One module per table: a `Row` to read, a borrowed `New*` to insert, and the queries.

pub mod audit_events;
pub mod clients;
pub mod enrollment_tokens;
pub mod grants;
pub mod owners;
pub mod revoked_tokens;
pub mod sessions;
pub mod signing_keys;
pub mod skills;
