//! `goalpost demo`: the whole service in one process, on librdkafka's in-process mock cluster.
//!
//! Four parts, no broker and no setup:
//!
//! * the **mock cluster** ([`rdkafka::mocking::MockCluster`], one broker, owned by a client
//!   configured with `test.mock.num.brokers`), kept on the calling thread because it is not
//!   `Send`. Its consumer groups form at once (the mock otherwise delays a new group's first
//!   join by 3 s). The input topic and every topic `goalpost run` would create are created on it
//!   up front: the mock broker does not implement the CreateTopics admin API;
//! * a **feeder** thread: the deterministic [`Generator`] at a steady rate, as JSON keyed by
//!   `event_id`, to `sales-events`;
//! * the **pipeline** thread: the real [`kafka::run`], exactly as `goalpost run` runs it;
//! * a **printer** on the calling thread: a read_committed consumer of `goal-attainments` that
//!   prints one short line per attainment event (at most [`DemoConfig::max_lines_per_sec`] a
//!   second, the rest summarized) and a live summary every two seconds.
//!
//! The mock broker is a test double, not Kafka: read_committed consumers see transactional
//! records before their transaction commits, and those of aborted transactions too; offsets sent
//! with a transaction (`send_offsets_to_transaction`) are accepted but not stored; each partition
//! keeps only its latest 100,000 records (5 MB). A single demo instance never rebalances and does
//! not abort in normal operation, so none of this changes its output.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{bail, Context as _, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::codec::{self, json, Format};
use crate::generate::{GenerateConfig, Generator};
use crate::goals::GoalSet;
use crate::model::{AttainmentKind, Outcome, Timestamp};
use crate::runtime::kafka::config::{AppConfig, InputConfig, KafkaConfig, OutputConfig};
use crate::runtime::kafka::{self, RunConfig, RunOptions, RunReport};
use crate::window::{CalendarUnit, WindowSpec};

/// The example goal file, `examples/goals.toml`.
pub const EXAMPLE_GOALS: &str = include_str!("../../examples/goals.toml");

/// The input topic the feeder writes to.
pub const INPUT_TOPIC: &str = "sales-events";

/// The application id of the demo pipeline; names its group and internal topics.
pub const APPLICATION_ID: &str = "demo";

const STATUS_EVERY: StdDuration = StdDuration::from_secs(2);
const TICK: StdDuration = StdDuration::from_millis(10);

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Events fed per second.
    pub rate: u64,
    /// How long to run; `None`: until the stop flag is set.
    pub duration: Option<StdDuration>,
    /// Partitions of the input topic (and so of every internal and output topic).
    pub partitions: i32,
    /// Seed of the event generator.
    pub seed: u64,
    /// The goals.
    pub goals: Arc<GoalSet>,
    /// Serve HTTP (dashboard, query API, metrics) on this loopback address.
    pub listen: Option<std::net::SocketAddr>,
    /// Attainment lines printed per second, at most; the rest are counted and summarized.
    pub max_lines_per_sec: usize,
}

/// Counts of the attainment events the printer received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Milestone events.
    pub milestones: u64,
    /// Breached events.
    pub breaches: u64,
    /// Final events, all outcomes.
    pub finals: u64,
    /// Finals with outcome `attained`.
    pub attained: u64,
    /// Finals with outcome `missed`.
    pub missed: u64,
    /// Finals with outcome `insufficient_data`.
    pub insufficient: u64,
    /// Records that were not attainment events this version can read.
    pub unreadable: u64,
    /// Events counted but not printed, to keep the output readable.
    pub not_printed: u64,
}

impl Received {
    /// Attainment events received, of every kind.
    pub fn total(&self) -> u64 {
        self.milestones + self.breaches + self.finals + self.unreadable
    }
}

/// How a demo run went.
#[derive(Debug)]
pub struct DemoReport {
    /// Events the feeder had delivered to the input topic.
    pub fed: u64,
    /// Events the mock broker did not accept.
    pub feed_failures: u64,
    /// Attainment events received by the printer.
    pub received: Received,
    /// The pipeline's counters, or why it failed.
    pub pipeline: Result<RunReport, String>,
    /// Wall time from start to the end of the drain.
    pub elapsed: StdDuration,
}

/// Arguments of `goalpost demo`.
#[derive(Clone, Debug)]
pub struct DemoArgs {
    /// Events per second.
    pub rate: u64,
    /// Run time in seconds; `None` until Ctrl-C.
    pub seconds: Option<u64>,
    /// A goal file; `None` for the example goals.
    pub goals: Option<PathBuf>,
    /// Input partitions.
    pub partitions: i32,
    /// Generator seed.
    pub seed: u64,
    /// Where to serve the dashboard, query API and metrics (loopback only); `None`: no HTTP.
    pub listen: Option<std::net::SocketAddr>,
}

/// Parses the embedded example goals.
pub fn example_goals() -> GoalSet {
    GoalSet::from_toml(EXAMPLE_GOALS).expect("the example goal file is valid")
}

/// `goalpost demo`: runs until Ctrl-C, SIGTERM or `--seconds`, printing to stdout and stderr.
pub fn main(args: DemoArgs) -> Result<()> {
    if args.rate == 0 {
        bail!("--rate must be at least 1 event per second");
    }
    if !(1..=256).contains(&args.partitions) {
        bail!("--partitions must be between 1 and 256");
    }
    if let Some(addr) = args.listen {
        if !addr.ip().is_loopback() {
            bail!(
                "--listen {addr}: the demo serves HTTP on loopback addresses only (it has no \
                 token); use `goalpost run` with [http] token_file or token_env for anything else"
            );
        }
    }
    let goals = match &args.goals {
        None => example_goals(),
        Some(p) => GoalSet::load(p).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    // Warnings only, so that the attainment lines stay readable; RUST_LOG overrides.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
    let stop = kafka::shutdown_flag().context("cannot install signal handlers")?;
    let cfg = DemoConfig {
        rate: args.rate,
        duration: args.seconds.map(StdDuration::from_secs),
        partitions: args.partitions,
        seed: args.seed,
        goals: Arc::new(goals),
        max_lines_per_sec: 20,
        listen: args.listen,
    };
    let mut out = io::stdout().lock();
    let mut status = io::stderr();
    let report = run(&cfg, stop, &mut out, &mut status)?;
    out.flush()?;
    match report.pipeline {
        Ok(_) => Ok(()),
        Err(e) => bail!("the pipeline stopped: {e}"),
    }
}

/// The pipeline's configuration for a cluster at `bootstrap`.
pub fn run_config(bootstrap: &str) -> RunConfig {
    RunConfig {
        goals: PathBuf::from("<demo goals>"),
        kafka: KafkaConfig {
            bootstrap_servers: bootstrap.to_string(),
            properties: BTreeMap::new(),
        },
        app: AppConfig {
            application_id: APPLICATION_ID.into(),
            instance_id: Some(format!("{APPLICATION_ID}-0")),
            commit_interval: crate::model::Duration::from_millis(100),
            idle_timeout: crate::model::Duration::from_secs(2),
            create_topics: true,
            replication_factor: 1,
            ..AppConfig::default()
        },
        input: InputConfig {
            topics: vec![INPUT_TOPIC.into()],
            format: Format::Json,
            max_record_bytes: codec::MAX_RECORD_BYTES,
            // The feeder runs weeks of event time a second, so it soon passes the wall clock:
            // no plausibility bound on event time.
            max_future: codec::future::MaxFuture(None),
        },
        output: OutputConfig::default(),
        http: Default::default(),
        metrics: Default::default(),
    }
}

/// Runs the demo until `stop` is set or `cfg.duration` has passed: attainment lines go to `out`,
/// live and final summaries to `status`. Returns an error only when the demo could not start.
pub fn run(
    cfg: &DemoConfig,
    stop: Arc<AtomicBool>,
    out: &mut dyn Write,
    status: &mut dyn Write,
) -> Result<DemoReport> {
    let started = Instant::now();
    let holder = mock_cluster_owner()?;
    let mock: MockCluster<'_, _> = holder
        .client()
        .mock_cluster()
        .context("the mock Kafka cluster did not start")?;
    let bootstrap = mock.bootstrap_servers();
    let run_cfg = run_config(&bootstrap);
    let topics = create_topics(&mock, &run_cfg, cfg.partitions)?;
    writeln!(
        status,
        "demo: mock Kafka cluster at {bootstrap}; topics {} ({} partitions each)",
        topics.join(", "),
        cfg.partitions
    )?;
    writeln!(
        status,
        "demo: feeding {} events/s (seed {}), {} goal(s); {}",
        cfg.rate,
        cfg.seed,
        cfg.goals.goals.len(),
        match cfg.duration {
            Some(d) => format!("running for {} s", d.as_secs_f64()),
            None => "Ctrl-C to stop".to_string(),
        }
    )?;

    let serving = match cfg.listen {
        None => None,
        Some(listen) => {
            let metrics = crate::serve::install_recorder().ok();
            let telemetry = crate::serve::Telemetry::new(&cfg.goals, &[]);
            let (hub, queries) =
                crate::serve::Hub::new(cfg.goals.clone(), run_cfg.instance_id(), telemetry);
            let server = crate::serve::http::start(
                hub.clone(),
                crate::serve::ServeOptions {
                    listen,
                    token: None,
                    metrics,
                    ..Default::default()
                },
            )
            .context("cannot start the HTTP server")?;
            writeln!(
                status,
                "demo: dashboard at http://{}/ (query API under /v1, metrics at /metrics)",
                server.addr
            )?;
            Some(crate::serve::Serving {
                hub,
                queries,
                advertised_url: None,
            })
        }
    };

    // The printer first, so nothing it should see is missed.
    let printer_consumer = printer_consumer(&bootstrap, &run_cfg.output.topic, cfg.partitions)?;

    let pipeline_stop = Arc::new(AtomicBool::new(false));
    let pipeline: JoinHandle<Result<RunReport, String>> = {
        let stop = pipeline_stop.clone();
        let goals = cfg.goals.clone();
        let run_cfg = run_cfg.clone();
        std::thread::Builder::new()
            .name("demo-pipeline".into())
            .spawn(move || {
                kafka::run(
                    run_cfg,
                    goals,
                    RunOptions {
                        skip_changelog_policy_check: true,
                        ..RunOptions::default()
                    },
                    stop,
                    serving,
                )
                .map_err(|e| e.to_string())
            })
            .context("cannot start the pipeline thread")?
    };

    let feed = Arc::new(FeedStats::default());
    let feeder_stop = Arc::new(AtomicBool::new(false));
    let feeder: JoinHandle<Result<(), String>> = {
        let stop = feeder_stop.clone();
        let feed = feed.clone();
        let bootstrap = bootstrap.clone();
        let (rate, seed) = (cfg.rate, cfg.seed);
        let spawned = std::thread::Builder::new()
            .name("demo-feeder".into())
            .spawn(move || feed_events(&bootstrap, rate, seed, &stop, &feed));
        match spawned {
            Ok(handle) => handle,
            Err(e) => {
                pipeline_stop.store(true, Ordering::Relaxed);
                let _ = pipeline.join();
                return Err(e).context("cannot start the feeder thread");
            }
        }
    };

    let mut printer = Printer::new(&cfg.goals, cfg.max_lines_per_sec);
    // Print until told to stop; a failed write (a closed stdout) also ends it, after the threads.
    let mut watch = || -> Result<Option<&'static str>> {
        let mut last_status = Instant::now();
        let mut last_fed = 0;
        loop {
            if stop.load(Ordering::Relaxed) {
                writeln!(status, "demo: stopping (signal)")?;
                return Ok(None);
            }
            if cfg.duration.is_some_and(|d| started.elapsed() >= d) {
                return Ok(None);
            }
            if pipeline.is_finished() {
                return Ok(Some("the pipeline stopped"));
            }
            if feeder.is_finished() {
                return Ok(Some("the feeder stopped"));
            }
            printer.poll(&printer_consumer, StdDuration::from_millis(100), out)?;
            if last_status.elapsed() >= STATUS_EVERY {
                let secs = last_status.elapsed().as_secs_f64();
                last_status = Instant::now();
                let fed = feed.delivered.load(Ordering::Relaxed);
                printer.flush_suppressed(out)?;
                writeln!(
                    status,
                    "[{:>4.0}s] fed {} events ({}/s), event time {}  |  {}",
                    started.elapsed().as_secs_f64(),
                    thousands(fed),
                    thousands(((fed - last_fed) as f64 / secs).round() as u64),
                    feed.event_date(),
                    printer.counts_line()
                )?;
                last_fed = fed;
            }
        }
    };
    let watched = watch();

    // Stop the feeder, then the pipeline (it commits its last transaction), then drain.
    feeder_stop.store(true, Ordering::Relaxed);
    let feeder_result = feeder
        .join()
        .unwrap_or_else(|_| Err("the feeder thread panicked".into()));
    pipeline_stop.store(true, Ordering::Relaxed);
    let pipeline_result = pipeline
        .join()
        .unwrap_or_else(|_| Err("the pipeline thread panicked".into()));
    if let Some(why) = watched? {
        writeln!(status, "demo: {why} early")?;
    }
    if let Err(e) = &feeder_result {
        writeln!(status, "demo: feeder failed: {e}")?;
    }
    let expected = pipeline_result.as_ref().map(|r| r.attainments).ok();
    let drain_until =
        Instant::now() + StdDuration::from_secs(if expected.is_some() { 10 } else { 1 });
    while Instant::now() < drain_until && expected.is_none_or(|n| printer.received.total() < n) {
        printer.poll(&printer_consumer, StdDuration::from_millis(100), out)?;
    }
    printer.flush_suppressed(out)?;
    out.flush()?;
    drop(printer_consumer);

    let report = DemoReport {
        fed: feed.delivered.load(Ordering::Relaxed),
        feed_failures: feed.failed.load(Ordering::Relaxed),
        received: printer.received.clone(),
        pipeline: pipeline_result,
        elapsed: started.elapsed(),
    };
    write_summary(&report, &feed, status)?;
    // The clients are gone; the mock cluster goes last.
    drop(mock);
    drop(holder);
    Ok(report)
}

/// Creates on the mock cluster every topic `prepare_topics` would (the mock broker has no
/// CreateTopics API), each with `partitions` partitions; returns their names.
pub fn create_topics<C: ClientContext>(
    mock: &MockCluster<'_, C>,
    cfg: &RunConfig,
    partitions: i32,
) -> Result<Vec<String>> {
    let mut topics = cfg.input.topics.clone();
    topics.extend([
        cfg.repartition_topic(),
        cfg.changelog_topic(),
        cfg.output.topic.clone(),
        cfg.dead_letter_topic(),
    ]);
    for t in &topics {
        mock.create_topic(t, partitions, 1)
            .with_context(|| format!("cannot create topic `{t}` on the mock cluster"))?;
    }
    Ok(topics)
}

/// A client that owns a one-broker mock cluster (`test.mock.num.brokers`), whose consumer groups
/// form at once: by default the mock broker holds a new group's first join for 3 seconds. The
/// cluster lives as long as the client (`client().mock_cluster()`).
pub fn mock_cluster_owner() -> Result<BaseProducer> {
    let holder: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .create()
        .context("cannot start the mock Kafka cluster")?;
    // SAFETY: `holder` is a live client handle for the whole block, and
    // `rd_kafka_handle_mock_cluster` returns the mock cluster it owns (checked non-null), which
    // lives as long as `holder`. The setter only writes a default under the cluster's lock.
    unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(holder.client().native_ptr());
        if !cluster.is_null() {
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        }
    }
    Ok(holder)
}

fn write_summary(report: &DemoReport, feed: &FeedStats, status: &mut dyn Write) -> Result<()> {
    let secs = report.elapsed.as_secs_f64();
    writeln!(status, "demo finished after {secs:.1} s")?;
    let failed = if report.feed_failures > 0 {
        format!(", {} not delivered", thousands(report.feed_failures))
    } else {
        String::new()
    };
    writeln!(
        status,
        "  fed       {} events ({}/s){failed}, event time up to {}",
        thousands(report.fed),
        thousands((report.fed as f64 / secs.max(0.001)).round() as u64),
        feed.event_date()
    )?;
    match &report.pipeline {
        Ok(r) => writeln!(
            status,
            "  pipeline  read {}  accepted {}  duplicates {}  rejected {}  attainment events {}  transactions committed {}  aborted {}",
            thousands(r.read),
            thousands(r.accepted),
            thousands(r.duplicates),
            thousands(r.rejected),
            thousands(r.attainments),
            thousands(r.commits),
            thousands(r.aborts)
        )?,
        Err(e) => writeln!(status, "  pipeline  FAILED: {e}")?,
    }
    let r = &report.received;
    writeln!(
        status,
        "  received  {} attainment events: {} milestone, {} breached, {} final ({} attained, {} missed, {} insufficient data){}{}",
        thousands(r.total()),
        thousands(r.milestones),
        thousands(r.breaches),
        thousands(r.finals),
        thousands(r.attained),
        thousands(r.missed),
        thousands(r.insufficient),
        if r.not_printed > 0 {
            format!("; {} not printed", thousands(r.not_printed))
        } else {
            String::new()
        },
        if r.unreadable > 0 {
            format!("; {} unreadable", thousands(r.unreadable))
        } else {
            String::new()
        }
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Feeder

/// What the feeder has sent.
#[derive(Default)]
pub struct FeedStats {
    /// Events the cluster accepted.
    pub delivered: AtomicU64,
    /// Events it did not.
    pub failed: AtomicU64,
    /// Largest `occurred_at` sent, in nanoseconds; 0 before the first.
    pub latest: AtomicI64,
}

impl FeedStats {
    fn event_date(&self) -> String {
        match self.latest.load(Ordering::Relaxed) {
            0 => "-".to_string(),
            n => Timestamp::from_nanos(n)
                .to_datetime()
                .format("%Y-%m-%d")
                .to_string(),
        }
    }
}

struct FeedContext {
    stats: Arc<FeedStats>,
}

impl ClientContext for FeedContext {}

impl ProducerContext for FeedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.stats.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::warn!(error = %e, "demo feeder: event not delivered");
                self.stats.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Produces generated events (seed `seed`, JSON keyed by `event_id`) to the demo's input topic at
/// `rate` per second until `stop` is set.
pub fn feed_events(
    bootstrap: &str,
    rate: u64,
    seed: u64,
    stop: &AtomicBool,
    stats: &Arc<FeedStats>,
) -> Result<(), String> {
    let producer: BaseProducer<FeedContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create_with_context(FeedContext {
            stats: stats.clone(),
        })
        .map_err(|e| format!("cannot create the feeder's producer: {e}"))?;
    let mut generator = Generator::new(GenerateConfig {
        seed,
        events: u64::MAX,
        ..GenerateConfig::default()
    });
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut buf = Vec::with_capacity(1024);
    'feed: while !stop.load(Ordering::Relaxed) {
        // A token bucket refilled every tick: `rate` events per second on average.
        let due = (started.elapsed().as_nanos() * rate as u128 / 1_000_000_000) as u64;
        while sent < due {
            let Some(event) = generator.next() else {
                break 'feed;
            };
            buf.clear();
            json::encode_event(&event, &mut buf);
            let mut record = BaseRecord::to(INPUT_TOPIC)
                .key(event.event_id.as_bytes())
                .payload(buf.as_slice());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(StdDuration::from_millis(5));
                        if stop.load(Ordering::Relaxed) {
                            break 'feed;
                        }
                    }
                    Err((e, _)) => return Err(format!("cannot produce an event: {e}")),
                }
            }
            stats
                .latest
                .fetch_max(event.occurred_at.as_nanos(), Ordering::Relaxed);
            sent += 1;
            if stop.load(Ordering::Relaxed) {
                break 'feed;
            }
        }
        // Serve delivery reports until the next tick.
        let next = started + TICK * ((started.elapsed().as_nanos() / TICK.as_nanos()) as u32 + 1);
        producer.poll(next.saturating_duration_since(Instant::now()));
    }
    producer
        .flush(StdDuration::from_secs(10))
        .map_err(|e| format!("cannot flush the feeder's producer: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Printer

fn printer_consumer(bootstrap: &str, topic: &str, partitions: i32) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{APPLICATION_ID}-printer"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("cannot create the printer's consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .context("cannot build the printer's assignment")?;
    }
    consumer
        .assign(&tpl)
        .context("cannot assign the output topic to the printer")?;
    Ok(consumer)
}

/// An attainment event as `encode_attainment` writes it; decimals kept as their JSON text.
#[derive(Deserialize)]
struct Record<'a> {
    goal_id: String,
    kind: String,
    #[serde(default)]
    group: BTreeMap<String, String>,
    window_start: String,
    window_end: String,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    #[serde(borrow)]
    target: &'a RawValue,
    #[serde(borrow, default)]
    progress: Option<&'a RawValue>,
    #[serde(borrow, default)]
    milestone: Option<&'a RawValue>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    triggered_by: Option<String>,
}

fn decimal(raw: Option<&RawValue>) -> Option<Decimal> {
    raw.and_then(|r| Decimal::from_str(r.get()).ok())
}

struct Printer<'g> {
    goals: &'g GoalSet,
    max_per_sec: usize,
    second_started: Instant,
    printed_this_second: usize,
    /// Not printed since the last "… and N more" line: milestones, breaches, finals.
    suppressed: [u64; 3],
    received: Received,
}

impl<'g> Printer<'g> {
    fn new(goals: &'g GoalSet, max_per_sec: usize) -> Self {
        Printer {
            goals,
            max_per_sec,
            second_started: Instant::now(),
            printed_this_second: 0,
            suppressed: [0; 3],
            received: Received::default(),
        }
    }

    /// Reads what is available (waiting up to `timeout` for the first record) and prints it.
    fn poll(
        &mut self,
        consumer: &BaseConsumer,
        timeout: StdDuration,
        out: &mut dyn Write,
    ) -> Result<()> {
        let mut wait = timeout;
        let mut printed = false;
        loop {
            match consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "demo printer: consumer error"),
                Some(Ok(m)) => {
                    printed |= self.record(m.payload().unwrap_or_default(), out)?;
                }
            }
            wait = StdDuration::ZERO;
        }
        if self.second_started.elapsed() >= StdDuration::from_secs(1) {
            self.flush_suppressed(out)?;
        }
        if printed {
            out.flush()?;
        }
        Ok(())
    }

    /// Counts one record and prints it unless this second's budget is spent.
    fn record(&mut self, payload: &[u8], out: &mut dyn Write) -> Result<bool> {
        let Ok(r) = serde_json::from_slice::<Record<'_>>(payload) else {
            self.received.unreadable += 1;
            return Ok(false);
        };
        let Some(kind) = AttainmentKind::from_name(&r.kind) else {
            self.received.unreadable += 1;
            return Ok(false);
        };
        let outcome = r.outcome.as_deref().and_then(Outcome::from_name);
        let slot = match kind {
            AttainmentKind::Milestone => {
                self.received.milestones += 1;
                0
            }
            AttainmentKind::Breached => {
                self.received.breaches += 1;
                1
            }
            AttainmentKind::Final => {
                self.received.finals += 1;
                match outcome {
                    Some(Outcome::Attained) => self.received.attained += 1,
                    Some(Outcome::Missed) => self.received.missed += 1,
                    Some(Outcome::InsufficientData) => self.received.insufficient += 1,
                    None => {}
                }
                2
            }
        };
        if self.second_started.elapsed() >= StdDuration::from_secs(1) {
            self.flush_suppressed(out)?;
        }
        if self.printed_this_second >= self.max_per_sec {
            self.suppressed[slot] += 1;
            self.received.not_printed += 1;
            return Ok(false);
        }
        self.printed_this_second += 1;
        writeln!(out, "{}", self.line(&r, kind, outcome))?;
        Ok(true)
    }

    /// Prints "… and N more …" for what this second's budget left out, and starts a new second.
    fn flush_suppressed(&mut self, out: &mut dyn Write) -> Result<()> {
        let names = [
            ("milestone", "milestones"),
            ("breach", "breaches"),
            ("final", "finals"),
        ];
        let parts: Vec<String> = self
            .suppressed
            .iter()
            .zip(names)
            .filter(|(n, _)| **n > 0)
            .map(|(n, (one, many))| {
                format!(
                    "{} more {}",
                    thousands(*n),
                    if *n == 1 { one } else { many }
                )
            })
            .collect();
        if !parts.is_empty() {
            writeln!(out, "{}  … and {}", clock(), parts.join(", "))?;
            out.flush()?;
        }
        self.suppressed = [0; 3];
        self.printed_this_second = 0;
        self.second_started = Instant::now();
        Ok(())
    }

    fn line(&self, r: &Record<'_>, kind: AttainmentKind, outcome: Option<Outcome>) -> String {
        let label = match (kind, outcome) {
            (AttainmentKind::Milestone, _) => match decimal(r.milestone) {
                Some(m) => format!("milestone {}", percent(m)),
                None => "milestone".to_string(),
            },
            (AttainmentKind::Breached, _) => "breached".to_string(),
            (AttainmentKind::Final, Some(Outcome::InsufficientData)) => "final no-data".to_string(),
            (AttainmentKind::Final, Some(o)) => format!("final {o}"),
            (AttainmentKind::Final, None) => "final".to_string(),
        };
        let mut s = format!("{}  {label:<15} {}", clock(), r.goal_id);
        if !r.group.is_empty() {
            let g: Vec<String> = r.group.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!(" {{{}}}", g.join(", ")));
        }
        s.push(' ');
        s.push_str(&self.window_label(&r.goal_id, &r.window_start, &r.window_end));
        let target = decimal(Some(r.target));
        match decimal(r.value) {
            Some(v) => {
                s.push_str(&format!("  value {}", number(v)));
                match (decimal(r.progress), target) {
                    (Some(p), Some(t)) => {
                        s.push_str(&format!(" ({} of {})", percent(p), number(t)))
                    }
                    (None, Some(t)) => s.push_str(&format!(" (target {})", number(t))),
                    _ => {}
                }
            }
            None => s.push_str("  no value"),
        }
        if let Some(t) = &r.triggered_by {
            s.push_str("  by ");
            s.push_str(t);
        }
        s
    }

    /// The window in the goal's own terms: `2026-01` for a calendar month, `week of 2026-01-05`,
    /// `2026-01-01..01-08` for fixed-size windows (UTC).
    fn window_label(&self, goal_id: &str, start: &str, end: &str) -> String {
        let (Ok(start), Ok(end)) = (
            Timestamp::parse_rfc3339(start),
            Timestamp::parse_rfc3339(end),
        ) else {
            return format!("{start}..{end}");
        };
        match self.goals.get(goal_id).map(|g| &g.window) {
            Some(WindowSpec::Calendar(c)) => {
                let s = start.to_datetime().with_timezone(&c.timezone);
                match c.unit {
                    CalendarUnit::Day => s.format("%Y-%m-%d").to_string(),
                    CalendarUnit::Week => format!("week of {}", s.format("%Y-%m-%d")),
                    CalendarUnit::Month => s.format("%Y-%m").to_string(),
                    CalendarUnit::Quarter if c.fiscal_year_start_month == 1 => {
                        use chrono::Datelike;
                        format!("{}-Q{}", s.year(), (s.month() - 1) / 3 + 1)
                    }
                    CalendarUnit::Quarter => format!("quarter from {}", s.format("%Y-%m-%d")),
                    CalendarUnit::Year if c.fiscal_year_start_month == 1 => {
                        s.format("%Y").to_string()
                    }
                    CalendarUnit::Year => format!("year from {}", s.format("%Y-%m-%d")),
                }
            }
            _ => {
                let (s, e) = (start.to_datetime(), end.to_datetime());
                let midnight =
                    |t: &chrono::DateTime<chrono::Utc>| t.time() == chrono::NaiveTime::MIN;
                if midnight(&s) && midnight(&e) {
                    format!("{}..{}", s.format("%Y-%m-%d"), e.format("%m-%d"))
                } else {
                    format!(
                        "{}..{}",
                        s.format("%Y-%m-%d %H:%M"),
                        e.format("%m-%d %H:%M")
                    )
                }
            }
        }
    }

    fn counts_line(&self) -> String {
        let r = &self.received;
        format!(
            "attainment events: {} milestone, {} breached, {} final ({} attained, {} missed, {} no data)",
            thousands(r.milestones),
            thousands(r.breaches),
            thousands(r.finals),
            thousands(r.attained),
            thousands(r.missed),
            thousands(r.insufficient)
        )
    }
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// `0.25` -> `25%`.
fn percent(fraction: Decimal) -> String {
    format!(
        "{}%",
        (fraction * Decimal::ONE_HUNDRED).round_dp(0).normalize()
    )
}

/// A decimal for people: at most two fractional digits (four below 1), thousands separated.
fn number(d: Decimal) -> String {
    let dp = if d.abs() < Decimal::ONE { 4 } else { 2 };
    let text = d.round_dp(dp).normalize().to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let mut s = sign.to_string();
    s.push_str(&group_digits(int));
    if let Some(f) = frac {
        s.push('.');
        s.push_str(f);
    }
    s
}

fn thousands(n: u64) -> String {
    group_digits(&n.to_string())
}

fn group_digits(int: &str) -> String {
    let mut s = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            s.push(',');
        }
        s.push(c);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(number(Decimal::from_str("62500.00").unwrap()), "62,500");
        assert_eq!(
            number(Decimal::from_str("1234567.891").unwrap()),
            "1,234,567.89"
        );
        assert_eq!(number(Decimal::from_str("0.4666666666").unwrap()), "0.4667");
        assert_eq!(number(Decimal::from_str("-1000").unwrap()), "-1,000");
        assert_eq!(number(Decimal::from_str("999").unwrap()), "999");
        assert_eq!(percent(Decimal::from_str("0.25").unwrap()), "25%");
        assert_eq!(percent(Decimal::from_str("1.6666666").unwrap()), "167%");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12), "12");
    }

    #[test]
    fn lines_are_short_and_throttled() {
        let goals = example_goals();
        let mut p = Printer::new(&goals, 2);
        let mut out = Vec::new();
        let rec = br#"{"attainment_id":"x","goal_id":"region-monthly-revenue","kind":"milestone","group":{"region":"East"},"window_start":"2026-01-01T05:00:00Z","window_end":"2026-02-01T05:00:00Z","value":62500.00,"target":250000,"progress":0.25,"milestone":0.25,"triggered_by":"evt-2a-00000015","event_time":"2026-01-05T12:19:07Z"}"#;
        let fin = br#"{"attainment_id":"y","goal_id":"rep-weekly-activities","kind":"final","group":{"rep_id":"rep-01"},"window_start":"2026-01-04T23:00:00Z","window_end":"2026-01-11T23:00:00Z","value":12,"target":15,"progress":0.8,"outcome":"missed","event_time":"2026-01-11T23:00:00Z"}"#;
        assert!(p.record(rec, &mut out).unwrap());
        assert!(p.record(fin, &mut out).unwrap());
        assert!(!p.record(fin, &mut out).unwrap());
        assert!(!p.record(b"not json", &mut out).unwrap());
        p.flush_suppressed(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].ends_with(
                "milestone 25%   region-monthly-revenue {region=East} 2026-01  value 62,500 (25% of 250,000)  by evt-2a-00000015"
            ),
            "{text}"
        );
        assert!(
            lines[1].ends_with(
                "final missed    rep-weekly-activities {rep_id=rep-01} week of 2026-01-05  value 12 (80% of 15)"
            ),
            "{text}"
        );
        assert!(lines[2].ends_with("… and 1 more final"), "{text}");
        assert_eq!(p.received.milestones, 1);
        assert_eq!(p.received.finals, 2);
        assert_eq!(p.received.missed, 2);
        assert_eq!(p.received.unreadable, 1);
        assert_eq!(p.received.not_printed, 1);
    }

    /// The whole demo on the mock cluster: no broker needed.
    #[test]
    fn demo_runs_the_pipeline_on_the_mock_cluster() {
        let cfg = DemoConfig {
            rate: 5_000,
            duration: Some(StdDuration::from_secs(4)),
            partitions: 3,
            seed: 7,
            goals: Arc::new(example_goals()),
            max_lines_per_sec: 20,
            listen: None,
        };
        let mut out = Vec::new();
        let mut status = Vec::new();
        let report = run(
            &cfg,
            Arc::new(AtomicBool::new(false)),
            &mut out,
            &mut status,
        )
        .expect("the demo starts");
        let status = String::from_utf8_lossy(&status);
        let pipeline = report
            .pipeline
            .as_ref()
            .unwrap_or_else(|e| panic!("pipeline failed: {e}\n{status}"));
        assert!(report.fed > 1_000, "fed {}\n{status}", report.fed);
        assert!(pipeline.read > 0, "{status}");
        assert!(report.received.milestones > 0, "{status}");
        assert!(report.received.finals > 0, "{status}");
        assert_eq!(report.received.unreadable, 0, "{status}");
        assert_eq!(report.received.total(), pipeline.attainments, "{status}");
        assert!(!out.is_empty());
    }
}
