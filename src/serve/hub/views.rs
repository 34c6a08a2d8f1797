//! What the query API shows: goals, open windows and their milestones, with exact numbers.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::look_ahead::{present, PaceView, StatusView};
use crate::goals::{Goal, Measure};
use crate::model::ProgressStatus;

/// A decimal written as an exact JSON number.
pub(super) fn decimal_json(d: Decimal) -> Num {
    Num(d.normalize())
}

/// An exact decimal, written and read as a JSON number. Reading refuses anything else (a string,
/// an object, `NaN`), so a peer's answer cannot smuggle markup into a numeric field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Num(pub Decimal);

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let text = raw.get();
        let is_number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        is_number
            .then(|| crate::model::money::parse_decimal(text).ok())
            .flatten()
            .map(Num)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("`{text}` is not a decimal JSON number"))
            })
    }
}

/// One milestone of an open window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MilestoneView {
    /// The fraction of the target, e.g. 0.5.
    pub fraction: Num,
    /// The value at which it is reached.
    pub threshold: Num,
    /// Whether it has been reached (and reported) in this window.
    pub reached: bool,
}

/// One open window of one goal and group, as the query API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowView {
    /// The goal.
    pub goal_id: String,
    /// The group: each `group_by` entry as written in the goal file, with this group's value.
    pub group: BTreeMap<String, String>,
    /// First instant of the window (RFC 3339, UTC).
    pub window_start: String,
    /// First instant after the window.
    pub window_end: String,
    /// The KPI value so far; `null` for a ratio without a denominator event yet.
    pub value: Option<Num>,
    /// The goal's target.
    pub target: Num,
    /// `at_least` or `at_most`.
    pub direction: String,
    /// value / target; `null` when the target is 0 or there is no value.
    pub progress: Option<Num>,
    /// Milestones (at_least goals).
    pub milestones: Vec<MilestoneView>,
    /// Whether the target has been breached (at_most goals).
    pub breached: bool,
    /// Event time left in the window: window end minus the latest event time this owner has seen
    /// (seconds; `null` before any event). Event time, not wall time, so replays and backfills
    /// read the same.
    pub time_left_seconds: Option<i64>,
    /// For count and sum goals: the value at the window end if it keeps growing at its pace so
    /// far (value × window length ÷ elapsed event time); `null` for other metrics or before the
    /// window has started.
    pub pace: Option<Num>,
    /// For goals with `status`: `on_track`, `pending` (at risk at the last ticks, not yet for the
    /// goal's `for`) or `at_risk` (reported, and not back on track since). Absent for other goals,
    /// like the three fields after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The last tick whose status is decided (RFC 3339, UTC); `null` before the first.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub status_tick: Option<Option<String>>,
    /// The value expected by now along the goal's pace: target × pace(elapsed fraction of the
    /// window at the owner's latest event time), rounded to 4 decimal places; `null` before any
    /// event.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub expected: Option<Option<Num>>,
    /// The value projected at the window's end along the goal's pace (at_least: value ÷
    /// pace(elapsed); at_most: value ÷ elapsed), rounded to 4 decimal places; `null` without a
    /// value or while the pace expects nothing yet. Unlike `pace`, which extrapolates count and
    /// sum goals linearly, it follows the goal's pace curve, as the at-risk decision does.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub projected: Option<Option<Num>>,
    /// The instance holding this window.
    pub instance: String,
}

impl WindowView {
    /// Sets the look-ahead fields (goals with `status`).
    pub fn set_look_ahead(&mut self, look: Option<ProgressStatus>) {
        let Some(look) = look else {
            return;
        };
        self.status = Some(look.status.to_string());
        self.status_tick = Some(look.tick.map(|t| t.to_rfc3339()));
        self.expected = Some(look.expected.map(decimal_json));
        self.projected = Some(look.projected.map(decimal_json));
    }
}

/// One goal's definition, as `/v1/goals` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoalView {
    /// The goal's id.
    pub id: String,
    /// Its description, if any.
    pub description: Option<String>,
    /// `count`, `sum`, `avg`, `min`, `max`, `count_distinct` or `ratio`.
    pub metric: String,
    /// The field measured, if any.
    pub field: Option<String>,
    /// The `group_by` fields.
    pub group_by: Vec<String>,
    /// The window, described.
    pub window: String,
    /// The target.
    pub target: Num,
    /// `at_least` or `at_most`.
    pub direction: String,
    /// Milestone fractions.
    pub milestones: Vec<Num>,
    /// Allowed lateness.
    pub grace: String,
    /// For goals with `status`: how the target accrues over a window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<PaceView>,
    /// The goal's `status` settings, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusView>,
}

impl GoalView {
    /// The view of a goal.
    pub fn of(goal: &Goal) -> GoalView {
        let (metric, field) = match &goal.measure {
            Measure::Simple { metric, field, .. } => {
                (metric.to_string(), field.as_ref().map(|f| f.to_string()))
            }
            Measure::Ratio { .. } => ("ratio".to_string(), None),
        };
        GoalView {
            id: goal.id.to_string(),
            description: goal.description.clone(),
            metric,
            field,
            group_by: goal.group_by_names.iter().map(|g| g.to_string()).collect(),
            window: goal.window.describe(),
            target: decimal_json(goal.target),
            direction: goal.direction.as_str().to_string(),
            milestones: goal.milestones.iter().map(|m| decimal_json(*m)).collect(),
            grace: goal.grace.to_string(),
            pace: goal.status.as_ref().map(|_| PaceView::of(&goal.pace)),
            status: StatusView::of(goal),
        }
    }
}
