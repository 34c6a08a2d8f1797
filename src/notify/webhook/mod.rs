//! The webhook sink's pure parts: configuration, which events a webhook takes, request bodies
//! and idempotency keys, and signatures. Its retry schedule is [`crate::notify::retry`].

mod config;
mod payload;
mod signature;

pub use config::WebhookConfig;
pub use payload::{body, idempotency_key, wants};
pub use signature::{sign, Secret, SIGNATURE_HEADER, TIMESTAMP_HEADER};
