//! The interface between the notify loop and a sink (Alertmanager, a webhook).

use crate::model::Attainment;

/// An attainment event read by `goalpost notify`, with its origin.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub attainment: Attainment,
    /// The event in the attainment topic's JSON encoding: what webhooks send.
    pub json: Vec<u8>,
    /// Its attainment topic partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// An event a sink gave up on: it goes to the notify dead-letter topic.
#[derive(Debug, Clone)]
pub struct GivenUp {
    /// The event.
    pub delivery: Delivery,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last attempt's error.
    pub last_error: String,
}

/// A record of a sink's compacted state topic: (key, value, or `None` for a tombstone).
pub type StateRecord = (Vec<u8>, Option<Vec<u8>>);

/// A destination of attainment events. The notify loop calls it from one thread.
pub trait Sink: Send {
    /// Its name in logs, in the `sink` label of metrics and in dead letters, e.g.
    /// `alertmanager` or `webhook:crm`.
    fn name(&self) -> &str;

    /// Delivers `batch` (consecutive events of one attainment partition, in offset order) and
    /// returns once each one is delivered or given up; the given-up ones are returned.
    fn deliver(&mut self, batch: &[Delivery]) -> Vec<GivenUp>;

    /// Its compacted state topic, partitioned like the attainment topic; `None`: stateless.
    fn state_topic(&self) -> Option<&str> {
        None
    }

    /// Periodic work (re-sending active alerts), called about once a second.
    fn tick(&mut self) {}

    /// The changes of its state since the last call, by attainment partition. They are written
    /// to its state topic before the offsets of the events that caused them are committed.
    fn take_state(&mut self) -> Vec<(i32, StateRecord)> {
        Vec::new()
    }

    /// A record of its state topic, read back when `partition` is assigned, before
    /// [`Sink::assigned`].
    fn restore(&mut self, _partition: i32, _record: StateRecord) {}

    /// Attainment partitions now assigned to this instance.
    fn assigned(&mut self, _partitions: &[i32]) {}

    /// Attainment partitions taken away: their state is dropped (their new owner restores it).
    fn revoked(&mut self, _partitions: &[i32]) {}
}
