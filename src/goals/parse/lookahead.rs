//! A goal's look-ahead keys: `pace`, `status` and `roster`.

use std::sync::Arc;

use rust_decimal::Decimal;
use toml::{Table, Value};

use super::ctx::{number, type_name, Ctx};
use crate::goals::{Metric, Pace, StatusSpec};
use crate::model::Duration;
use crate::window::{TickSpec, WindowSpec};

const STATUS_KEYS: &[&str] = &["every", "tolerance", "for"];

/// The goal's `pace`, linear when absent or after a problem.
pub(super) fn parse_pace(cx: &mut Ctx, t: &Table) -> Pace {
    let Some(value) = t.get("pace") else {
        return Pace::Linear;
    };
    Pace::from_toml_value(value).unwrap_or_else(|e| {
        cx.problem("pace", e.to_string());
        Pace::Linear
    })
}

/// The goal's `status` table, `None` when absent or after a problem. `metric` and `window` are
/// the goal's, when they parsed.
pub(super) fn parse_status(
    cx: &mut Ctx,
    t: &Table,
    metric: Option<Metric>,
    window: Option<&WindowSpec>,
) -> Option<StatusSpec> {
    let st = match t.get("status")? {
        Value::Table(st) => st,
        other => {
            cx.problem(
                "status",
                format!(
                    "expected a table such as {{ every = \"1d\", tolerance = 0.1, for = \"2d\" }}, found {}",
                    type_name(other)
                ),
            );
            return None;
        }
    };
    if let Some(m) = metric.filter(|m| !accrues(*m)) {
        cx.problem(
            "status",
            format!(
                "`status` needs a metric that accrues over the window (count, sum, count_distinct), not `{m}`"
            ),
        );
    }
    cx.unknown_keys(st, STATUS_KEYS, "status.");
    let every = parse_every(cx, st, window);
    let tolerance = parse_tolerance(cx, st);
    let hold = if st.contains_key("for") {
        cx.duration(st, "for", "status.")
    } else {
        Some(Duration::ZERO)
    };
    Some(StatusSpec {
        every: every?,
        tolerance: tolerance?,
        hold: hold?,
    })
}

/// Whether a metric's value accrues over the window, so that a pace of the target applies.
fn accrues(metric: Metric) -> bool {
    matches!(metric, Metric::Count | Metric::Sum | Metric::CountDistinct)
}

/// `status.every`: required, > 0, at most a window long, and at most
/// [`MAX_TICKS_PER_WINDOW`](crate::window::MAX_TICKS_PER_WINDOW) ticks per window.
fn parse_every(cx: &mut Ctx, st: &Table, window: Option<&WindowSpec>) -> Option<Duration> {
    if !st.contains_key("every") {
        cx.problem(
            "status.every",
            "missing: give the interval between status evaluations, e.g. every = \"1d\"",
        );
        return None;
    }
    let every = cx.duration(st, "every", "status.")?;
    let checked = TickSpec::new(every).and_then(|tick| match window {
        Some(spec) => tick
            .check_window(spec)
            .and_then(|()| tick.check_count(spec)),
        None => Ok(()),
    });
    match checked {
        Ok(()) => Some(every),
        Err(e) => {
            cx.problem("status.every", e.to_string());
            None
        }
    }
}

/// `status.tolerance`: a number in `[0, 1]`, 0 when absent.
fn parse_tolerance(cx: &mut Ctx, st: &Table) -> Option<Decimal> {
    let Some(v) = st.get("tolerance") else {
        return Some(Decimal::ZERO);
    };
    match number(v) {
        Ok(d) if d >= Decimal::ZERO && d <= Decimal::ONE => Some(d.normalize()),
        Ok(d) => {
            cx.problem(
                "status.tolerance",
                format!("{d} is outside [0, 1]: the tolerance is a fraction of the expected value (default 0)"),
            );
            None
        }
        Err(e) => {
            cx.problem("status.tolerance", e);
            None
        }
    }
}

/// The goal's `roster`: the index of the `[rosters.NAME]` table it names among `names` (in name
/// order), `None` when absent or after a problem.
pub(super) fn parse_roster(cx: &mut Ctx, t: &Table, names: &[Arc<str>]) -> Option<usize> {
    let name = cx.string(t, "roster", "")?;
    if !has_group_by(t) {
        cx.problem("roster", "a roster lists groups: give the goal a group_by");
    }
    let index = names.iter().position(|n| &**n == name);
    if index.is_none() {
        let declared = if names.is_empty() {
            "the file declares no rosters".to_string()
        } else {
            format!("declared rosters: {}", names.join(", "))
        };
        cx.problem(
            "roster",
            format!("`{name}` names no [rosters.{name}] table; {declared}"),
        );
    }
    index
}

/// Whether the goal lists at least one `group_by` entry (whatever their problems).
fn has_group_by(t: &Table) -> bool {
    match t.get("group_by") {
        None => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}
