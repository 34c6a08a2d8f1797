//! The webhook sink's pure parts: filters, payloads and signatures.

mod config;

pub use config::WebhookConfig;
