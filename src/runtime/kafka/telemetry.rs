//! The counts of a run: one place that counts (and, where an operator needs it, logs) each
//! event, the rollback of an aborted transaction's counts, and the metric deltas published at
//! each commit.

use std::time::Instant;

use crate::codec::RejectReason;
use crate::engine::Applied;
use crate::serve::Telemetry;

use super::warn_limit::WarnLimit;
use super::RunReport;

/// What the worker counts. Everything but the transaction outcomes goes back to the last commit
/// when a transaction is aborted (its records are read again).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// The run's totals (its `overflow` is summed from the per-goal counts at the end).
    pub report: RunReport,
    /// Rejected input records, per [`RejectReason::ALL`].
    pub rejected: [u64; RejectReason::ALL.len()],
    /// Late contributions, per goal.
    pub late: Vec<u64>,
    /// Contributions skipped for `max_groups` or `max_distinct`, per goal.
    pub overflow: Vec<u64>,
    /// Repartition records sent.
    pub repartition_records: u64,
    /// Changelog records sent.
    pub changelog_records: u64,
}

impl Counters {
    /// Zero counts for `goals` goals.
    pub fn new(goals: usize) -> Self {
        Counters {
            late: vec![0; goals],
            overflow: vec![0; goals],
            ..Counters::default()
        }
    }

    /// An input record was read.
    pub fn read(&mut self) {
        self.report.read += 1;
    }

    /// An input record was rejected (dead-lettered) for `reason`.
    pub fn rejected(&mut self, reason: RejectReason) {
        self.report.rejected += 1;
        if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason) {
            self.rejected[i] += 1;
        }
    }

    /// An input record was routed: accepted, or dropped as a duplicate.
    pub fn routed(&mut self, duplicate: bool) {
        if duplicate {
            self.report.duplicates += 1;
        } else {
            self.report.accepted += 1;
        }
    }

    /// A contribution of `goal` was applied to an owner (late and overflow are counted per goal).
    pub fn applied(&mut self, goal: usize, applied: Applied) {
        match applied {
            Applied::Late => self.late[goal] += 1,
            Applied::Overflow => self.overflow[goal] += 1,
            Applied::Applied => {}
        }
    }

    /// A contribution for a goal not in the goal file was skipped; logged at most once per
    /// partition every interval of `warnings`.
    pub fn unknown_goal(&mut self, warnings: &mut WarnLimit, goal_id: &str, partition: i32) {
        self.report.unknown_goal += 1;
        if let Some(held_back) = warnings.allow("unknown goal", partition, Instant::now()) {
            tracing::warn!(
                goal = %goal_id,
                partition,
                held_back,
                "contribution for a goal not in the goal file: skipped"
            );
        }
    }

    /// A transaction was aborted.
    pub fn aborted(&mut self, telemetry: Option<&Telemetry>) {
        self.report.aborts += 1;
        if let Some(t) = telemetry {
            t.txn_aborted.increment(1);
        }
    }

    /// Back to the counts of the last commit, `published`, keeping the transaction outcomes
    /// (commits, aborts, producers recreated).
    pub fn roll_back_to(&mut self, published: &Counters) {
        let RunReport {
            commits,
            aborts,
            producers_recreated,
            overflow,
            ..
        } = self.report;
        *self = published.clone();
        self.report.commits = commits;
        self.report.aborts = aborts;
        self.report.producers_recreated = producers_recreated;
        self.report.overflow = overflow;
    }

    /// Publishes the counts since `published` to the metrics, and makes them the new `published`.
    pub fn publish(&self, published: &mut Counters, t: &Telemetry) {
        let (now, was) = (&self.report, &published.report);
        t.events_read.increment(now.read - was.read);
        t.events_accepted.increment(now.accepted - was.accepted);
        t.events_duplicate
            .increment(now.duplicates - was.duplicates);
        t.local_contributions
            .increment(now.local_contributions - was.local_contributions);
        metrics::counter!(crate::serve::metrics::INTERNAL_SKIPPED)
            .increment(now.internal_skipped - was.internal_skipped);
        metrics::counter!(crate::serve::metrics::UNKNOWN_GOAL)
            .increment(now.unknown_goal - was.unknown_goal);
        t.dedupe_evicted
            .increment(now.dedupe_evicted - was.dedupe_evicted);
        for (i, n) in self.rejected.iter().enumerate() {
            t.events_rejected[i].increment(n - published.rejected[i]);
        }
        for (i, n) in self.late.iter().enumerate() {
            t.events_late[i].increment(n - published.late[i]);
        }
        for (i, n) in self.overflow.iter().enumerate() {
            t.events_overflow[i].increment(n - published.overflow[i]);
        }
        t.repartition_records
            .increment(self.repartition_records - published.repartition_records);
        t.changelog_records
            .increment(self.changelog_records - published.changelog_records);
        published.clone_from(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_keeps_the_transaction_outcomes_only() {
        let mut published = Counters::new(2);
        published.read();
        let mut now = published.clone();
        now.read();
        now.rejected(RejectReason::InvalidJson);
        now.routed(true);
        now.applied(1, Applied::Late);
        now.applied(0, Applied::Overflow);
        now.applied(0, Applied::Applied);
        now.repartition_records += 3;
        now.report.commits = 4;
        now.aborted(None);
        assert_eq!(now.late, vec![0, 1]);
        assert_eq!(now.overflow, vec![1, 0]);
        assert_eq!(now.report.rejected, 1);

        now.roll_back_to(&published);
        assert_eq!(now.report.read, 1);
        assert_eq!(now.report.rejected, 0);
        assert_eq!(now.report.duplicates, 0);
        assert_eq!(now.rejected, published.rejected);
        assert_eq!(now.late, vec![0, 0]);
        assert_eq!(now.overflow, vec![0, 0]);
        assert_eq!(now.repartition_records, 0);
        assert_eq!((now.report.commits, now.report.aborts), (4, 1));
    }
}
