//! `goalpost notify`: reads the attainment topic with its own consumer group and delivers each
//! event to the configured sinks, committing offsets only after every sink delivered or
//! dead-lettered what they caused.
//!
//! One file per concern: the consumer loop ([`consumer`]), rebalances ([`rebalance`]), commit tracking
//! ([`commits`]), the sink threads ([`worker`]) and their retry loop ([`retry`]), dead letters ([`dead_letters`]) and what is
//! written to Kafka ([`output`]), topics ([`topics`]) and state topics ([`state`]), the HTTP
//! server ([`http`]), metrics ([`telemetry`]), and the webhook sink ([`webhook`]) and the Alertmanager sink ([`alertmanager`]).

mod alertmanager;
mod commits;
mod consumer;
mod dead_letters;
mod error;
mod http;
mod output;
mod rebalance;
mod retry;
mod sink;
mod state;
mod telemetry;
mod topics;
mod webhook;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::runtime::kafka::RunConfig;

pub use alertmanager::{
    state_topic_name as alertmanager_state_topic, AlertmanagerSink, RETRY as ALERTMANAGER_RETRY,
};
pub use dead_letters::{REASON_GAVE_UP, REASON_UNREADABLE};
pub use error::NotifyError;
pub use sink::{Delivery, GivenUp, Sink, StateRecord};
pub use telemetry::SinkMetrics;
pub use webhook::{load_secret, WebhookSink};

/// Counts of a `goalpost notify` run.
#[derive(Clone, Debug, Default)]
pub struct NotifyReport {
    /// Attainment records read.
    pub read: u64,
    /// Records that could not be decoded (dead-lettered).
    pub unreadable: u64,
    /// Events given up by a sink (dead-lettered; once per sink).
    pub dead_letters: u64,
    /// Offset commits.
    pub commits: u64,
}

impl RunConfig {
    /// `goalpost notify`'s consumer group: `{application_id}-notify`.
    pub fn notify_group(&self) -> String {
        format!("{}-notify", self.app.application_id)
    }

    /// `goalpost notify`'s dead-letter topic: `{application_id}-notify-dead-letters`.
    pub fn notify_dead_letter_topic(&self) -> String {
        format!("{}-notify-dead-letters", self.app.application_id)
    }
}

/// The sinks `[notify]` configures.
pub fn configured_sinks(cfg: &RunConfig) -> Result<Vec<Box<dyn Sink>>, NotifyError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for w in &cfg.notify.webhooks {
        sinks.push(Box::new(WebhookSink::new(w.clone())?));
    }
    if let Some(am) = &cfg.notify.alertmanager {
        let sink = AlertmanagerSink::new(am, &cfg.app.application_id)
            .map_err(|e| NotifyError::Config(e.to_string()))?;
        sinks.push(Box::new(sink));
    }
    if sinks.is_empty() {
        return Err(NotifyError::NoSinks);
    }
    Ok(sinks)
}

/// Runs `goalpost notify` until `shutdown` is set: installs the metrics recorder, serves HTTP at
/// `[notify] listen`, starts the configured sinks and the consumer loop.
pub fn run(cfg: RunConfig, shutdown: Arc<AtomicBool>) -> Result<NotifyReport, NotifyError> {
    let handle = crate::serve::install_recorder().map_err(|e| NotifyError::Start {
        what: "the metrics recorder".into(),
        cause: e.to_string(),
    })?;
    http::start(cfg.notify.listen, handle)?;
    let sinks = configured_sinks(&cfg)?;
    run_with_sinks(&cfg, sinks, shutdown)
}

/// Runs the consumer loop with `sinks` until `shutdown` is set.
pub fn run_with_sinks(
    cfg: &RunConfig,
    sinks: Vec<Box<dyn Sink>>,
    shutdown: Arc<AtomicBool>,
) -> Result<NotifyReport, NotifyError> {
    let client = cfg.client_config();
    let mut wanted = vec![(cfg.notify_dead_letter_topic(), false)];
    wanted.extend(
        sinks
            .iter()
            .filter_map(|s| s.state_topic().map(|t| (t.to_string(), true))),
    );
    let partitions = topics::prepare(cfg, &client, &wanted)?;
    let names: Vec<&str> = sinks.iter().map(|s| s.name()).collect();
    tracing::info!(topic = %cfg.output.topic, partitions, group = %cfg.notify_group(), sinks = ?names, "starting goalpost notify");
    let (report_tx, report_rx) = mpsc::channel();
    let epochs = worker::Epochs::default();
    let mut handles = Vec::new();
    for (i, sink) in sinks.into_iter().enumerate() {
        let h = worker::spawn(i, sink, report_tx.clone(), epochs.clone()).map_err(|e| {
            NotifyError::Start {
                what: "a sink thread".into(),
                cause: e.to_string(),
            }
        })?;
        handles.push(h);
    }
    let output = output::Output::new(&client, cfg.notify_dead_letter_topic())?;
    let shell = Arc::new(Mutex::new(consumer::Shell::new(
        cfg.output.topic.clone(),
        cfg.output.format,
        client.clone(),
        handles,
        report_rx,
        output,
        telemetry::events_read(),
        epochs,
    )));
    let consumer = group_consumer(cfg, &client, shell.clone())?;
    consumer
        .subscribe(&[&cfg.output.topic])
        .map_err(|e| NotifyError::kafka("subscribe to the attainment topic", e))?;
    consumer::run_loop(&consumer, &shell, || shutdown.load(Ordering::Relaxed))?;
    let report = shell.lock().expect("shell lock").report.clone();
    tracing::info!(
        read = report.read,
        unreadable = report.unreadable,
        dead_letters = report.dead_letters,
        "goalpost notify stopped"
    );
    Ok(report)
}

fn group_consumer(
    cfg: &RunConfig,
    client: &ClientConfig,
    shell: Arc<Mutex<consumer::Shell>>,
) -> Result<BaseConsumer<rebalance::Ctx>, NotifyError> {
    let mut cc = client.clone();
    cc.set("group.id", cfg.notify_group())
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if !cfg.kafka.properties.contains_key("session.timeout.ms") {
        cc.set("session.timeout.ms", "10000");
    }
    cc.create_with_context(rebalance::Ctx { shell })
        .map_err(|e| NotifyError::kafka("create the consumer", e))
}
