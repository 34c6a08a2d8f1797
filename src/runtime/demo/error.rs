//! Why `goalpost demo` could not start or ended with an error.
//!
//! Every variant that wraps an error returns it from `source()` and leaves it out of its own
//! `Display`, so `{e:#}` prints each cause once. Write failures keep their `io::Error` in the
//! chain, so the binary can end a demo piped into `head` quietly.

use std::io;
use std::net::SocketAddr;

use rdkafka::error::KafkaError;
use thiserror::Error;

use crate::goals::GoalFileError;
use crate::serve::ServeError;

/// Why `goalpost demo` stopped with an error.
#[derive(Debug, Error)]
pub enum DemoError {
    /// `--rate` is below one event per second.
    #[error("--rate {rate}: must be at least 1 event per second")]
    Rate {
        /// The rate given.
        rate: u64,
    },
    /// `--partitions` is outside the range the demo creates topics with.
    #[error(
        "--partitions {partitions}: must be between {} and {}",
        Self::PARTITIONS.start(),
        Self::PARTITIONS.end()
    )]
    Partitions {
        /// The partition count given.
        partitions: i32,
    },
    /// `--listen` is not a loopback address; the demo's HTTP server has no token.
    #[error(
        "--listen {addr}: the demo serves HTTP on loopback addresses only (it has no token); use \
         `goalpost run` with [http] token_file or token_env for anything else"
    )]
    Listen {
        /// The address given.
        addr: SocketAddr,
    },
    /// The goal file given with `--goals` could not be read or is not valid.
    #[error(transparent)]
    Goals(#[from] GoalFileError),
    /// The SIGINT / SIGTERM handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    /// A Kafka client of the demo (mock cluster, topics, the printer's consumer) failed to start.
    #[error("cannot {action}")]
    Kafka {
        /// What was being done.
        action: String,
        /// The client error.
        #[source]
        cause: KafkaError,
    },
    /// The client that owns the mock cluster has none.
    #[error("the mock Kafka cluster did not start")]
    NoMockCluster,
    /// The dashboard, query API and metrics server could not start.
    #[error("cannot start the HTTP server")]
    Http(#[source] ServeError),
    /// A thread of the demo could not be spawned.
    #[error("cannot start the {thread} thread")]
    Spawn {
        /// Which thread.
        thread: &'static str,
        /// The spawn error.
        #[source]
        cause: io::Error,
    },
    /// Attainment lines or status lines could not be written (a closed stdout, for instance).
    #[error("cannot write the demo's output")]
    Write(#[from] io::Error),
    /// The pipeline ended with an error; its message.
    #[error("the pipeline stopped: {0}")]
    PipelineStopped(String),
}

impl DemoError {
    /// The partition counts `--partitions` accepts.
    pub const PARTITIONS: std::ops::RangeInclusive<i32> = 1..=256;

    /// Maps a Kafka client error to [`DemoError::Kafka`] with what was being done.
    pub(super) fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> DemoError {
        move |cause| DemoError::Kafka {
            action: action.into(),
            cause,
        }
    }
}
