//! Progress records: the current state of one window of one goal and group, for the upsert
//! progress table (`[output] progress_topic`).

use std::sync::Arc;

use rust_decimal::Decimal;

use super::attainment::Outcome;
use super::time::{Timestamp, Window};

/// The look-ahead fields of a window of a goal with `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressStatus {
    /// `on_track`, `pending` or `at_risk`.
    pub status: &'static str,
    /// The last decided tick, if any.
    pub tick: Option<Timestamp>,
    /// The value expected by `updated_at` along the goal's pace, rounded to 4 decimal places.
    pub expected: Option<Decimal>,
    /// The value projected at the window's end, rounded to 4 decimal places.
    pub projected: Option<Decimal>,
}

/// The current state of one window of one goal and group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoalProgress {
    /// The goal's id.
    pub goal_id: Arc<str>,
    /// The group: each `group_by` entry as written in the goal file, with this group's value.
    pub group: Vec<(Arc<str>, String)>,
    /// The window.
    pub window: Window,
    /// The KPI value so far; `None` for a ratio without a denominator event, or a window of a
    /// roster member without events.
    pub value: Option<Decimal>,
    /// The goal's target.
    pub target: Decimal,
    /// value / target rounded to 6 decimal places; `None` when the target is 0 or there is no
    /// value.
    pub progress: Option<Decimal>,
    /// `at_least` or `at_most`.
    pub direction: &'static str,
    /// The milestone fractions reached so far (at_least goals), ascending.
    pub milestones_reached: Vec<Decimal>,
    /// Whether the target has been breached (at_most goals).
    pub breached: bool,
    /// For goals with `status`.
    pub status: Option<ProgressStatus>,
    /// Whether the window is still open.
    pub open: bool,
    /// The outcome, once closed (as in the window's `final` event).
    pub outcome: Option<Outcome>,
    /// The latest event time applied to the window; `None` before any.
    pub last_event_time: Option<Timestamp>,
    /// The stream time (event time) of the window's owner when this state was taken; `None`
    /// before any event reached the owner.
    pub updated_at: Option<Timestamp>,
}

impl GoalProgress {
    /// The record key: the goal id, each group value and the window start (RFC 3339), separated
    /// by `|`; a `\` or `|` inside the goal id or a value is escaped with a `\`, so distinct
    /// windows never share a key.
    pub fn key(&self) -> String {
        let mut key = String::new();
        push_escaped(&mut key, &self.goal_id);
        for (_, v) in &self.group {
            key.push('|');
            push_escaped(&mut key, v);
        }
        key.push('|');
        key.push_str(&self.window.start.to_rfc3339());
        key
    }
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if matches!(c, '\\' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn with_group(values: &[&str]) -> GoalProgress {
        GoalProgress {
            goal_id: "g".into(),
            group: values
                .iter()
                .enumerate()
                .map(|(i, v)| (Arc::from(format!("k{i}")), v.to_string()))
                .collect(),
            window: Window {
                start: at("2026-01-05T00:00:00Z"),
                end: at("2026-01-06T00:00:00Z"),
            },
            value: None,
            target: Decimal::ONE,
            progress: None,
            direction: "at_least",
            milestones_reached: Vec::new(),
            breached: false,
            status: None,
            open: true,
            outcome: None,
            last_event_time: None,
            updated_at: None,
        }
    }

    #[test]
    fn the_key_is_goal_values_and_window_start() {
        assert_eq!(
            with_group(&["East", "r1"]).key(),
            "g|East|r1|2026-01-05T00:00:00Z"
        );
        assert_eq!(with_group(&[]).key(), "g|2026-01-05T00:00:00Z");
    }

    #[test]
    fn separators_inside_values_cannot_make_two_groups_share_a_key() {
        let a = with_group(&["a|b", "c"]).key();
        let b = with_group(&["a", "b|c"]).key();
        assert_ne!(a, b);
        assert_eq!(a, r"g|a\|b|c|2026-01-05T00:00:00Z");
        assert_ne!(
            with_group(&["a\\", "b"]).key(),
            with_group(&["a", "\\b"]).key()
        );
    }
}
