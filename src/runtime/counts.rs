//! What a runtime counts of its input: one type for replay and Kafka.

use crate::codec::RejectReason;
use crate::engine::{OwnerStats, Routed, RouterStats};

/// Counts of input records and of their contributions to goals.
///
/// The runtime counts each record as it decodes and routes it (`read`, `accepted`, `duplicates`,
/// `rejected`), so `read == accepted + duplicates + rejected_total()`. The per-goal outcomes of
/// contributions are counted by the engine (`skipped` by the routers, `late` and `overflow` by the
/// owners) and added from their stats ([`Counts::add_router`], [`Counts::add_owner`]), so each is
/// counted once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records read.
    pub read: u64,
    /// Records accepted (applied).
    pub accepted: u64,
    /// Records dropped as duplicates.
    pub duplicates: u64,
    /// Records rejected, by reason, in [`RejectReason::ALL`] order.
    pub rejected: [u64; RejectReason::ALL.len()],
    /// Per goal, in file order: contributions whose windows had all closed.
    pub late: Vec<u64>,
    /// Per goal, in file order: matching events skipped for a missing or non-numeric field, or a
    /// value over the size limit.
    pub skipped: Vec<u64>,
    /// Per goal, in file order: contributions skipped for the goal's `max_groups` or
    /// `max_distinct`.
    pub overflow: Vec<u64>,
    /// Per goal with a roster, in file order: contributions of groups the roster does not list,
    /// applied all the same.
    pub unlisted: Vec<u64>,
    /// Per goal with a `strict` roster, in file order: contributions of groups it does not list,
    /// skipped.
    pub off_roster: Vec<u64>,
}

impl Counts {
    /// Zero counts for `goals` goals.
    pub fn new(goals: usize) -> Self {
        Counts {
            late: vec![0; goals],
            skipped: vec![0; goals],
            overflow: vec![0; goals],
            unlisted: vec![0; goals],
            off_roster: vec![0; goals],
            ..Counts::default()
        }
    }

    /// Counts a record rejected for `reason`.
    pub fn reject(&mut self, reason: RejectReason) {
        self.read += 1;
        self.rejected[reason as usize] += 1;
    }

    /// Counts a record the router took: accepted or a duplicate.
    pub fn route(&mut self, routed: Routed) {
        self.read += 1;
        match routed {
            Routed::Duplicate => self.duplicates += 1,
            Routed::Accepted { .. } => self.accepted += 1,
        }
    }

    /// Total rejected records.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// The reasons records were rejected for, with their counts, in [`RejectReason::ALL`] order.
    pub fn rejected_by_reason(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .into_iter()
            .zip(self.rejected)
            .filter(|(_, n)| *n > 0)
    }

    /// Total overflow over every goal.
    pub fn overflow_total(&self) -> u64 {
        self.overflow.iter().sum()
    }

    /// Adds a router's per-goal counts (`skipped`).
    pub fn add_router(&mut self, stats: &RouterStats) {
        add(&mut self.skipped, &stats.skipped);
    }

    /// Adds an owner's per-goal counts (`late`, `overflow`, `unlisted`, `off_roster`).
    pub fn add_owner(&mut self, stats: &OwnerStats) {
        add(&mut self.late, &stats.late);
        add(&mut self.overflow, &stats.overflow);
        add(&mut self.unlisted, &stats.unlisted);
        add(&mut self.off_roster, &stats.off_roster);
    }
}

fn add(total: &mut Vec<u64>, more: &[u64]) {
    if total.len() < more.len() {
        total.resize(more.len(), 0);
    }
    for (t, n) in total.iter_mut().zip(more) {
        *t += n;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::Pipeline;
    use crate::goals::GoalSet;
    use crate::model::{SalesEvent, Timestamp};

    #[test]
    fn reason_indexes_follow_the_summary_order() {
        for (i, reason) in RejectReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason}");
        }
    }

    #[test]
    fn records_are_counted_by_the_runtime_and_goal_outcomes_by_the_engine() {
        let goals = Arc::new(
            GoalSet::from_toml(
                r#"
[[goals]]
id = "per-rep"
metric = "count"
group_by = ["rep_id"]
window = { tumbling = "1d" }
target = 1

[[goals]]
id = "all"
metric = "count"
window = { tumbling = "1d" }
target = 1
"#,
            )
            .unwrap(),
        );
        let mut pipeline = Pipeline::new(goals);
        let mut counts = Counts::new(2);
        let mut out = Vec::new();
        for (id, time) in [
            ("a", "2026-01-05T10:00:00Z"),
            ("b", "2026-01-07T10:00:00Z"),
            ("c", "2026-01-05T11:00:00Z"),
            ("b", "2026-01-07T10:00:00Z"),
        ] {
            let ev = SalesEvent {
                event_id: id.into(),
                event_type: "activity_logged".into(),
                occurred_at: Timestamp::parse_rfc3339(time).unwrap(),
                ..SalesEvent::default()
            };
            counts.route(pipeline.process(&ev, &mut out));
        }
        counts.reject(RejectReason::InvalidJson);
        counts.add_router(pipeline.router().stats());
        counts.add_owner(pipeline.owner().stats());
        assert_eq!((counts.read, counts.accepted, counts.duplicates), (5, 3, 1));
        assert_eq!(counts.rejected_total(), 1);
        assert_eq!(
            counts.rejected_by_reason().collect::<Vec<_>>(),
            [(RejectReason::InvalidJson, 1)]
        );
        assert_eq!(counts.skipped, [3, 0], "no rep_id");
        assert_eq!(counts.late, [0, 1], "c after the 5th closed");
        assert_eq!(counts.overflow, [0, 0]);
    }
}
