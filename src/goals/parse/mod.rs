//! Goal-file parsing: TOML into validated [`GoalSet`], collecting every problem.
//!
//! This file reads the top level; `goal.rs` one `[[goals]]` table, `metric.rs` what it measures,
//! `filter.rs` its filter tables, `window.rs` its window, `lookahead.rs` its pace, status and
//! roster, `rosters.rs` the `[rosters.*]` tables, and `ctx.rs` holds the problem list and the
//! typed readers they share.

mod ctx;
mod filter;
mod goal;
mod lookahead;
mod metric;
mod rosters;
mod window;

use std::collections::HashSet;

use toml::{Table, Value};

use self::ctx::{type_name, Ctx};
use super::{GoalFileError, GoalSet};
use crate::model::Duration;

const TOP_KEYS: &[&str] = &["goals", "dedupe", "rosters"];
const DEDUPE_KEYS: &[&str] = &["horizon"];

pub(super) fn parse_goal_file(text: &str) -> Result<GoalSet, GoalFileError> {
    let root: Table = text
        .parse::<Table>()
        .map_err(|e| GoalFileError::Toml(e.to_string().trim_end().to_string()))?;
    let mut cx = Ctx {
        problems: Vec::new(),
        goal: String::new(),
    };
    cx.unknown_keys(&root, TOP_KEYS, "");
    let dedupe_horizon = parse_dedupe(&mut cx, &root);
    let rosters = rosters::parse_rosters(&mut cx, &root);
    let roster_names = rosters::roster_names(&root);

    let mut goals = Vec::new();
    match root.get("goals") {
        None => cx.problem("goals", "no goals: declare at least one [[goals]] table"),
        Some(Value::Array(items)) if items.is_empty() => {
            cx.problem("goals", "no goals: declare at least one [[goals]] table")
        }
        Some(Value::Array(items)) => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                cx.goal = format!("goals[{i}]");
                let Value::Table(t) = item else {
                    cx.problem("", format!("expected a table, found {}", type_name(item)));
                    continue;
                };
                note_goal_id(&mut cx, t, &mut seen);
                if let Some(goal) = goal::parse_goal(&mut cx, t, &roster_names) {
                    goals.push(goal);
                }
            }
        }
        Some(other) => cx.problem(
            "goals",
            format!(
                "expected an array of tables ([[goals]]), found {}",
                type_name(other)
            ),
        ),
    }

    if let Some(Value::Array(items)) = root.get("goals") {
        cx.goal = String::new();
        rosters::check_columns(&mut cx, &rosters, items);
    }

    if cx.problems.is_empty() {
        Ok(GoalSet {
            goals,
            dedupe_horizon,
            rosters,
        })
    } else {
        Err(GoalFileError::Invalid(cx.problems))
    }
}

/// The `[dedupe]` table's horizon, 7 days when absent or after a problem.
fn parse_dedupe(cx: &mut Ctx, root: &Table) -> Duration {
    let mut dedupe_horizon = Duration::from_secs(7 * 86_400);
    match root.get("dedupe") {
        None => {}
        Some(Value::Table(t)) => {
            cx.unknown_keys(t, DEDUPE_KEYS, "dedupe.");
            if let Some(d) = cx.duration(t, "horizon", "dedupe.") {
                dedupe_horizon = d;
            }
        }
        Some(other) => cx.problem(
            "dedupe",
            format!(
                "expected a table such as [dedupe] horizon = \"7d\", found {}",
                type_name(other)
            ),
        ),
    }
    dedupe_horizon
}

/// Names later problems after the goal's id when it has a usable one, and reports an id that an
/// earlier goal already has.
fn note_goal_id(cx: &mut Ctx, t: &Table, seen: &mut HashSet<String>) {
    let Some(Value::String(id)) = t.get("id") else {
        return;
    };
    if id.trim().is_empty() {
        return;
    }
    cx.goal = id.clone();
    if !seen.insert(id.clone()) {
        cx.problem(
            "id",
            format!("duplicate goal id `{id}`: ids must be unique"),
        );
    }
}

#[cfg(test)]
mod tests;
