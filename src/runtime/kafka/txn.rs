//! The transactional producer as a state machine: idle or open; begin, send, commit with the
//! consumed offsets, abort; retriable calls made again patiently; recreation after a fatal error
//! caused by a broker disruption.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

use super::clients::ProducerCtx;
use super::error::{ClientError, RunError};

/// How long a single Kafka call may take.
pub const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a transactional call (commit, abort, initialisation after a recovery) is made again
/// while librdkafka reports a retriable error, e.g. across a broker restart.
pub const TXN_PATIENCE: Duration = Duration::from_secs(300);
/// The pause between two attempts of a retriable transactional call.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// The pause while librdkafka's local queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(1);
/// A producer failing fatally while the broker connection was disrupted is recreated at most
/// [`MAX_RECOVERIES`] times within this window; one more fatal error stops the instance.
const RECOVERY_WINDOW: Duration = Duration::from_secs(600);
const MAX_RECOVERIES: usize = 3;
/// After this many transactions in a row failed to commit, the producer is replaced rather than
/// asked to abort once more (within the same [`MAX_RECOVERIES`] budget): a producer whose
/// deliveries keep failing after a broker restart may never recover by itself.
const FAILED_COMMITS_BEFORE_REPLACING: u32 = 3;
/// How long one `send_offsets_to_transaction` call may take before its producer is given up as
/// stuck. librdkafka waits for that call without a deadline, and after a broker restart its
/// group-coordinator lookup can stall for minutes (librdkafka issues 5456 and 5511); the
/// producer cannot be used while the call is pending, so it is replaced.
const SEND_OFFSETS_DEADLINE: Duration = Duration::from_secs(45);

/// The consumer's group metadata, shared with the thread that sends the offsets.
pub type GroupMetadata = Arc<ConsumerGroupMetadata>;

/// The transactional producer and the state of its transaction.
pub struct Txn {
    producer: Arc<ThreadedProducer<ProducerCtx>>,
    /// Its configuration, to recreate it after a fatal error caused by a broker disruption.
    config: ClientConfig,
    /// Set by either client when a broker connection fails, cleared by a successful commit.
    disrupted: Arc<AtomicBool>,
    /// When the producer was recreated, within the last [`RECOVERY_WINDOW`].
    recoveries: Vec<Instant>,
    /// Transactions in a row that failed to commit; a commit resets it.
    failed_commits: u32,
    /// A `send_offsets_to_transaction` call did not return in time: the producer must be
    /// replaced.
    stuck: bool,
    /// [`SEND_OFFSETS_DEADLINE`], shorter in tests.
    send_offsets_deadline: Duration,
    /// A transaction is open.
    open: bool,
    started: Instant,
    /// A record could not be handed to the producer: the open transaction must not commit.
    send_failed: Option<RDKafkaErrorCode>,
    /// A record goalpost cannot split was larger than the producer allows: what to tell the
    /// operator. Retrying cannot help, so the instance stops (see [`Txn::send`]).
    too_large: Option<RunError>,
    /// `message.max.bytes` as configured, for that message.
    limit: String,
}

/// How long the steps of a commit took, for the debug log.
#[derive(Debug)]
pub struct CommitTimes {
    /// Sending the consumed offsets.
    pub offsets: Duration,
    /// Flushing and committing.
    pub commit: Duration,
    /// Since the transaction began.
    pub age: Duration,
}

impl Txn {
    /// Creates the transactional producer and initialises transactions (see
    /// [`transactional_producer`]).
    pub fn new(
        config: ClientConfig,
        disrupted: Arc<AtomicBool>,
        patience: Duration,
    ) -> Result<Self, RunError> {
        let producer = Arc::new(transactional_producer(&config, &disrupted, patience)?);
        let limit = config
            .get("message.max.bytes")
            .unwrap_or("1000000 (librdkafka's default)")
            .to_string();
        Ok(Txn {
            producer,
            config,
            disrupted,
            recoveries: Vec::new(),
            failed_commits: 0,
            stuck: false,
            send_offsets_deadline: SEND_OFFSETS_DEADLINE,
            open: false,
            started: Instant::now(),
            send_failed: None,
            too_large: None,
            limit,
        })
    }

    /// The producer, for calls outside a transaction of the worker's (warm-up).
    pub fn producer(&self) -> &ThreadedProducer<ProducerCtx> {
        &self.producer
    }

    /// Whether a transaction is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// How long the open transaction has been open.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// When the open transaction began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Opens a transaction unless one is open.
    pub fn begin(&mut self) -> Result<(), RunError> {
        if !self.open {
            self.producer
                .begin_transaction()
                .map_err(|e| RunError::producer("begin a transaction", e))?;
            self.open = true;
            self.started = Instant::now();
        }
        Ok(())
    }

    /// Hands a record to the producer. A record it refuses at once (too large, say) must not be
    /// lost silently: the open transaction then fails at commit and its work is redone.
    pub fn send(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) {
        let Err(e) = self.try_send(topic, partition, key, payload, headers) else {
            return;
        };
        if let KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) = e {
            // An attainment event, one contribution, a part of a window's state under a huge
            // key: records that cannot be split or cut (batches, dedupe records and window
            // states are split well below the limit). Redoing the transaction would fail the
            // same way, forever.
            let size = key.len() + payload.map_or(0, <[u8]>::len);
            let limit = self.limit.clone();
            self.too_large
                .get_or_insert_with(|| RunError::RecordTooLarge {
                    size,
                    topic: topic.to_string(),
                    limit,
                });
        }
        self.note_send_failed(topic, e);
    }

    /// Hands a record to the producer, waiting while its local queue is full.
    pub fn try_send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), KafkaError> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).key(key);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(v) = payload {
            record = record.payload(v);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        send_waiting(&self.producer, record)
    }

    /// Remembers that a record was refused: the open transaction must not commit. Logged for the
    /// first refusal of a transaction only.
    pub fn note_send_failed(&mut self, topic: &str, e: KafkaError) {
        if self.send_failed.is_none() {
            tracing::error!(error = %e, topic, "the producer refused a record: the transaction will be aborted");
        }
        self.send_failed = Some(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail));
    }

    /// Commits the open transaction with `offsets` (the next offsets to read) for the group of
    /// `cgm`. A refused record fails the commit (see [`Txn::send`]). Failed commits in a row
    /// are counted (see [`Txn::replace_if_failing`]).
    pub fn commit(
        &mut self,
        offsets: &TopicPartitionList,
        cgm: Option<&GroupMetadata>,
    ) -> Result<CommitTimes, RunError> {
        let result = self.try_commit(offsets, cgm);
        self.failed_commits = if result.is_ok() {
            0
        } else {
            self.failed_commits + 1
        };
        result
    }

    fn try_commit(
        &mut self,
        offsets: &TopicPartitionList,
        cgm: Option<&GroupMetadata>,
    ) -> Result<CommitTimes, RunError> {
        if let Some(e) = self.too_large.take() {
            return Err(e);
        }
        if let Some(code) = self.send_failed.take() {
            return Err(RunError::kafka(
                "produce a record (see the error logged before)",
                KafkaError::MessageProduction(code),
            ));
        }
        let t0 = Instant::now();
        if offsets.count() > 0 {
            let cgm = cgm.ok_or(RunError::Invariant("no consumer group metadata"))?;
            let (producer, deadline) = (&self.producer, self.send_offsets_deadline);
            let mut stuck = false;
            let sent = retry_retriable("send offsets", TXN_PATIENCE, || {
                send_offsets_within(producer, offsets, cgm, deadline).unwrap_or_else(|| {
                    stuck = true;
                    Err(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut))
                })
            });
            if stuck {
                self.stuck = true;
                return Err(RunError::kafka(
                    &format!(
                        "send the consumed offsets to the transaction: no answer within {} s, \
                         the producer is replaced",
                        deadline.as_secs()
                    ),
                    KafkaError::Global(RDKafkaErrorCode::OperationTimedOut),
                ));
            }
            sent.map_err(|e| self.classify(e, "send offsets to the transaction"))?;
        }
        let sent_offsets = t0.elapsed();
        let started = Instant::now();
        self.flush();
        let producer = &self.producer;
        retry_retriable("commit", TXN_PATIENCE, || {
            producer.commit_transaction(KAFKA_TIMEOUT)
        })
        .map_err(|e| self.classify(e, "commit the transaction"))?;
        let times = CommitTimes {
            offsets: sent_offsets,
            commit: started.elapsed(),
            age: self.started.elapsed(),
        };
        self.open = false;
        self.disrupted.store(false, Ordering::Relaxed);
        Ok(times)
    }

    /// Flushes in 1 ms steps: `commit_transaction` flushes by itself, but in steps of 100 ms.
    /// While librdkafka flushes, it sends what waits for `linger.ms` at once, so that a long
    /// linger does not hold up the commit.
    fn flush(&self) {
        let deadline = Instant::now() + KAFKA_TIMEOUT;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            // SAFETY: the client pointer is valid while the producer lives; rd_kafka_flush may be
            // called from any thread. Its result is the in-flight count checked above.
            unsafe {
                rdkafka::bindings::rd_kafka_flush(self.producer.client().native_ptr(), 1);
            }
        }
    }

    /// The error of a failed transactional call; any error but a fatal one means the broker
    /// side is in trouble (a coordinator moving or unreachable).
    fn classify(&self, e: KafkaError, action: &str) -> RunError {
        if !matches!(&e, KafkaError::Transaction(err) if err.is_fatal()) {
            self.disrupted.store(true, Ordering::Relaxed);
        }
        RunError::transactional(action, e)
    }

    /// Aborts the open transaction, if any, and forgets refused records. Returns whether a
    /// transaction was open.
    pub fn abort(&mut self, why: &str) -> Result<bool, RunError> {
        self.send_failed = None;
        self.too_large = None;
        if !self.open {
            return Ok(false);
        }
        let producer = &self.producer;
        retry_retriable("abort", TXN_PATIENCE, || {
            producer.abort_transaction(KAFKA_TIMEOUT)
        })
        .map_err(|cause| RunError::AbortFailed {
            why: why.to_string(),
            cause: ClientError(cause),
        })?;
        self.open = false;
        Ok(true)
    }

    /// After a fatal error: when the producer failed fatally while the broker connection was
    /// disrupted (a broker restart can leave librdkafka believing it was fenced), it is
    /// recreated, which aborts its open transaction on the broker, as Kafka Streams
    /// reinitialises its producer. A fatal error without a disruption, or too many in a row, is
    /// returned: another instance with the same id fenced this one. Returns whether a
    /// transaction was open (and is now aborted).
    pub fn recover(&mut self, e: RunError) -> Result<bool, RunError> {
        if self.producer.client().fatal_error().is_none() || !self.disrupted.load(Ordering::Relaxed)
        {
            return Err(e);
        }
        if !self.may_recreate() {
            return Err(e);
        }
        tracing::warn!(
            error = %e,
            "the producer failed while the broker connection was disrupted: recreating it and \
             rebuilding state from the changelog"
        );
        self.recreate()
    }

    /// After a failed commit: once [`FAILED_COMMITS_BEFORE_REPLACING`] commits in a row failed
    /// (and the recovery budget allows), the producer is recreated, which aborts its open
    /// transaction on the broker. `Ok(None)`: not replaced, abort as usual; `Ok(Some(was_open))`:
    /// replaced, and whether a transaction was open (and is now aborted).
    /// A producer stuck in a call is always replaced: past the budget, that is a fatal error.
    pub fn replace_if_failing(&mut self, e: &RunError) -> Result<Option<bool>, RunError> {
        if !self.stuck && self.failed_commits < FAILED_COMMITS_BEFORE_REPLACING {
            return Ok(None);
        }
        if !self.may_recreate() {
            if self.stuck {
                return Err(RunError::ProducerFatal {
                    action: format!(
                        "send the consumed offsets to the transaction (no answer within {} s, and \
                         the producer was replaced {MAX_RECOVERIES} times in the last {} minutes)",
                        SEND_OFFSETS_DEADLINE.as_secs(),
                        RECOVERY_WINDOW.as_secs() / 60
                    ),
                    cause: ClientError(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut)),
                });
            }
            return Ok(None);
        }
        tracing::warn!(
            error = %e,
            failed_commits = self.failed_commits,
            "transactions keep failing: replacing the producer and rebuilding state from the \
             changelog"
        );
        self.recreate().map(Some)
    }

    /// Whether the producer may be recreated now: fewer than [`MAX_RECOVERIES`] times within
    /// the last [`RECOVERY_WINDOW`].
    fn may_recreate(&mut self) -> bool {
        let now = Instant::now();
        self.recoveries
            .retain(|t| now.duration_since(*t) < RECOVERY_WINDOW);
        self.recoveries.len() < MAX_RECOVERIES
    }

    /// Recreates the producer (its initialisation fences the old one and aborts its open
    /// transaction); returns whether a transaction was open.
    fn recreate(&mut self) -> Result<bool, RunError> {
        self.producer = Arc::new(transactional_producer(
            &self.config,
            &self.disrupted,
            TXN_PATIENCE,
        )?);
        self.recoveries.push(Instant::now());
        self.failed_commits = 0;
        self.stuck = false;
        let was_open = std::mem::replace(&mut self.open, false);
        self.send_failed = None;
        self.too_large = None;
        Ok(was_open)
    }
}

/// One `send_offsets_to_transaction` call on a helper thread; `None` when it did not return
/// within `deadline` (the thread is left to finish on its own, holding the producer, which must
/// then be replaced).
fn send_offsets_within(
    producer: &Arc<ThreadedProducer<ProducerCtx>>,
    offsets: &TopicPartitionList,
    cgm: &GroupMetadata,
    deadline: Duration,
) -> Option<Result<(), KafkaError>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let (producer, offsets, cgm) = (producer.clone(), offsets.clone(), cgm.clone());
    let spawned = std::thread::Builder::new()
        .name("goalpost-offsets".into())
        .spawn(move || {
            let _ = tx.send(producer.send_offsets_to_transaction(&offsets, &cgm, KAFKA_TIMEOUT));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the thread that sends offsets");
        return Some(Err(KafkaError::Global(RDKafkaErrorCode::Fail)));
    }
    rx.recv_timeout(deadline).ok()
}

/// Creates the transactional producer and initialises transactions, which fences any earlier
/// producer with the same transactional id and aborts its open transaction. Retriable errors
/// (the coordinator not reachable yet) are retried for up to `patience`.
fn transactional_producer(
    config: &ClientConfig,
    disrupted: &Arc<AtomicBool>,
    patience: Duration,
) -> Result<ThreadedProducer<ProducerCtx>, RunError> {
    let producer: ThreadedProducer<ProducerCtx> = config
        .create_with_context(ProducerCtx {
            disrupted: disrupted.clone(),
        })
        .map_err(|e| RunError::kafka("create the transactional producer", e))?;
    retry_retriable("initialise transactions", patience, || {
        producer.init_transactions(KAFKA_TIMEOUT)
    })
    .map_err(|e| RunError::kafka("initialise transactions (fence earlier instances)", e))?;
    Ok(producer)
}

/// Sends a record, waiting while librdkafka's local queue is full (it drains as deliveries
/// complete); any other error is returned.
pub fn send_waiting(
    producer: &ThreadedProducer<ProducerCtx>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(QUEUE_FULL_WAIT);
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Makes a transactional call again, every [`RETRY_EVERY`], while librdkafka reports a retriable
/// error (a timeout, the coordinator unreachable or moving), until `patience` has passed.
/// Retrying `commit_transaction` is safe and learns the real outcome, where aborting could not.
/// An abort or an initialisation is resumable the same way, and nothing else may be called
/// meanwhile (librdkafka refuses it as a conflicting call), so giving up early would leave the
/// producer unusable.
pub fn retry_retriable(
    what: &str,
    patience: Duration,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + patience;
    let mut attempts = 0u32;
    loop {
        match call() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && Instant::now() < deadline => {
                attempts += 1;
                tracing::warn!(error = %e, attempts, what, "transactional call failed, retrying");
                std::thread::sleep(RETRY_EVERY);
            }
            other => return other,
        }
    }
}

/// Writes one record to every partition of the topics just created, in a transaction that is then
/// aborted, so no read_committed consumer ever sees it. On a fresh partition the broker takes
/// a while over the first transaction markers, and meanwhile answers CONCURRENT_TRANSACTIONS to
/// the next transaction: this pays that before the first event instead of after it. The records
/// have the key `goalpost.warmup` and no value.
pub fn warm_up(txn: &Txn, created: &[String], partitions: i32) -> Result<(), RunError> {
    if created.is_empty() {
        return Ok(());
    }
    let producer = txn.producer();
    let started = Instant::now();
    let fail =
        |what: &str, e: KafkaError| RunError::kafka(&format!("warm up new topics: {what}"), e);
    producer
        .begin_transaction()
        .map_err(|e| fail("begin a transaction", e))?;
    for topic in created {
        for p in 0..partitions {
            let record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(topic).partition(p).key(b"goalpost.warmup");
            send_waiting(producer, record).map_err(|e| fail("send a warm-up record", e))?;
        }
    }
    producer
        .flush(KAFKA_TIMEOUT)
        .map_err(|e| fail("deliver the warm-up records", e))?;
    producer
        .abort_transaction(KAFKA_TIMEOUT)
        .map_err(|e| fail("abort the warm-up transaction", e))?;
    tracing::info!(
        topics = created.len(),
        partitions,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "warmed up the new topics (one aborted transaction)"
    );
    Ok(())
}

#[cfg(test)]
#[path = "txn_tests.rs"]
mod tests;
