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
/// Records written to the changelog topic (counter).
pub const CHANGELOG_RECORDS: &str = "goalpost_changelog_records_total";
/// Open windows held by this instance (gauge).
pub const STATE_WINDOWS: &str = "goalpost_state_windows";
/// Estimated bytes of window and dedupe state held by this instance (gauge).
pub const STATE_BYTES: &str = "goalpost_state_bytes";
/// Changelog records read while restoring (counter).
pub const RESTORE_RECORDS: &str = "goalpost_restore_records_total";
/// Changelog records still to read in the restore under way, 0 when none (gauge).
pub const RESTORE_REMAINING: &str = "goalpost_restore_remaining_records";
/// Attainment events published, labels `kind`, `goal` (counter).
pub const ATTAINMENTS: &str = "goalpost_attainments_total";
/// Progress of the current window, labels `goal`, `group`; only for goals listed in
/// `[metrics] progress_gauges` (gauge, 1.0 = target).
pub const GOAL_PROGRESS: &str = "goalpost_goal_progress_ratio";
/// 1 once every assigned partition's state is restored (gauge).
pub const READY: &str = "goalpost_ready";
/// Partitions assigned to this instance, label `kind` = `input` | `repartition` (gauge).
pub const ASSIGNED_PARTITIONS: &str = "goalpost_assigned_partitions";

/// Every metric goalpost exports, for checks of dashboards and alerts against the code.
pub const NAMES: &[&str] = &[
    EVENTS_READ,
    EVENTS_ACCEPTED,
    EVENTS_DUPLICATE,
    EVENTS_REJECTED,
    EVENTS_LATE,
    CONSUMER_LAG,
    TXN_COMMITTED,
    TXN_ABORTED,
    TXN_DURATION,
    REPARTITION_RECORDS,
    CHANGELOG_RECORDS,
    STATE_WINDOWS,
    STATE_BYTES,
    RESTORE_RECORDS,
    RESTORE_REMAINING,
    ATTAINMENTS,
    GOAL_PROGRESS,
    READY,
    ASSIGNED_PARTITIONS,
];
