//! Patron: an OAuth 2.0 authorization server for AI agents.

pub mod agent;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod endpoints;
pub mod hash_pool;
pub mod http;
pub mod jose;
pub mod lru;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod outbound;
pub mod ratelimit;
pub mod secret;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod upstream;
