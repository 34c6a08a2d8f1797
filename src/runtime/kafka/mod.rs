//! `goalpost run`: the engine on Apache Kafka, exactly once.
//!
//! One consumer (in the application's consumer group) and one transactional producer per
//! instance. Input partitions feed Routers; their contributions travel through the repartition
//! topic, partitioned by (goal, group), to the Owner of each repartition partition. Every
//! `commit_interval`, one transaction carries the repartition batches, the changelog records,
//! attainment events, dead letters and the consumed offsets. The README's "Running on Kafka" section
//! describes the model and its guarantees.

pub mod admin;
pub mod config;
mod preflight;
mod restore;
mod warn_limit;
pub mod wire;
mod worker;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rdkafka::error::KafkaError;
use thiserror::Error;

pub use config::RunConfig;
pub use worker::{run, RunOptions, RunReport};

/// Why `goalpost run` stopped with an error.
#[derive(Debug, Error)]
pub enum RunError {
    /// A Kafka operation failed.
    #[error("Kafka: cannot {action}: {cause}")]
    Kafka {
        /// What was being done.
        action: String,
        /// The client error.
        cause: KafkaError,
    },
    /// The cluster refused the credentials (SASL) or the TLS handshake. Never names a secret.
    #[error(
        "Kafka authentication failed at {bootstrap} ({settings}): {reason}; check kafka.properties"
    )]
    Authentication {
        /// `kafka.bootstrap_servers`.
        bootstrap: String,
        /// `security.protocol`, `sasl.mechanism` and `sasl.username`, as configured.
        settings: String,
        /// What the broker or the TLS layer said.
        reason: String,
    },
    /// Topics or configuration do not allow the run.
    #[error("{0}")]
    Setup(String),
    /// Another instance with the same transactional id took over, or the producer hit a fatal error.
    #[error(
        "fenced or fatal producer error: {0}; this instance stops so that no output is duplicated"
    )]
    Fatal(String),
    /// A record goalpost cannot split or cut is larger than the producer may send; redoing the
    /// transaction would fail the same way.
    #[error(
        "a record of {size} bytes (key and value; headers and framing come on top) for topic \
         {topic} exceeds the producer's message.max.bytes = {limit}; raise `message.max.bytes` in [kafka.properties], and the \
         topic's `max.message.bytes` on the brokers if it is lower. The transaction holding it was \
         not committed; this instance stops"
    )]
    RecordTooLarge {
        /// Key and value bytes of the record.
        size: usize,
        /// The topic it was for.
        topic: String,
        /// `message.max.bytes` as configured, or librdkafka's default.
        limit: String,
    },
    /// An internal topic holds a record this version cannot read.
    #[error("internal topic record unreadable: {0}")]
    Wire(wire::WireError),
}

// By hand, not `#[from]`: that would also make the error the source, and `{e:#}` would print its
// text twice.
impl From<wire::WireError> for RunError {
    fn from(e: wire::WireError) -> Self {
        RunError::Wire(e)
    }
}

impl RunError {
    pub(crate) fn kafka(action: &str, cause: KafkaError) -> Self {
        RunError::Kafka {
            action: action.to_string(),
            cause,
        }
    }
}

/// A flag set by SIGTERM and SIGINT.
pub fn shutdown_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
    Ok(flag)
}
