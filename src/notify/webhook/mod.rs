//! The webhook sink's pure parts: configuration, which events a webhook takes, request bodies
//! and idempotency keys, signatures, and the retry schedule.

mod config;
mod payload;
mod retry;
mod signature;

pub use config::WebhookConfig;
pub use payload::{body, idempotency_key, wants};
pub use retry::{
    backoff, classify_status, next_step, parse_retry_after, Failure, RetryPolicy, Step,
};
pub use signature::{sign, Secret, SIGNATURE_HEADER, TIMESTAMP_HEADER};
