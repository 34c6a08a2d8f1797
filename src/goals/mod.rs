//! Goal files: types, parsing, validation and compiled filters.
//!
//! A goal file is TOML with a list of `[[goals]]` and an optional `[dedupe]` table; see the README
//! for every key. [`GoalSet::from_toml`] reports every problem it finds, each naming the goal, the
//! key and what is allowed.

mod field;
mod pace;
mod parse;

use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;
use thiserror::Error;

pub use field::{FieldRef, Filter, FIELD_NAMES_HELP};
pub use pace::{Pace, PaceError};

use crate::model::Duration;
use crate::window::WindowSpec;

/// The KPI a goal measures.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Number of matching events.
    Count,
    /// Sum of the field.
    Sum,
    /// Mean of the field (sum / count).
    Avg,
    /// Smallest value of the field.
    Min,
    /// Largest value of the field.
    Max,
    /// Number of distinct values of the field.
    CountDistinct,
    /// Numerator-filter count / denominator-filter count.
    Ratio,
}

impl Metric {
    /// Every metric, in documentation order.
    pub const ALL: [Metric; 7] = [
        Metric::Count,
        Metric::Sum,
        Metric::Avg,
        Metric::Min,
        Metric::Max,
        Metric::CountDistinct,
        Metric::Ratio,
    ];

    /// The name used in goal files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::Count => "count",
            Metric::Sum => "sum",
            Metric::Avg => "avg",
            Metric::Min => "min",
            Metric::Max => "max",
            Metric::CountDistinct => "count_distinct",
            Metric::Ratio => "ratio",
        }
    }

    /// Parses the name used in goal files.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the metric reads a numeric field (sum, avg, min, max).
    pub const fn is_numeric(self) -> bool {
        matches!(self, Metric::Sum | Metric::Avg | Metric::Min | Metric::Max)
    }

    /// Whether the metric's value can only grow as events are applied, given non-negative inputs
    /// for `sum`. Milestones and breaches of such goals do not depend on arrival order.
    pub const fn is_monotone(self) -> bool {
        matches!(
            self,
            Metric::Count | Metric::Sum | Metric::Max | Metric::CountDistinct
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side of the target is good.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The value should reach the target; milestones apply.
    AtLeast,
    /// The value should stay at or below the target; going above it is a breach.
    AtMost,
}

impl Direction {
    /// The name used in goal files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::AtLeast => "at_least",
            Direction::AtMost => "at_most",
        }
    }
}

/// What the goal measures.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// count, sum, avg, min, max or count_distinct over events passing `filter`.
    Simple {
        /// The metric.
        metric: Metric,
        /// The field read by every metric but count.
        field: Option<FieldRef>,
        /// Which events count.
        filter: Filter,
    },
    /// numerator count / denominator count.
    Ratio {
        /// Events counted above the line.
        numerator: Filter,
        /// Events counted below the line.
        denominator: Filter,
        /// Fewer denominator events than this: the window ends `insufficient_data`.
        min_denominator: u64,
        /// An optional filter every ratio event must also pass.
        filter: Filter,
    },
}

/// One validated goal.
#[derive(Clone, Debug, PartialEq)]
pub struct Goal {
    /// Unique id.
    pub id: Arc<str>,
    /// Free text.
    pub description: Option<String>,
    /// What is measured.
    pub measure: Measure,
    /// Group-by fields, in file order.
    pub group_by: Vec<FieldRef>,
    /// The group-by entries exactly as written in the file (the keys of `group` in output).
    pub group_by_names: Vec<Arc<str>>,
    /// The windows.
    pub window: WindowSpec,
    /// The target value.
    pub target: Decimal,
    /// Which side of the target is good.
    pub direction: Direction,
    /// Milestone fractions of the target, ascending (empty for `at_most`).
    pub milestones: Vec<Decimal>,
    /// `milestones[i] * target`, precomputed.
    pub thresholds: Vec<Decimal>,
    /// Allowed lateness after a window ends.
    pub grace: Duration,
    /// Most groups per window held by an owner (one in replay, one per repartition partition on
    /// Kafka); contributions of more groups are skipped there and counted as overflow.
    pub max_groups: usize,
    /// Most distinct values per `count_distinct` window; more are skipped and counted as overflow.
    pub max_distinct: usize,
    /// How the target accrues over a window (`pace`, default linear); used by `status`.
    pub pace: Pace,
    /// Look-ahead status evaluation (`status`), if enabled.
    pub status: Option<StatusSpec>,
    /// The roster naming the groups expected in every window (`roster`): an index into
    /// [`GoalSet::rosters`].
    pub roster: Option<usize>,
}

/// A goal's `status = { every, tolerance, for }`: when and how at-risk / on-track is evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSpec {
    /// The interval between ticks (`every`), within each window.
    pub every: Duration,
    /// How far below the expected value an `at_least` group may fall before it is at risk, as a
    /// fraction of the expected value in `[0, 1]` (`tolerance`, default 0).
    pub tolerance: Decimal,
    /// How long, in ticks' event time, a group must stay at risk before `at_risk` fires (`for`,
    /// default 0: at the first at-risk tick).
    pub hold: Duration,
}

/// Where a roster's members come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RosterFormat {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// One `[rosters.NAME]` table: the declaration of a roster, not its members (the runtimes load
/// those: the file for `replay` and `run`, or the compacted topic on Kafka).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterDecl {
    /// The name goals refer to (`roster = "NAME"`).
    pub name: Arc<str>,
    /// The member file (`file`), relative to the goal file's directory, and its format (`format`,
    /// or from the extension: `.csv`, `.jsonl` / `.ndjson`).
    pub file: Option<(String, RosterFormat)>,
    /// The compacted topic read by `run` instead of the file (`topic`).
    pub topic: Option<String>,
    /// `group_by` field -> column, for fields whose column has another name (`columns`).
    pub columns: Vec<(String, String)>,
    /// Whether events of groups not on the roster are skipped for the goals listing it (`strict`).
    pub strict: bool,
}

/// `max_groups` when the goal file does not set it.
pub const DEFAULT_MAX_GROUPS: usize = 100_000;
/// Largest `max_groups` allowed.
pub const MAX_MAX_GROUPS: usize = 10_000_000;
/// `max_distinct` when the goal file does not set it.
pub const DEFAULT_MAX_DISTINCT: usize = 1_000_000;
/// Largest `max_distinct` allowed.
pub const MAX_MAX_DISTINCT: usize = 100_000_000;

impl Goal {
    /// The metric.
    pub fn metric(&self) -> Metric {
        match &self.measure {
            Measure::Simple { metric, .. } => *metric,
            Measure::Ratio { .. } => Metric::Ratio,
        }
    }

    /// Minimum denominator before a ratio window is judged (at least 1); 0 for other metrics.
    pub fn judge_threshold(&self) -> u64 {
        match &self.measure {
            Measure::Ratio {
                min_denominator, ..
            } => (*min_denominator).max(1),
            Measure::Simple { .. } => 0,
        }
    }
}

/// A validated goal file.
#[derive(Clone, Debug, PartialEq)]
pub struct GoalSet {
    /// The goals, in file order.
    pub goals: Vec<Goal>,
    /// How long event ids are remembered for deduplication (`[dedupe] horizon`, default 7d).
    pub dedupe_horizon: Duration,
    /// The `[rosters.*]` tables, in name order.
    pub rosters: Vec<RosterDecl>,
}

/// One problem in a goal file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The goal's id, or `goals[N]` when it has none, or empty for top-level keys.
    pub goal: String,
    /// The key, dotted for nested tables (e.g. `window.timezone`).
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.goal.is_empty(), self.key.is_empty()) {
            (true, true) => write!(f, "{}", self.message),
            (true, false) => write!(f, "`{}`: {}", self.key, self.message),
            (false, true) => write!(f, "goal `{}`: {}", self.goal, self.message),
            (false, false) => write!(
                f,
                "goal `{}`, key `{}`: {}",
                self.goal, self.key, self.message
            ),
        }
    }
}

/// Why a goal file was not accepted.
#[derive(Debug, Error)]
pub enum GoalFileError {
    /// The file could not be read.
    #[error("cannot read goal file `{path}`: {cause}")]
    Io {
        /// The path given.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("goal file is not valid TOML: {0}")]
    Toml(String),
    /// The file is TOML but breaks the rules; every problem found is listed.
    #[error("goal file has {} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl GoalSet {
    /// Parses and validates goal-file text.
    pub fn from_toml(text: &str) -> Result<GoalSet, GoalFileError> {
        parse::parse_goal_file(text)
    }

    /// Reads, parses and validates a goal file.
    pub fn load(path: &std::path::Path) -> Result<GoalSet, GoalFileError> {
        let text = std::fs::read_to_string(path).map_err(|cause| GoalFileError::Io {
            path: path.display().to_string(),
            cause,
        })?;
        Self::from_toml(&text)
    }

    /// The goal with this id.
    pub fn get(&self, id: &str) -> Option<&Goal> {
        self.goals.iter().find(|g| &*g.id == id)
    }
}
