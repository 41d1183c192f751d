//! Integration tests: each starts a real `patron serve` process and talks HTTP to it.
//! SQLite by default; set `PATRON_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`
//! to run the same suite on PostgreSQL.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions fail the test loudly, as intended"
)]

mod admin_api;
mod admin_tokens;
mod attacks;
mod audit_history;
mod bad_input;
mod browser;
mod client_id_documents;
mod code_flow;
mod console;
mod discovery;
mod dpop_nonce;
mod enrollment;
mod github_login;
mod helpers;
mod interop;
mod jwks_uri;
mod keys;
mod mail;
mod management;
mod mcp;
mod ops;
mod redis_tls;
mod registration;
mod replicas;
mod reregistration;
mod secrets;
mod skill_policy;
mod skill_proof;
mod software_statements;
mod tokens;
