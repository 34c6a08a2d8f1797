//! Roster topics: a `[rosters.NAME]` with `topic = "T"` is read by `run` from the compacted topic
//! T instead of its file, into every instance, like a global table.
//!
//! Each instance reads every partition of T from the beginning with a plain consumer of its own
//! (partitions assigned, no group membership, no commits, read_committed). Before any input is
//! processed it reads up to the end offsets seen at start ([`RosterTopics::start`]); then the run
//! loop polls it without blocking ([`RosterTopics::poll`]) and applies changes as they come. A
//! record's key is an opaque member id, its value a JSON object like a JSON-lines roster row, and a
//! tombstone removes the key's row ([`Roster::apply_record`]).
//!
//! One master copy of each goal's roster is kept ([`RosterTable`]), which owners created later (on
//! a rebalance or a rebuild) start from; each record is applied to it and to every owner present,
//! per goal (each goal's roster is projected onto its own `group_by`). Members added while running
//! get the windows still open when the record is read. A bad record never stops the stream: it is
//! queued for the dead-letter topic ([`Rejected`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

use super::admin;
use super::error::{RunError, SetupError};
use crate::engine::{Owner, RecordChange, Roster, RosterError};
use crate::goals::{Goal, GoalSet, RosterDecl};
use crate::model::Attainment;

/// How long the bootstrap waits for transactions open on a roster topic (longer than a
/// transaction timeout of 60 s, after which the broker aborts them).
const STABLE_WAIT: Duration = Duration::from_secs(90);
/// How long one poll of the bootstrap waits.
const BOOTSTRAP_POLL: Duration = Duration::from_millis(100);
/// How long reading a roster topic's end offsets may take.
const OFFSETS_TIMEOUT: Duration = Duration::from_secs(10);
/// Records taken from the roster consumer per call of [`RosterTopics::poll`], at most.
const MAX_PER_POLL: usize = 1_024;

/// Why a roster topic cannot be read, or one of its records was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RosterTopicError {
    /// The topic a roster reads does not exist.
    #[error(
        "roster `{roster}` reads topic `{topic}`, which does not exist: create it (compacted, \
         cleanup.policy=compact) before starting goalpost (roster topics are never created)"
    )]
    Missing {
        /// The roster's name.
        roster: Arc<str>,
        /// The topic.
        topic: String,
    },
    /// A goal's roster refused a declaration or a record.
    #[error("roster `{roster}` of goal `{goal}`: {cause}")]
    Roster {
        /// The roster's name.
        roster: Arc<str>,
        /// The goal's id.
        goal: Arc<str>,
        /// What is wrong.
        cause: Box<RosterError>,
    },
}

/// Who reads one roster topic: the rosters declaring it and the goals listing those rosters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicReaders {
    /// The rosters' names, in name order.
    pub rosters: Vec<Arc<str>>,
    /// The goals' indexes, in file order.
    pub goals: Vec<usize>,
}

/// Every roster topic listed by some goal, and who reads it.
pub fn roster_topics(goals: &GoalSet) -> BTreeMap<String, TopicReaders> {
    let mut topics: BTreeMap<String, TopicReaders> = BTreeMap::new();
    for (index, goal) in goals.goals.iter().enumerate() {
        let Some(decl) = goal.roster.and_then(|r| goals.rosters.get(r)) else {
            continue;
        };
        let Some(topic) = &decl.topic else {
            continue;
        };
        let readers = topics.entry(topic.clone()).or_default();
        if !readers.rosters.contains(&decl.name) {
            readers.rosters.push(decl.name.clone());
            readers.rosters.sort();
        }
        readers.goals.push(index);
    }
    topics
}

/// The roster of a goal, empty: its `group_by` names, read from the declaration's columns.
fn empty_roster(goal: &Goal, decl: &RosterDecl) -> Result<Roster, RosterError> {
    let fields: Vec<&str> = goal.group_by_names.iter().map(|f| &**f).collect();
    let columns: Vec<(&str, &str)> = decl
        .columns
        .iter()
        .filter(|(field, _)| fields.contains(&field.as_str()))
        .map(|(field, column)| (field.as_str(), column.as_str()))
        .collect();
    Roster::new(&fields, &columns)
}

/// The master copy of every goal's roster, and which goals read which roster topic.
#[derive(Clone, Debug)]
pub struct RosterTable {
    goals: Arc<GoalSet>,
    topics: BTreeMap<String, TopicReaders>,
    /// Per goal: its roster, `None` for goals without one.
    rosters: Vec<Option<Roster>>,
}

impl RosterTable {
    /// The rosters of `loaded` (indexed by goal: those read from files), with every roster that
    /// reads a topic replaced by an empty one, to be filled from the topic.
    pub fn new(
        goals: Arc<GoalSet>,
        mut loaded: Vec<Option<Roster>>,
    ) -> Result<RosterTable, RosterTopicError> {
        loaded.resize(goals.goals.len(), None);
        let topics = roster_topics(&goals);
        for &index in topics.values().flat_map(|r| &r.goals) {
            let goal = &goals.goals[index];
            let decl = goal.roster.and_then(|r| goals.rosters.get(r));
            let decl = decl.expect("roster_topics lists goals with a roster only");
            let roster = empty_roster(goal, decl).map_err(|cause| RosterTopicError::Roster {
                roster: decl.name.clone(),
                goal: goal.id.clone(),
                cause: Box::new(cause),
            })?;
            loaded[index] = Some(roster);
        }
        Ok(RosterTable {
            goals,
            topics,
            rosters: loaded,
        })
    }

    /// Every goal's roster, indexed by goal: what an owner created now starts from.
    pub fn rosters(&self) -> &[Option<Roster>] {
        &self.rosters
    }

    /// The roster topics and who reads them.
    pub fn topics(&self) -> &BTreeMap<String, TopicReaders> {
        &self.topics
    }

    /// Applies one record of `topic` to the master copy of each goal reading it, and to the same
    /// goals' rosters in `owners`, which give members added the windows still open now (their
    /// attainment events, if any, go to `out`). Returns whether a roster changed, or the first
    /// goal's refusal (the other goals still take the record: each goal projects it onto its own
    /// `group_by`).
    pub fn apply<'o>(
        &mut self,
        topic: &str,
        (key, value): (&[u8], Option<&[u8]>),
        owners: impl IntoIterator<Item = &'o mut Owner>,
        out: &mut Vec<Attainment>,
    ) -> Result<bool, RosterTopicError> {
        let Some(readers) = self.topics.get(topic) else {
            return Ok(false);
        };
        let mut changed = Vec::new();
        let mut refused = None;
        for &index in &readers.goals {
            let Some(roster) = self.rosters[index].as_mut() else {
                continue;
            };
            match roster.apply_record(key, value) {
                Ok(RecordChange::Unchanged) => {}
                Ok(_) => changed.push(index),
                Err(cause) => {
                    refused.get_or_insert_with(|| refusal(&self.goals, index, cause));
                }
            }
        }
        if !changed.is_empty() {
            for owner in owners {
                for &index in &changed {
                    if let Some(roster) = owner.roster_mut(index) {
                        // An owner's roster is a copy of the master's, so it takes the record
                        // exactly as the master did.
                        let _ = roster.apply_record(key, value);
                    }
                }
                owner.roster_changed();
                owner.open_expected(out);
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(!changed.is_empty()),
        }
    }
}

/// The error for a record goal `index`'s roster refused.
fn refusal(goals: &GoalSet, index: usize, cause: RosterError) -> RosterTopicError {
    let goal = &goals.goals[index];
    let roster = goal
        .roster
        .and_then(|r| goals.rosters.get(r))
        .map_or_else(|| Arc::from(""), |d| d.name.clone());
    RosterTopicError::Roster {
        roster,
        goal: goal.id.clone(),
        cause: Box::new(cause),
    }
}

/// A roster record refused, to be dead-lettered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// Where it was read: topic, partition, offset.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value (empty for a tombstone).
    pub value: Vec<u8>,
    /// Why it was refused.
    pub detail: String,
}

/// Refused roster records on their way to the dead-letter topic: pending, then sent in the open
/// transaction until it commits. An aborted transaction loses what it sent, so those are sent
/// again in the next one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rejected {
    pending: Vec<BadRecord>,
    sent: Vec<BadRecord>,
}

impl Rejected {
    /// Queues a refused record.
    pub fn push(&mut self, record: BadRecord) {
        self.pending.push(record);
    }

    /// Whether records wait to be sent.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends every pending record with `send` (in the open transaction).
    pub fn send_pending(&mut self, mut send: impl FnMut(&BadRecord)) {
        for record in self.pending.drain(..) {
            send(&record);
            self.sent.push(record);
        }
    }

    /// The transaction that sent them committed.
    pub fn committed(&mut self) {
        self.sent.clear();
    }

    /// The transaction that sent them was aborted: they are pending again, first.
    pub fn aborted(&mut self) {
        self.sent.append(&mut self.pending);
        std::mem::swap(&mut self.sent, &mut self.pending);
    }
}

/// Checks the roster topics before the run: each must exist; one whose `cleanup.policy` is not
/// `compact` is warned about once (deleted by retention, its members would be gone at the next
/// start). `check_policy`: read the policies at all. Returns each topic's partition count.
pub fn check_topics(
    client: &ClientConfig,
    table: &RosterTable,
    check_policy: bool,
) -> Result<BTreeMap<String, i32>, RunError> {
    if table.topics().is_empty() {
        return Ok(BTreeMap::new());
    }
    let names: Vec<String> = table.topics().keys().cloned().collect();
    let partitions = admin::partition_counts(client, &names)?;
    for (topic, readers) in table.topics() {
        if partitions.contains_key(topic) {
            continue;
        }
        let error = RosterTopicError::Missing {
            roster: readers.rosters.join("`, `").into(),
            topic: topic.clone(),
        };
        return Err(SetupError::from(error).into());
    }
    for (topic, readers) in table.topics().iter().filter(|_| check_policy) {
        match admin::cleanup_policy(client, topic)? {
            Ok(policy) if !admin::is_compacted(&policy) => tracing::warn!(
                topic = %topic,
                rosters = ?readers.rosters,
                policy = %policy,
                "roster topic is not compacted (cleanup.policy=compact): records deleted by \
                 retention take their members off the roster at the next start"
            ),
            Ok(_) => {}
            Err(why) => tracing::warn!(
                topic = %topic,
                reason = %why,
                "cannot verify that the roster topic is compacted (cleanup.policy=compact)"
            ),
        }
    }
    Ok(partitions)
}

/// The roster consumer's configuration: partitions assigned by goalpost, never a group member,
/// never committing, read committed, from the beginning. librdkafka needs a `group.id` to assign
/// partitions; `group_id` is never joined.
fn reader_config(base: &ClientConfig, group_id: &str) -> ClientConfig {
    let mut cfg = base.clone();
    cfg.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    cfg
}

/// The roster topics of a run: their consumer, the master rosters and the refused records.
pub struct RosterTopics {
    table: RosterTable,
    /// `None` when no roster reads a topic.
    consumer: Option<BaseConsumer>,
    /// Refused records, to be dead-lettered.
    pub rejected: Rejected,
}

impl RosterTopics {
    /// The rosters of `table`, with each roster topic (of `partitions` partitions each) read up to
    /// its end offsets as of now.
    pub fn start(
        client: &ClientConfig,
        group_id: &str,
        table: RosterTable,
        partitions: &BTreeMap<String, i32>,
    ) -> Result<RosterTopics, RunError> {
        let mut topics = RosterTopics {
            table,
            consumer: None,
            rejected: Rejected::default(),
        };
        if topics.table.topics().is_empty() {
            return Ok(topics);
        }
        let consumer: BaseConsumer = reader_config(client, group_id)
            .create()
            .map_err(|e| RunError::kafka("create the roster consumer", e))?;
        let mut ends = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for topic in topics.table.topics().keys() {
            for p in 0..partitions.get(topic).copied().unwrap_or(0) {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, OFFSETS_TIMEOUT)
                    .map_err(|e| RunError::kafka("read roster topic end offsets", e))?;
                if high > low {
                    ends.insert((topic.clone(), p), high);
                }
                tpl.add_partition_offset(topic, p, Offset::Beginning)
                    .map_err(|e| RunError::kafka("assign the roster topic partitions", e))?;
            }
        }
        consumer
            .assign(&tpl)
            .map_err(|e| RunError::kafka("assign the roster topic partitions", e))?;
        topics.consumer = Some(consumer);
        topics.bootstrap(ends)?;
        Ok(topics)
    }

    /// Every goal's roster, indexed by goal: what an owner created now starts from.
    pub fn rosters(&self) -> &[Option<Roster>] {
        self.table.rosters()
    }

    /// Reads until every partition reached its end offset in `ends`. read_committed signals the
    /// end at the last stable offset: records behind a transaction still open there are waited
    /// for, up to [`STABLE_WAIT`].
    fn bootstrap(&mut self, mut ends: BTreeMap<(String, i32), i64>) -> Result<(), RunError> {
        let started = Instant::now();
        let mut records = 0u64;
        while !ends.is_empty() {
            let consumer = self.consumer.as_ref().expect("bootstrap has a consumer");
            match consumer.poll(BOOTSTRAP_POLL) {
                Some(Ok(m)) => {
                    records += 1;
                    let part = (m.topic().to_string(), m.partition());
                    if ends.get(&part).is_some_and(|&end| m.offset() + 1 >= end) {
                        ends.remove(&part);
                    }
                    apply_message(
                        &mut self.table,
                        &mut self.rejected,
                        &m,
                        &mut BTreeMap::new(),
                        &mut Vec::new(),
                    );
                }
                Some(Err(KafkaError::PartitionEOF(_))) | None => {
                    let positions = consumer.position().ok();
                    ends.retain(|(t, p), end| position(positions.as_ref(), t, *p) < *end);
                }
                Some(Err(e)) => return Err(RunError::kafka("read a roster topic", e)),
            }
            if !ends.is_empty() && started.elapsed() > STABLE_WAIT {
                return Err(RunError::kafka(
                    "read a roster topic to its end (a transaction on it stays open)",
                    KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
                ));
            }
        }
        for (topic, readers) in self.table.topics() {
            let members = readers
                .goals
                .first()
                .and_then(|&g| self.rosters()[g].as_ref());
            tracing::info!(
                topic = %topic,
                rosters = ?readers.rosters,
                members = members.map_or(0, Roster::len),
                "read roster topic"
            );
        }
        tracing::debug!(
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "roster topics read to their end offsets at start"
        );
        Ok(())
    }

    /// Applies the records that arrived since the last call, without waiting, to the master
    /// rosters and to `owners` (attainment events of the windows opened go to `out`). Returns how
    /// many were read.
    pub fn poll(&mut self, owners: &mut BTreeMap<i32, Owner>, out: &mut Vec<Attainment>) -> usize {
        let Some(consumer) = self.consumer.as_ref() else {
            return 0;
        };
        let mut read = 0;
        while read < MAX_PER_POLL {
            match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => {
                    read += 1;
                    apply_message(&mut self.table, &mut self.rejected, &m, owners, out);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "roster consumer error");
                    break;
                }
            }
        }
        read
    }
}

/// The position of `topic`/`partition` in `positions`, or -1 when unknown.
fn position(positions: Option<&TopicPartitionList>, topic: &str, partition: i32) -> i64 {
    let offset = positions
        .and_then(|tpl| tpl.find_partition(topic, partition))
        .map(|e| e.offset());
    match offset {
        Some(Offset::Offset(o)) => o,
        _ => -1,
    }
}

/// Applies a roster record to `table` and `owners` (see [`RosterTable::apply`]); a refused one is
/// queued in `rejected` and logged.
fn apply_message(
    table: &mut RosterTable,
    rejected: &mut Rejected,
    m: &BorrowedMessage<'_>,
    owners: &mut BTreeMap<i32, Owner>,
    out: &mut Vec<Attainment>,
) {
    let (key, value) = (m.key().unwrap_or_default(), m.payload());
    let Err(e) = table.apply(m.topic(), (key, value), owners.values_mut(), out) else {
        return;
    };
    tracing::warn!(
        topic = m.topic(),
        partition = m.partition(),
        offset = m.offset(),
        error = %e,
        "roster record refused: dead-lettered"
    );
    rejected.push(BadRecord {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: key.to_vec(),
        value: value.unwrap_or_default().to_vec(),
        detail: e.to_string(),
    });
}

#[cfg(test)]
#[path = "roster_topic_tests.rs"]
mod tests;
