//! `goalpost demo`: the whole service in one process, on librdkafka's in-process mock cluster.
//!
//! Four parts, no broker and no setup:
//!
//! * the **mock cluster** ([`rdkafka::mocking::MockCluster`], one broker, owned by a client
//!   configured with `test.mock.num.brokers`), kept on the calling thread because it is not
//!   `Send`. Its consumer groups form at once (the mock otherwise delays a new group's first
//!   join by 3 s). The input topic and every topic `goalpost run` would create are created on it
//!   up front: the mock broker does not implement the CreateTopics admin API;
//! * a **feeder** thread: the deterministic [`Generator`](crate::generate::Generator) at a
//!   steady rate, as JSON keyed by `event_id`, to `sales-events`;
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

mod cluster;
mod error;
mod feed;
mod numbers;
mod printer;
mod run;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::codec::{self, Format};
use crate::goals::GoalSet;
use crate::model::{AttainmentKind, Outcome};
use crate::runtime::kafka::config::{AppConfig, InputConfig, KafkaConfig, OutputConfig};
use crate::runtime::kafka::{self, RunConfig, RunReport};
pub use cluster::{create_topics, mock_cluster_owner};
pub use error::DemoError;
pub use feed::{feed_events, FeedStats};
pub use run::run;

/// The example goal file, `examples/goals.toml`.
pub const EXAMPLE_GOALS: &str = include_str!("../../../examples/goals.toml");

/// The input topic the feeder writes to.
pub const INPUT_TOPIC: &str = "sales-events";

/// The application id of the demo pipeline; names its group and internal topics.
pub const APPLICATION_ID: &str = "demo";

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
    /// At-risk events (look-ahead status).
    pub at_risk: u64,
    /// On-track events (look-ahead status).
    pub on_track: u64,
    /// Records that were not attainment events this version can read.
    pub unreadable: u64,
    /// Events counted but not printed, to keep the output readable.
    pub not_printed: u64,
}

impl Received {
    /// Attainment events received, of every kind.
    pub fn total(&self) -> u64 {
        self.milestones
            + self.breaches
            + self.finals
            + self.at_risk
            + self.on_track
            + self.unreadable
    }

    /// Counts one event of `kind` (finals by `outcome` too).
    pub fn count(&mut self, kind: AttainmentKind, outcome: Option<Outcome>) {
        match kind {
            AttainmentKind::Milestone => self.milestones += 1,
            AttainmentKind::Breached => self.breaches += 1,
            AttainmentKind::Final => self.finals += 1,
            AttainmentKind::AtRisk => self.at_risk += 1,
            AttainmentKind::OnTrack => self.on_track += 1,
        }
        match (kind, outcome) {
            (AttainmentKind::Final, Some(Outcome::Attained)) => self.attained += 1,
            (AttainmentKind::Final, Some(Outcome::Missed)) => self.missed += 1,
            (AttainmentKind::Final, Some(Outcome::InsufficientData)) => self.insufficient += 1,
            _ => {}
        }
    }

    /// `, N at risk, M on track` when any look-ahead event was received, else nothing: the
    /// count lines of goals without `status` stay as they were.
    pub fn look_ahead_counts(&self) -> String {
        if self.at_risk + self.on_track == 0 {
            return String::new();
        }
        format!(
            ", {} at risk, {} on track",
            numbers::thousands(self.at_risk),
            numbers::thousands(self.on_track)
        )
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
pub fn main(args: DemoArgs) -> Result<(), DemoError> {
    if args.rate == 0 {
        return Err(DemoError::Rate { rate: args.rate });
    }
    if !DemoError::PARTITIONS.contains(&args.partitions) {
        return Err(DemoError::Partitions {
            partitions: args.partitions,
        });
    }
    if let Some(addr) = args.listen.filter(|a| !a.ip().is_loopback()) {
        return Err(DemoError::Listen { addr });
    }
    let goals = match &args.goals {
        None => example_goals(),
        Some(p) => GoalSet::load(p)?,
    };
    // Warnings only, so that the attainment lines stay readable; RUST_LOG overrides.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
    let stop = kafka::shutdown_flag().map_err(DemoError::Signals)?;
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
    report
        .pipeline
        .map(drop)
        .map_err(DemoError::PipelineStopped)
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
            max_record_bytes: crate::limits::Limits::DEFAULT.record_bytes,
            // The feeder runs weeks of event time a second, so it soon passes the wall clock:
            // no plausibility bound on event time.
            max_future: codec::future::MaxFuture(None),
        },
        output: OutputConfig::default(),
        notify: Default::default(),
        http: Default::default(),
        metrics: Default::default(),
    }
}
