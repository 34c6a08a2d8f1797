//! Judging a window: milestones and breaches as contributions arrive, the outcome when it closes,
//! and the attainment events they make.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::{GroupKey, OwnerStats, WindowState};
use crate::engine::router::Contribution;
use crate::engine::status::{Evaluation, Transition};
use crate::goals::{Direction, Goal};
use crate::model::attainment::attainment_id;
use crate::model::{Attainment, AttainmentKind, Outcome, Timestamp};
use crate::window::Window;

/// Emits the final event of a window that closed, with its outcome.
pub(super) fn emit_final(
    goal: &Goal,
    key: &GroupKey,
    start: Timestamp,
    ws: &WindowState,
    out: &mut Vec<Attainment>,
    stats: &mut OwnerStats,
) {
    let window = Window { start, end: ws.end };
    let value = ws.aggregate.value();
    let outcome = final_outcome(goal, ws);
    let group_values: Vec<&str> = key.0.iter().map(|v| &**v).collect();
    emit(
        goal,
        &group_values,
        window,
        AttainmentKind::Final,
        value,
        None,
        Some(outcome),
        None,
        ws.end,
        out,
        stats,
    );
}

/// A closed window's outcome: too little data to judge (a ratio below its threshold, or no value
/// at all: avg, min or max of a roster member's window without events), or its value against the
/// target.
pub fn final_outcome(goal: &Goal, ws: &WindowState) -> Outcome {
    if ws.aggregate.denominator() < goal.judge_threshold() {
        return Outcome::InsufficientData;
    }
    let Some(v) = ws.aggregate.value() else {
        return Outcome::InsufficientData;
    };
    let attained = match goal.direction {
        Direction::AtLeast => v >= goal.target,
        Direction::AtMost => v <= goal.target,
    };
    if attained {
        Outcome::Attained
    } else {
        Outcome::Missed
    }
}

/// Emits the milestones a contribution made the window reach, or its breach.
pub(super) fn judge(
    goal: &Goal,
    group: &[&str],
    window: Window,
    ws: &mut WindowState,
    c: &Contribution<'_>,
    out: &mut Vec<Attainment>,
    stats: &mut OwnerStats,
) {
    if ws.aggregate.denominator() < goal.judge_threshold() {
        return;
    }
    match goal.direction {
        Direction::AtLeast => {
            let n = goal.thresholds.len();
            let all = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
            if ws.reached == all {
                return;
            }
            let Some(value) = ws.aggregate.value() else {
                return;
            };
            for (i, threshold) in goal.thresholds.iter().enumerate() {
                let bit = 1u64 << i;
                if ws.reached & bit == 0 && value >= *threshold {
                    ws.reached |= bit;
                    emit(
                        goal,
                        group,
                        window,
                        AttainmentKind::Milestone,
                        Some(value),
                        Some(goal.milestones[i]),
                        None,
                        Some(c.event_id),
                        c.event_time,
                        out,
                        stats,
                    );
                }
            }
        }
        Direction::AtMost => {
            if ws.breached {
                return;
            }
            let Some(value) = ws.aggregate.value() else {
                return;
            };
            if value > goal.target {
                ws.breached = true;
                emit(
                    goal,
                    group,
                    window,
                    AttainmentKind::Breached,
                    Some(value),
                    None,
                    None,
                    Some(c.event_id),
                    c.event_time,
                    out,
                    stats,
                );
            }
        }
    }
}

/// Emits a status transition decided at `tick`, with the evaluation behind it.
#[allow(clippy::too_many_arguments)]
pub(super) fn emit_status(
    goal: &Goal,
    group: &[&str],
    window: Window,
    tick: Timestamp,
    evaluation: &Evaluation,
    transition: Transition,
    out: &mut Vec<Attainment>,
    stats: &mut OwnerStats,
) {
    let kind = match transition {
        Transition::AtRisk => AttainmentKind::AtRisk,
        Transition::OnTrack => AttainmentKind::OnTrack,
    };
    emit(
        goal,
        group,
        window,
        kind,
        Some(evaluation.value),
        None,
        None,
        None,
        tick,
        out,
        stats,
    );
    if let Some(a) = out.last_mut() {
        a.expected = Some(evaluation.expected);
        a.projected = evaluation.projected;
    }
}

#[allow(clippy::too_many_arguments)]
fn emit(
    goal: &Goal,
    group: &[&str],
    window: Window,
    kind: AttainmentKind,
    value: Option<Decimal>,
    milestone: Option<Decimal>,
    outcome: Option<Outcome>,
    triggered_by: Option<&str>,
    event_time: Timestamp,
    out: &mut Vec<Attainment>,
    stats: &mut OwnerStats,
) {
    let group: Vec<(Arc<str>, String)> = goal
        .group_by_names
        .iter()
        .cloned()
        .zip(group.iter().map(|v| v.to_string()))
        .collect();
    let progress = match value {
        Some(v) if !goal.target.is_zero() => v.checked_div(goal.target),
        _ => None,
    };
    // A status event's time is its tick, which its id covers.
    let tick =
        matches!(kind, AttainmentKind::AtRisk | AttainmentKind::OnTrack).then_some(event_time);
    stats.attainments[kind as usize] += 1;
    out.push(Attainment {
        attainment_id: attainment_id(&goal.id, &group, &window, kind, milestone, tick),
        goal_id: goal.id.clone(),
        kind,
        group,
        window,
        value,
        target: goal.target,
        progress,
        milestone,
        outcome,
        triggered_by: triggered_by.map(str::to_string),
        event_time,
        expected: None,
        projected: None,
        tick,
    });
}
