//! The counts of a run: one place that counts (and, where an operator needs it, logs) each
//! event, the rollback of an aborted transaction's counts, and the metric deltas published at
//! each commit.

use std::time::Instant;

use crate::codec::RejectReason;
use crate::engine::{Owner, Routed, Router};
use crate::runtime::counts::Counts;
use crate::serve::Telemetry;

use super::warn_limit::WarnLimit;
use super::RunReport;

/// What the worker counts. Everything but the transaction outcomes goes back to the last commit
/// when a transaction is aborted (its records are read again).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// The run's totals, with the input [`Counts`] shared with replay.
    pub report: RunReport,
    /// Repartition records sent.
    pub repartition_records: u64,
    /// Changelog records sent.
    pub changelog_records: u64,
    /// Progress-topic records sent.
    pub progress_records: u64,
}

impl Counters {
    /// Zero counts for `goals` goals.
    pub fn new(goals: usize) -> Self {
        Counters {
            report: RunReport {
                counts: Counts::new(goals),
                ..RunReport::default()
            },
            ..Counters::default()
        }
    }

    /// An input record was rejected (dead-lettered) for `reason`.
    pub fn rejected(&mut self, reason: RejectReason) {
        self.report.counts.reject(reason);
    }

    /// An input record was routed: accepted, or dropped as a duplicate.
    pub fn routed(&mut self, routed: Routed) {
        self.report.counts.route(routed);
    }

    /// Adds the per-goal counts the engine kept since they were last taken: skipped by the
    /// routers, late and overflow by the owners. Called at each commit, so that an abort (which
    /// rebuilds the routers and owners) rolls them back with the rest.
    pub fn take_from_engine<'a>(
        &mut self,
        routers: impl Iterator<Item = &'a mut Router>,
        owners: impl Iterator<Item = &'a mut Owner>,
    ) {
        for router in routers {
            self.report.counts.add_router(&router.take_stats());
        }
        for owner in owners {
            self.report.counts.add_owner(&owner.take_stats());
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
            ..
        } = self.report;
        self.clone_from(published);
        self.report.commits = commits;
        self.report.aborts = aborts;
        self.report.producers_recreated = producers_recreated;
    }

    /// Publishes the counts since `published` to the metrics, and makes them the new `published`.
    pub fn publish(&self, published: &mut Counters, t: &Telemetry) {
        let (now, was) = (&self.report, &published.report);
        let (c, w) = (&now.counts, &was.counts);
        t.events_read.increment(c.read - w.read);
        t.events_accepted.increment(c.accepted - w.accepted);
        t.events_duplicate.increment(c.duplicates - w.duplicates);
        let deltas = [
            (&t.events_rejected, &c.rejected[..], &w.rejected[..]),
            (&t.events_late, &c.late[..], &w.late[..]),
            (&t.events_overflow, &c.overflow[..], &w.overflow[..]),
            (&t.events_unlisted, &c.unlisted[..], &w.unlisted[..]),
            (&t.events_off_roster, &c.off_roster[..], &w.off_roster[..]),
        ];
        for (counters, now, was) in deltas {
            for ((counter, n), w) in counters.iter().zip(now).zip(was) {
                counter.increment(n - w);
            }
        }
        t.local_contributions
            .increment(now.local_contributions - was.local_contributions);
        metrics::counter!(crate::serve::metrics::INTERNAL_SKIPPED)
            .increment(now.internal_skipped - was.internal_skipped);
        metrics::counter!(crate::serve::metrics::UNKNOWN_GOAL)
            .increment(now.unknown_goal - was.unknown_goal);
        t.dedupe_evicted
            .increment(now.dedupe_evicted - was.dedupe_evicted);
        t.repartition_records
            .increment(self.repartition_records - published.repartition_records);
        t.changelog_records
            .increment(self.changelog_records - published.changelog_records);
        t.progress_records
            .increment(self.progress_records - published.progress_records);
        published.clone_from(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_off_roster_and_at_risk_series_exist_for_goals_with_a_roster_or_status_only() {
        let mut goals = crate::goals::GoalSet::from_toml(
            "[[goals]]\nid = \"plain\"\nmetric = \"count\"\nwindow = { tumbling = \"1d\" }\n\
             target = 4\n\n[[goals]]\nid = \"listed\"\nmetric = \"count\"\n\
             group_by = [\"rep_id\"]\nwindow = { tumbling = \"1d\" }\ntarget = 4\n",
        )
        .unwrap();
        goals.goals[1].roster = Some(0);
        goals.goals[1].status = Some(crate::goals::StatusSpec {
            every: crate::model::Duration::from_secs(3600),
            tolerance: rust_decimal::Decimal::ZERO,
            hold: crate::model::Duration::ZERO,
        });
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let t = Telemetry::new(&goals, &[]);
            let mut published = Counters::new(2);
            let mut now = published.clone();
            now.report.counts.add_owner(&crate::engine::OwnerStats {
                unlisted: vec![0, 3],
                off_roster: vec![0, 2],
                ..Default::default()
            });
            now.publish(&mut published, &t);
            now.report.counts.unlisted[1] += 1;
            now.publish(&mut published, &t);
            t.groups_at_risk[1].set(5.0);
        });
        let text = handle.render();
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name}: {text}"))
                .to_string()
        };
        use crate::serve::metrics::{EVENTS_OFF_ROSTER, EVENTS_UNLISTED, GROUPS_AT_RISK};
        assert_eq!(
            line(EVENTS_UNLISTED),
            format!("{EVENTS_UNLISTED}{{goal=\"listed\"}} 4")
        );
        assert_eq!(
            line(EVENTS_OFF_ROSTER),
            format!("{EVENTS_OFF_ROSTER}{{goal=\"listed\"}} 2")
        );
        assert_eq!(
            line(GROUPS_AT_RISK),
            format!("{GROUPS_AT_RISK}{{goal=\"listed\"}} 5")
        );
        for name in [EVENTS_UNLISTED, EVENTS_OFF_ROSTER, GROUPS_AT_RISK] {
            let plain = format!("{name}{{goal=\"plain\"}}");
            assert!(!text.contains(&plain), "{text}");
        }
    }

    #[test]
    fn a_rollback_keeps_the_transaction_outcomes_only() {
        let mut published = Counters::new(2);
        published.rejected(RejectReason::WrongType);
        let mut now = published.clone();
        now.rejected(RejectReason::InvalidJson);
        now.routed(Routed::Duplicate);
        now.report.counts.add_owner(&crate::engine::OwnerStats {
            late: vec![0, 1],
            overflow: vec![1, 0],
            ..Default::default()
        });
        now.repartition_records += 3;
        now.report.commits = 4;
        now.aborted(None);
        assert_eq!(now.report.counts.late, vec![0, 1]);
        assert_eq!(now.report.counts.overflow, vec![1, 0]);
        assert_eq!(now.report.counts.rejected_total(), 2);

        now.roll_back_to(&published);
        assert_eq!(now.report.counts, published.report.counts);
        assert_eq!(now.report.counts.read, 1);
        assert_eq!(now.report.counts.late, vec![0, 0]);
        assert_eq!(now.repartition_records, 0);
        assert_eq!((now.report.commits, now.report.aborts), (4, 1));
    }
}
