//! A goal's `window` table: exactly one of tumbling, hopping or calendar, with only the keys that
//! kind uses.

use toml::{Table, Value};

use super::ctx::{type_name, Ctx};
use crate::window::{WindowError, WindowSpec};

const WINDOW_KEYS: &[&str] = &[
    "tumbling",
    "hopping",
    "every",
    "calendar",
    "timezone",
    "week_start",
    "fiscal_year_start_month",
];

pub(super) fn parse_window(cx: &mut Ctx, t: &Table) -> Option<WindowSpec> {
    let w = match t.get("window") {
        None => {
            cx.problem(
                "window",
                "missing: give { tumbling = \"7d\" }, { hopping = \"30d\", every = \"1d\" } or { calendar = \"month\", timezone = \"UTC\" }",
            );
            return None;
        }
        Some(Value::Table(w)) => w,
        Some(other) => {
            cx.problem(
                "window",
                format!("expected a table, found {}", type_name(other)),
            );
            return None;
        }
    };
    cx.unknown_keys(w, WINDOW_KEYS, "window.");
    let kinds: Vec<&str> = ["tumbling", "hopping", "calendar"]
        .into_iter()
        .filter(|k| w.contains_key(*k))
        .collect();
    if kinds.len() != 1 {
        cx.problem(
            "window",
            format!(
                "give exactly one of tumbling, hopping or calendar (found {})",
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            ),
        );
        return None;
    }
    let spec = match kinds[0] {
        "tumbling" => {
            only(cx, w, &[], "tumbling");
            let size = cx.duration(w, "tumbling", "window.")?;
            WindowSpec::tumbling(size)
        }
        "hopping" => parse_hopping(cx, w)?,
        _ => parse_calendar(cx, w)?,
    };
    match spec {
        Ok(spec) => Some(spec),
        Err(e) => {
            cx.problem(error_key(&e, w), e.to_string());
            None
        }
    }
}

/// Reports each optional window key present in `w` that `kind` windows do not use.
fn only(cx: &mut Ctx, w: &Table, allowed: &[&str], kind: &str) {
    for key in ["every", "timezone", "week_start", "fiscal_year_start_month"] {
        if w.contains_key(key) && !allowed.contains(&key) {
            cx.problem(
                &format!("window.{key}"),
                format!("not used by {kind} windows"),
            );
        }
    }
}

/// `None` after a problem with the keys; `Some(Err)` when `WindowSpec` rejects the values.
fn parse_hopping(cx: &mut Ctx, w: &Table) -> Option<Result<WindowSpec, WindowError>> {
    only(cx, w, &["every"], "hopping");
    let size = cx.duration(w, "hopping", "window.")?;
    if !w.contains_key("every") {
        cx.problem(
            "window.every",
            "missing: hopping windows need `every`, e.g. every = \"1d\"",
        );
        return None;
    }
    let every = cx.duration(w, "every", "window.")?;
    Some(WindowSpec::hopping(size, every))
}

/// `None` after a problem with the keys; `Some(Err)` when `WindowSpec` rejects the values.
fn parse_calendar(cx: &mut Ctx, w: &Table) -> Option<Result<WindowSpec, WindowError>> {
    let unit = cx.string(w, "calendar", "window.")?;
    match unit {
        "week" => only(cx, w, &["timezone", "week_start"], "calendar week"),
        "quarter" | "year" => only(
            cx,
            w,
            &["timezone", "fiscal_year_start_month"],
            "calendar quarter and year",
        ),
        _ => only(cx, w, &["timezone"], &format!("calendar `{unit}`")),
    }
    let tz = cx.string(w, "timezone", "window.");
    let week_start = cx.string(w, "week_start", "window.");
    let fsm = match w.get("fiscal_year_start_month") {
        None => None,
        Some(Value::Integer(n)) => Some(*n),
        Some(other) => {
            cx.problem(
                "window.fiscal_year_start_month",
                format!(
                    "expected an integer month 1..12, found {}",
                    type_name(other)
                ),
            );
            return None;
        }
    };
    Some(WindowSpec::calendar(unit, tz, week_start, fsm))
}

/// The key a rejected window value is reported under.
fn error_key(e: &WindowError, w: &Table) -> &'static str {
    match e {
        WindowError::ZeroSize | WindowError::NegativeSize(_) => {
            if w.contains_key("hopping") {
                "window.hopping"
            } else {
                "window.tumbling"
            }
        }
        WindowError::ZeroEvery
        | WindowError::NegativeEvery(_)
        | WindowError::EveryTooLarge { .. }
        | WindowError::TooManyHops { .. } => "window.every",
        WindowError::UnknownTimezone(_) => "window.timezone",
        WindowError::UnknownWeekday(_) => "window.week_start",
        WindowError::FiscalMonth(_) => "window.fiscal_year_start_month",
        WindowError::UnknownUnit(_) => "window.calendar",
    }
}
