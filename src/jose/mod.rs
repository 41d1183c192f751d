//! JOSE: key sets, the compact JWS splitter, the JWT validation profile, signing keys,
//! software statements.
//! Pure code: no web framework, no database.

pub mod access_token;
pub mod client_assertion;
pub mod compact;
pub mod dpop;
pub mod jwks;
pub mod keys;
pub mod profile;
pub mod software_statement;
pub mod verified_tokens;
