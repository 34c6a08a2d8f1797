//! The consumer loop: reads the attainment topic, hands batches to the sink threads, writes
//! what they report (dead letters, state records) and commits the offsets every sink finished.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::Counter;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::commits::Tracker;
use super::dead_letters::{gave_up, unreadable};
use super::error::NotifyError;
use super::output::Output;
use super::rebalance::Ctx;
use super::sink::Delivery;
use super::worker::{Command, Epochs, Report, SinkHandle};
use super::NotifyReport;
use crate::codec::{decode_attainment, json, Format};

/// Most events handed to a sink in one batch.
const MAX_BATCH: usize = 500;

/// Events read from one partition, not yet handed to the sinks.
pub(super) struct Pending {
    first: i64,
    last: i64,
    batch: Vec<Delivery>,
    last_record_ms: Option<i64>,
}

/// Everything the loop and the rebalance callbacks share.
pub struct Shell {
    /// The attainment topic.
    pub topic: String,
    /// Its format.
    pub format: Format,
    /// Settings for the state topic readers.
    pub client: ClientConfig,
    /// The commit tracker.
    pub tracker: Tracker,
    /// The epochs of the partitions assigned, as the sink threads see them.
    pub epochs: Epochs,
    /// The sink threads.
    pub sinks: Vec<SinkHandle>,
    /// Commands not yet taken by a sink whose queue is full, per sink.
    pub backlog: Vec<VecDeque<Command>>,
    /// What the sinks report.
    pub reports: Receiver<Report>,
    /// Dead letters and state records.
    pub output: Output,
    /// Counts of the run.
    pub report: NotifyReport,
    /// `goalpost_notify_events_total`.
    pub events_read: Counter,
    /// A failure found in a rebalance callback, returned by the loop.
    pub fatal: Option<NotifyError>,
    /// Set by an assignment: a paused loop pauses the new assignment too.
    pub(super) reassigned: bool,
    pub(super) pending: BTreeMap<i32, Pending>,
}

impl Shell {
    /// A shell with nothing assigned.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: String,
        format: Format,
        client: ClientConfig,
        sinks: Vec<SinkHandle>,
        reports: Receiver<Report>,
        output: Output,
        events_read: Counter,
        epochs: Epochs,
    ) -> Shell {
        Shell {
            topic,
            format,
            client,
            tracker: Tracker::new(sinks.len()),
            epochs,
            backlog: sinks.iter().map(|_| VecDeque::new()).collect(),
            sinks,
            reports,
            output,
            report: NotifyReport::default(),
            events_read,
            fatal: None,
            reassigned: false,
            pending: BTreeMap::new(),
        }
    }

    /// Takes one record: decoded into the partition's pending batch, or dead-lettered.
    pub fn read(&mut self, m: &BorrowedMessage<'_>) -> Result<(), NotifyError> {
        let (p, offset) = (m.partition(), m.offset());
        if self.tracker.epoch(p).is_none() {
            return Ok(());
        }
        self.events_read.increment(1);
        self.report.read += 1;
        let bytes = m.payload().unwrap_or_default();
        let attainment = match decode_attainment(self.format, bytes) {
            Ok(a) => a,
            Err(e) => return self.unreadable(m, &e.to_string()),
        };
        let json = match self.format {
            Format::Json => bytes.to_vec(),
            Format::Proto => {
                let mut out = Vec::with_capacity(bytes.len() * 2);
                json::encode_attainment(&attainment, &mut out);
                out
            }
        };
        let pending = self.pending.entry(p).or_insert_with(|| Pending {
            first: offset,
            last: offset,
            batch: Vec::new(),
            last_record_ms: None,
        });
        pending.last = offset;
        pending.last_record_ms = m.timestamp().to_millis();
        pending.batch.push(Delivery {
            attainment,
            json,
            partition: p,
            offset,
        });
        if pending.batch.len() >= MAX_BATCH {
            self.dispatch(p);
        }
        Ok(())
    }

    fn unreadable(&mut self, m: &BorrowedMessage<'_>, detail: &str) -> Result<(), NotifyError> {
        let (p, offset) = (m.partition(), m.offset());
        tracing::warn!(partition = p, offset, error = %detail, "unreadable attainment record: dead-lettered");
        // Events read before it go out first, so the tracker sees offsets in order.
        self.dispatch(p);
        let d = unreadable(
            &self.topic,
            p,
            offset,
            m.key(),
            m.payload().unwrap_or_default(),
            detail,
        );
        self.output.dead_letter(&d)?;
        self.report.unreadable += 1;
        self.tracker.skipped(p, offset);
        Ok(())
    }

    /// Hands the pending events of partition `p` to every sink.
    fn dispatch(&mut self, p: i32) {
        let (Some(pending), Some(epoch)) = (self.pending.remove(&p), self.tracker.epoch(p)) else {
            return;
        };
        self.tracker.sent(p, pending.first, pending.last);
        for q in &mut self.backlog {
            q.push_back(Command::Deliver {
                partition: p,
                epoch,
                batch: pending.batch.clone(),
                last_record_ms: pending.last_record_ms,
            });
        }
        self.pump();
    }

    /// Hands every pending batch to the sinks.
    pub fn dispatch_all(&mut self) {
        let parts: Vec<i32> = self.pending.keys().copied().collect();
        for p in parts {
            self.dispatch(p);
        }
    }

    /// Moves backlogged commands into the sinks' queues while they have room.
    pub(super) fn pump(&mut self) {
        for (q, sink) in self.backlog.iter_mut().zip(&self.sinks) {
            while let Some(c) = q.pop_front() {
                match sink.commands.try_send(c) {
                    Ok(()) => {}
                    Err(TrySendError::Full(c)) => {
                        q.push_front(c);
                        break;
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        self.fatal.get_or_insert(NotifyError::Start {
                            what: format!("sink `{}`", sink.name),
                            cause: "its thread stopped".into(),
                        });
                        break;
                    }
                }
            }
        }
    }

    /// Whether some sink's queue is full (the loop pauses reading then).
    pub fn backlogged(&self) -> bool {
        self.backlog.iter().any(|q| !q.is_empty())
    }

    /// Writes what the sinks reported and marks their batches finished.
    pub fn drain_reports(&mut self) -> Result<(), NotifyError> {
        while let Ok(r) = self.reports.try_recv() {
            self.apply(r)?;
        }
        Ok(())
    }

    fn apply(&mut self, r: Report) -> Result<(), NotifyError> {
        let sink = &self.sinks[r.sink];
        let current = match r.batch {
            Some((p, epoch)) => self.tracker.epoch(p) == Some(epoch),
            None => true,
        };
        if !current {
            return Ok(());
        }
        for g in &r.given_up {
            self.output
                .dead_letter(&gave_up(&sink.name, &self.topic, g))?;
            sink.metrics.dead_letters.increment(1);
            self.report.dead_letters += 1;
        }
        if let Some(topic) = &sink.state_topic {
            for (p, record) in &r.state {
                self.output.state(topic, *p, record)?;
            }
        }
        if let Some((p, epoch)) = r.batch {
            self.tracker.finished(r.sink, p, epoch);
        }
        Ok(())
    }

    /// Tells the tracker the consumer's positions in the partitions with no pending batch: past
    /// the transaction markers after their last record (the attainment topic is written in
    /// transactions), which `Tracker::sent` alone would leave uncommitted.
    fn step_over_markers<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let Ok(positions) = consumer.position() else {
            return;
        };
        for el in positions.elements_for_topic(&self.topic) {
            if let (Offset::Offset(o), false) =
                (el.offset(), self.pending.contains_key(&el.partition()))
            {
                self.tracker.read_past(el.partition(), o);
            }
        }
    }

    /// Flushes dead letters and state records, then commits what every sink finished (`only`:
    /// of these partitions).
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        only: Option<&[i32]>,
    ) -> Result<(), NotifyError> {
        self.step_over_markers(consumer);
        let offsets = self.tracker.to_commit(only);
        if offsets.is_empty() {
            return Ok(());
        }
        self.output.flush()?;
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in &offsets {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .map_err(|e| NotifyError::kafka("list offsets to commit", e))?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| NotifyError::kafka("commit offsets", e))?;
        self.tracker.committed(&offsets);
        self.report.commits += 1;
        Ok(())
    }
}

/// How often finished offsets are committed.
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// How long a shutdown waits for the sinks to finish what they were given.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the loop until `stop` returns true; then commits what the sinks finish within a grace
/// period.
pub fn run_loop(
    consumer: &BaseConsumer<Ctx>,
    shell: &Arc<Mutex<Shell>>,
    stop: impl Fn() -> bool,
) -> Result<(), NotifyError> {
    let mut last_commit = Instant::now();
    let mut paused = false;
    while !stop() {
        let msg = consumer.poll(Duration::from_millis(100));
        let mut s = shell.lock().expect("shell lock");
        if let Some(e) = s.fatal.take() {
            return Err(e);
        }
        match msg {
            Some(Ok(m)) => s.read(&m)?,
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            None => s.dispatch_all(),
        }
        s.pump();
        s.drain_reports()?;
        if s.backlogged() != paused || (paused && s.reassigned) {
            paused = s.backlogged();
            set_paused(consumer, paused);
        }
        s.reassigned = false;
        if last_commit.elapsed() >= COMMIT_EVERY {
            s.commit(consumer, None)?;
            last_commit = Instant::now();
        }
    }
    finish(consumer, shell)
}

fn set_paused(consumer: &BaseConsumer<Ctx>, paused: bool) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let result = if paused {
        tracing::info!("a sink is behind: reading paused");
        consumer.pause(&assignment)
    } else {
        tracing::info!("reading resumed");
        consumer.resume(&assignment)
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot pause or resume reading");
    }
}

fn finish(consumer: &BaseConsumer<Ctx>, shell: &Arc<Mutex<Shell>>) -> Result<(), NotifyError> {
    tracing::info!("shutting down: committing what the sinks finish");
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    let mut s = shell.lock().expect("shell lock");
    s.dispatch_all();
    loop {
        s.pump();
        s.drain_reports()?;
        if (s.tracker.idle() && !s.backlogged()) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    s.commit(consumer, None)
}
