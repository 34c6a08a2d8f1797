//! Why `goalpost notify` stopped.

use rdkafka::error::KafkaError;
use thiserror::Error;

/// A failure of `goalpost notify`.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// The configuration names no sink.
    #[error("[notify] configures no sink: add [[notify.webhooks]] or [notify.alertmanager]")]
    NoSinks,
    /// A sink's configuration is not usable.
    #[error("{0}")]
    Config(String),
    /// A webhook's secret could not be read.
    #[error("webhook `{webhook}`: cannot read its secret from {source_name}: {cause}")]
    Secret {
        /// The webhook.
        webhook: String,
        /// The file or environment variable (never the value).
        source_name: String,
        /// Why.
        cause: String,
    },
    /// A Kafka call failed.
    #[error("cannot {what}: {cause}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client's error.
        cause: KafkaError,
    },
    /// A topic is missing or unusable.
    #[error("{0}")]
    Topic(String),
    /// Records were not written: offsets are not committed, so their events are read again.
    #[error("{0} dead letter(s) or state record(s) could not be written")]
    Lost(u64),
    /// A thread or the HTTP server could not start.
    #[error("cannot start {what}: {cause}")]
    Start {
        /// What.
        what: String,
        /// Why.
        cause: String,
    },
}

impl NotifyError {
    /// A failed Kafka call.
    pub fn kafka(what: &str, cause: KafkaError) -> NotifyError {
        NotifyError::Kafka {
            what: what.into(),
            cause,
        }
    }
}
