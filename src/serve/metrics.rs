//! Metric names and the handles registered once at startup (never built per event).

/// Input records read (counter).
pub const EVENTS_READ: &str = "goalpost_events_read_total";
/// Input records accepted (counter).
pub const EVENTS_ACCEPTED: &str = "goalpost_events_accepted_total";
/// Input records dropped as duplicates (counter).
pub const EVENTS_DUPLICATE: &str = "goalpost_events_duplicate_total";
/// Input records dead-lettered, label `reason` (counter).
pub const EVENTS_REJECTED: &str = "goalpost_events_rejected_total";
/// Contributions that arrived after all their windows closed, label `goal` (counter).
pub const EVENTS_LATE: &str = "goalpost_events_late_total";
/// Contributions skipped for a goal's `max_groups` or `max_distinct`, label `goal` (counter).
pub const EVENTS_OVERFLOW: &str = "goalpost_events_overflow_total";
/// Contributions of groups a goal's roster does not list, applied all the same, label `goal`;
/// only goals with a roster (counter).
pub const EVENTS_UNLISTED: &str = "goalpost_events_unlisted_total";
/// Contributions of groups a goal's `strict` roster does not list, skipped, label `goal`; only
/// goals with a roster (counter).
pub const EVENTS_OFF_ROSTER: &str = "goalpost_events_off_roster_total";
/// Event ids the dedupe memory forgot before the horizon because of `app.dedupe_max_ids`
/// (counter).
pub const DEDUPE_EVICTED: &str = "goalpost_dedupe_evicted_total";
/// Consumer lag of an input partition in records, labels `topic`, `partition` (gauge).
pub const CONSUMER_LAG: &str = "goalpost_consumer_lag_records";
/// Transactions committed (counter).
pub const TXN_COMMITTED: &str = "goalpost_transactions_committed_total";
/// Transactions aborted (counter).
pub const TXN_ABORTED: &str = "goalpost_transactions_aborted_total";
/// Duration of a commit, from flushing the batches to the broker's answer (histogram, seconds).
pub const TXN_DURATION: &str = "goalpost_transaction_commit_seconds";
/// Records written to the repartition topic (counter).
pub const REPARTITION_RECORDS: &str = "goalpost_repartition_records_total";
/// Contributions applied straight to an owner on the same instance, skipping the repartition
/// topic (counter).
pub const LOCAL_CONTRIBUTIONS: &str = "goalpost_local_contributions_total";
/// Records written to the changelog topic (counter).
pub const CHANGELOG_RECORDS: &str = "goalpost_changelog_records_total";
/// Records written to the progress topic, `[output] progress_topic` (counter).
pub const PROGRESS_RECORDS: &str = "goalpost_progress_records_total";
/// Repartition and changelog records that could not be read, skipped and dead-lettered (counter).
pub const INTERNAL_SKIPPED: &str = "goalpost_internal_records_skipped_total";
/// Contributions in the repartition topic for a goal not in the goal file, skipped (counter).
pub const UNKNOWN_GOAL: &str = "goalpost_unknown_goal_contributions_total";
/// Open windows held by this instance (gauge).
pub const STATE_WINDOWS: &str = "goalpost_state_windows";
/// Estimated bytes of window and dedupe state held by this instance (gauge).
pub const STATE_BYTES: &str = "goalpost_state_bytes";
/// Changelog records read while restoring (counter).
pub const RESTORE_RECORDS: &str = "goalpost_restore_records_total";
/// Changelog records still to read in the restore under way, 0 when none (gauge).
pub const RESTORE_REMAINING: &str = "goalpost_restore_remaining_records";
/// Attainment events published, labels `kind`, `goal` (counter). For goals with `status`, the
/// kinds `at_risk` and `on_track` count the status transitions.
pub const ATTAINMENTS: &str = "goalpost_attainments_total";
/// Progress of the current window, labels `goal`, `group`; only for goals listed in
/// `[metrics] progress_gauges` (gauge, 1.0 = target). Only groups with an open window are
/// exported: a group's series goes when its last window closes.
pub const GOAL_PROGRESS: &str = "goalpost_goal_progress_ratio";
/// Groups of a goal with `status` whose latest open window is at risk (`at_risk` reported, not
/// back on track since) on this instance, label `goal` (gauge).
pub const GROUPS_AT_RISK: &str = "goalpost_groups_at_risk";
/// 1 once every assigned partition's state is restored (gauge).
pub const READY: &str = "goalpost_ready";
/// Partitions assigned to this instance, label `kind` = `input` | `repartition` (gauge).
pub const ASSIGNED_PARTITIONS: &str = "goalpost_assigned_partitions";

/// `goalpost notify`: attainment events read.
pub const NOTIFY_EVENTS: &str = "goalpost_notify_events_total";
/// `goalpost notify`: events delivered, label `sink`.
pub const NOTIFY_DELIVERIES: &str = "goalpost_notify_deliveries_total";
/// `goalpost notify`: delivery attempts retried, label `sink`.
pub const NOTIFY_RETRIES: &str = "goalpost_notify_retries_total";
/// `goalpost notify`: failed delivery attempts (errors, timeouts, refusals), label `sink`.
pub const NOTIFY_FAILURES: &str = "goalpost_notify_failures_total";
/// `goalpost notify`: events given up and dead-lettered, label `sink`.
pub const NOTIFY_DEAD_LETTERS: &str = "goalpost_notify_dead_letters_total";
/// `goalpost notify`: alerts active in Alertmanager (gauge).
pub const NOTIFY_ACTIVE_ALERTS: &str = "goalpost_notify_active_alerts";
/// `goalpost notify`: now minus the record time of the last event a sink finished, label `sink`
/// (gauge, seconds).
pub const NOTIFY_DELIVERY_LAG: &str = "goalpost_notify_delivery_lag_seconds";

/// Every metric goalpost exports (`run` and `notify`), for checks of dashboards and alerts
/// against the code.
pub const NAMES: &[&str] = &[
    EVENTS_READ,
    EVENTS_ACCEPTED,
    EVENTS_DUPLICATE,
    EVENTS_REJECTED,
    EVENTS_LATE,
    EVENTS_OVERFLOW,
    EVENTS_UNLISTED,
    EVENTS_OFF_ROSTER,
    DEDUPE_EVICTED,
    CONSUMER_LAG,
    TXN_COMMITTED,
    TXN_ABORTED,
    TXN_DURATION,
    REPARTITION_RECORDS,
    LOCAL_CONTRIBUTIONS,
    CHANGELOG_RECORDS,
    PROGRESS_RECORDS,
    INTERNAL_SKIPPED,
    UNKNOWN_GOAL,
    STATE_WINDOWS,
    STATE_BYTES,
    RESTORE_RECORDS,
    RESTORE_REMAINING,
    ATTAINMENTS,
    GOAL_PROGRESS,
    GROUPS_AT_RISK,
    READY,
    ASSIGNED_PARTITIONS,
    NOTIFY_EVENTS,
    NOTIFY_DELIVERIES,
    NOTIFY_RETRIES,
    NOTIFY_FAILURES,
    NOTIFY_DEAD_LETTERS,
    NOTIFY_ACTIVE_ALERTS,
    NOTIFY_DELIVERY_LAG,
];

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::codec::RejectReason;
use crate::goals::{Goal, GoalSet};
use crate::model::AttainmentKind;

/// One goal's id and the progress of each of its groups with an open window.
type GoalProgress = (String, BTreeMap<String, f64>);

/// Metric handles, registered once at startup; the processing loop only adds to them.
///
/// Without an installed recorder (library tests, replay) every handle is a no-op.
pub struct Telemetry {
    /// [`EVENTS_READ`].
    pub events_read: Counter,
    /// [`EVENTS_ACCEPTED`].
    pub events_accepted: Counter,
    /// [`EVENTS_DUPLICATE`].
    pub events_duplicate: Counter,
    /// [`EVENTS_REJECTED`], indexed like [`RejectReason::ALL`].
    pub events_rejected: Vec<Counter>,
    /// [`EVENTS_LATE`], per goal index.
    pub events_late: Vec<Counter>,
    /// [`EVENTS_OVERFLOW`], per goal index.
    pub events_overflow: Vec<Counter>,
    /// [`EVENTS_UNLISTED`], per goal index (a no-op for goals without a roster).
    pub events_unlisted: Vec<Counter>,
    /// [`EVENTS_OFF_ROSTER`], per goal index (a no-op for goals without a roster).
    pub events_off_roster: Vec<Counter>,
    /// [`GROUPS_AT_RISK`], per goal index (a no-op for goals without `status`).
    pub groups_at_risk: Vec<Gauge>,
    /// [`DEDUPE_EVICTED`].
    pub dedupe_evicted: Counter,
    /// [`TXN_COMMITTED`].
    pub txn_committed: Counter,
    /// [`TXN_ABORTED`].
    pub txn_aborted: Counter,
    /// [`TXN_DURATION`].
    pub txn_duration: Histogram,
    /// [`REPARTITION_RECORDS`].
    pub repartition_records: Counter,
    /// [`LOCAL_CONTRIBUTIONS`].
    pub local_contributions: Counter,
    /// [`CHANGELOG_RECORDS`].
    pub changelog_records: Counter,
    /// [`PROGRESS_RECORDS`].
    pub progress_records: Counter,
    /// [`STATE_WINDOWS`].
    pub state_windows: Gauge,
    /// [`STATE_BYTES`].
    pub state_bytes: Gauge,
    /// [`RESTORE_RECORDS`].
    pub restore_records: Counter,
    /// [`RESTORE_REMAINING`].
    pub restore_remaining: Gauge,
    /// [`ATTAINMENTS`], per goal index, indexed like [`AttainmentKind::ALL`].
    pub attainments: Vec<[Counter; AttainmentKind::COUNT]>,
    /// [`READY`].
    pub ready: Gauge,
    /// [`ASSIGNED_PARTITIONS`] of input topics.
    pub assigned_input: Gauge,
    /// [`ASSIGNED_PARTITIONS`] of the repartition topic.
    pub assigned_repartition: Gauge,
    /// Goal indexes with progress gauges switched on.
    progress_goals: Vec<bool>,
    /// [`GOAL_PROGRESS`] per goal index: goal id and the progress of each group with an open
    /// window. Rendered by [`Telemetry::render_progress`], not through the recorder, so that
    /// groups whose windows have closed can be dropped.
    progress: Mutex<BTreeMap<usize, GoalProgress>>,
}

impl Telemetry {
    /// Registers every handle; `progress_goals` are the goal ids with progress gauges.
    pub fn new(goals: &GoalSet, progress_goals: &[String]) -> Self {
        let ids: Vec<String> = goals.goals.iter().map(|g| g.id.to_string()).collect();
        Telemetry {
            events_read: counter!(EVENTS_READ),
            events_accepted: counter!(EVENTS_ACCEPTED),
            events_duplicate: counter!(EVENTS_DUPLICATE),
            events_rejected: RejectReason::ALL
                .iter()
                .map(|r| counter!(EVENTS_REJECTED, "reason" => r.as_str()))
                .collect(),
            events_late: ids
                .iter()
                .map(|g| counter!(EVENTS_LATE, "goal" => g.clone()))
                .collect(),
            events_overflow: ids
                .iter()
                .map(|g| counter!(EVENTS_OVERFLOW, "goal" => g.clone()))
                .collect(),
            events_unlisted: per_goal(
                goals,
                |g| g.roster.is_some(),
                Counter::noop(),
                |id| counter!(EVENTS_UNLISTED, "goal" => id),
            ),
            events_off_roster: per_goal(
                goals,
                |g| g.roster.is_some(),
                Counter::noop(),
                |id| counter!(EVENTS_OFF_ROSTER, "goal" => id),
            ),
            groups_at_risk: per_goal(
                goals,
                |g| g.status.is_some(),
                Gauge::noop(),
                |id| gauge!(GROUPS_AT_RISK, "goal" => id),
            ),
            dedupe_evicted: counter!(DEDUPE_EVICTED),
            txn_committed: counter!(TXN_COMMITTED),
            txn_aborted: counter!(TXN_ABORTED),
            txn_duration: histogram!(TXN_DURATION),
            repartition_records: counter!(REPARTITION_RECORDS),
            local_contributions: counter!(LOCAL_CONTRIBUTIONS),
            changelog_records: counter!(CHANGELOG_RECORDS),
            progress_records: counter!(PROGRESS_RECORDS),
            state_windows: gauge!(STATE_WINDOWS),
            state_bytes: gauge!(STATE_BYTES),
            restore_records: counter!(RESTORE_RECORDS),
            restore_remaining: gauge!(RESTORE_REMAINING),
            attainments: ids
                .iter()
                .map(|g| {
                    AttainmentKind::ALL
                        .map(|k| counter!(ATTAINMENTS, "kind" => k.as_str(), "goal" => g.clone()))
                })
                .collect(),
            ready: gauge!(READY),
            assigned_input: gauge!(ASSIGNED_PARTITIONS, "kind" => "input"),
            assigned_repartition: gauge!(ASSIGNED_PARTITIONS, "kind" => "repartition"),
            progress_goals: ids.iter().map(|id| progress_goals.contains(id)).collect(),
            progress: Mutex::new(BTreeMap::new()),
        }
    }

    /// The [`CONSUMER_LAG`] gauge of one input partition.
    pub fn consumer_lag(topic: &str, partition: i32) -> Gauge {
        gauge!(CONSUMER_LAG, "topic" => topic.to_string(), "partition" => partition.to_string())
    }

    /// Whether goal `goal` has progress gauges.
    pub fn has_progress_gauge(&self, goal: usize) -> bool {
        self.progress_goals.get(goal).copied().unwrap_or(false)
    }

    /// Sets the progress gauges of a goal (only for goals with progress gauges): one per group
    /// with an open window; groups not listed are dropped.
    pub fn replace_progress(
        &self,
        goal: usize,
        goal_id: &str,
        groups: impl IntoIterator<Item = (String, f64)>,
    ) {
        if !self.has_progress_gauge(goal) {
            return;
        }
        let groups = groups.into_iter().collect();
        let mut map = self.progress.lock().expect("progress gauges lock");
        map.insert(goal, (goal_id.to_string(), groups));
    }

    /// The [`GOAL_PROGRESS`] series in the Prometheus text format (empty without any).
    pub fn render_progress(&self) -> String {
        let map = self.progress.lock().expect("progress gauges lock");
        let mut out = String::new();
        for (goal, groups) in map.values() {
            for (group, value) in groups {
                if out.is_empty() {
                    let _ = writeln!(out, "# TYPE {GOAL_PROGRESS} gauge");
                }
                let _ = writeln!(
                    out,
                    "{GOAL_PROGRESS}{{goal=\"{}\",group=\"{}\"}} {value}",
                    label_value(goal),
                    label_value(group)
                );
            }
        }
        out
    }
}

/// One handle per goal: registered with the goal's id for the goals `wanted`, a no-op for the
/// others (so goal files without the keys a metric needs export no series of it).
fn per_goal<H: Clone>(
    goals: &GoalSet,
    wanted: impl Fn(&Goal) -> bool,
    noop: H,
    register: impl Fn(String) -> H,
) -> Vec<H> {
    goals
        .goals
        .iter()
        .map(|g| {
            if wanted(g) {
                register(g.id.to_string())
            } else {
                noop.clone()
            }
        })
        .collect()
}

/// A label value escaped for the Prometheus text format.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attainments_are_counted_for_every_kind_including_at_risk_and_on_track() {
        // The runtime indexes a goal's counters by `kind as usize`.
        for (i, kind) in AttainmentKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind}");
        }
        let goals = GoalSet::from_toml(
            "[[goals]]\nid = \"wins\"\nmetric = \"count\"\nfilter = { event_type = \"deal_won\" }\n\
             window = { tumbling = \"1d\" }\ntarget = 4\n",
        )
        .unwrap();
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let t = Telemetry::new(&goals, &[]);
            t.attainments[0][AttainmentKind::AtRisk as usize].increment(2);
            t.attainments[0][AttainmentKind::OnTrack as usize].increment(1);
        });
        let text = handle.render();
        let series = |kind: &str| {
            text.lines()
                .find(|l| l.starts_with(ATTAINMENTS) && l.contains(&format!("kind=\"{kind}\"")))
                .map(str::to_string)
        };
        let at_risk = series("at_risk").unwrap_or_else(|| panic!("no at_risk series: {text}"));
        assert!(
            at_risk.contains("goal=\"wins\"") && at_risk.ends_with(" 2"),
            "{at_risk}"
        );
        let on_track = series("on_track").unwrap_or_else(|| panic!("no on_track series: {text}"));
        assert!(on_track.ends_with(" 1"), "{on_track}");
    }

    #[test]
    fn progress_gauges_of_closed_windows_are_dropped() {
        let goals = GoalSet::from_toml(
            "[[goals]]\nid = \"wins\"\nmetric = \"count\"\nfilter = { event_type = \"deal_won\" }\n\
             group_by = [\"region\"]\nwindow = { tumbling = \"1d\" }\ntarget = 4\n",
        )
        .unwrap();
        let t = Telemetry::new(&goals, &["wins".to_string()]);
        t.replace_progress(0, "wins", [("east".into(), 0.5), ("we\"st".into(), 1.25)]);
        let text = t.render_progress();
        assert!(text.contains("goalpost_goal_progress_ratio{goal=\"wins\",group=\"east\"} 0.5"));
        assert!(text.contains("group=\"we\\\"st\"} 1.25"), "{text}");
        // East's window closed; only west has one open.
        t.replace_progress(0, "wins", [("we\"st".into(), 1.5)]);
        let text = t.render_progress();
        assert!(!text.contains("east"), "{text}");
        assert!(text.contains("} 1.5"), "{text}");
        t.replace_progress(0, "wins", []);
        assert_eq!(t.render_progress(), "");
    }
}
