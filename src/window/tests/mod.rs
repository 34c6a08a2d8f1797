//! Unit and property tests of window assignment, validation and description.

use super::*;
use crate::model::time::Timestamp;
use chrono::NaiveDate;
use proptest::prelude::*;

mod calendar;
mod fixed;
mod props;
mod spec;
mod ticks;

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn w(start: &str, end: &str) -> Window {
    Window {
        start: ts(start),
        end: ts(end),
    }
}

fn all(spec: &WindowSpec, t: Timestamp) -> Vec<Window> {
    let mut out = Vec::new();
    spec.windows_for(t, &mut out);
    out
}

fn one(spec: &WindowSpec, t: Timestamp) -> Window {
    let out = all(spec, t);
    assert_eq!(out.len(), 1, "{out:?}");
    out[0]
}

fn cal(unit: &str, tz: &str, week_start: Option<&str>, fsm: Option<i64>) -> WindowSpec {
    WindowSpec::calendar(unit, Some(tz), week_start, fsm).unwrap()
}

fn n(x: i64) -> Timestamp {
    Timestamp::from_nanos(x)
}

fn nw(start: i64, end: i64) -> Window {
    Window {
        start: n(start),
        end: n(end),
    }
}

fn len_hours(win: Window) -> f64 {
    (win.end.as_nanos() - win.start.as_nanos()) as f64 / HOUR as f64
}
