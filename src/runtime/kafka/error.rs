//! Why `goalpost run` stops with an error, and how the worker treats each kind.
//!
//! Every variant that wraps an error returns it from `source()` and leaves it out of its own
//! `Display`, so `{e:#}` (anyhow) prints each cause once.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

use super::wire::WireError;

/// Why `goalpost run` stopped with an error.
#[derive(Debug, Error)]
pub enum RunError {
    /// A Kafka operation failed; the open transaction (if any) is aborted and redone.
    #[error("Kafka: cannot {action}")]
    Kafka {
        /// What was being done.
        action: String,
        /// The client error.
        #[source]
        cause: ClientError,
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
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Another producer with the same transactional id took over.
    #[error(
        "the transactional producer was fenced (while trying to {action}): another instance \
         with the same instance id took over; this instance stops so that no output is duplicated"
    )]
    Fenced {
        /// What was being done.
        action: String,
        /// The client error.
        #[source]
        cause: ClientError,
    },
    /// The transactional producer failed in a way it cannot recover from.
    #[error(
        "fatal producer error (while trying to {action}); this instance stops so that no output \
         is duplicated"
    )]
    ProducerFatal {
        /// What was being done.
        action: String,
        /// The client error.
        #[source]
        cause: ClientError,
    },
    /// The open transaction could not be aborted, so its work cannot be redone safely.
    #[error(
        "cannot abort the transaction (after `{why}`); this instance stops so that no output is \
         duplicated"
    )]
    AbortFailed {
        /// Why it was being aborted.
        why: String,
        /// The client error.
        #[source]
        cause: ClientError,
    },
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
    #[error("internal topic record unreadable")]
    Wire(#[source] WireError),
    /// The worker broke one of its own invariants; nothing of the open transaction is committed.
    #[error("internal error: {0}; nothing of the open transaction was committed")]
    Invariant(&'static str),
    /// A thread of the worker could not be started.
    #[error("cannot start the {name} thread")]
    Thread {
        /// The thread's name.
        name: &'static str,
        /// The operating system's error.
        #[source]
        cause: std::io::Error,
    },
}

/// A Kafka client error, as the end of a cause chain. rdkafka's `KafkaError` returns its code
/// from `source()` after already printing it, which would print the code twice in a chain.
#[derive(Debug)]
pub struct ClientError(pub KafkaError);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ClientError {}

/// What topics or configuration do not allow.
#[derive(Debug, Error)]
pub enum SetupError {
    /// An input topic is missing (input topics are never created).
    #[error(
        "input topic `{topic}` does not exist on {bootstrap}: create it first (input topics are never created)"
    )]
    InputTopicMissing {
        /// The topic.
        topic: String,
        /// `kafka.bootstrap_servers`.
        bootstrap: String,
    },
    /// An internal topic's partition count differs from the input's.
    #[error(
        "internal topic `{topic}` has {partitions} partitions but the input has {owners}: \
         internal topics must match the largest input topic (delete them to reset the application)"
    )]
    PartitionMismatch {
        /// The internal topic.
        topic: String,
        /// Its partition count.
        partitions: i32,
        /// The largest input topic's partition count.
        owners: i32,
    },
    /// The changelog is not compacted.
    #[error(
        "changelog topic `{topic}` has cleanup.policy={policy}; goalpost keeps its \
         state there and needs `compact` (e.g. kafka-configs.sh --alter --entity-type \
         topics --entity-name {topic} --add-config cleanup.policy=compact)"
    )]
    NotCompacted {
        /// The changelog topic.
        topic: String,
        /// Its `cleanup.policy`.
        policy: String,
    },
    /// Topics are missing and goalpost may not create them.
    #[error("missing topic(s) {}: create them, or set app.create_topics = true", .0.join(", "))]
    TopicsMissing(Vec<String>),
    /// The cluster refused to create a topic.
    #[error("cannot create topic `{topic}`")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        #[source]
        code: RDKafkaErrorCode,
    },
    /// A roster topic is missing, or a roster that reads one cannot be set up.
    #[error(transparent)]
    RosterTopic(#[from] super::roster_topic::RosterTopicError),
    /// A roster read from a file cannot be loaded.
    #[error(transparent)]
    RosterFile(#[from] crate::runtime::rosters::RosterLoadError),
    /// No broker answered in time.
    #[error(
        "Kafka: no broker reachable at {bootstrap} within {seconds}s ({settings}): {last}; is the \
         broker running, and are kafka.bootstrap_servers (or KAFKA_BOOTSTRAP) and \
         security.protocol right?"
    )]
    NoBroker {
        /// `kafka.bootstrap_servers`.
        bootstrap: String,
        /// How long it waited.
        seconds: u64,
        /// `security.protocol`, `sasl.mechanism` and `sasl.username`, as configured.
        settings: String,
        /// The last error seen, with secrets removed.
        last: String,
    },
}

/// How the worker treats an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The open transaction is aborted and its work redone from the changelog.
    Retriable,
    /// Another instance took over: this one stops (unless a broker disruption explains it).
    Fencing,
    /// Nothing this instance can redo helps: it stops.
    Fatal,
}

impl RunError {
    pub(crate) fn kafka(action: &str, cause: KafkaError) -> Self {
        RunError::Kafka {
            action: action.to_string(),
            cause: ClientError(cause),
        }
    }

    /// A transactional call's error: one that requires an abort is retriable (the transaction is
    /// redone), a fatal one ends the producer, as fencing or otherwise.
    pub(crate) fn transactional(action: &str, cause: KafkaError) -> Self {
        match &cause {
            KafkaError::Transaction(e) if e.txn_requires_abort() => Self::kafka(action, cause),
            KafkaError::Transaction(e) if e.is_fatal() => Self::producer(action, cause),
            _ => Self::kafka(action, cause),
        }
    }

    /// An error the producer cannot go on after: fencing when its code says so.
    pub(crate) fn producer(action: &str, cause: KafkaError) -> Self {
        let action = action.to_string();
        let fencing = cause.rdkafka_error_code().is_some_and(is_fencing);
        let cause = ClientError(cause);
        if fencing {
            RunError::Fenced { action, cause }
        } else {
            RunError::ProducerFatal { action, cause }
        }
    }

    /// How the worker treats this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            RunError::Kafka { .. } => ErrorClass::Retriable,
            RunError::Fenced { .. } => ErrorClass::Fencing,
            RunError::Authentication { .. }
            | RunError::Setup(_)
            | RunError::ProducerFatal { .. }
            | RunError::AbortFailed { .. }
            | RunError::RecordTooLarge { .. }
            | RunError::Wire(_)
            | RunError::Invariant(_)
            | RunError::Thread { .. } => ErrorClass::Fatal,
        }
    }
}

// By hand, not `#[from]` on the variant: `Wire` is constructed from a `WireError` with `?`.
impl From<WireError> for RunError {
    fn from(e: WireError) -> Self {
        RunError::Wire(e)
    }
}

/// Whether a producer error code means another producer with the same transactional id took
/// over.
fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
    )
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// The full text as `{e:#}` prints it: each cause once, after its context.
    fn chain(e: &RunError) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    #[test]
    fn causes_are_sources_not_repeated_in_the_message() {
        let cause = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let e = RunError::kafka("produce a record", cause.clone());
        assert_eq!(e.to_string(), "Kafka: cannot produce a record");
        assert_eq!(
            chain(&e),
            format!("Kafka: cannot produce a record: {cause}")
        );
        let wire = RunError::from(WireError::Invalid {
            what: "batch",
            detail: "bad".into(),
        });
        assert_eq!(
            chain(&wire),
            "internal topic record unreadable: invalid batch: bad"
        );
        let setup = RunError::from(SetupError::CreateTopic {
            topic: "t".into(),
            code: RDKafkaErrorCode::TopicAuthorizationFailed,
        });
        assert!(
            chain(&setup).starts_with("cannot create topic `t`: "),
            "{}",
            chain(&setup)
        );
        assert_eq!(chain(&setup).matches("cannot create topic").count(), 1);
    }

    #[test]
    fn fencing_is_told_from_other_fatal_errors() {
        let fenced = RunError::producer(
            "commit the transaction",
            KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced),
        );
        assert_eq!(fenced.class(), ErrorClass::Fencing);
        assert!(fenced.to_string().contains("fenced"), "{fenced}");
        let fatal = RunError::producer(
            "begin a transaction",
            KafkaError::MessageProduction(RDKafkaErrorCode::Fail),
        );
        assert_eq!(fatal.class(), ErrorClass::Fatal);
        assert!(!fatal.to_string().contains("fenced"), "{fatal}");
    }

    #[test]
    fn only_kafka_errors_are_retriable_and_an_unreadable_record_is_not_a_producer_error() {
        let retriable = RunError::transactional(
            "send offsets",
            KafkaError::MessageProduction(RDKafkaErrorCode::RequestTimedOut),
        );
        assert_eq!(retriable.class(), ErrorClass::Retriable);
        let wire = RunError::from(WireError::Invalid {
            what: "changelog record",
            detail: "bad".into(),
        });
        assert_eq!(wire.class(), ErrorClass::Fatal);
        assert!(!chain(&wire).contains("producer"), "{}", chain(&wire));
        let bug = RunError::Invariant("input record was not decoded");
        assert_eq!(bug.class(), ErrorClass::Fatal);
        assert!(!bug.to_string().contains("producer"), "{bug}");
    }
}
