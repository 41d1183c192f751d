//! OAuth protocol types and validation. Pure code: no web framework, no database.

pub mod authorization;
pub mod client_id_document;
pub mod client_metadata;
pub mod discovery;
pub mod error;
pub mod grant_policy;
pub mod ids;
pub mod introspection;
pub mod jti;
pub mod oxide;
pub mod redirect_uri;
pub mod resource_metadata;
pub mod scope;
pub mod split_token;
pub mod token_request;
