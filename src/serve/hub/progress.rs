//! The state of one window as a progress record: what the progress topic holds and what the
//! query API shows of a window, built by one function so the two always agree.

use rust_decimal::Decimal;

use super::look_ahead::look_ahead_of;
use crate::engine::{final_outcome, GroupKey, WindowState};
use crate::goals::{Direction, Goal};
use crate::model::{GoalProgress, Timestamp};
use crate::window::Window;

/// Decimal places of `progress` (value / target).
const PROGRESS_DP: u32 = 6;

/// value / target, rounded to 6 decimal places; `None` when the target is 0 or there is no
/// value.
pub fn progress_of(goal: &Goal, value: Option<Decimal>) -> Option<Decimal> {
    match value {
        Some(v) if !goal.target.is_zero() => {
            v.checked_div(goal.target).map(|p| p.round_dp(PROGRESS_DP))
        }
        _ => None,
    }
}

/// Which window, and where it stands.
#[derive(Clone, Copy, Debug)]
pub struct WindowAt<'a> {
    /// The goal.
    pub goal: &'a Goal,
    /// The group.
    pub key: &'a GroupKey,
    /// The window's start.
    pub start: Timestamp,
    /// Its state (the last one, once closed).
    pub state: &'a WindowState,
    /// The owner's stream time.
    pub now: Option<Timestamp>,
}

/// The progress record of a window; `open` false: the window has closed with this state, and
/// the record carries the outcome of its `final` event.
pub fn goal_progress(at: WindowAt<'_>, open: bool) -> GoalProgress {
    let WindowAt {
        goal,
        key,
        start,
        state: ws,
        now,
    } = at;
    let value = ws.aggregate.value();
    let window = Window { start, end: ws.end };
    GoalProgress {
        goal_id: goal.id.clone(),
        group: goal
            .group_by_names
            .iter()
            .cloned()
            .zip(key.0.iter().map(|v| v.to_string()))
            .collect(),
        window,
        value,
        target: goal.target,
        progress: progress_of(goal, value),
        direction: goal.direction.as_str(),
        milestones_reached: milestones_reached(goal, ws.reached),
        breached: ws.breached,
        status: look_ahead_of(goal, window, ws, now),
        open,
        outcome: (!open).then(|| final_outcome(goal, ws)),
        last_event_time: ws.last_event,
        updated_at: now,
    }
}

/// The milestone fractions whose bit is set in `reached` (at_least goals).
fn milestones_reached(goal: &Goal, reached: u64) -> Vec<Decimal> {
    if goal.direction != Direction::AtLeast {
        return Vec::new();
    }
    goal.milestones
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 64 && reached & (1u64 << i) != 0)
        .map(|(_, m)| m.normalize())
        .collect()
}
