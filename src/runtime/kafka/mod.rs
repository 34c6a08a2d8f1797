//! `goalpost run`: the engine on Apache Kafka, exactly once.
//!
//! One consumer (in the application's consumer group) and one transactional producer per
//! instance. Input partitions feed Routers; their contributions travel through the repartition
//! topic, partitioned by (goal, group), to the Owner of each repartition partition. Every
//! `commit_interval`, one transaction carries the repartition batches, the changelog records,
//! attainment events, dead letters and the consumed offsets. The README's "Running on Kafka" section
//! describes the model and its guarantees; `docs/architecture.md` maps it to these modules.

pub mod admin;
mod catchup;
mod changelog;
mod clients;
pub mod config;
mod driver;
mod error;
mod idle;
mod output;
mod poll;
mod preflight;
mod progress_topic;
mod rebalance;
mod repartition;
mod restore;
mod roster_topic;
mod serving;
mod telemetry;
mod txn;
mod warn_limit;
pub mod wire;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::goals::GoalSet;
use crate::runtime::counts::Counts;
use crate::runtime::rosters::{base_dir, load_rosters, RosterSource};
use crate::serve::Serving;

pub use config::RunConfig;
pub use error::{ClientError, ErrorClass, RunError, SetupError};

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

/// Counters of a run.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Input records read, accepted, duplicates and dead-lettered, and per goal late, skipped
    /// and overflow.
    pub counts: Counts,
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
    /// Event ids the dedupe memory forgot before the horizon because of `app.dedupe_max_ids`.
    pub dedupe_evicted: u64,
    /// Records of roster topics refused (not JSON, a column missing, ...): dead-lettered, each
    /// time an instance reads them.
    pub roster_rejected: u64,
}

/// Runs the service until shutdown (or until caught up).
pub fn run(
    cfg: RunConfig,
    goals: Arc<GoalSet>,
    options: RunOptions,
    shutdown: Arc<AtomicBool>,
    serving: Option<Serving>,
) -> Result<RunReport, RunError> {
    let client = cfg.client_config();
    let prepared = admin::prepare_topics(&cfg, &client, !options.skip_changelog_policy_check)?;
    let topics = poll::Topics::new(cfg.repartition_topic(), prepared.inputs.iter());
    let instance = cfg.instance_id();
    let txn_id = format!("{}-{}", cfg.app.application_id, instance);
    tracing::info!(
        instance = %instance,
        transactional_id = %txn_id,
        input_partitions = topics.inputs.len(),
        owner_partitions = prepared.owners,
        "starting"
    );
    let disrupted = Arc::new(AtomicBool::new(false));
    // At start a failure is reported at once (the operator is watching); later it is retried.
    let txn = txn::Txn::new(
        clients::producer_config(&cfg, &client, &txn_id),
        disrupted.clone(),
        Duration::ZERO,
    )?;
    txn::warm_up(&txn, &prepared.created, prepared.owners)?;
    let rosters = start_rosters(&cfg, &client, &goals, options)?;

    let epoch = Arc::new(AtomicU64::new(0));
    let advertised_url = serving.as_ref().and_then(|s| s.advertised_url.clone());
    let consumer_config =
        clients::consumer_config(&cfg, &client, &instance, advertised_url.as_deref());
    let mut subscribed: Vec<String> = cfg.input.topics.clone();
    subscribed.push(cfg.repartition_topic());
    let commit_interval = Duration::from_nanos(cfg.app.commit_interval.as_nanos() as u64);
    let parts = worker::Parts {
        goals,
        instance,
        client,
        txn,
        topics,
        owners_count: prepared.owners,
        rosters,
        serving,
        epoch: epoch.clone(),
    };
    let worker = Arc::new(Mutex::new(worker::Worker::new(cfg, parts)));
    let consumer: BaseConsumer<rebalance::Ctx> = consumer_config
        .create_with_context(rebalance::Ctx {
            worker: worker.clone(),
            disrupted,
        })
        .map_err(|e| RunError::kafka("create the consumer", e))?;
    let subscribed: Vec<&str> = subscribed.iter().map(String::as_str).collect();
    consumer
        .subscribe(&subscribed)
        .map_err(|e| RunError::kafka("subscribe", e))?;
    // End offsets of the input at start, for --until-caught-up.
    let targets = if options.until_caught_up {
        catchup::input_targets(&consumer, &prepared.inputs)?
    } else {
        catchup::Targets::new()
    };
    let mut driver = driver::Driver::new(
        &consumer,
        &worker,
        &epoch,
        options,
        targets,
        commit_interval,
    );
    let result = driver.run(&shutdown);
    consumer.unsubscribe();
    let report = final_report(&worker.lock().expect("worker lock"));
    result.map(|()| report)
}

/// The goals' rosters: those of files read from them (relative to the goal file), and each
/// roster topic checked and read up to its end offsets at start (see `roster_topic`), before any
/// input is processed.
fn start_rosters(
    cfg: &RunConfig,
    client: &rdkafka::config::ClientConfig,
    goals: &Arc<GoalSet>,
    options: RunOptions,
) -> Result<roster_topic::RosterTopics, RunError> {
    let files =
        load_rosters(goals, base_dir(&cfg.goals), RosterSource::Kafka).map_err(SetupError::from)?;
    let table = roster_topic::RosterTable::new(goals.clone(), files).map_err(SetupError::from)?;
    let partitions =
        roster_topic::check_topics(client, &table, !options.skip_changelog_policy_check)?;
    let group_id = format!("{}-rosters", cfg.app.application_id);
    roster_topic::RosterTopics::start(client, &group_id, table, &partitions)
}

/// The run's report, as of the last commit.
fn final_report(w: &worker::Worker) -> RunReport {
    let report = w.counts.report.clone();
    if report.unknown_goal > 0 {
        tracing::warn!(
            "{} contribution(s) of the repartition topic for goals not in the goal file: skipped",
            report.unknown_goal
        );
    }
    report
}

/// A flag set by SIGTERM and SIGINT.
pub fn shutdown_flag() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
    Ok(flag)
}
