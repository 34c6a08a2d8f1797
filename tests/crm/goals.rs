//! The goal file, and the same goals described for the independent computation.

use chrono::Weekday;
use chrono_tz::Tz;

pub(crate) const GOALS_TOML: &str = r#"
# Revenue of each regional office per calendar quarter in New York.
[[goals]]
id = "office-quarter-revenue"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "quarter", timezone = "America/New_York" }
target = 400000
milestones = [0.5, 1.0]
grace = "2d"

# Deals won by each agent per UTC month.
[[goals]]
id = "agent-monthly-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
window = { calendar = "month", timezone = "UTC" }
target = 10
grace = "2d"

# Win rate of each manager's team per fiscal quarter (fiscal year from April) in India.
[[goals]]
id = "manager-win-rate"
metric = "ratio"
numerator = { event_type = "deal_won" }
denominator = { event_type = ["deal_won", "deal_lost"] }
min_denominator = 20
group_by = ["team_id"]
window = { calendar = "quarter", timezone = "Asia/Kolkata", fiscal_year_start_month = 4 }
target = 0.6
grace = "2d"

# Largest won deal of each product per UTC year.
[[goals]]
id = "product-max-deal-year"
metric = "max"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["product"]
window = { calendar = "year", timezone = "UTC" }
target = 10000
grace = "2d"

# Distinct customer accounts won by each office per UTC quarter.
[[goals]]
id = "region-accounts-quarter"
metric = "count_distinct"
field = "account_id"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "quarter", timezone = "UTC" }
target = 30
grace = "2d"

# Average won deal, company-wide, per calendar month in New York.
[[goals]]
id = "avg-won-deal-month"
metric = "avg"
field = "amount"
filter = { event_type = "deal_won" }
window = { calendar = "month", timezone = "America/New_York" }
target = 2400
grace = "2d"

# Lost deals per UTC week starting on Sunday: at most 60.
[[goals]]
id = "weekly-losses"
metric = "count"
filter = { event_type = "deal_lost" }
window = { calendar = "week", week_start = "sunday", timezone = "UTC" }
target = 60
direction = "at_most"
grace = "2d"

# Smallest won deal of each office per fiscal year from July in Berlin: at most 40.
[[goals]]
id = "office-min-deal-fy"
metric = "min"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "year", timezone = "Europe/Berlin", fiscal_year_start_month = 7 }
target = 40
direction = "at_most"
grace = "2d"
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Metric {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Distinct,
    Ratio,
}

impl Metric {
    /// Whether the value can only grow as events arrive (for these non-negative amounts), so that
    /// milestones and breaches follow from the final value alone.
    pub(crate) fn monotone(self) -> bool {
        matches!(
            self,
            Metric::Count | Metric::Sum | Metric::Max | Metric::Distinct
        )
    }
}

/// Which closed deals a goal reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Picks {
    Won,
    Lost,
    WonOrLost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupBy {
    Nothing,
    Region,
    Rep,
    Team,
    Product,
}

/// Calendar periods; the `u32` is the first month of the fiscal year.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Period {
    Week(Weekday),
    Month,
    Quarter(u32),
    Year(u32),
}

pub(crate) struct Spec {
    pub(crate) id: &'static str,
    pub(crate) metric: Metric,
    pub(crate) picks: Picks,
    pub(crate) group_by: GroupBy,
    pub(crate) tz: Tz,
    pub(crate) period: Period,
    pub(crate) target: &'static str,
    pub(crate) at_most: bool,
    pub(crate) min_denominator: u64,
    pub(crate) milestones: &'static [&'static str],
}

pub(crate) fn specs() -> Vec<Spec> {
    use chrono_tz::{America::New_York, Asia::Kolkata, Europe::Berlin, UTC};
    let spec = |id, metric, picks, group_by, tz, period, target| Spec {
        id,
        metric,
        picks,
        group_by,
        tz,
        period,
        target,
        at_most: false,
        min_denominator: 0,
        milestones: &["1"],
    };
    vec![
        Spec {
            milestones: &["0.5", "1"],
            ..spec(
                "office-quarter-revenue",
                Metric::Sum,
                Picks::Won,
                GroupBy::Region,
                New_York,
                Period::Quarter(1),
                "400000",
            )
        },
        spec(
            "agent-monthly-wins",
            Metric::Count,
            Picks::Won,
            GroupBy::Rep,
            UTC,
            Period::Month,
            "10",
        ),
        Spec {
            min_denominator: 20,
            ..spec(
                "manager-win-rate",
                Metric::Ratio,
                Picks::WonOrLost,
                GroupBy::Team,
                Kolkata,
                Period::Quarter(4),
                "0.6",
            )
        },
        spec(
            "product-max-deal-year",
            Metric::Max,
            Picks::Won,
            GroupBy::Product,
            UTC,
            Period::Year(1),
            "10000",
        ),
        spec(
            "region-accounts-quarter",
            Metric::Distinct,
            Picks::Won,
            GroupBy::Region,
            UTC,
            Period::Quarter(1),
            "30",
        ),
        spec(
            "avg-won-deal-month",
            Metric::Avg,
            Picks::Won,
            GroupBy::Nothing,
            New_York,
            Period::Month,
            "2400",
        ),
        Spec {
            at_most: true,
            milestones: &[],
            ..spec(
                "weekly-losses",
                Metric::Count,
                Picks::Lost,
                GroupBy::Nothing,
                UTC,
                Period::Week(Weekday::Sun),
                "60",
            )
        },
        Spec {
            at_most: true,
            milestones: &[],
            ..spec(
                "office-min-deal-fy",
                Metric::Min,
                Picks::Won,
                GroupBy::Region,
                Berlin,
                Period::Year(7),
                "40",
            )
        },
    ]
}

/// The second goal file: look-ahead status on a roster of agents, replayed in a run of its own.
/// Its roster file is `sales_teams.csv`, written next to it.
pub(crate) const LOOKAHEAD_TOML: &str = r#"
[rosters.reps]
file = "sales_teams.csv"
columns = { rep_id = "sales_agent" }

# Revenue of each agent per calendar quarter in New York, against a back-loaded pace.
[[goals]]
id = "agent-quarter-revenue"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
roster = "reps"
window = { calendar = "quarter", timezone = "America/New_York" }
target = 150000
pace = [[0.0, 0.0], [0.5, 0.35], [1.0, 1.0]]
status = { every = "7d", tolerance = 0.1, for = "14d" }
grace = "2d"

# Deals won by each agent per calendar quarter in New York, against a linear pace.
[[goals]]
id = "agent-quarter-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
roster = "reps"
window = { calendar = "quarter", timezone = "America/New_York" }
target = 20
status = { every = "7d", tolerance = 0.2 }
grace = "2d"
"#;

/// A goal of [`LOOKAHEAD_TOML`] described for the computation: its window, metric and target,
/// and its `pace` and `status`.
pub(crate) struct LookSpec {
    pub(crate) spec: Spec,
    /// The pace curve's points (fraction elapsed, fraction expected); empty for linear.
    pub(crate) pace: &'static [(&'static str, &'static str)],
    /// `status.every`, in days.
    pub(crate) every_days: u64,
    /// `status.tolerance`.
    pub(crate) tolerance: &'static str,
    /// `status.for`, in days.
    pub(crate) hold_days: i64,
}

pub(crate) fn lookahead_specs() -> Vec<LookSpec> {
    let quarterly = |id, metric, target| Spec {
        id,
        metric,
        picks: Picks::Won,
        group_by: GroupBy::Rep,
        tz: chrono_tz::America::New_York,
        period: Period::Quarter(1),
        target,
        at_most: false,
        min_denominator: 0,
        milestones: &["1"],
    };
    vec![
        LookSpec {
            spec: quarterly("agent-quarter-revenue", Metric::Sum, "150000"),
            pace: &[("0.0", "0.0"), ("0.5", "0.35"), ("1.0", "1.0")],
            every_days: 7,
            tolerance: "0.1",
            hold_days: 14,
        },
        LookSpec {
            spec: quarterly("agent-quarter-wins", Metric::Count, "20"),
            pace: &[],
            every_days: 7,
            tolerance: "0.2",
            hold_days: 0,
        },
    ]
}
