//! One `[[goals]]` table: its keys in order, target, direction, milestones, grouping and caps.

use std::sync::Arc;

use rust_decimal::Decimal;
use toml::{Table, Value};

use super::ctx::{number, type_name, value_text, Ctx};
use super::{filter, lookahead, metric, window};
use crate::goals::{
    Direction, FieldRef, Goal, Metric, DEFAULT_MAX_DISTINCT, DEFAULT_MAX_GROUPS, FIELD_NAMES_HELP,
    MAX_MAX_DISTINCT, MAX_MAX_GROUPS,
};
use crate::model::Duration;

const GOAL_KEYS: &[&str] = &[
    "id",
    "description",
    "metric",
    "field",
    "filter",
    "numerator",
    "denominator",
    "min_denominator",
    "group_by",
    "window",
    "target",
    "direction",
    "milestones",
    "grace",
    "max_groups",
    "max_distinct",
    "pace",
    "status",
    "roster",
];
/// Most milestones one goal may declare.
pub const MAX_MILESTONES: usize = 64;

/// Parses one goal, reporting its problems in the order of its keys above; `None` after any.
/// `roster_names` are the declared rosters, in name order.
pub(super) fn parse_goal(cx: &mut Ctx, t: &Table, roster_names: &[Arc<str>]) -> Option<Goal> {
    let before = cx.problems.len();
    cx.unknown_keys(t, GOAL_KEYS, "");

    let id = parse_id(cx, t);
    let description = cx.string(t, "description", "").map(str::to_string);
    let metric = metric::parse_metric(cx, t);
    let field = metric::parse_field(cx, t);
    let filter = filter::parse_filter(cx, t, "filter");
    let measure = metric.and_then(|metric| {
        metric::build_measure(cx, t, metric, field, t.contains_key("field"), filter)
    });
    let (group_by, group_by_names) = parse_group_by(cx, t);
    let window = window::parse_window(cx, t);
    let target = parse_target(cx, t);
    let direction = parse_direction(cx, t);
    if direction == Direction::AtLeast && target.is_some_and(|d| d.is_zero()) {
        cx.problem(
            "target",
            "0 is not allowed for an at_least goal: the target must be > 0",
        );
    }

    let milestones = parse_milestones(cx, t, direction);
    let grace = if t.contains_key("grace") {
        cx.duration(t, "grace", "")
    } else {
        Some(Duration::ZERO)
    };
    let max_groups = parse_cap(cx, t, "max_groups", DEFAULT_MAX_GROUPS, MAX_MAX_GROUPS);
    if let Some(m) = metric.filter(|m| *m != Metric::CountDistinct) {
        if t.contains_key("max_distinct") {
            cx.problem(
                "max_distinct",
                format!("only allowed with metric = \"count_distinct\", not `{m}`"),
            );
        }
    }
    let max_distinct = parse_cap(
        cx,
        t,
        "max_distinct",
        DEFAULT_MAX_DISTINCT,
        MAX_MAX_DISTINCT,
    );
    let pace = lookahead::parse_pace(cx, t);
    let status = lookahead::parse_status(cx, t, metric, window.as_ref());
    let roster = lookahead::parse_roster(cx, t, roster_names);

    let thresholds: Option<Vec<Decimal>> =
        target.and_then(|target| milestones.iter().map(|m| m.checked_mul(target)).collect());
    if target.is_some() && thresholds.is_none() {
        cx.problem(
            "target",
            "target x milestone exceeds the decimal range (about 7.9e28): use a smaller target",
        );
    }
    if cx.problems.len() > before {
        return None;
    }
    Some(Goal {
        id: Arc::from(id?),
        description,
        measure: measure?,
        group_by,
        group_by_names,
        window: window?,
        target: target?,
        direction,
        milestones,
        thresholds: thresholds?,
        grace: grace?,
        max_groups: max_groups?,
        max_distinct: max_distinct?,
        pace,
        status,
        roster,
    })
}

fn parse_id<'a>(cx: &mut Ctx, t: &'a Table) -> Option<&'a str> {
    match t.get("id") {
        None => {
            cx.problem("id", "missing: every goal needs a unique, non-empty id");
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            cx.problem("id", "empty: every goal needs a unique, non-empty id");
            None
        }
        Some(_) => cx.string(t, "id", ""),
    }
}

/// The target, a number >= 0.
fn parse_target(cx: &mut Ctx, t: &Table) -> Option<Decimal> {
    match t.get("target") {
        None => {
            cx.problem(
                "target",
                "missing: give the target value as a number, e.g. target = 400000",
            );
            None
        }
        Some(v) => match number(v) {
            Ok(d) if d.is_sign_negative() && !d.is_zero() => {
                cx.problem(
                    "target",
                    format!("{d} is negative: the target must be >= 0"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                cx.problem("target", e);
                None
            }
        },
    }
}

/// The direction, `at_least` when absent or after a problem.
fn parse_direction(cx: &mut Ctx, t: &Table) -> Direction {
    match cx.string(t, "direction", "") {
        None => Direction::AtLeast,
        Some("at_least") => Direction::AtLeast,
        Some("at_most") => Direction::AtMost,
        Some(other) => {
            cx.problem(
                "direction",
                format!("`{other}` is not a direction; allowed: at_least (default), at_most"),
            );
            Direction::AtLeast
        }
    }
}

/// An optional integer cap in 1..=`max`, `default` when absent.
fn parse_cap(cx: &mut Ctx, t: &Table, key: &str, default: usize, max: usize) -> Option<usize> {
    match t.get(key) {
        None => Some(default),
        Some(Value::Integer(n)) if *n >= 1 && *n as u64 <= max as u64 => Some(*n as usize),
        Some(other) => {
            cx.problem(
                key,
                format!(
                    "expected an integer from 1 to {max} (default {default}), found {}",
                    value_text(other)
                ),
            );
            None
        }
    }
}

fn parse_group_by(cx: &mut Ctx, t: &Table) -> (Vec<FieldRef>, Vec<Arc<str>>) {
    let mut fields = Vec::new();
    let mut names = Vec::new();
    match t.get("group_by") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(name) => group_field(cx, name, &mut fields, &mut names),
                    other => cx.problem(
                        "group_by",
                        format!("list items must be strings, found {}", type_name(other)),
                    ),
                }
            }
        }
        Some(other) => cx.problem(
            "group_by",
            format!(
                "expected a list of field names, e.g. [\"region\"], found {}",
                type_name(other)
            ),
        ),
    }
    (fields, names)
}

/// Adds one `group_by` name, or reports why it cannot be grouped by.
fn group_field(cx: &mut Ctx, name: &str, fields: &mut Vec<FieldRef>, names: &mut Vec<Arc<str>>) {
    match FieldRef::parse(name) {
        Some(f) if f.is_text() => {
            if names.iter().any(|n| &**n == name) {
                cx.problem("group_by", format!("`{name}` is listed twice"));
            }
            fields.push(f);
            names.push(Arc::from(name));
        }
        Some(_) => cx.problem(
            "group_by",
            "`amount` cannot be grouped by; group by text fields or attributes.KEY",
        ),
        None => cx.problem(
            "group_by",
            format!("`{name}` is not a field; allowed: {FIELD_NAMES_HELP}"),
        ),
    }
}

fn parse_milestones(cx: &mut Ctx, t: &Table, direction: Direction) -> Vec<Decimal> {
    let Some(v) = t.get("milestones") else {
        return match direction {
            Direction::AtLeast => vec![Decimal::ONE],
            Direction::AtMost => Vec::new(),
        };
    };
    if direction == Direction::AtMost {
        cx.problem(
            "milestones",
            "not allowed on an at_most goal: it reports `breached` when the value goes above the target",
        );
        return Vec::new();
    }
    let Value::Array(items) = v else {
        cx.problem(
            "milestones",
            format!(
                "expected a list of fractions of the target, e.g. [0.5, 1.0], found {}",
                type_name(v)
            ),
        );
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_MILESTONES {
        cx.problem(
            "milestones",
            format!("give between 1 and {MAX_MILESTONES} fractions of the target, e.g. [0.5, 1.0]"),
        );
        return Vec::new();
    }
    let mut out: Vec<Decimal> = Vec::new();
    for item in items {
        match number(item) {
            Ok(m) if m > Decimal::ZERO => {
                if let Some(prev) = out.last().filter(|prev| m <= **prev) {
                    cx.problem(
                        "milestones",
                        format!("{m} after {prev}: milestones must be strictly ascending"),
                    );
                }
                out.push(m.normalize());
            }
            Ok(m) => cx.problem(
                "milestones",
                format!("{m} is not allowed: each milestone must be > 0"),
            ),
            Err(e) => cx.problem("milestones", e),
        }
    }
    out
}
