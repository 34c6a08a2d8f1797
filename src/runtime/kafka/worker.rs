//! The processing loop of one instance.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::config::RunConfig;
use super::restore::{decode_partition, read_partitions, Unreadable};
use super::warn_limit::{WarnLimit, WARN_EVERY};
use super::wire::{self, pb, ChangelogKey};
use super::{admin, ErrorClass, RunError};
use crate::codec::{self, json, proto, Format};
use crate::engine::{Applied, Contribution, GroupKey, Owner, Progress, Routed, Router};
use crate::goals::GoalSet;
use crate::model::{Attainment, SalesEvent, Timestamp};
use crate::serve::hub::Committed;
use crate::serve::{Hub, QueryReceiver, Telemetry};

const KAFKA_TIMEOUT: StdDuration = StdDuration::from_secs(30);
/// How long a transactional call (commit, abort, initialisation after a recovery) is made again
/// while librdkafka reports a retriable error, e.g. across a broker restart.
const TXN_PATIENCE: StdDuration = StdDuration::from_secs(300);
/// A producer failing fatally while the broker connection was disrupted is recreated at most
/// [`MAX_RECOVERIES`] times within this window; one more fatal error stops the instance.
const RECOVERY_WINDOW: StdDuration = StdDuration::from_secs(600);
const MAX_RECOVERIES: usize = 3;
/// Records taken from the consumer per round, at most: decoded together, then handled in order.
const MAX_POLL_BATCH: usize = 1_024;
/// Contributions per repartition record, at most.
const MAX_BATCH: usize = 2_000;
/// Bytes per record goalpost can split (dedupe changelog records, contribution batches), at most
/// (about): well under librdkafka's default `message.max.bytes` of 1,000,000, however many events
/// a transaction takes; half of `message.max.bytes` when that is set lower.
const MAX_SPLIT_RECORD_BYTES: usize = 256 * 1024;
/// How long the periodic commit waits for a barrier to come back before sending the
/// contributions it holds through the topic after all (see [`Link`]).
const BARRIER_PATIENCE: StdDuration = StdDuration::from_millis(500);
/// The `goalpost.reason` of a dead-lettered repartition or changelog record.
const INTERNAL_REASON: &str = "unreadable_internal_record";

/// How `goalpost run` ends.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Process up to the input end offsets seen at start, commit and exit.
    pub until_caught_up: bool,
    /// With `until_caught_up`: then close every window, as replay does at end of input.
    pub close_all_at_end: bool,
    /// Do not read an existing changelog's `cleanup.policy` (librdkafka's mock cluster, used by
    /// the demo, cannot describe topic configurations).
    pub skip_changelog_policy_check: bool,
}

/// The link to the HTTP side: where committed attainments and readiness go, and where window
/// queries come from.
pub struct Serving {
    /// The shared state.
    pub hub: Arc<Hub>,
    /// Window queries, answered between poll rounds.
    pub queries: QueryReceiver,
    /// This instance's HTTP base URL, advertised to the group in the consumer's `client.id`.
    pub advertised_url: Option<String>,
}

/// Counters of a run.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Input records read.
    pub read: u64,
    /// Input records accepted.
    pub accepted: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Records dead-lettered.
    pub rejected: u64,
    /// Attainment events produced.
    pub attainments: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Transactions aborted.
    pub aborts: u64,
    /// Times the transactional producer was recreated after failing fatally during a broker
    /// disruption (state was rebuilt from the changelog each time).
    pub producers_recreated: u64,
    /// Contributions applied to an owner on this instance directly, not sent through the
    /// repartition topic.
    pub local_contributions: u64,
    /// Records of the repartition or changelog topic that could not be read: skipped and
    /// dead-lettered.
    pub internal_skipped: u64,
    /// Contributions read from the repartition topic for a goal not in the goal file (removed
    /// since they were sent, or written by another producer): skipped and counted, not
    /// dead-lettered (their events were accepted and are still in the input).
    pub unknown_goal: u64,
    /// Contributions skipped for a goal's `max_groups` or `max_distinct`, over every goal.
    pub overflow: u64,
    /// Event ids the dedupe memory forgot before the horizon because of `app.dedupe_max_ids`.
    pub dedupe_evicted: u64,
}

struct RouterTask {
    router: Router,
    /// The assignment epoch in which this task was created: records polled before it are stale.
    since_epoch: u64,
    /// Stream time last sent to the owners.
    sent: Option<Timestamp>,
    /// Dedupe batches in the changelog: number -> latest time in it.
    batches: BTreeMap<u64, Timestamp>,
    next_batch: u64,
    clock_dirty: bool,
    /// When a record was last seen, as of the last idle check.
    last_record: Instant,
    /// Records seen since the last idle check (cheaper than reading the clock per record).
    records_since_check: u64,
    idle_sent: bool,
}

/// How this instance's routers reach the owner of a repartition partition.
///
/// Contributions go through the repartition topic, so each (goal, group) has one owner wherever
/// its events are read. When the owner is on this instance too, the trip through the broker only
/// costs time: once the owner has read back a barrier sent after everything this instance's
/// routers sent it, nothing of theirs is pending in the topic, and their contributions, progress
/// and idle markers are applied to the owner directly, in the same transaction as the input
/// offsets. Any change of assignment (and any abort) goes back to the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// Through the repartition topic.
    Topic,
    /// A barrier went out through the topic (read back only once its transaction commits; an
    /// abort resets every link); contributions for this owner are held until the owner reads it.
    Draining { barrier: u64, sent: Instant },
    /// Applied directly: the owner is here and has read everything sent before.
    Local,
}

/// A partition this instance reads, without its topic name (no allocation per record).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Part {
    /// An input partition, by upstream index.
    Input(u32),
    /// A repartition partition (its owner's index).
    Repartition(i32),
}

/// The partitions an instance may read: every input partition (by upstream index) and the
/// repartition topic.
struct Topics {
    repartition: String,
    /// Upstream index -> input (topic, partition).
    inputs: Vec<(String, i32)>,
    /// Input topic -> upstream index of its partition 0.
    input_bases: Vec<(String, u32)>,
}

impl Topics {
    /// The partition a record came from, if this instance reads it.
    fn part(&self, topic: &str, partition: i32) -> Option<Part> {
        if topic == self.repartition {
            return Some(Part::Repartition(partition));
        }
        let &(_, base) = self.input_bases.iter().find(|(t, _)| t == topic)?;
        let id = base + u32::try_from(partition).ok()?;
        (self.inputs.get(id as usize)?.0 == topic).then_some(Part::Input(id))
    }

    /// The topic and partition of a [`Part`].
    fn name(&self, part: Part) -> (&str, i32) {
        match part {
            Part::Input(up) => {
                let (t, p) = &self.inputs[up as usize];
                (t, *p)
            }
            Part::Repartition(p) => (&self.repartition, p),
        }
    }
}

/// Metrics published so far (counters are published as deltas at each commit).
#[derive(Default)]
struct Published {
    report: RunReport,
    rejected: [u64; codec::RejectReason::ALL.len()],
    late: Vec<u64>,
    overflow: Vec<u64>,
    repartition_records: u64,
    changelog_records: u64,
}

struct Worker {
    cfg: RunConfig,
    instance: String,
    hub: Option<Arc<Hub>>,
    queries: Option<QueryReceiver>,
    /// Attainment events of the open transaction, published to the hub once it commits.
    txn_attainments: Vec<(usize, crate::model::AttainmentKind, Committed)>,
    rejected: [u64; codec::RejectReason::ALL.len()],
    late: Vec<u64>,
    overflow: Vec<u64>,
    repartition_records: u64,
    changelog_records: u64,
    published: Published,
    lag_gauges: Vec<metrics::Gauge>,
    last_state_metrics: Instant,
    goals: Arc<GoalSet>,
    goal_index: hashbrown::HashMap<String, usize>,
    /// Per goal: its [`wire::goal_hash`], to find owner partitions.
    goal_hashes: Vec<u64>,
    client: ClientConfig,
    producer: ThreadedProducer<ProducerCtx>,
    /// The transactional producer's configuration, to recreate it after a fatal error caused by a
    /// broker disruption.
    producer_config: ClientConfig,
    /// Set by either client when a broker connection fails, cleared by a successful commit.
    disrupted: Arc<AtomicBool>,
    /// When the producer was recreated, within the last [`RECOVERY_WINDOW`].
    recoveries: Vec<Instant>,
    /// The partitions this instance may read; shared with the decode thread.
    topics: Arc<Topics>,
    changelog: String,
    dead_letters: String,
    owners_count: i32,
    routers: BTreeMap<u32, RouterTask>,
    owners: BTreeMap<i32, Owner>,
    /// Per owned partition: the assignment epoch in which its owner was created.
    owner_since: BTreeMap<i32, u64>,
    in_txn: bool,
    txn_started: Instant,
    /// Next offsets to commit (last processed + 1), this transaction.
    offsets: BTreeMap<Part, i64>,
    /// Pending repartition batches: (upstream, owner partition) -> batch.
    batches: BTreeMap<(u32, i32), wire::BatchWriter>,
    /// Full batches held for an owner whose barrier is on its way back, encoded, in order:
    /// (upstream, owner partition) -> batches (they precede that key's batch in `batches`).
    held: BTreeMap<(u32, i32), Vec<Vec<u8>>>,
    /// Per repartition partition: how this instance's routers reach its owner.
    links: Vec<Link>,
    /// Per repartition partition: a barrier wait was given up in this assignment, so commits no
    /// longer wait for its barriers.
    impatient: Vec<bool>,
    /// Distinguishes this process's barriers and sentinels from those of an earlier process
    /// with the same instance id, still in the topic.
    nonce: u64,
    /// A record could not be handed to the producer: the open transaction must not commit.
    send_failed: std::cell::Cell<Option<RDKafkaErrorCode>>,
    /// A record goalpost cannot split was larger than the producer allows: what to tell the
    /// operator. Retrying cannot help, so the instance stops (see [`Worker::send`]).
    too_large: std::cell::RefCell<Option<RunError>>,
    /// The size at which records goalpost can split are split (see [`MAX_SPLIT_RECORD_BYTES`]).
    split_bytes: usize,
    attainments: Vec<Attainment>,
    buf: Vec<u8>,
    report: RunReport,
    /// Set when an aborted transaction requires rebuilding state from the changelog.
    needs_reset: bool,
    assigned_once: bool,
    fatal: Option<RunError>,
    /// Next offset to read per assigned partition: committed at assignment, then consumed + 1.
    next_offsets: hashbrown::HashMap<Part, i64>,
    /// Incremented on every assignment change; mirrored in `epoch` for the polling loop.
    assignment_epoch: u64,
    epoch: Arc<AtomicU64>,
    /// A sentinel sent to the owned repartition partitions: (id, epoch, partitions not yet seen).
    sentinel: Option<(u64, u64, std::collections::BTreeSet<i32>)>,
    sentinels_sent: u64,
    /// Per owned partition: the windows whose state is stored in parts, and how many.
    split_windows: BTreeMap<i32, HashMap<Vec<u8>, u32>>,
    /// Changelog records found unreadable by the last restore, by changelog partition: to be
    /// dead-lettered and tombstoned in the next transaction.
    unreadable: Vec<(i32, Unreadable)>,
    /// Window parts left over in the changelog, by partition: to be tombstoned in the next
    /// transaction.
    orphan_parts: Vec<(i32, Vec<u8>)>,
    /// Warnings about single records, rate-limited.
    warnings: WarnLimit,
}

struct Ctx {
    worker: Arc<Mutex<Worker>>,
    disrupted: Arc<AtomicBool>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        note_client_error(&self.disrupted, error, reason);
    }
}

/// The transactional producer's context: notes broker disruptions; deliveries are checked through
/// the transaction's outcome, not one by one.
struct ProducerCtx {
    disrupted: Arc<AtomicBool>,
}

impl ClientContext for ProducerCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        note_client_error(&self.disrupted, error, reason);
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Logs a client-wide error as rdkafka does, and remembers lost broker connections.
fn note_client_error(disrupted: &AtomicBool, error: KafkaError, reason: &str) {
    use rdkafka::types::RDKafkaErrorCode as Code;
    if matches!(
        error.rdkafka_error_code(),
        Some(Code::BrokerTransportFailure | Code::AllBrokersDown | Code::Resolve)
    ) {
        disrupted.store(true, Ordering::Relaxed);
    }
    tracing::error!(target: "rdkafka::client", "librdkafka: {error}: {reason}");
}

/// Creates the transactional producer and initialises transactions, which fences any earlier
/// producer with the same transactional id and aborts its open transaction. Retriable errors
/// (the coordinator not reachable yet) are retried for up to `patience`.
fn transactional_producer(
    config: &ClientConfig,
    disrupted: &Arc<AtomicBool>,
    patience: StdDuration,
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
fn send_waiting(
    producer: &ThreadedProducer<ProducerCtx>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                r,
            )) => {
                record = r;
                std::thread::sleep(StdDuration::from_millis(1));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Writes one record to every partition of the topics just created, in a transaction that is then
/// aborted, so no read_committed consumer ever sees it. On a fresh partition the broker takes
/// a while over the first transaction markers, and meanwhile answers CONCURRENT_TRANSACTIONS to
/// the next transaction (about 0.5 s in the latency benchmark): this pays that before the first
/// event instead of after it. The records have the key `goalpost.warmup` and no value.
fn warm_up(
    producer: &ThreadedProducer<ProducerCtx>,
    created: &[String],
    partitions: i32,
) -> Result<(), RunError> {
    if created.is_empty() {
        return Ok(());
    }
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

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut w = self.worker.lock().expect("worker lock");
            tracing::info!(
                partitions = tpl.count(),
                "partitions revoked: committing in-flight work"
            );
            let cgm = consumer.group_metadata();
            if let Err(e) = w.commit(cgm.as_ref()) {
                w.fail_or_reset(e);
            }
            for el in tpl.elements() {
                w.drop_partition(el.topic(), el.partition());
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let mut w = self.worker.lock().expect("worker lock");
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?parts, "partitions assigned: restoring state");
                if let Some(hub) = &w.hub {
                    hub.set_ready(false);
                }
                // Our own open transaction may hold changelog records of the partitions to
                // restore, and the restore reads to the end offset: commit it first.
                if w.in_txn {
                    let cgm = consumer.group_metadata();
                    if let Err(e) = w.commit(cgm.as_ref()) {
                        w.fail_or_reset(e);
                    }
                }
                match w.assign(&parts) {
                    Ok(()) => {
                        // A transaction with nothing but barriers, so that the owners here are
                        // reached directly from (nearly) the first records on (see `Link`).
                        let cgm = consumer.group_metadata();
                        if let Err(e) = w.begin().and_then(|()| w.commit(cgm.as_ref())) {
                            w.fail_or_reset(e);
                        }
                    }
                    Err(e @ RunError::Wire(_)) => {
                        w.fatal.get_or_insert(e);
                    }
                    Err(e) => {
                        // E.g. metadata not yet available after a broker restart: rebuild later.
                        tracing::warn!(error = %e, "cannot restore the assigned partitions yet");
                        w.needs_reset = true;
                    }
                }
                w.note_committed(consumer, tpl);
                w.assigned_once = true;
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}

fn client_config(cfg: &RunConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.kafka.bootstrap_servers);
    for (k, v) in &cfg.kafka.properties {
        c.set(k, v);
    }
    c
}

/// `message.max.bytes` as `kafka.properties` sets it, if it does.
fn message_max_bytes(cfg: &RunConfig) -> Option<&str> {
    cfg.kafka
        .properties
        .get("message.max.bytes")
        .map(String::as_str)
}

/// Sets goalpost's default for each property that `kafka.properties` leaves unset.
fn set_defaults(client: &mut ClientConfig, cfg: &RunConfig, defaults: &[(&str, &str)]) {
    for (key, value) in defaults {
        if !cfg.kafka.properties.contains_key(*key) {
            client.set(*key, *value);
        }
    }
}

/// Runs the service until shutdown (or until caught up).
pub fn run(
    cfg: RunConfig,
    goals: Arc<GoalSet>,
    options: RunOptions,
    shutdown: Arc<AtomicBool>,
    serving: Option<Serving>,
) -> Result<RunReport, RunError> {
    let client = client_config(&cfg);
    let admin::PreparedTopics {
        inputs,
        owners: owners_count,
        created,
    } = admin::prepare_topics(&cfg, &client, !options.skip_changelog_policy_check)?;
    let mut input_parts = Vec::new();
    let mut input_bases = Vec::new();
    for (topic, n) in &inputs {
        input_bases.push((topic.clone(), input_parts.len() as u32));
        for p in 0..*n {
            input_parts.push((topic.clone(), p));
        }
    }
    let instance = cfg.instance_id();
    let txn_id = format!("{}-{}", cfg.app.application_id, instance);
    tracing::info!(
        instance = %instance,
        transactional_id = %txn_id,
        input_partitions = input_parts.len(),
        owner_partitions = owners_count,
        "starting"
    );

    let mut pc = client.clone();
    pc.set("transactional.id", &txn_id)
        .set("enable.idempotence", "true");
    let defaults = [
        // Nothing produced is visible to read_committed readers before the commit, which flushes
        // at once (see `Worker::commit`): a long linger costs no latency and makes fewer, larger
        // produce requests (the broker's CPU for them fell by about a third in the benchmark).
        ("linger.ms", "50"),
        ("compression.type", "lz4"),
        ("transaction.timeout.ms", "60000"),
        // A transaction begun right after a commit may be told CONCURRENT_TRANSACTIONS; retry
        // soon, and keep retrying soon: librdkafka doubles the backoff on every retry (up to 1 s
        // by default), which made one send_offsets_to_transaction take 630 ms on a busy broker.
        ("retry.backoff.ms", "10"),
        ("retry.backoff.max.ms", "100"),
    ];
    set_defaults(&mut pc, &cfg, &defaults);
    let disrupted = Arc::new(AtomicBool::new(false));
    // At start a failure is reported at once (the operator is watching); later it is retried.
    let producer = transactional_producer(&pc, &disrupted, StdDuration::ZERO)?;
    warm_up(&producer, &created, owners_count)?;

    let goal_index = goals
        .goals
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.to_string(), i))
        .collect();
    let goal_hashes = goals.goals.iter().map(|g| wire::goal_hash(&g.id)).collect();
    let epoch = Arc::new(AtomicU64::new(0));
    let (hub, queries, advertised_url) = match serving {
        Some(s) => (Some(s.hub), Some(s.queries), s.advertised_url),
        None => (None, None, None),
    };
    let lag_gauges = if hub.is_some() {
        input_parts
            .iter()
            .map(|(t, p)| Telemetry::consumer_lag(t, *p))
            .collect()
    } else {
        Vec::new()
    };
    let goal_count = goals.goals.len();
    let worker = Arc::new(Mutex::new(Worker {
        instance: instance.clone(),
        hub,
        queries,
        txn_attainments: Vec::new(),
        rejected: Default::default(),
        late: vec![0; goal_count],
        overflow: vec![0; goal_count],
        repartition_records: 0,
        changelog_records: 0,
        published: Published {
            late: vec![0; goal_count],
            overflow: vec![0; goal_count],
            ..Published::default()
        },
        lag_gauges,
        last_state_metrics: Instant::now(),
        topics: Arc::new(Topics {
            repartition: cfg.repartition_topic(),
            inputs: input_parts,
            input_bases,
        }),
        changelog: cfg.changelog_topic(),
        dead_letters: cfg.dead_letter_topic(),
        cfg: cfg.clone(),
        goals,
        goal_index,
        goal_hashes,
        client: client.clone(),
        producer,
        producer_config: pc,
        disrupted: disrupted.clone(),
        recoveries: Vec::new(),
        owners_count,
        routers: BTreeMap::new(),
        owners: BTreeMap::new(),
        owner_since: BTreeMap::new(),
        in_txn: false,
        txn_started: Instant::now(),
        offsets: BTreeMap::new(),
        batches: BTreeMap::new(),
        held: BTreeMap::new(),
        links: vec![Link::Topic; owners_count as usize],
        impatient: vec![false; owners_count as usize],
        nonce: {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        },
        send_failed: std::cell::Cell::new(None),
        too_large: std::cell::RefCell::new(None),
        split_bytes: message_max_bytes(&cfg)
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(MAX_SPLIT_RECORD_BYTES, |max| {
                (max / 2).min(MAX_SPLIT_RECORD_BYTES)
            }),
        attainments: Vec::new(),
        buf: Vec::new(),
        report: RunReport::default(),
        needs_reset: false,
        assigned_once: false,
        fatal: None,
        next_offsets: hashbrown::HashMap::new(),
        assignment_epoch: 0,
        epoch: epoch.clone(),
        sentinel: None,
        sentinels_sent: 0,
        split_windows: BTreeMap::new(),
        unreadable: Vec::new(),
        orphan_parts: Vec::new(),
        warnings: WarnLimit::new(WARN_EVERY),
    }));

    let mut cc = client.clone();
    let defaults = [
        // A crashed instance's partitions move on after this long (librdkafka default 45 s).
        ("session.timeout.ms", "10000"),
        // One fetch is outstanding per broker: a fetch parked on quiet repartition partitions
        // must not keep the busy input partitions waiting for the default 500 ms.
        ("fetch.wait.max.ms", "20"),
        // When the local queue is full librdkafka postpones fetching (1 s by default in 2.x),
        // which starves processing that is slower than fetching; retry soon instead.
        ("fetch.queue.backoff.ms", "20"),
    ];
    set_defaults(&mut cc, &cfg, &defaults);
    if let Some(url) = &advertised_url {
        if !cfg.kafka.properties.contains_key("client.id") {
            // The group's member list then tells the other instances where this one serves HTTP.
            cc.set("client.id", crate::serve::peers::client_id(&instance, url));
        }
    }
    cc.set("group.id", &cfg.app.application_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<Ctx> = cc
        .create_with_context(Ctx {
            worker: worker.clone(),
            disrupted,
        })
        .map_err(|e| RunError::kafka("create the consumer", e))?;
    let mut topics: Vec<&str> = cfg.input.topics.iter().map(String::as_str).collect();
    let repartition = cfg.repartition_topic();
    topics.push(&repartition);
    consumer
        .subscribe(&topics)
        .map_err(|e| RunError::kafka("subscribe", e))?;

    // End offsets of the input at start, for --until-caught-up.
    let mut targets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    if options.until_caught_up {
        for (topic, n) in &inputs {
            for p in 0..*n {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, KAFKA_TIMEOUT)
                    .map_err(|e| RunError::kafka("read input end offsets", e))?;
                targets.insert((topic.clone(), p), high);
            }
        }
    }

    let commit_interval = StdDuration::from_nanos(cfg.app.commit_interval.as_nanos() as u64);
    let mut last_idle_check = Instant::now();
    let mut last_group_check = Instant::now();
    // 50 ms, or 1 s after the group's progress could not be read.
    let mut group_check_every = StdDuration::from_millis(50);
    // Since when the group's progress has failed to be read, if it has.
    let mut group_check_failing: Option<Instant> = None;
    let mut ticks: u32 = 0;
    // Two poll batches are in flight, in two slots: the newest one, which the decode thread
    // decodes while the worker handles the one before it. Whoever locks a pending slot first
    // decodes it, so the worker never waits for a decode thread that has not started.
    let slots: [Mutex<Slot<'_>>; 2] = Default::default();
    let (topics, input_cfg) = {
        let w = worker.lock().expect("worker lock");
        (w.topics.clone(), w.cfg.input.clone())
    };
    let decode_pending = |slot: &mut Slot<'_>| {
        // Releasing records costs the worker time too: it is done here, on the decode thread
        // when it gets there first.
        slot.handled.clear();
        if slot.pending {
            decode_batch(&topics, &input_cfg, &slot.polled, &mut slot.decoded);
            slot.pending = false;
        }
    };
    let clear_slots = || {
        for slot in &slots {
            let mut slot = slot.lock().expect("slot lock");
            slot.polled.clear();
            slot.handled.clear();
            slot.pending = false;
        }
    };
    let result = std::thread::scope(|scope| -> Result<(), RunError> {
        let (to_decoder, jobs) = std::sync::mpsc::channel::<usize>();
        std::thread::Builder::new()
            .name("goalpost-decode".into())
            .spawn_scoped(scope, || {
                for i in jobs {
                    decode_pending(&mut slots[i].lock().expect("slot lock"));
                }
            })
            .map_err(|cause| RunError::Thread {
                name: "decode",
                cause,
            })?;
        let mut fresh: Vec<(BorrowedMessage<'_>, u64)> = Vec::with_capacity(MAX_POLL_BATCH);
        // The slot filled in the previous round (handled in this one) and its size.
        let mut ready = 0;
        let mut ready_len = 0;
        loop {
            if shutdown.load(Ordering::Relaxed) {
                tracing::info!("shutdown requested: committing and leaving the group");
                break;
            }
            // A round: wait for one record (unless a batch is waiting to be handled), then take
            // what else is already fetched. Each record is tagged with the assignment epoch it
            // was polled in (rebalances run inside poll).
            fresh.clear();
            let waits = ready_len == 0;
            let mut wait = if waits {
                StdDuration::from_millis(50)
            } else {
                StdDuration::ZERO
            };
            while fresh.len() < MAX_POLL_BATCH {
                match consumer.poll(wait) {
                    None => break,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "consumer error");
                        break;
                    }
                    Some(Ok(m)) => fresh.push((m, epoch.load(Ordering::Acquire))),
                }
                wait = StdDuration::ZERO;
            }
            let mut w = worker.lock().expect("worker lock");
            if let Some(e) = w.fatal.take() {
                // Recovered: state is rebuilt from the changelog in the next round.
                clear_slots();
                ready_len = 0;
                w.recover_producer(e)?;
                continue;
            }
            w.update_ready();
            if w.needs_reset {
                // Every batch in flight was fetched before the rewind: read again from the
                // committed offsets.
                clear_slots();
                ready_len = 0;
                match w.reset(&consumer) {
                    Ok(()) => {}
                    Err(e @ RunError::Wire(_)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot rebuild state yet, retrying");
                        w.needs_reset = true;
                        drop(w);
                        std::thread::sleep(StdDuration::from_secs(1));
                    }
                }
                continue;
            }
            w.answer_queries();
            let newest = 1 - ready;
            let fresh_len = fresh.len();
            if fresh_len > 0 {
                let mut slot = slots[newest].lock().expect("slot lock");
                std::mem::swap(&mut slot.polled, &mut fresh);
                slot.pending = true;
                drop(slot);
                // The decode thread ends with this loop only.
                let _ = to_decoder.send(newest);
            }
            let mut clock_checked = false;
            let mut slot = slots[ready].lock().expect("slot lock");
            decode_pending(&mut slot);
            let Slot {
                polled, decoded, ..
            } = &mut *slot;
            for ((m, polled_in), (part, d)) in polled.iter().zip(decoded.slots.drain(..)) {
                w.handle(m, part, *polled_in, d.map(|(i, r)| (&decoded.events[i], r)))?;
                if w.needs_reset || w.fatal.is_some() {
                    // The rest is read again after the rebuild.
                    break;
                }
                // The clock is read every few records only: a read costs more than a record.
                ticks = ticks.wrapping_add(1);
                if ticks % 16 == 0 {
                    clock_checked = true;
                    if w.in_txn
                        && w.txn_started.elapsed() >= commit_interval
                        && !w.awaiting_barrier()
                    {
                        let cgm = consumer.group_metadata();
                        w.try_commit(cgm.as_ref());
                    }
                }
            }
            let Slot {
                polled, handled, ..
            } = &mut *slot;
            std::mem::swap(polled, handled);
            drop(slot);
            ready = newest;
            ready_len = fresh_len;
            if w.needs_reset || w.fatal.is_some() {
                clear_slots();
                ready_len = 0;
                continue;
            }
            let polled_nothing = ready_len == 0;
            let now = Instant::now();
            // A quiet input (a wait gave nothing) commits what is open now, not at the interval.
            let quiet = waits && fresh_len == 0;
            // Either waits while a barrier is on its way back (briefly; see `Link`).
            if w.in_txn
                && (quiet || !clock_checked && now.duration_since(w.txn_started) >= commit_interval)
                && !w.awaiting_barrier()
            {
                let cgm = consumer.group_metadata();
                w.try_commit(cgm.as_ref());
            }
            if now.duration_since(last_idle_check) >= StdDuration::from_millis(100) {
                last_idle_check = now;
                w.check_idle(&consumer);
                w.maybe_state_metrics();
            }
            // Checked when there is nothing to read right now, so the tail of a run does not
            // commit once per record.
            if options.until_caught_up
                && polled_nothing
                && w.assigned_once
                && w.all_input_read(&consumer, &targets)
                && (!options.close_all_at_end || w.owners.len() as i32 == w.owners_count)
                && last_group_check.elapsed() >= group_check_every
                && {
                    last_group_check = Instant::now();
                    // Unanswered (e.g. the broker is restarting): not caught up yet, asked again
                    // a second later.
                    match group_committed_all(&consumer, &targets) {
                        Ok(done) => {
                            group_check_every = StdDuration::from_millis(50);
                            group_check_failing = None;
                            done
                        }
                        // Failing for as long as a transaction may be retried: not a restart.
                        Err(e)
                            if group_check_failing
                                .is_some_and(|since| since.elapsed() >= TXN_PATIENCE) =>
                        {
                            return Err(e);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot check the group's progress yet");
                            group_check_every = StdDuration::from_secs(1);
                            group_check_failing.get_or_insert_with(Instant::now);
                            false
                        }
                    }
                }
            {
                let cgm = consumer.group_metadata();
                if !w.try_commit(cgm.as_ref()) {
                    continue;
                }
                let caught_up = match w.caught_up(cgm.as_ref(), &instance) {
                    Ok(c) => c,
                    Err(e) => {
                        w.fail_or_reset(e);
                        false
                    }
                };
                if caught_up {
                    if options.close_all_at_end {
                        w.close_all()?;
                        if !w.try_commit(cgm.as_ref()) {
                            continue;
                        }
                    }
                    tracing::info!("caught up with the input end offsets seen at start");
                    break;
                }
            }
        }
        let mut w = worker.lock().expect("worker lock");
        let cgm = consumer.group_metadata();
        // Whatever fails here is aborted; the next owner of these partitions redoes it.
        w.try_commit(cgm.as_ref());
        match w.fatal.take() {
            // A producer recreated after a disruption has aborted the open transaction.
            Some(e) => w.recover_producer(e),
            None => Ok(()),
        }
    });
    consumer.unsubscribe();
    let report = {
        let w = worker.lock().expect("worker lock");
        RunReport {
            overflow: w.overflow.iter().sum(),
            ..w.report.clone()
        }
    };
    if report.unknown_goal > 0 {
        tracing::warn!(
            "{} contribution(s) of the repartition topic for goals not in the goal file: skipped",
            report.unknown_goal
        );
    }
    result.map(|_| report)
}

/// A changelog record to send: (partition, key, value or tombstone).
type ChangelogRecord = (i32, Vec<u8>, Option<Vec<u8>>);

/// The changelog records of one transaction, in the order they are sent: the tombstones of
/// records the last restore could not use (`cleanup`) before the routers' and owners' `changes`.
/// Compaction and restore keep the last record of a key, so a key written again in the same
/// transaction (a window whose damaged head, or a part of it, got a new contribution) keeps its
/// new value instead of being deleted by a tombstone sent after it.
fn changelog_in_order(
    cleanup: Vec<ChangelogRecord>,
    changes: Vec<ChangelogRecord>,
) -> Vec<ChangelogRecord> {
    let mut records = cleanup;
    records.extend(changes);
    records
}

/// The changelog records of a window's new state (`None`: closed), as (key, value or tombstone):
/// its state, split into parts when larger than `max_bytes` (see [`wire::window_state_records`]),
/// and tombstones for the parts of its previous state no longer used. `split` holds the windows
/// of the partition stored in parts, and how many.
fn window_records(
    split: &mut HashMap<Vec<u8>, u32>,
    key: Vec<u8>,
    state: Option<crate::engine::WindowState>,
    max_bytes: usize,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let before = split.get(&key).copied().unwrap_or(0);
    let mut out: Vec<(Vec<u8>, Option<Vec<u8>>)> = match state {
        Some(ws) => wire::window_state_records(&key, &ws, max_bytes)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
        None => vec![(key.clone(), None)],
    };
    // The head, then the parts.
    let now = out.len() as u32 - 1;
    for part in now..before {
        out.push((ChangelogKey::window_part(&key, part), None));
    }
    if now > 0 {
        split.insert(key, now);
    } else if before > 0 {
        split.remove(&key);
    }
    out
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The format of an input record: its `content-type` header, else `default`.
fn format_of(m: &BorrowedMessage<'_>, default: Format) -> Format {
    m.headers()
        .and_then(|h| {
            h.iter()
                .find(|h| h.key.eq_ignore_ascii_case("content-type"))
        })
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(Format::from_name)
        .unwrap_or(default)
}

/// A poll batch and its decoding.
#[derive(Default)]
struct Slot<'c> {
    polled: Vec<(BorrowedMessage<'c>, u64)>,
    /// Records handled already, to be released.
    handled: Vec<(BorrowedMessage<'c>, u64)>,
    /// Polled but not decoded yet.
    pending: bool,
    decoded: Decoded,
}

/// An input record's index in [`Decoded::events`] and the result of decoding it.
type DecodedInput = (usize, Result<(), codec::DecodeError>);

/// A poll batch as the decode thread leaves it.
#[derive(Default)]
struct Decoded {
    /// Per polled record: its partition and, for input records, its index in `events` and the
    /// result of decoding it.
    slots: Vec<(Option<Part>, Option<DecodedInput>)>,
    /// Decoded input events (buffers reused from batch to batch).
    events: Vec<SalesEvent>,
}

/// Decodes the input records of a poll batch (on the decode thread, while the worker handles the
/// previous batch).
fn decode_batch(
    topics: &Topics,
    input: &super::config::InputConfig,
    polled: &[(BorrowedMessage<'_>, u64)],
    out: &mut Decoded,
) {
    let max = input.max_record_bytes;
    // The wall clock is read at most once per batch, plus once per suspect event.
    let mut future =
        codec::future::FutureBound::new(input.max_future, codec::future::FutureFrom::Wall);
    out.slots.clear();
    let mut n = 0;
    for (m, _) in polled {
        let part = topics.part(m.topic(), m.partition());
        if !matches!(part, Some(Part::Input(_))) {
            out.slots.push((part, None));
            continue;
        }
        if out.events.len() <= n {
            out.events.push(SalesEvent::default());
        }
        let payload = m.payload().unwrap_or_default();
        let result = if payload.len() > max {
            Err(codec::DecodeError {
                reason: codec::RejectReason::Oversized,
                detail: format!(
                    "record of {} bytes exceeds input.max_record_bytes = {max}",
                    payload.len()
                ),
            })
        } else {
            let ev = &mut out.events[n];
            codec::decode_event(format_of(m, input.format), payload, ev).and_then(|()| {
                future
                    .as_mut()
                    .map_or(Ok(()), |b| b.check(ev.occurred_at, Timestamp::now))
            })
        };
        out.slots.push((part, Some((n, result))));
        n += 1;
    }
}

/// Whether the group has committed every input partition up to its target: partitions held by
/// another member (or by a crashed one until its session times out) count too, so an instance
/// never declares the input done while part of it is unprocessed. A partition whose records
/// before its target are all gone (deleted by retention or `DeleteRecords`: its log start
/// offset has reached the target) has nothing left to read, and counts as done.
fn group_committed_all<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    targets: &BTreeMap<(String, i32), i64>,
) -> Result<bool, RunError> {
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in targets.keys() {
        tpl.add_partition(topic, *p);
    }
    // Short: the polling loop waits meanwhile.
    let committed = consumer
        .committed_offsets(tpl, StdDuration::from_secs(5))
        .map_err(|e| RunError::kafka("read the group's committed offsets", e))?;
    let target_of = |topic: &str, p: i32| targets.get(&(topic.to_string(), p)).copied();
    let mut behind = TopicPartitionList::new();
    for el in committed.elements() {
        let target = target_of(el.topic(), el.partition()).unwrap_or(0);
        let done = match el.offset() {
            Offset::Offset(o) => o >= target,
            _ => target == 0,
        };
        if !done {
            // The log start offset, asked for as the offsets of the "earliest" timestamp.
            behind
                .add_partition_offset(el.topic(), el.partition(), Offset::Beginning)
                .map_err(|e| RunError::kafka("ask for the input's log start offsets", e))?;
        }
    }
    if behind.count() == 0 {
        return Ok(true);
    }
    let starts = consumer
        .offsets_for_times(behind, StdDuration::from_secs(5))
        .map_err(|e| RunError::kafka("read the input's log start offsets", e))?;
    Ok(starts.elements().iter().all(|el| {
        let target = target_of(el.topic(), el.partition()).unwrap_or(0);
        matches!(el.offset(), Offset::Offset(start) if start >= target)
    }))
}

/// The log start and end offsets of a partition as of the consumer's last fetch response (no
/// network call); `None` while unknown.
fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` lives; `topic` is a NUL-terminated
    // string that outlives the call; librdkafka only writes the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low, high))
}

/// Makes a transactional call again, every 500 ms, while librdkafka reports a retriable error (a
/// timeout, the coordinator unreachable or moving), until `patience` has passed. Retrying
/// `commit_transaction` is safe and learns the real outcome, where aborting could not. An abort
/// or an initialisation is resumable the same way, and nothing else may be called meanwhile
/// (librdkafka refuses it as a conflicting call), so giving up early would leave the producer
/// unusable.
fn retry_retriable(
    what: &str,
    patience: StdDuration,
    mut call: impl FnMut() -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + patience;
    let mut attempts = 0u32;
    loop {
        match call() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && Instant::now() < deadline => {
                attempts += 1;
                tracing::warn!(error = %e, attempts, what, "transactional call failed, retrying");
                std::thread::sleep(StdDuration::from_millis(500));
            }
            other => return other,
        }
    }
}

impl Worker {
    fn begin(&mut self) -> Result<(), RunError> {
        if !self.in_txn {
            self.producer
                .begin_transaction()
                .map_err(|e| RunError::producer("begin a transaction", e))?;
            self.in_txn = true;
            self.txn_started = Instant::now();
        }
        Ok(())
    }

    /// Hands a record to the producer. A record it refuses at once (too large, say) must not be
    /// lost silently: the open transaction then fails at commit and its work is redone.
    fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: &[u8],
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) {
        if let Err(e) = self.try_send(topic, partition, key, payload, headers) {
            if let KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge) = e {
                let size = key.len() + payload.map_or(0, <[u8]>::len);
                // An attainment event, one contribution, a part of a window's state under a huge
                // key: records that cannot be split or cut (batches, dedupe records and window
                // states are split at `split_bytes`, well below the limit). Redoing the
                // transaction would fail the same way, forever.
                let limit =
                    message_max_bytes(&self.cfg).unwrap_or("1000000 (librdkafka's default)");
                self.too_large
                    .borrow_mut()
                    .get_or_insert_with(|| RunError::RecordTooLarge {
                        size,
                        topic: topic.to_string(),
                        limit: limit.to_string(),
                    });
            }
            self.note_send_failed(topic, e);
        }
    }

    fn note_send_failed(&self, topic: &str, e: KafkaError) {
        tracing::error!(error = %e, topic, "the producer refused a record: the transaction will be aborted");
        let code = e
            .rdkafka_error_code()
            .unwrap_or(rdkafka::types::RDKafkaErrorCode::Fail);
        self.send_failed.set(Some(code));
    }

    /// Sends a record read from `source` (topic, partition, offset) to the dead-letter topic in
    /// the open transaction, with its reason, detail and origin in headers.
    fn dead_letter(
        &self,
        source: (&str, i32, i64),
        key: &[u8],
        payload: &[u8],
        reason: &str,
        detail: &str,
    ) {
        let (source_topic, source_partition, source_offset) = source;
        let headers = |truncated: Option<usize>| {
            let h = OwnedHeaders::new()
                .insert(Header {
                    key: "goalpost.reason",
                    value: Some(reason),
                })
                .insert(Header {
                    key: "goalpost.detail",
                    value: Some(detail),
                })
                .insert(Header {
                    key: "goalpost.source.topic",
                    value: Some(source_topic),
                })
                .insert(Header {
                    key: "goalpost.source.partition",
                    value: Some(&source_partition.to_string()),
                })
                .insert(Header {
                    key: "goalpost.source.offset",
                    value: Some(&source_offset.to_string()),
                });
            match truncated {
                Some(len) => h.insert(Header {
                    key: "goalpost.truncated_from",
                    value: Some(&len.to_string()),
                }),
                None => h,
            }
        };
        let topic = &self.dead_letters;
        // A record the producer finds too large (headers added) keeps its first half,
        // quarter, … (then so does its key), so that it does not stop the stream.
        let (mut keep, mut keep_key) = (payload.len(), key.len());
        let mut truncated = None;
        loop {
            match self.try_send(
                topic,
                None,
                &key[..keep_key],
                Some(&payload[..keep]),
                Some(headers(truncated)),
            ) {
                Ok(()) => break,
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge))
                    if keep > 0 || keep_key > 0 =>
                {
                    if keep > 0 {
                        keep /= 2;
                    } else {
                        keep_key /= 2;
                    }
                    truncated = Some(payload.len());
                }
                Err(err) => {
                    self.note_send_failed(topic, err);
                    break;
                }
            }
        }
    }

    fn try_send(
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

    /// The partition a record came from, if this instance reads it.
    fn part(&self, topic: &str, partition: i32) -> Option<Part> {
        self.topics.part(topic, partition)
    }

    /// The topic and partition of a [`Part`].
    fn part_name(&self, part: Part) -> (&str, i32) {
        self.topics.name(part)
    }

    /// Handles one polled record of `part` (see [`Worker::part`]). `polled_in` is the assignment
    /// epoch when it was polled; `decoded` its decoded event (input records only).
    fn handle(
        &mut self,
        m: &BorrowedMessage<'_>,
        part: Option<Part>,
        polled_in: u64,
        decoded: Option<(&SalesEvent, Result<(), codec::DecodeError>)>,
    ) -> Result<(), RunError> {
        let since = match part {
            Some(Part::Repartition(p)) => self.owner_since.get(&p).copied(),
            Some(Part::Input(up)) => self.routers.get(&up).map(|t| t.since_epoch),
            None => None,
        };
        // A record polled before a rebalance that revoked, or revoked and re-assigned, its
        // partition is not ours to process: the partition's (new) owner reads it again from the
        // committed offset.
        let stale = match since {
            Some(since) => polled_in < since,
            None => polled_in < self.assignment_epoch,
        };
        if stale {
            tracing::debug!(
                topic = m.topic(),
                partition = m.partition(),
                offset = m.offset(),
                "record polled before a rebalance: left to the partition's owner"
            );
            return Ok(());
        }
        // A record of a partition whose state is not restored is never processed or committed:
        // rebuild first, then it is read again.
        let Some(part) = part.filter(|_| since.is_some()) else {
            tracing::warn!(
                topic = m.topic(),
                partition = m.partition(),
                "record of a partition without restored state: rebuilding"
            );
            self.needs_reset = true;
            return Ok(());
        };
        self.begin()?;
        match part {
            Part::Repartition(_) => self.handle_repartition(m)?,
            Part::Input(up) => match decoded {
                Some((event, result)) => self.handle_input(m, up, event, result)?,
                None => return Err(RunError::Invariant("input record was not decoded")),
            },
        }
        self.next_offsets.insert(part, m.offset() + 1);
        self.offsets.insert(part, m.offset() + 1);
        Ok(())
    }

    /// Records the committed offsets of newly assigned partitions as where reading resumes.
    fn note_committed<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        tpl: &TopicPartitionList,
    ) {
        match consumer.committed_offsets(tpl.clone(), KAFKA_TIMEOUT) {
            Ok(committed) => {
                for el in committed.elements() {
                    let next = match el.offset() {
                        Offset::Offset(o) => o,
                        _ => 0,
                    };
                    if let Some(part) = self.part(el.topic(), el.partition()) {
                        self.next_offsets.insert(part, next);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read committed offsets"),
        }
    }

    fn handle_input(
        &mut self,
        m: &BorrowedMessage<'_>,
        upstream: u32,
        event: &SalesEvent,
        decoded: Result<(), codec::DecodeError>,
    ) -> Result<(), RunError> {
        self.report.read += 1;
        let payload = m.payload().unwrap_or_default();
        match decoded {
            Err(e) => {
                self.report.rejected += 1;
                if let Some(i) = codec::RejectReason::ALL.iter().position(|r| *r == e.reason) {
                    self.rejected[i] += 1;
                }
                // The detail can quote the bad value: a few hundred bytes of it say enough.
                let detail = truncate_str(&e.detail, 512);
                let source = (m.topic(), m.partition(), m.offset());
                let key = m.key().unwrap_or_default();
                self.dead_letter(source, key, payload, e.reason.as_str(), detail);
            }
            Ok(()) => {
                let owners = self.owners_count;
                let (goals, goal_hashes) = (&self.goals, &self.goal_hashes);
                // `handle` sends a record of a partition without a router to a rebuild instead:
                // reaching this is a bug, and stopping (nothing committed) loses nothing.
                let Some(task) = self.routers.get_mut(&upstream) else {
                    return Err(RunError::Invariant(
                        "input record of a partition without a router",
                    ));
                };
                task.records_since_check += 1;
                task.idle_sent = false;
                let (batches, held) = (&mut self.batches, &mut self.held);
                let (links, owned) = (&self.links, &mut self.owners);
                let split_bytes = self.split_bytes;
                let (out, late) = (&mut self.attainments, &mut self.late);
                let overflow = &mut self.overflow;
                let local = &mut self.report.local_contributions;
                let mut full_batch = false;
                let routed = task.router.route(event, |c: Contribution<'_>| {
                    let dest =
                        wire::owner_partition_after(goal_hashes[c.goal], &c.group, owners as u32)
                            as i32;
                    if links[dest as usize] == Link::Local {
                        if let Some(owner) = owned.get_mut(&dest) {
                            *local += 1;
                            match owner.apply(&c, out) {
                                Applied::Late => late[c.goal] += 1,
                                Applied::Overflow => overflow[c.goal] += 1,
                                Applied::Applied => {}
                            }
                            return;
                        }
                    }
                    let goal_id = &goals.goals[c.goal].id;
                    let batch = batches
                        .entry((upstream, dest))
                        .or_insert_with(|| wire::BatchWriter::new(upstream));
                    batch.push(goal_id, &c);
                    if batch.len() >= MAX_BATCH || batch.bytes() >= split_bytes {
                        if let Link::Draining { .. } = links[dest as usize] {
                            // Held for the barrier, in batches of the usual size.
                            let full = std::mem::replace(batch, wire::BatchWriter::new(upstream));
                            held.entry((upstream, dest))
                                .or_default()
                                .push(full.finish());
                        } else {
                            full_batch = true;
                        }
                    }
                });
                self.report.dedupe_evicted += task.router.take_dedupe_evicted();
                match routed {
                    Routed::Duplicate => self.report.duplicates += 1,
                    Routed::Accepted { progress } => {
                        self.report.accepted += 1;
                        if progress.is_some() {
                            task.clock_dirty = true;
                        }
                    }
                }
                if !self.attainments.is_empty() {
                    self.emit_attainments();
                }
                if full_batch {
                    self.flush_batches(false, false);
                }
            }
        }
        Ok(())
    }

    fn handle_repartition(&mut self, m: &BorrowedMessage<'_>) -> Result<(), RunError> {
        let partition = m.partition();
        let Some(payload) = m.payload() else {
            return Ok(());
        };
        let (batch, _) = match self.apply_batch(partition, payload) {
            Ok(applied) => applied,
            Err(e) => {
                let source = (m.topic(), partition, m.offset());
                self.skip_internal(source, m.key().unwrap_or_default(), payload, &e);
                return Ok(());
            }
        };
        if batch.sentinel != 0 {
            if let Some((id, _, pending)) = self.sentinel.as_mut() {
                if *id == batch.sentinel {
                    pending.remove(&partition);
                }
            }
            if let Some(Link::Draining { barrier, .. }) = self.links.get(partition as usize) {
                if *barrier == batch.sentinel {
                    self.go_local(partition)?;
                }
            }
        }
        Ok(())
    }

    /// Applies a repartition batch to the owner of `partition`, if it is here: contributions,
    /// then the upstream's progress and idleness. Returns the batch's header. A batch that
    /// cannot be read, or names an upstream partition that does not exist, is an error, and
    /// nothing of it is applied.
    fn apply_batch(
        &mut self,
        partition: i32,
        payload: &[u8],
    ) -> Result<(wire::BatchHeader, u64), wire::WireError> {
        let owner = self.owners.get_mut(&partition);
        // Read whole before anything is applied, so that a damaged record is skipped whole; the
        // contributions are kept (strings borrowed from the record) up to MAX_BATCH of them, the
        // most goalpost writes in one batch. A larger batch (another producer's) is read again,
        // applying as it goes, rather than held in memory.
        let keep = owner.is_some();
        let (mut kept, mut larger) = (Vec::new(), false);
        let batch = wire::read_batch_each(payload, |c| {
            if keep && kept.len() < MAX_BATCH {
                kept.push(c);
            } else {
                larger = keep;
            }
        })?;
        let upstreams = self.topics.inputs.len();
        if batch.sentinel == 0 && batch.upstream as usize >= upstreams {
            return Err(wire::WireError::Invalid {
                what: "repartition batch",
                detail: format!(
                    "upstream partition {} does not exist: the input has {upstreams} partitions",
                    batch.upstream
                ),
            });
        }
        let Some(owner) = owner else {
            return Ok((batch, 0));
        };
        let mut applied = 0;
        let out = &mut self.attainments;
        let (goal_index, late) = (&self.goal_index, &mut self.late);
        let (overflow, unknown_goal) = (&mut self.overflow, &mut self.report.unknown_goal);
        let warnings = &mut self.warnings;
        let mut apply = |c: wire::ContributionView<'_>| {
            let Some(&goal) = goal_index.get(c.goal_id) else {
                *unknown_goal += 1;
                if let Some(held_back) = warnings.allow("unknown goal", partition, Instant::now()) {
                    tracing::warn!(
                        goal = %c.goal_id,
                        partition,
                        held_back,
                        "contribution for a goal not in the goal file: skipped"
                    );
                }
                return;
            };
            let contribution = Contribution {
                goal,
                group: c.group,
                delta: c.delta,
                event_id: c.event_id,
                event_time: c.event_time,
            };
            applied += 1;
            match owner.apply(&contribution, out) {
                Applied::Late => late[goal] += 1,
                Applied::Overflow => overflow[goal] += 1,
                Applied::Applied => {}
            }
        };
        if larger {
            wire::read_batch_each(payload, &mut apply)?;
        } else {
            kept.into_iter().for_each(&mut apply);
        }
        if batch.sentinel != 0 {
            return Ok((batch, applied));
        }
        if let Some(stream_time) = batch.stream_time {
            owner.progress(
                Progress {
                    partition: batch.upstream,
                    stream_time,
                },
                out,
            );
        }
        if batch.idle {
            owner.set_idle(batch.upstream, true, out);
        }
        self.emit_attainments();
        Ok((batch, applied))
    }

    /// The owner of `partition` read back its barrier: everything this instance's routers sent
    /// it through the topic is applied. The batches held since are applied now, in order, and
    /// from here on contributions are applied directly.
    fn go_local(&mut self, partition: i32) -> Result<(), RunError> {
        let keys: Vec<(u32, i32)> = self
            .held
            .keys()
            .chain(self.batches.keys())
            .filter(|(_, dest)| *dest == partition)
            .copied()
            .collect();
        for key in keys {
            // Per key: the full batches held, then the current one.
            let mut all = self.held.remove(&key).unwrap_or_default();
            if let Some(batch) = self.batches.remove(&key) {
                all.push(batch.finish());
            }
            for bytes in all {
                let (_, applied) = self.apply_batch(partition, &bytes)?;
                self.report.local_contributions += applied;
            }
        }
        self.links[partition as usize] = Link::Local;
        tracing::info!(
            partition,
            "the owner is on this instance: contributions skip the repartition topic"
        );
        Ok(())
    }

    /// Whether a barrier sent less than [`BARRIER_PATIENCE`] ago is still on its way back: the
    /// periodic commit waits for it, as committing would send the held contributions through the
    /// topic.
    fn awaiting_barrier(&self) -> bool {
        self.links
            .iter()
            .zip(&self.impatient)
            .any(|(l, impatient)| {
                !impatient
                    && matches!(l, Link::Draining { sent, .. } if sent.elapsed() < BARRIER_PATIENCE)
            })
    }

    fn emit_attainments(&mut self) {
        let attainments = std::mem::take(&mut self.attainments);
        let topic = self.cfg.output.topic.clone();
        for a in &attainments {
            self.buf.clear();
            match self.cfg.output.format {
                Format::Json => json::encode_attainment(a, &mut self.buf),
                Format::Proto => proto::encode_attainment(a, &mut self.buf),
            }
            if self.hub.is_some() {
                let committed = match self.cfg.output.format {
                    Format::Json => Committed::from_json(a, self.buf.clone()),
                    Format::Proto => Committed::of(a),
                };
                let goal = self.goal_index.get(&*a.goal_id).copied().unwrap_or(0);
                self.txn_attainments.push((goal, a.kind, committed));
            }
            let mut key = a.goal_id.to_string();
            for (_, v) in &a.group {
                key.push('|');
                key.push_str(v);
            }
            let content_type = match self.cfg.output.format {
                Format::Json => "application/json",
                Format::Proto => "application/x-protobuf",
            };
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "content-type",
                    value: Some(content_type),
                })
                .insert(Header {
                    key: "goalpost.attainment_id",
                    value: Some(a.attainment_id.as_str()),
                });
            let payload = std::mem::take(&mut self.buf);
            self.send(&topic, None, key.as_bytes(), Some(&payload), Some(headers));
            self.buf = payload;
            self.report.attainments += 1;
        }
        self.attainments = attainments;
        self.attainments.clear();
    }

    /// Sends pending contribution batches, with each router's progress when `with_progress`.
    /// Batches held for an owner whose barrier is on its way back stay held, unless `force`:
    /// then they are sent too, and that owner is reached through the topic again.
    fn flush_batches(&mut self, with_progress: bool, force: bool) {
        if with_progress {
            let out = &mut self.attainments;
            for (&upstream, task) in self.routers.iter_mut() {
                let st = task.router.stream_time();
                if let Some(t) = st.filter(|_| st != task.sent) {
                    for dest in 0..self.owners_count {
                        if self.links[dest as usize] == Link::Local {
                            if let Some(owner) = self.owners.get_mut(&dest) {
                                let progress = Progress {
                                    partition: upstream,
                                    stream_time: t,
                                };
                                owner.progress(progress, out);
                                continue;
                            }
                        }
                        let b = self
                            .batches
                            .entry((upstream, dest))
                            .or_insert_with(|| wire::BatchWriter::new(upstream));
                        b.set_stream_time(t);
                    }
                    task.sent = st;
                }
            }
            self.emit_attainments();
        }
        let is_held = |links: &[Link], dest: i32| {
            matches!(links[dest as usize], Link::Draining { .. }) && !force
        };
        let topic = self.topics.repartition.clone();
        // Full batches held earlier go first: they precede their key's current batch.
        let held = std::mem::take(&mut self.held);
        let batches = std::mem::take(&mut self.batches);
        let chunks = held
            .into_iter()
            .flat_map(|(key, chunks)| chunks.into_iter().map(move |c| (key, Ok(c))));
        let current = batches.into_iter().map(|(key, b)| (key, Err(b)));
        for ((upstream, dest), batch) in chunks.chain(current) {
            if is_held(&self.links, dest) {
                match batch {
                    Ok(bytes) => self.held.entry((upstream, dest)).or_default().push(bytes),
                    Err(b) => {
                        self.batches.insert((upstream, dest), b);
                    }
                }
                continue;
            }
            if let Link::Draining { .. } = self.links[dest as usize] {
                // Sent after the barrier: the barrier no longer covers everything. The next
                // barrier goes out with this commit; commits no longer wait for barriers here.
                self.links[dest as usize] = Link::Topic;
                self.impatient[dest as usize] = true;
            }
            self.repartition_records += 1;
            let bytes = match batch {
                Ok(bytes) => bytes,
                Err(b) => b.finish(),
            };
            self.send(
                &topic,
                Some(dest),
                &upstream.to_be_bytes(),
                Some(&bytes),
                None,
            );
        }
    }

    /// Sends a barrier to each owned repartition partition still reached through the topic, as
    /// the last record of the transaction about to commit (see [`Link`]).
    fn send_barriers(&mut self) {
        if self.routers.is_empty() {
            return;
        }
        let topic = self.topics.repartition.clone();
        let owned: Vec<i32> = self.owners.keys().copied().collect();
        for p in owned {
            if self.links[p as usize] != Link::Topic {
                continue;
            }
            self.sentinels_sent += 1;
            let barrier = wire::fnv1a(&[
                self.instance.as_bytes(),
                &self.nonce.to_be_bytes(),
                &self.sentinels_sent.to_be_bytes(),
            ]) | 1;
            let bytes = pb::RepartitionBatch {
                upstream: u32::MAX,
                sentinel: barrier,
                ..Default::default()
            }
            .encode_to_vec();
            self.send(&topic, Some(p), b"barrier", Some(&bytes), None);
            self.links[p as usize] = Link::Draining {
                barrier,
                sent: Instant::now(),
            };
        }
    }

    /// Writes this transaction's changelog records: the tombstones left by the last restore,
    /// then the routers' and owners' changes, in that order (see [`changelog_in_order`]).
    fn write_changelog(&mut self) {
        let topic = self.changelog.clone();
        let cleanup = self.restore_cleanup(&topic);
        let mut changes = self.router_changes();
        self.owner_changes(&mut changes);
        let records = changelog_in_order(cleanup, changes);
        self.changelog_records += records.len() as u64;
        for (part, key, value) in records {
            self.send(&topic, Some(part), &key, value.as_deref(), None);
        }
    }

    /// The records the last restore could not use: dead-lettered in the open transaction, and
    /// their tombstones, with those of window parts left without a readable head.
    fn restore_cleanup(&mut self, topic: &str) -> Vec<ChangelogRecord> {
        let mut records = Vec::new();
        for (part, u) in std::mem::take(&mut self.unreadable) {
            let reason = wire::WireError::Invalid {
                what: "changelog record",
                detail: u.reason,
            };
            self.skip_internal((topic, part, u.offset), &u.key, &u.value, &reason);
            // A key too large for a record of ours (written by another producer) stays: it is
            // met, and dead-lettered, again by each restore, rather than stopping the instance.
            if u.key.len() <= self.split_bytes {
                records.push((part, u.key, None));
            }
        }
        for (part, key) in std::mem::take(&mut self.orphan_parts) {
            records.push((part, key, None));
        }
        records
    }

    /// The routers' changes: new dedupe entries as batch records, expired batches as
    /// tombstones, and their clocks.
    fn router_changes(&mut self) -> Vec<ChangelogRecord> {
        let owners_count = self.owners_count;
        let mut records: Vec<ChangelogRecord> = Vec::new();
        for (&upstream, task) in self.routers.iter_mut() {
            let part = (upstream % owners_count as u32) as i32;
            let added = task.router.take_dedupe_added();
            if !added.is_empty() {
                for (bytes, max) in wire::dedupe_batches_to_bytes(&added, self.split_bytes) {
                    let batch = task.next_batch;
                    task.next_batch += 1;
                    task.batches.insert(batch, max);
                    records.push((
                        part,
                        ChangelogKey::DedupeBatch { upstream, batch }.to_bytes(),
                        Some(bytes),
                    ));
                }
                task.clock_dirty = true;
            }
            if let Some(st) = task.router.stream_time() {
                let cutoff = st.saturating_sub(task.router.dedupe().horizon());
                let expired: Vec<u64> = task
                    .batches
                    .iter()
                    .filter(|(_, max)| **max <= cutoff)
                    .map(|(b, _)| *b)
                    .collect();
                for batch in expired {
                    task.batches.remove(&batch);
                    records.push((
                        part,
                        ChangelogKey::DedupeBatch { upstream, batch }.to_bytes(),
                        None,
                    ));
                }
            }
            if task.clock_dirty {
                task.clock_dirty = false;
                let rec = pb::RouterClockRecord {
                    stream_time: task.router.stream_time().map(Timestamp::as_nanos),
                    next_batch: task.next_batch,
                };
                records.push((
                    part,
                    ChangelogKey::RouterClock(upstream).to_bytes(),
                    Some(rec.encode_to_vec()),
                ));
            }
        }
        records
    }

    /// The owners' changes (windows, upstreams, watermarks), appended to `records`.
    fn owner_changes(&mut self, records: &mut Vec<ChangelogRecord>) {
        for (&partition, owner) in self.owners.iter_mut() {
            let split = self.split_windows.entry(partition).or_default();
            for change in owner.take_changes() {
                use crate::engine::OwnerChange;
                let (key, value) = match change {
                    OwnerChange::Window {
                        goal,
                        group,
                        start,
                        state,
                    } => {
                        let key = ChangelogKey::window(&self.goals.goals[goal].id, &group, start);
                        let parts = window_records(split, key, state, self.split_bytes);
                        records.extend(parts.into_iter().map(|(k, v)| (partition, k, v)));
                        continue;
                    }
                    OwnerChange::Upstream {
                        partition: up,
                        stream_time,
                        idle,
                    } => (
                        ChangelogKey::Upstream(up).to_bytes(),
                        Some(
                            pb::UpstreamRecord {
                                stream_time: stream_time.map(Timestamp::as_nanos),
                                idle,
                            }
                            .encode_to_vec(),
                        ),
                    ),
                    OwnerChange::Watermark(wm) => (
                        ChangelogKey::Watermark.to_bytes(),
                        Some(
                            pb::WatermarkRecord {
                                watermark: wm.as_nanos(),
                            }
                            .encode_to_vec(),
                        ),
                    ),
                };
                records.push((partition, key, value));
            }
        }
    }

    /// Skips a record of an internal topic that cannot be read: counted, dead-lettered with its
    /// origin (topic, partition, offset) in the open transaction, and logged at most once per
    /// partition every [`WARN_EVERY`].
    fn skip_internal(
        &mut self,
        source: (&str, i32, i64),
        key: &[u8],
        value: &[u8],
        error: &wire::WireError,
    ) {
        let (topic, partition, offset) = source;
        self.report.internal_skipped += 1;
        let detail = error.to_string();
        self.dead_letter(
            source,
            key,
            value,
            INTERNAL_REASON,
            truncate_str(&detail, 512),
        );
        let kind = if topic == self.changelog {
            "unreadable changelog record"
        } else {
            "unreadable repartition record"
        };
        if let Some(held_back) = self.warnings.allow(kind, partition, Instant::now()) {
            tracing::warn!(
                topic,
                partition,
                offset,
                error = %error,
                held_back,
                "{kind}: skipped and dead-lettered"
            );
        }
    }

    /// Commits the open transaction: batches with progress, changelog, offsets.
    fn commit(&mut self, cgm: Option<&ConsumerGroupMetadata>) -> Result<(), RunError> {
        let has_progress = self
            .routers
            .values()
            .any(|t| t.router.stream_time().is_some() && t.router.stream_time() != t.sent);
        if !self.in_txn
            && !has_progress
            && self.batches.is_empty()
            && self.held.is_empty()
            && self.unreadable.is_empty()
            && self.orphan_parts.is_empty()
        {
            return Ok(());
        }
        self.begin()?;
        let t0 = Instant::now();
        self.flush_batches(true, true);
        self.send_barriers();
        self.write_changelog();
        let t_write = t0.elapsed();
        if let Some(e) = self.too_large.take() {
            return Err(e);
        }
        if let Some(code) = self.send_failed.take() {
            return Err(RunError::kafka(
                "produce a record (see the error logged before)",
                KafkaError::MessageProduction(code),
            ));
        }
        if !self.offsets.is_empty() {
            let cgm = cgm.ok_or(RunError::Invariant("no consumer group metadata"))?;
            let mut tpl = TopicPartitionList::new();
            for (&part, off) in &self.offsets {
                let (topic, p) = self.part_name(part);
                tpl.add_partition_offset(topic, p, Offset::Offset(*off))
                    .map_err(|e| RunError::kafka("build the offsets to commit", e))?;
            }
            let producer = &self.producer;
            retry_retriable("send offsets", TXN_PATIENCE, || {
                producer.send_offsets_to_transaction(&tpl, cgm, KAFKA_TIMEOUT)
            })
            .map_err(|e| self.classify(e, "send offsets to the transaction"))?;
        }
        let t_offsets = t0.elapsed() - t_write;
        let started = Instant::now();
        // commit_transaction flushes by itself, but in steps of 100 ms; flushing here in 1 ms
        // steps saves most of that on every transaction. While librdkafka flushes, it sends what
        // waits for linger.ms at once, so that a long linger (fewer, larger produce requests)
        // does not hold up the commit.
        let flush_deadline = Instant::now() + KAFKA_TIMEOUT;
        while self.producer.in_flight_count() > 0 && Instant::now() < flush_deadline {
            // SAFETY: the client pointer is valid while the producer lives; rd_kafka_flush may be
            // called from any thread. Its result is the in-flight count checked above.
            unsafe {
                rdkafka::bindings::rd_kafka_flush(self.producer.client().native_ptr(), 1);
            }
        }
        let producer = &self.producer;
        retry_retriable("commit", TXN_PATIENCE, || {
            producer.commit_transaction(KAFKA_TIMEOUT)
        })
        .map_err(|e| self.classify(e, "commit the transaction"))?;
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            write_us = t_write.as_micros() as u64,
            offsets_us = t_offsets.as_micros() as u64,
            txn_age_ms = self.txn_started.elapsed().as_millis() as u64,
            "committed"
        );
        self.in_txn = false;
        self.offsets.clear();
        self.report.commits += 1;
        self.disrupted.store(false, Ordering::Relaxed);
        self.after_commit(t0.elapsed());
        Ok(())
    }

    /// Publishes what a commit made visible: attainment events to the hub, metric deltas.
    fn after_commit(&mut self, took: StdDuration) {
        let Some(hub) = self.hub.clone() else {
            // Still the point an abort rolls the counters back to.
            self.published.report = self.report.clone();
            self.published.rejected = self.rejected;
            self.published.late.clone_from(&self.late);
            self.published.overflow.clone_from(&self.overflow);
            self.published.repartition_records = self.repartition_records;
            self.published.changelog_records = self.changelog_records;
            return;
        };
        let t = &hub.telemetry;
        t.txn_committed.increment(1);
        t.txn_duration.record(took.as_secs_f64());
        let attainments = std::mem::take(&mut self.txn_attainments);
        let mut committed = Vec::with_capacity(attainments.len());
        for (goal, kind, c) in attainments {
            t.attainments[goal][kind as usize].increment(1);
            committed.push(c);
        }
        hub.publish(committed, crate::serve::http::wall_clock());
        let p = &mut self.published;
        t.events_read.increment(self.report.read - p.report.read);
        t.events_accepted
            .increment(self.report.accepted - p.report.accepted);
        t.events_duplicate
            .increment(self.report.duplicates - p.report.duplicates);
        t.local_contributions
            .increment(self.report.local_contributions - p.report.local_contributions);
        metrics::counter!(crate::serve::metrics::INTERNAL_SKIPPED)
            .increment(self.report.internal_skipped - p.report.internal_skipped);
        metrics::counter!(crate::serve::metrics::UNKNOWN_GOAL)
            .increment(self.report.unknown_goal - p.report.unknown_goal);
        t.dedupe_evicted
            .increment(self.report.dedupe_evicted - p.report.dedupe_evicted);
        p.report = self.report.clone();
        for (i, n) in self.rejected.iter().enumerate() {
            t.events_rejected[i].increment(n - p.rejected[i]);
            p.rejected[i] = *n;
        }
        for (i, n) in self.late.iter().enumerate() {
            t.events_late[i].increment(n - p.late[i]);
            p.late[i] = *n;
        }
        for (i, n) in self.overflow.iter().enumerate() {
            t.events_overflow[i].increment(n - p.overflow[i]);
            p.overflow[i] = *n;
        }
        t.repartition_records
            .increment(self.repartition_records - p.repartition_records);
        p.repartition_records = self.repartition_records;
        t.changelog_records
            .increment(self.changelog_records - p.changelog_records);
        p.changelog_records = self.changelog_records;
        self.maybe_state_metrics();
    }

    /// State gauges, at most once a second.
    fn maybe_state_metrics(&mut self) {
        if let Some(hub) = self.hub.clone() {
            if self.last_state_metrics.elapsed() >= StdDuration::from_secs(1) {
                self.last_state_metrics = Instant::now();
                self.state_metrics(&hub);
            }
        }
    }

    /// State size, assignment and progress gauges (about once a second).
    fn state_metrics(&self, hub: &Hub) {
        let t = &hub.telemetry;
        let windows: usize = self.owners.values().map(Owner::open_windows).sum();
        let bytes: usize = self
            .owners
            .values()
            .map(Owner::state_bytes_estimate)
            .sum::<usize>()
            + self
                .routers
                .values()
                .map(|r| r.router.dedupe().len() * 64)
                .sum::<usize>();
        t.state_windows.set(windows as f64);
        t.state_bytes.set(bytes as f64);
        t.assigned_input.set(self.routers.len() as f64);
        t.assigned_repartition.set(self.owners.len() as f64);
        for (index, goal) in self.goals.goals.iter().enumerate() {
            if !t.has_progress_gauge(index) {
                continue;
            }
            // The latest window of each group.
            let mut latest: HashMap<String, (Timestamp, f64)> = HashMap::new();
            for owner in self.owners.values() {
                for (key, start, ws) in owner.windows_of(index) {
                    let progress = match ws.aggregate.value() {
                        Some(v) if !goal.target.is_zero() => v
                            .checked_div(goal.target)
                            .and_then(|p| p.to_string().parse::<f64>().ok())
                            .unwrap_or(0.0),
                        _ => 0.0,
                    };
                    let name = key.0.join("|");
                    let e = latest.entry(name).or_insert((start, progress));
                    if start >= e.0 {
                        *e = (start, progress);
                    }
                }
            }
            // Groups without an open window lose their series.
            t.replace_progress(
                index,
                &goal.id,
                latest.into_iter().map(|(g, (_, p))| (g, p)),
            );
        }
    }

    /// Answers the window queries waiting, from the owners' current state.
    fn answer_queries(&mut self) {
        let Some(rx) = &self.queries else {
            return;
        };
        // At most a few per round, each building at most `limit` views: the processing path
        // stays bounded however many dashboards ask.
        for _ in 0..crate::serve::hub::QUERIES_PER_ROUND {
            let Ok(q) = rx.try_recv() else {
                break;
            };
            if q.reply.is_closed() {
                // The asker gave up.
                continue;
            }
            let mut answer = match self.goals.goals.get(q.goal) {
                Some(goal) => crate::serve::hub::window_page(
                    goal,
                    q.goal,
                    self.owners.values(),
                    &self.instance,
                    q.order,
                    q.limit,
                ),
                None => Default::default(),
            };
            // The counts as published to the metrics at the last commit.
            answer.late = self.published.late.get(q.goal).copied().unwrap_or(0);
            answer.overflow = self.published.overflow.get(q.goal).copied().unwrap_or(0);
            // The asker may have given up.
            let _ = q.reply.send(answer);
        }
    }

    /// Ready: assigned, restored and not rebuilding.
    fn update_ready(&self) {
        if let Some(hub) = &self.hub {
            hub.set_ready(self.assigned_once && !self.needs_reset && self.fatal.is_none());
        }
    }

    /// Commits; on failure aborts (and schedules a rebuild) or records a fatal error.
    fn try_commit(&mut self, cgm: Option<&ConsumerGroupMetadata>) -> bool {
        match self.commit(cgm) {
            Ok(()) => true,
            Err(e) => {
                self.fail_or_reset(e);
                false
            }
        }
    }

    fn classify(&self, e: KafkaError, action: &str) -> RunError {
        if !matches!(&e, KafkaError::Transaction(err) if err.is_fatal()) {
            // A coordinator moving or unreachable: the broker side is in trouble.
            self.disrupted.store(true, Ordering::Relaxed);
        }
        RunError::transactional(action, e)
    }

    /// After a failed commit: a fatal error stops the instance; anything else aborts the
    /// transaction and rebuilds state from the changelog at the committed offsets.
    fn fail_or_reset(&mut self, e: RunError) {
        if e.class() != ErrorClass::Retriable {
            self.fatal.get_or_insert(e);
            return;
        }
        tracing::warn!(error = %e, "aborting the transaction; state is rebuilt from the changelog");
        if self.abort(&e.to_string()) {
            self.needs_reset = true;
        }
    }

    /// After a fatal error: when the producer failed fatally while the broker connection was
    /// disrupted (a broker restart can leave librdkafka believing it was fenced), it is
    /// recreated, which aborts its open transaction on the broker, and state is rebuilt from the
    /// changelog, as Kafka Streams reinitialises its producer. A fatal error without a disruption,
    /// or too many in a row, is returned: another instance with the same id fenced this one.
    fn recover_producer(&mut self, e: RunError) -> Result<(), RunError> {
        if self.producer.client().fatal_error().is_none() || !self.disrupted.load(Ordering::Relaxed)
        {
            return Err(e);
        }
        let now = Instant::now();
        self.recoveries
            .retain(|t| now.duration_since(*t) < RECOVERY_WINDOW);
        if self.recoveries.len() >= MAX_RECOVERIES {
            return Err(e);
        }
        tracing::warn!(
            error = %e,
            "the producer failed while the broker connection was disrupted: recreating it and \
             rebuilding state from the changelog"
        );
        self.producer =
            transactional_producer(&self.producer_config, &self.disrupted, TXN_PATIENCE)?;
        self.recoveries.push(now);
        self.report.producers_recreated += 1;
        if self.in_txn {
            // The new producer's initialisation aborted it on the broker.
            self.in_txn = false;
            self.count_abort();
        }
        self.abort("producer recreated");
        self.needs_reset = true;
        Ok(())
    }

    fn count_abort(&mut self) {
        self.report.aborts += 1;
        if let Some(hub) = &self.hub {
            hub.telemetry.txn_aborted.increment(1);
        }
    }

    /// Aborts the open transaction, if any, and forgets its work; the counters go back to the
    /// last commit (the aborted records are read again). Returns false after a fatal error.
    fn abort(&mut self, why: &str) -> bool {
        if self.in_txn {
            let producer = &self.producer;
            if let Err(abort) = retry_retriable("abort", TXN_PATIENCE, || {
                producer.abort_transaction(KAFKA_TIMEOUT)
            }) {
                self.fatal.get_or_insert(RunError::AbortFailed {
                    why: why.to_string(),
                    cause: super::error::ClientError(abort),
                });
                return false;
            }
            self.count_abort();
        }
        let p = &self.published;
        self.report.read = p.report.read;
        self.report.accepted = p.report.accepted;
        self.report.duplicates = p.report.duplicates;
        self.report.rejected = p.report.rejected;
        self.report.attainments = p.report.attainments;
        self.report.local_contributions = p.report.local_contributions;
        self.report.internal_skipped = p.report.internal_skipped;
        self.report.unknown_goal = p.report.unknown_goal;
        self.report.dedupe_evicted = p.report.dedupe_evicted;
        self.rejected = p.rejected;
        self.late.clone_from(&p.late);
        self.overflow.clone_from(&p.overflow);
        self.repartition_records = p.repartition_records;
        self.changelog_records = p.changelog_records;
        self.txn_attainments.clear();
        self.in_txn = false;
        self.offsets.clear();
        self.batches.clear();
        self.held.clear();
        self.send_failed.set(None);
        self.too_large.replace(None);
        self.links.fill(Link::Topic);
        self.attainments.clear();
        // Found again by the rebuild that follows.
        self.unreadable.clear();
        self.orphan_parts.clear();
        true
    }

    /// Rebuilds every assigned partition from the changelog and rewinds to the committed offsets.
    fn reset(&mut self, consumer: &BaseConsumer<Ctx>) -> Result<(), RunError> {
        // Work of the open transaction is redone from the committed offsets: drop it first, or
        // it would be committed twice.
        if !self.abort("rebuilding state") {
            return Err(self
                .fatal
                .take()
                .unwrap_or(RunError::Invariant("a failed abort left no error")));
        }
        self.needs_reset = false;
        let assignment = consumer
            .assignment()
            .map_err(|e| RunError::kafka("read the assignment", e))?;
        let parts: Vec<(String, i32)> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        for (t, p) in &parts {
            self.drop_partition(t, *p);
        }
        self.assign(&parts)?;
        self.note_committed(consumer, &assignment);
        let committed = consumer
            .committed_offsets(assignment, KAFKA_TIMEOUT)
            .map_err(|e| RunError::kafka("read committed offsets", e))?;
        for el in committed.elements() {
            let offset = match el.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            consumer
                .seek(el.topic(), el.partition(), offset, KAFKA_TIMEOUT)
                .map_err(|e| RunError::kafka("rewind to the committed offset", e))?;
        }
        Ok(())
    }

    fn bump_epoch(&mut self) {
        // Other instances may have sent to the owners here, or own what was here: the topic
        // again, until new barriers come back.
        self.links.fill(Link::Topic);
        self.impatient.fill(false);
        self.assignment_epoch += 1;
        self.epoch.store(self.assignment_epoch, Ordering::Release);
    }

    fn drop_partition(&mut self, topic: &str, partition: i32) {
        self.bump_epoch();
        match self.part(topic, partition) {
            Some(part @ Part::Repartition(p)) => {
                self.owners.remove(&p);
                self.owner_since.remove(&p);
                self.split_windows.remove(&p);
                self.offsets.remove(&part);
            }
            Some(part @ Part::Input(up)) => {
                self.routers.remove(&up);
                self.offsets.remove(&part);
                if let Some(g) = self.lag_gauges.get(up as usize) {
                    // Another instance reports it now.
                    g.set(0.0);
                }
            }
            None => {}
        }
    }

    /// Creates tasks for newly assigned partitions and restores them from the changelog.
    fn assign(&mut self, parts: &[(String, i32)]) -> Result<(), RunError> {
        self.bump_epoch();
        let mut by_changelog: BTreeMap<i32, (Option<i32>, Vec<u32>)> = BTreeMap::new();
        for (topic, p) in parts {
            match self.part(topic, *p) {
                Some(Part::Repartition(p)) => by_changelog.entry(p).or_default().0 = Some(p),
                Some(Part::Input(up)) => {
                    let part = (up % self.owners_count as u32) as i32;
                    by_changelog.entry(part).or_default().1.push(up);
                }
                None => {}
            }
        }
        let wanted: Vec<i32> = by_changelog.keys().copied().collect();
        let mut states = read_partitions(&self.client, &self.changelog, &wanted)?;
        let upstreams = self.topics.inputs.len() as u32;
        for (part, (owner, ups)) in by_changelog {
            let state = states.remove(&part).unwrap_or_default();
            let mut restored = decode_partition(&state, owner.is_some(), &ups, upstreams);
            drop(state);
            for u in std::mem::take(&mut restored.unreadable) {
                self.unreadable.push((part, u));
            }
            for key in std::mem::take(&mut restored.orphan_parts) {
                self.orphan_parts.push((part, key));
            }
            if let Some(p) = owner {
                let mut o = Owner::new(self.goals.clone(), upstreams);
                o.track_changes();
                let mut split = HashMap::new();
                for w in restored.windows {
                    if let Some(&g) = self.goal_index.get(&w.goal_id) {
                        if w.parts > 0 {
                            split.insert(w.key, w.parts);
                        }
                        let group = GroupKey(w.group.into_iter().map(Box::from).collect());
                        o.restore_window(g, group, w.start, w.state);
                    }
                }
                for (up, stream_time, idle) in restored.upstreams {
                    o.restore_upstream(up, stream_time, idle);
                }
                if let Some(wm) = restored.watermark {
                    o.restore_watermark(wm);
                }
                tracing::info!(
                    partition = p,
                    open_windows = o.open_windows(),
                    "owner ready"
                );
                self.owners.insert(p, o);
                self.owner_since.insert(p, self.assignment_epoch);
                self.split_windows.insert(p, split);
            }
            for up in ups {
                let mut router = Router::new(self.goals.clone(), up);
                router.set_dedupe_max_ids(self.cfg.app.dedupe_max_ids);
                router.track_changes();
                let r = restored.routers.remove(&up).unwrap_or_default();
                let (stream_time, next_batch, batches) = (r.stream_time, r.next_batch, r.batches);
                router.restore(stream_time, r.ids);
                tracing::info!(upstream = up, remembered_ids = router.dedupe().len(), stream_time = ?stream_time.map(|t| t.to_rfc3339()), "router ready");
                self.routers.insert(
                    up,
                    RouterTask {
                        router,
                        since_epoch: self.assignment_epoch,
                        sent: None,
                        batches,
                        next_batch,
                        clock_dirty: false,
                        last_record: Instant::now(),
                        records_since_check: 0,
                        idle_sent: false,
                    },
                );
            }
        }
        if !self.unreadable.is_empty() || !self.orphan_parts.is_empty() {
            // Dead-lettered and tombstoned by the next commit.
            self.begin()?;
        }
        Ok(())
    }

    /// Marks quiet input partitions idle so they stop holding back the watermark. A partition is
    /// idle when it had no record for `idle_timeout` *and* nothing is left to read on it (its
    /// cached end offset, from the last fetch, is not ahead of us). A partition that merely cannot
    /// be fetched (broker unreachable, consumer behind) never counts as idle, so an outage does not
    /// move the watermark past data still to come.
    fn check_idle<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let timeout = StdDuration::from_nanos(self.cfg.app.idle_timeout.as_nanos() as u64);
        let owners = self.owners_count;
        let mut any = false;
        for (upstream, (topic, partition)) in self.topics.inputs.iter().enumerate() {
            let upstream = upstream as u32;
            let Some(task) = self.routers.get_mut(&upstream) else {
                continue;
            };
            if task.records_since_check > 0 {
                task.records_since_check = 0;
                task.last_record = Instant::now();
            }
            let next_offset = self.next_offsets.get(&Part::Input(upstream)).copied();
            // Records before the log start offset are gone (retention): nothing to read there.
            let marks = cached_watermarks(consumer, topic, *partition);
            if let (Some(gauge), Some(next)) = (self.lag_gauges.get(upstream as usize), next_offset)
            {
                if let Some((low, high)) = marks {
                    gauge.set((high - next.max(low)).max(0) as f64);
                }
            }
            if task.idle_sent || task.last_record.elapsed() < timeout {
                continue;
            }
            let next = next_offset.unwrap_or(0);
            match marks {
                Some((low, high)) if next.max(low) >= high => {}
                _ => continue,
            }
            task.idle_sent = true;
            any = true;
            for dest in 0..owners {
                if self.links[dest as usize] == Link::Local {
                    if let Some(owner) = self.owners.get_mut(&dest) {
                        owner.set_idle(upstream, true, &mut self.attainments);
                        continue;
                    }
                }
                self.batches
                    .entry((upstream, dest))
                    .or_insert_with(|| wire::BatchWriter::new(upstream))
                    .set_idle();
            }
        }
        if any && self.begin().is_err() {
            self.needs_reset = true;
        }
        if !self.attainments.is_empty() && !self.needs_reset {
            self.emit_attainments();
        }
    }

    /// Whether every assigned input partition reached its end offset seen at start and this
    /// instance has read everything committed to the repartition partitions it owns: it sends a
    /// sentinel record to each and waits until it reads them all back under the same assignment.
    fn caught_up(
        &mut self,
        cgm: Option<&ConsumerGroupMetadata>,
        instance: &str,
    ) -> Result<bool, RunError> {
        // An instance without partitions (e.g. before its first real assignment) waits.
        if self.in_txn
            || !self.batches.is_empty()
            || !self.held.is_empty()
            || (self.routers.is_empty() && self.owners.is_empty())
        {
            return Ok(false);
        }
        match &self.sentinel {
            Some((_, epoch, pending)) if *epoch == self.assignment_epoch => {
                return Ok(pending.is_empty())
            }
            _ => {}
        }
        self.sentinels_sent += 1;
        let id = wire::fnv1a(&[
            instance.as_bytes(),
            &self.nonce.to_be_bytes(),
            &self.sentinels_sent.to_be_bytes(),
        ]) | 1;
        let owned: std::collections::BTreeSet<i32> = self.owners.keys().copied().collect();
        if !owned.is_empty() {
            self.begin()?;
            let bytes = pb::RepartitionBatch {
                upstream: u32::MAX,
                sentinel: id,
                ..Default::default()
            }
            .encode_to_vec();
            let topic = self.topics.repartition.clone();
            for &p in &owned {
                self.send(&topic, Some(p), b"sentinel", Some(&bytes), None);
            }
            self.commit(cgm)?;
        }
        let done = owned.is_empty();
        self.sentinel = Some((id, self.assignment_epoch, owned));
        Ok(done)
    }

    /// Whether every input partition assigned here is read up to its target: its next offset, or
    /// its log start offset when the records before it are gone (retention, `DeleteRecords`), has
    /// reached the target.
    fn all_input_read<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        targets: &BTreeMap<(String, i32), i64>,
    ) -> bool {
        self.topics.inputs.iter().enumerate().all(|(up, key)| {
            let up = up as u32;
            if !self.routers.contains_key(&up) {
                return true;
            }
            let target = targets.get(key).copied().unwrap_or(0);
            let next = self
                .next_offsets
                .get(&Part::Input(up))
                .copied()
                .unwrap_or(0);
            next >= target
                || cached_watermarks(consumer, &key.0, key.1).is_some_and(|(low, _)| low >= target)
        })
    }

    fn close_all(&mut self) -> Result<(), RunError> {
        self.begin()?;
        let mut out = std::mem::take(&mut self.attainments);
        for owner in self.owners.values_mut() {
            owner.close_all(&mut out);
        }
        self.attainments = out;
        self.emit_attainments();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_str("short", 512), "short");
        assert_eq!(truncate_str("abcdef", 3), "abc");
        // "é" is two bytes: cutting inside it keeps what precedes it.
        assert_eq!(truncate_str("aéb", 2), "a");
        assert_eq!(truncate_str("aéb", 3), "aé");
    }

    /// A window whose split state lost a part is unreadable at restore: its head is dead-lettered
    /// and tombstoned with its remaining parts in the next transaction. If that transaction also
    /// writes the window afresh (a contribution to it arrived), the new head and parts survive:
    /// the next restore finds the new state whole.
    #[test]
    fn a_window_rewritten_in_the_transaction_that_tombstones_its_damaged_state_survives() {
        use super::super::restore::{Latest, PartitionState};
        use crate::aggregate::Aggregate;
        use crate::engine::WindowState;

        let key = ChangelogKey::window(
            "g",
            &GroupKey::from_values(&["EMEA"]),
            Timestamp::from_nanos(0),
        );
        let distinct = |n: usize| WindowState {
            end: Timestamp::from_nanos(1_000),
            aggregate: Aggregate::Distinct((0..n).map(|i| format!("v{i:06}").into()).collect()),
            reached: 0,
            breached: false,
        };
        let mut state = PartitionState::new();
        let mut offset = 0;
        let mut write = |state: &mut PartitionState, records: Vec<ChangelogRecord>| {
            for (_, k, v) in records {
                offset += 1;
                match v {
                    Some(value) => state.insert(k, Latest { offset, value }),
                    None => state.remove(&k),
                };
            }
        };
        let old = wire::window_state_records(&key, &distinct(20_000), 10_000);
        assert!(old.len() > 4);
        let damaged: Vec<ChangelogRecord> = old
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, (k, v))| (0, k, Some(v)))
            .collect();
        write(&mut state, damaged);
        let restored = decode_partition(&state, true, &[], 1);
        assert!(restored.windows.is_empty());
        assert_eq!(restored.unreadable.len(), 1);
        assert!(!restored.orphan_parts.is_empty());

        // The next transaction: the restore's tombstones, and the window's new state in parts
        // under the same keys.
        let cleanup: Vec<ChangelogRecord> = restored
            .unreadable
            .into_iter()
            .map(|u| u.key)
            .chain(restored.orphan_parts)
            .map(|k| (0, k, None))
            .collect();
        let fresh = distinct(15_000);
        let changes: Vec<ChangelogRecord> = window_records(
            &mut HashMap::new(),
            key.clone(),
            Some(fresh.clone()),
            10_000,
        )
        .into_iter()
        .map(|(k, v)| (0, k, v))
        .collect();
        assert!(changes.len() > 4, "the new state is in parts too");
        write(&mut state, changelog_in_order(cleanup, changes));

        let restored = decode_partition(&state, true, &[], 1);
        assert!(restored.unreadable.is_empty(), "{:?}", restored.unreadable);
        assert!(restored.orphan_parts.is_empty());
        assert_eq!(restored.windows.len(), 1);
        assert_eq!(restored.windows[0].key, key);
        assert_eq!(restored.windows[0].state, fresh);
    }

    #[test]
    fn kafka_properties_override_goalposts_defaults() {
        let text = r#"
goals = "goals.toml"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
[kafka.properties]
"linger.ms" = "50"
[app]
application_id = "app"
[input]
topics = ["in"]
[output]
topic = "out"
"#;
        let cfg = RunConfig::from_toml(text, Path::new("goalpost.toml")).unwrap();
        let mut client = client_config(&cfg);
        set_defaults(
            &mut client,
            &cfg,
            &[("linger.ms", "5"), ("compression.type", "lz4")],
        );
        assert_eq!(client.get("linger.ms"), Some("50"));
        assert_eq!(client.get("compression.type"), Some("lz4"));
    }
}
