//! Calendar periods in a time zone: which local period an instant falls in, and the UTC instants
//! at which periods (and other local wall-clock times) begin.
//!
//! A period begins at local midnight of its first date. When that midnight does not exist (a DST
//! gap) the period begins at the first instant after the gap; when it occurs twice it begins at
//! the earlier one.

use chrono::{Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;

use super::{CalendarSpec, CalendarUnit, Window};
use crate::model::time::Timestamp;

const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Larger than any UTC offset that has ever been in use (they stay within about ±16 hours).
const OFFSET_BOUND_SECS: i64 = 26 * 3_600;

/// The calendar window containing `t`.
pub(super) fn window_containing(spec: &CalendarSpec, t: Timestamp) -> Window {
    let tz = spec.timezone;
    let local = to_local(tz, t);
    let mut first = period_first(spec, local.date());
    let mut next = step(spec, first, 1);
    let mut start = period_start(tz, first);
    let mut end = period_start(tz, next);
    // The local date decides the period, except around a fall-back that crosses midnight, where
    // an instant can show a local date whose period has already ended (or not yet begun). Stepping
    // keeps the result a window that really contains `t`, so windows stay contiguous.
    for _ in 0..4 {
        if t < start && start > Timestamp::MIN {
            next = first;
            end = start;
            first = step(spec, first, -1);
            start = period_start(tz, first);
        } else if t >= end && end < Timestamp::MAX {
            first = next;
            start = end;
            next = step(spec, first, 1);
            end = period_start(tz, next);
        } else {
            break;
        }
    }
    Window { start, end }
}

/// The local wall-clock date-time of `t` in `tz`.
pub(super) fn to_local(tz: Tz, t: Timestamp) -> NaiveDateTime {
    let utc = t.to_datetime().naive_utc();
    let offset = tz.offset_from_utc_datetime(&utc).fix().local_minus_utc();
    utc.checked_add_signed(chrono::TimeDelta::seconds(i64::from(offset)))
        .unwrap_or(utc)
}

/// The first date of the period containing the local date `d`.
pub(super) fn period_first(spec: &CalendarSpec, d: NaiveDate) -> NaiveDate {
    match spec.unit {
        CalendarUnit::Day => d,
        CalendarUnit::Week => {
            let back = (d.weekday().num_days_from_monday() + 7
                - spec.week_start.num_days_from_monday())
                % 7;
            d - chrono::Days::new(u64::from(back))
        }
        CalendarUnit::Month => first_of(d.year(), d.month()),
        CalendarUnit::Quarter | CalendarUnit::Year => {
            let len = if spec.unit == CalendarUnit::Quarter {
                3
            } else {
                12
            };
            let fsm = spec.fiscal_year_start_month;
            // Months since the most recent fiscal-year start, then back to the period start.
            let since_fy = (d.month() + 12 - fsm) % 12;
            let back = since_fy % len;
            let (y, m) = add_months(d.year(), d.month(), -(back as i32));
            first_of(y, m)
        }
    }
}

/// The first date of the period `n` periods after (or before) the one starting at `first`.
fn step(spec: &CalendarSpec, first: NaiveDate, n: i32) -> NaiveDate {
    let days = |k: i64| {
        first
            .checked_add_signed(chrono::TimeDelta::days(k))
            .unwrap_or(first)
    };
    match spec.unit {
        CalendarUnit::Day => days(i64::from(n)),
        CalendarUnit::Week => days(7 * i64::from(n)),
        CalendarUnit::Month | CalendarUnit::Quarter | CalendarUnit::Year => {
            let len = match spec.unit {
                CalendarUnit::Month => 1,
                CalendarUnit::Quarter => 3,
                _ => 12,
            };
            let (y, m) = add_months(first.year(), first.month(), n * len);
            first_of(y, m)
        }
    }
}

fn add_months(year: i32, month: u32, delta: i32) -> (i32, u32) {
    let index = year * 12 + (month as i32 - 1) + delta;
    (index.div_euclid(12), index.rem_euclid(12) as u32 + 1)
}

fn first_of(year: i32, month: u32) -> NaiveDate {
    // Years reachable from an i64-nanosecond instant are far inside chrono's range.
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MIN)
}

/// The instant at which a period whose first date is `date` begins: local midnight, the end of
/// the DST gap if midnight is skipped, or the earlier midnight if it is repeated. Saturates at
/// the ends of the `Timestamp` range.
pub(super) fn period_start(tz: Tz, date: NaiveDate) -> Timestamp {
    local_instant(tz, date.and_time(NaiveTime::MIN))
}

/// The instant at which the local wall-clock time `local` occurs in `tz`: the end of the DST gap
/// if it is skipped, or its earlier occurrence if it is repeated. Saturates at the ends of the
/// `Timestamp` range.
pub(super) fn local_instant(tz: Tz, local: NaiveDateTime) -> Timestamp {
    let as_utc = local.and_utc();
    let local_secs = as_utc.timestamp();
    let subsec = i128::from(as_utc.timestamp_subsec_nanos());
    let (utc_secs, subsec) = match tz.offset_from_local_datetime(&local) {
        LocalResult::Single(o) => (local_secs - i64::from(o.fix().local_minus_utc()), subsec),
        LocalResult::Ambiguous(a, b) => {
            let a = local_secs - i64::from(a.fix().local_minus_utc());
            let b = local_secs - i64::from(b.fix().local_minus_utc());
            (a.min(b), subsec)
        }
        // Offsets change on whole seconds, so the gap ends on a whole second.
        LocalResult::None => (gap_end(tz, local_secs), 0),
    };
    let nanos = i128::from(utc_secs) * i128::from(NANOS_PER_SEC) + subsec;
    Timestamp::from_nanos(nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// Local wall-clock seconds (as if UTC) at the UTC second `utc_secs`.
fn local_secs_at(tz: Tz, utc_secs: i64) -> i64 {
    match chrono::DateTime::from_timestamp(utc_secs, 0) {
        Some(dt) => {
            let off = tz.offset_from_utc_datetime(&dt.naive_utc()).fix();
            utc_secs + i64::from(off.local_minus_utc())
        }
        None => utc_secs,
    }
}

/// The first UTC second whose local time is at or after `local_secs`, which lies in a gap.
///
/// Offsets are whole seconds and bounded, so the local clock is below `local_secs` at
/// `local_secs - OFFSET_BOUND_SECS` and at or above it at `local_secs + OFFSET_BOUND_SECS`.
/// Because `local_secs` itself never shows on the clock, the local clock can only cross it by
/// jumping over it, so the crossing the bisection finds is the end of the gap.
fn gap_end(tz: Tz, local_secs: i64) -> i64 {
    let mut lo = local_secs - OFFSET_BOUND_SECS; // local clock before the target
    let mut hi = local_secs + OFFSET_BOUND_SECS; // local clock at or after the target
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_secs_at(tz, mid) >= local_secs {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}
