//! Event-time windows: which windows an instant belongs to.
//!
//! Three kinds are supported:
//!
//! - **tumbling**: fixed-size windows aligned to the Unix epoch in UTC, `[k*size, (k+1)*size)`;
//! - **hopping**: windows of `size` starting at every multiple of `every` since the epoch;
//! - **calendar**: days, weeks, months, quarters or years that start at local midnight in a time
//!   zone (so a day is 23 or 25 hours long across a DST change), with a configurable first day of
//!   the week and first month of the fiscal year.
//!
//! [`WindowSpec::windows_for`] is on the hot path (once per event per goal): it does no allocation
//! beyond pushing into the caller's vector, tumbling and hopping are integer arithmetic, and a
//! calendar window costs a handful of time-zone offset lookups.

mod calendar;

use std::fmt;
use std::str::FromStr;

use chrono::Weekday;
use chrono_tz::Tz;
use thiserror::Error;

// `Window` is a plain time span, defined with the other time types so that `model` does not
// depend on this module.
pub use crate::model::time::Window;
use crate::model::time::{Duration, Timestamp};

/// The most windows a hopping spec may put one instant in (`ceil(size / every)`).
pub const MAX_HOPPING_WINDOWS: usize = 10_000;

/// The length of a calendar period.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CalendarUnit {
    /// From local midnight to the next local midnight.
    Day,
    /// Seven days from the configured first day of the week.
    Week,
    /// From the first of a month.
    Month,
    /// Three months from a fiscal quarter start.
    Quarter,
    /// Twelve months from the fiscal year start.
    Year,
}

const UNIT_NAMES: &str = "day, week, month, quarter, year";
const WEEKDAY_NAMES: &str = "monday, tuesday, wednesday, thursday, friday, saturday, sunday";

impl CalendarUnit {
    /// The lowercase name, as accepted by [`FromStr`].
    pub fn as_str(&self) -> &'static str {
        match self {
            CalendarUnit::Day => "day",
            CalendarUnit::Week => "week",
            CalendarUnit::Month => "month",
            CalendarUnit::Quarter => "quarter",
            CalendarUnit::Year => "year",
        }
    }
}

impl fmt::Display for CalendarUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CalendarUnit {
    type Err = WindowError;

    /// Accepts `day`, `week`, `month`, `quarter` or `year`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            CalendarUnit::Day,
            CalendarUnit::Week,
            CalendarUnit::Month,
            CalendarUnit::Quarter,
            CalendarUnit::Year,
        ]
        .into_iter()
        .find(|u| u.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| WindowError::UnknownUnit(s.to_string()))
    }
}

/// Calendar periods in a time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarSpec {
    /// Period length.
    pub unit: CalendarUnit,
    /// Zone whose local midnight starts each period.
    pub timezone: Tz,
    /// First day of a week (used by [`CalendarUnit::Week`] only); default Monday.
    pub week_start: Weekday,
    /// First month (1..=12) of the fiscal year; default 1. Shifts quarters and years only.
    pub fiscal_year_start_month: u32,
}

/// How event time is cut into windows.
#[derive(Clone, Debug, PartialEq)]
pub enum WindowSpec {
    /// Fixed-size windows aligned to the Unix epoch in UTC: `[k*size, (k+1)*size)`.
    Tumbling {
        /// Window length (> 0).
        size: Duration,
    },
    /// Windows of `size` starting at every multiple of `every` since the epoch (UTC);
    /// `0 < every <= size`.
    Hopping {
        /// Window length.
        size: Duration,
        /// Distance between consecutive window starts.
        every: Duration,
    },
    /// Calendar periods starting at local midnight in a time zone.
    Calendar(CalendarSpec),
}

/// Why a window specification was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WindowError {
    /// A window size of zero.
    #[error("window size must be greater than zero (got 0s)")]
    ZeroSize,
    /// A negative window size.
    #[error("window size must be greater than zero (got {0})")]
    NegativeSize(Duration),
    /// A hop of zero.
    #[error("hopping `every` must be greater than zero (got 0s)")]
    ZeroEvery,
    /// A negative hop.
    #[error("hopping `every` must be greater than zero (got {0})")]
    NegativeEvery(Duration),
    /// A hop longer than the window, which would leave gaps between windows.
    #[error("hopping `every` ({every}) must not exceed the window size ({size})")]
    EveryTooLarge {
        /// The requested hop.
        every: Duration,
        /// The requested window size.
        size: Duration,
    },
    /// A hop so small relative to the size that each instant would be in too many windows.
    #[error(
        "hopping window size {size} every {every} puts each event in {count} windows; \
         at most {max} are allowed (use a larger `every`)",
        max = MAX_HOPPING_WINDOWS
    )]
    TooManyHops {
        /// The requested window size.
        size: Duration,
        /// The requested hop.
        every: Duration,
        /// `ceil(size / every)`.
        count: u64,
    },
    /// A time zone name that is not in the IANA database.
    #[error(
        "unknown time zone `{0}`: use an IANA name such as UTC, America/New_York or Europe/Berlin"
    )]
    UnknownTimezone(String),
    /// A weekday name that is not recognised.
    #[error("unknown weekday `{0}`: use one of {WEEKDAY_NAMES}")]
    UnknownWeekday(String),
    /// A fiscal year start month outside 1..=12.
    #[error("fiscal year start month must be 1 to 12 (1 = January), got {0}")]
    FiscalMonth(i64),
    /// A calendar unit that is not recognised.
    #[error("unknown calendar unit `{0}`: use one of {UNIT_NAMES}")]
    UnknownUnit(String),
}

/// Parses a weekday name, `monday` to `sunday`, in any case.
pub fn parse_weekday(s: &str) -> Result<Weekday, WindowError> {
    const DAYS: [(&str, Weekday); 7] = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];
    DAYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|&(_, day)| day)
        .ok_or_else(|| WindowError::UnknownWeekday(s.to_string()))
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn month_name(month: u32) -> &'static str {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    MONTHS
        .get((month as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("?")
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn window_at(start: i128, size: i128) -> Window {
    Window {
        start: Timestamp::from_nanos(clamp_i64(start)),
        end: Timestamp::from_nanos(clamp_i64(start + size)),
    }
}

impl WindowSpec {
    /// Tumbling windows of `size` (> 0).
    pub fn tumbling(size: Duration) -> Result<Self, WindowError> {
        check_size(size)?;
        Ok(WindowSpec::Tumbling { size })
    }

    /// Hopping windows of `size` starting every `every`; `0 < every <= size`, and each instant
    /// may be in at most [`MAX_HOPPING_WINDOWS`] windows.
    pub fn hopping(size: Duration, every: Duration) -> Result<Self, WindowError> {
        check_size(size)?;
        if every.is_zero() {
            return Err(WindowError::ZeroEvery);
        }
        if every.as_nanos() < 0 {
            return Err(WindowError::NegativeEvery(every));
        }
        if every > size {
            return Err(WindowError::EveryTooLarge { every, size });
        }
        let count = ceil_div(size.as_nanos(), every.as_nanos()) as u64;
        if count > MAX_HOPPING_WINDOWS as u64 {
            return Err(WindowError::TooManyHops { size, every, count });
        }
        Ok(WindowSpec::Hopping { size, every })
    }

    /// Calendar windows. `unit` is `day`, `week`, `month`, `quarter` or `year`; `timezone` is an
    /// IANA name (default `UTC`); `week_start` is a weekday name (default `monday`);
    /// `fiscal_year_start_month` is 1..=12 (default 1). All are validated whatever the unit.
    pub fn calendar(
        unit: &str,
        timezone: Option<&str>,
        week_start: Option<&str>,
        fiscal_year_start_month: Option<i64>,
    ) -> Result<Self, WindowError> {
        let unit: CalendarUnit = unit.parse()?;
        let timezone = match timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| WindowError::UnknownTimezone(name.to_string()))?,
        };
        let week_start = match week_start {
            None => Weekday::Mon,
            Some(name) => parse_weekday(name)?,
        };
        let fiscal_year_start_month = match fiscal_year_start_month {
            None => 1,
            Some(m @ 1..=12) => m as u32,
            Some(m) => return Err(WindowError::FiscalMonth(m)),
        };
        Ok(WindowSpec::Calendar(CalendarSpec {
            unit,
            timezone,
            week_start,
            fiscal_year_start_month,
        }))
    }

    /// Appends every window containing `t`, ascending by start. Tumbling and calendar specs
    /// append exactly one. Does not allocate except by pushing into `out`.
    ///
    /// Windows at the very ends of the `Timestamp` range are clamped to it.
    pub fn windows_for(&self, t: Timestamp, out: &mut Vec<Window>) {
        match self {
            WindowSpec::Tumbling { size } => {
                let size = i128::from(size.as_nanos().max(1));
                let t = i128::from(t.as_nanos());
                out.push(window_at(t.div_euclid(size) * size, size));
            }
            WindowSpec::Hopping { size, every } => {
                let size = i128::from(size.as_nanos().max(1));
                let every = i128::from(every.as_nanos().max(1));
                let t = i128::from(t.as_nanos());
                // Starts s = k*every with t - size < s <= t.
                let last = t.div_euclid(every);
                let first = (t - size).div_euclid(every) + 1;
                for k in first..=last {
                    out.push(window_at(k * every, size));
                }
            }
            WindowSpec::Calendar(spec) => out.push(calendar::window_containing(spec, t)),
        }
    }

    /// Upper bound on how many windows contain one instant: 1, or `ceil(size / every)` for
    /// hopping windows.
    pub fn max_windows_per_instant(&self) -> usize {
        match self {
            WindowSpec::Hopping { size, every } => {
                ceil_div(size.as_nanos(), every.as_nanos().max(1)).max(1) as usize
            }
            WindowSpec::Tumbling { .. } | WindowSpec::Calendar(_) => 1,
        }
    }

    /// Short human description, e.g. `tumbling 7d`, `hopping 30d every 1d`,
    /// `calendar quarter (America/New_York, fiscal year from April)`,
    /// `calendar week (UTC, weeks from sunday)`.
    pub fn describe(&self) -> String {
        match self {
            WindowSpec::Tumbling { size } => format!("tumbling {}", span(*size)),
            WindowSpec::Hopping { size, every } => {
                format!("hopping {} every {}", span(*size), span(*every))
            }
            WindowSpec::Calendar(spec) => {
                let mut s = format!("calendar {} ({}", spec.unit, spec.timezone.name());
                match spec.unit {
                    CalendarUnit::Week => {
                        s.push_str(", weeks from ");
                        s.push_str(weekday_name(spec.week_start));
                    }
                    CalendarUnit::Quarter | CalendarUnit::Year
                        if spec.fiscal_year_start_month != 1 =>
                    {
                        s.push_str(", fiscal year from ");
                        s.push_str(month_name(spec.fiscal_year_start_month));
                    }
                    _ => {}
                }
                s.push(')');
                s
            }
        }
    }
}

/// A duration as [`Duration`]'s `Display` writes it, except that whole weeks are written in
/// days (`7d`, not `1w`), as KPI windows are usually configured.
fn span(d: Duration) -> String {
    const NANOS_PER_DAY: i64 = 86_400_000_000_000;
    let text = d.to_string();
    if text.ends_with('w') {
        format!("{}d", d.as_nanos() / NANOS_PER_DAY)
    } else {
        text
    }
}

fn check_size(size: Duration) -> Result<(), WindowError> {
    if size.is_zero() {
        Err(WindowError::ZeroSize)
    } else if size.as_nanos() < 0 {
        Err(WindowError::NegativeSize(size))
    } else {
        Ok(())
    }
}

/// `ceil(a / b)` for `a >= 0`, `b > 0`.
fn ceil_div(a: i64, b: i64) -> i64 {
    let (a, b) = (i128::from(a), i128::from(b));
    ((a + b - 1) / b) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
    use proptest::prelude::*;

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

    // ---- tumbling and hopping ----

    #[test]
    fn tumbling_aligns_to_epoch_including_negative_instants() {
        let spec = WindowSpec::tumbling(Duration::from_nanos(10)).unwrap();
        assert_eq!(one(&spec, n(0)), nw(0, 10));
        assert_eq!(one(&spec, n(9)), nw(0, 10));
        assert_eq!(
            one(&spec, n(10)),
            nw(10, 20),
            "t == end belongs to the next window"
        );
        assert_eq!(one(&spec, n(-1)), nw(-10, 0));
        assert_eq!(one(&spec, n(-10)), nw(-10, 0));
        assert_eq!(one(&spec, n(-11)), nw(-20, -10));
        assert_eq!(spec.max_windows_per_instant(), 1);

        // 1970-01-01 was a Thursday, so epoch-aligned weeks run Thursday to Thursday.
        let week = WindowSpec::tumbling("7d".parse().unwrap()).unwrap();
        assert_eq!(
            one(&week, ts("2021-03-10T12:00:00Z")),
            w("2021-03-04T00:00:00Z", "2021-03-11T00:00:00Z")
        );
        assert_eq!(
            one(&week, ts("1969-12-31T23:59:59Z")),
            w("1969-12-25T00:00:00Z", "1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn tumbling_does_not_overflow_at_the_ends_of_the_range() {
        let spec = WindowSpec::tumbling(Duration::from_secs(7 * 86_400)).unwrap();
        for t in [
            Timestamp::MIN,
            Timestamp::MAX,
            n(i64::MIN + 1),
            n(i64::MAX - 1),
        ] {
            let win = one(&spec, t);
            assert!(win.start <= t && win.start <= win.end);
        }
    }

    #[test]
    fn hopping_lists_every_overlapping_window_in_order() {
        let spec = WindowSpec::hopping(Duration::from_nanos(10), Duration::from_nanos(3)).unwrap();
        assert_eq!(spec.max_windows_per_instant(), 4);
        assert_eq!(
            all(&spec, n(0)),
            vec![nw(-9, 1), nw(-6, 4), nw(-3, 7), nw(0, 10)]
        );
        // At t = 1 the window starting at -9 has just ended.
        assert_eq!(all(&spec, n(1)), vec![nw(-6, 4), nw(-3, 7), nw(0, 10)]);
        assert_eq!(all(&spec, n(-7)), vec![nw(-15, -5), nw(-12, -2), nw(-9, 1)]);
        // Windows ending at t do not contain it.
        assert_eq!(all(&spec, n(7)), vec![nw(-0, 10), nw(3, 13), nw(6, 16)]);
    }

    #[test]
    fn hopping_count_is_size_over_every_when_it_divides() {
        let spec = WindowSpec::hopping("30d".parse().unwrap(), "1d".parse().unwrap()).unwrap();
        assert_eq!(spec.max_windows_per_instant(), 30);
        for t in [
            ts("2021-03-14T07:00:00Z"),
            ts("2021-03-14T00:00:00Z"),
            ts("1969-07-20T20:17:40Z"),
            n(0),
            n(-1),
        ] {
            let out = all(&spec, t);
            assert_eq!(out.len(), 30, "{t}");
            assert!(out.iter().all(|win| win.contains(t)));
            assert!(out
                .windows(2)
                .all(|p| p[1].start.as_nanos() - p[0].start.as_nanos() == DAY));
            assert_eq!(
                out[29].start,
                one(&WindowSpec::tumbling("1d".parse().unwrap()).unwrap(), t).start
            );
        }
        // every == size is tumbling.
        let same = WindowSpec::hopping("1h".parse().unwrap(), "1h".parse().unwrap()).unwrap();
        let tumbling = WindowSpec::tumbling("1h".parse().unwrap()).unwrap();
        for t in [
            n(-1),
            n(0),
            n(HOUR),
            n(HOUR - 1),
            ts("2020-02-29T23:59:59Z"),
        ] {
            assert_eq!(all(&same, t), all(&tumbling, t));
        }
    }

    // ---- calendar ----

    #[test]
    fn calendar_day_in_new_york_across_dst() {
        let spec = cal("day", "America/New_York", None, None);
        let spring = one(&spec, ts("2021-03-14T12:00:00Z"));
        assert_eq!(spring, w("2021-03-14T05:00:00Z", "2021-03-15T04:00:00Z"));
        assert_eq!(len_hours(spring), 23.0);
        let fall = one(&spec, ts("2021-11-07T05:30:00Z"));
        assert_eq!(fall, w("2021-11-07T04:00:00Z", "2021-11-08T05:00:00Z"));
        assert_eq!(len_hours(fall), 25.0);
        // Both passes through the repeated 01:xx hour are in the same day.
        assert_eq!(one(&spec, ts("2021-11-07T01:30:00-04:00")), fall);
        assert_eq!(one(&spec, ts("2021-11-07T01:30:00-05:00")), fall);
        // An ordinary day; 23:59 local is still the same day (04:59Z the next UTC date).
        let plain = one(&spec, ts("2021-06-02T03:59:00Z"));
        assert_eq!(plain, w("2021-06-01T04:00:00Z", "2021-06-02T04:00:00Z"));
    }

    #[test]
    fn calendar_day_in_berlin_across_dst() {
        let spec = cal("day", "Europe/Berlin", None, None);
        let spring = one(&spec, ts("2021-03-28T12:00:00+02:00"));
        assert_eq!(spring, w("2021-03-27T23:00:00Z", "2021-03-28T22:00:00Z"));
        assert_eq!(len_hours(spring), 23.0);
        let fall = one(&spec, ts("2021-10-31T02:30:00+01:00"));
        assert_eq!(fall, w("2021-10-30T22:00:00Z", "2021-10-31T23:00:00Z"));
        assert_eq!(len_hours(fall), 25.0);
    }

    #[test]
    fn calendar_day_starts_after_a_midnight_gap() {
        // Sao Paulo skipped 2018-11-04 00:00-00:59 (-03 -> -02): the day starts at 01:00 local.
        let spec = cal("day", "America/Sao_Paulo", None, None);
        let gap_day = one(&spec, ts("2018-11-04T12:00:00Z"));
        assert_eq!(gap_day, w("2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z"));
        assert_eq!(len_hours(gap_day), 23.0);
        assert_eq!(
            one(&spec, ts("2018-11-04T02:59:59.999999999Z")),
            w("2018-11-03T03:00:00Z", "2018-11-04T03:00:00Z")
        );
        assert_eq!(one(&spec, ts("2018-11-04T03:00:00Z")), gap_day);
        // Fall back 2019-02-17 00:00 -02 -> 2019-02-16 23:00 -03: the 16th has 25 hours.
        let long_day = one(&spec, ts("2019-02-16T23:30:00-03:00"));
        assert_eq!(long_day, w("2019-02-16T02:00:00Z", "2019-02-17T03:00:00Z"));
        assert_eq!(one(&spec, ts("2019-02-16T23:30:00-02:00")), long_day);
        // A week starting on the gap day (a Sunday) starts at the gap's end too.
        let week = cal("week", "America/Sao_Paulo", Some("sunday"), None);
        let gap_week = one(&week, ts("2018-11-07T12:00:00Z"));
        assert_eq!(gap_week, w("2018-11-04T03:00:00Z", "2018-11-11T02:00:00Z"));
        assert_eq!(one(&week, ts("2018-11-04T02:59:59Z")).end, gap_week.start);
    }

    #[test]
    fn calendar_day_takes_the_earlier_of_a_repeated_midnight() {
        // Havana falls back from 01:00 -04 to 00:00 -05 on 2021-11-07, so midnight happens twice.
        let spec = cal("day", "America/Havana", None, None);
        let day = one(&spec, ts("2021-11-07T12:00:00Z"));
        assert_eq!(day, w("2021-11-07T04:00:00Z", "2021-11-08T05:00:00Z"));
        assert_eq!(one(&spec, ts("2021-11-07T00:30:00-04:00")), day);
        assert_eq!(one(&spec, ts("2021-11-07T00:30:00-05:00")), day);
        assert_eq!(
            one(&spec, ts("2021-11-07T03:59:59Z")),
            w("2021-11-06T04:00:00Z", "2021-11-07T04:00:00Z")
        );
        // ... and springs forward from 00:00 -05 to 01:00 -04 on 2021-03-14.
        assert_eq!(
            one(&spec, ts("2021-03-14T12:00:00Z")),
            w("2021-03-14T05:00:00Z", "2021-03-15T04:00:00Z")
        );
    }

    #[test]
    fn calendar_week_respects_week_start() {
        // 2021-03-10 is a Wednesday.
        let t = ts("2021-03-10T12:00:00Z");
        let monday = cal("week", "UTC", None, None);
        assert_eq!(
            one(&monday, t),
            w("2021-03-08T00:00:00Z", "2021-03-15T00:00:00Z")
        );
        let sunday = cal("week", "UTC", Some("sunday"), None);
        assert_eq!(
            one(&sunday, t),
            w("2021-03-07T00:00:00Z", "2021-03-14T00:00:00Z")
        );
        // On the start day itself, and in a zone crossing DST during the week (167 hours).
        let ny = cal("week", "America/New_York", Some("Sunday"), None);
        let dst_week = one(&ny, ts("2021-03-14T00:00:00-05:00"));
        assert_eq!(dst_week, w("2021-03-14T05:00:00Z", "2021-03-21T04:00:00Z"));
        assert_eq!(len_hours(dst_week), 167.0);
        assert_eq!(
            one(&ny, ts("2021-03-13T23:59:59-05:00")),
            w("2021-03-07T05:00:00Z", "2021-03-14T05:00:00Z")
        );
        let thursday = cal("week", "UTC", Some("THURSDAY"), None);
        assert_eq!(
            one(&thursday, t),
            w("2021-03-04T00:00:00Z", "2021-03-11T00:00:00Z")
        );
    }

    #[test]
    fn calendar_month() {
        let utc = cal("month", "UTC", None, None);
        assert_eq!(
            one(&utc, ts("2020-02-29T23:59:59Z")),
            w("2020-02-01T00:00:00Z", "2020-03-01T00:00:00Z")
        );
        assert_eq!(
            one(&utc, ts("2020-12-31T12:00:00Z")),
            w("2020-12-01T00:00:00Z", "2021-01-01T00:00:00Z")
        );
        // 2021-03-31T23:30Z is already April 1st in Berlin.
        let berlin = cal("month", "Europe/Berlin", None, None);
        assert_eq!(
            one(&berlin, ts("2021-03-31T23:30:00Z")),
            w("2021-03-31T22:00:00Z", "2021-04-30T22:00:00Z")
        );
        // The fiscal year start month does not shift months.
        let fiscal = cal("month", "UTC", None, Some(4));
        assert_eq!(
            one(&fiscal, ts("2020-02-10T00:00:00Z")),
            w("2020-02-01T00:00:00Z", "2020-03-01T00:00:00Z")
        );
    }

    #[test]
    fn calendar_quarter_with_fiscal_start() {
        let q = cal("quarter", "UTC", None, None);
        assert_eq!(
            one(&q, ts("2021-05-20T00:00:00Z")),
            w("2021-04-01T00:00:00Z", "2021-07-01T00:00:00Z")
        );
        assert_eq!(
            one(&q, ts("2021-12-31T23:59:59Z")),
            w("2021-10-01T00:00:00Z", "2022-01-01T00:00:00Z")
        );
        let kolkata = cal("quarter", "Asia/Kolkata", None, Some(4));
        assert_eq!(
            one(&kolkata, ts("2017-01-15T00:00:00Z")),
            w("2016-12-31T18:30:00Z", "2017-03-31T18:30:00Z")
        );
        assert_eq!(
            one(&kolkata, ts("2017-05-01T00:00:00+05:30")),
            w("2017-03-31T18:30:00Z", "2017-06-30T18:30:00Z")
        );
        // Quarters Nov, Feb, May, Aug.
        let nov = cal("quarter", "UTC", None, Some(11));
        assert_eq!(
            one(&nov, ts("2021-01-10T00:00:00Z")),
            w("2020-11-01T00:00:00Z", "2021-02-01T00:00:00Z")
        );
        assert_eq!(
            one(&nov, ts("2021-10-31T00:00:00Z")),
            w("2021-08-01T00:00:00Z", "2021-11-01T00:00:00Z")
        );
    }

    #[test]
    fn calendar_year_with_fiscal_start() {
        let fy = cal("year", "Asia/Kolkata", None, Some(4));
        assert_eq!(
            one(&fy, ts("2017-03-31T23:59:59+05:30")),
            w("2016-03-31T18:30:00Z", "2017-03-31T18:30:00Z")
        );
        let y = cal("year", "UTC", None, Some(1));
        assert_eq!(
            one(&y, ts("2020-07-01T00:00:00Z")),
            w("2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z")
        );
        let ny = cal("year", "America/New_York", None, None);
        assert_eq!(
            one(&ny, ts("2021-01-01T03:00:00Z")),
            w("2020-01-01T05:00:00Z", "2021-01-01T05:00:00Z")
        );
    }

    #[test]
    fn calendar_boundary_instant_starts_the_next_window() {
        let fy = cal("year", "Asia/Kolkata", None, Some(4));
        let boundary = ts("2017-04-01T00:00:00+05:30");
        let win = one(&fy, boundary);
        assert_eq!(win, w("2017-03-31T18:30:00Z", "2018-03-31T18:30:00Z"));
        assert_eq!(win.start, boundary);
        let before = one(&fy, n(boundary.as_nanos() - 1));
        assert_eq!(before.end, boundary);
        assert!(!before.contains(boundary) && win.contains(boundary));
    }

    #[test]
    fn calendar_days_are_contiguous_for_years_in_many_zones() {
        // Walk day by day for 12 years; each day starts at local midnight (or the end of a gap
        // over it) and lasts 24 hours give or take the zone's DST shift.
        for zone in [
            "UTC",
            "America/New_York",
            "Europe/Berlin",
            "Australia/Lord_Howe",
            "America/Sao_Paulo",
            "America/Havana",
            "Asia/Beirut",
            "Pacific/Chatham",
            "Pacific/Apia",
        ] {
            let tz: Tz = zone.parse().unwrap();
            let spec = cal("day", zone, None, None);
            let mut win = one(&spec, ts("2010-01-01T12:00:00Z"));
            for _ in 0..(12 * 366) {
                let next = one(&spec, win.end);
                assert_eq!(next.start, win.end, "{zone}");
                assert!(next.end > next.start, "{zone} {next}");
                let hours = len_hours(next);
                // Apia skipped 2011-12-30 entirely, so the 29th runs into the 31st.
                let allowed = (22.0..=26.0).contains(&hours)
                    || (zone == "Pacific/Apia" && next.start == ts("2011-12-30T10:00:00Z"));
                assert!(allowed, "{zone} {next} is {hours}h");
                let local = next.start.to_datetime().with_timezone(&tz);
                let before = n(next.start.as_nanos() - 1)
                    .to_datetime()
                    .with_timezone(&tz);
                assert!(before.date_naive() < local.date_naive(), "{zone} {next}");
                if local.time() != NaiveTime::MIN {
                    // Only when midnight was skipped: the offset changes right at the start.
                    assert_ne!(local.offset().fix(), before.offset().fix(), "{zone} {next}");
                }
                win = next;
            }
        }
    }

    // ---- parsing, errors, description ----

    #[test]
    fn parses_units_weekdays_and_defaults() {
        assert_eq!(
            "quarter".parse::<CalendarUnit>().unwrap(),
            CalendarUnit::Quarter
        );
        assert_eq!("Week".parse::<CalendarUnit>().unwrap(), CalendarUnit::Week);
        for unit in ["day", "week", "month", "quarter", "year"] {
            assert_eq!(unit.parse::<CalendarUnit>().unwrap().as_str(), unit);
        }
        assert_eq!(parse_weekday("sunday").unwrap(), Weekday::Sun);
        assert_eq!(parse_weekday("Saturday").unwrap(), Weekday::Sat);
        assert_eq!(parse_weekday("MONDAY").unwrap(), Weekday::Mon);
        assert!(parse_weekday("mon").is_err());
        assert_eq!(
            WindowSpec::calendar("day", None, None, None).unwrap(),
            WindowSpec::Calendar(CalendarSpec {
                unit: CalendarUnit::Day,
                timezone: Tz::UTC,
                week_start: Weekday::Mon,
                fiscal_year_start_month: 1,
            })
        );
    }

    #[test]
    fn rejects_bad_specs_naming_the_value() {
        let cases: Vec<(Result<WindowSpec, WindowError>, WindowError, &[&str])> = vec![
            (
                WindowSpec::calendar("day", Some("Mars/Olympus"), None, None),
                WindowError::UnknownTimezone("Mars/Olympus".into()),
                &["Mars/Olympus", "America/New_York"],
            ),
            (
                WindowSpec::calendar("quarter", None, None, Some(0)),
                WindowError::FiscalMonth(0),
                &["got 0", "1 to 12"],
            ),
            (
                WindowSpec::calendar("year", None, None, Some(13)),
                WindowError::FiscalMonth(13),
                &["got 13", "1 to 12"],
            ),
            (
                WindowSpec::calendar("week", None, Some("funday"), None),
                WindowError::UnknownWeekday("funday".into()),
                &["funday", "monday", "sunday"],
            ),
            (
                WindowSpec::calendar("fortnight", None, None, None),
                WindowError::UnknownUnit("fortnight".into()),
                &["fortnight", "day, week, month, quarter, year"],
            ),
            (
                WindowSpec::tumbling(Duration::ZERO),
                WindowError::ZeroSize,
                &["size", "0s"],
            ),
            (
                WindowSpec::hopping(Duration::ZERO, Duration::from_secs(1)),
                WindowError::ZeroSize,
                &["size", "0s"],
            ),
            (
                WindowSpec::hopping(Duration::from_secs(60), Duration::ZERO),
                WindowError::ZeroEvery,
                &["every", "0s"],
            ),
            (
                WindowSpec::hopping("1d".parse().unwrap(), "2d".parse().unwrap()),
                WindowError::EveryTooLarge {
                    every: "2d".parse().unwrap(),
                    size: "1d".parse().unwrap(),
                },
                &["(2d)", "(1d)"],
            ),
            (
                WindowSpec::tumbling(Duration::from_secs(-60)),
                WindowError::NegativeSize(Duration::from_secs(-60)),
                &["-1m"],
            ),
            (
                WindowSpec::hopping("365d".parse().unwrap(), "1m".parse().unwrap()),
                WindowError::TooManyHops {
                    size: "365d".parse().unwrap(),
                    every: "1m".parse().unwrap(),
                    count: 525_600,
                },
                &["365d", "1m", "525600", "10000"],
            ),
        ];
        for (got, want, words) in cases {
            let err = got.unwrap_err();
            assert_eq!(err, want);
            let msg = err.to_string();
            for word in words {
                assert!(msg.contains(word), "`{msg}` should mention `{word}`");
            }
        }
        assert!(WindowSpec::hopping("1d".parse().unwrap(), "1d".parse().unwrap()).is_ok());
    }

    #[test]
    fn describes_specs() {
        let d = |s: WindowSpec| s.describe();
        assert_eq!(
            d(WindowSpec::tumbling("7d".parse().unwrap()).unwrap()),
            "tumbling 7d"
        );
        assert_eq!(
            d(WindowSpec::hopping("30d".parse().unwrap(), "1d".parse().unwrap()).unwrap()),
            "hopping 30d every 1d"
        );
        assert_eq!(
            d(cal("quarter", "America/New_York", None, Some(4))),
            "calendar quarter (America/New_York, fiscal year from April)"
        );
        assert_eq!(
            d(cal("week", "UTC", Some("sunday"), None)),
            "calendar week (UTC, weeks from sunday)"
        );
        assert_eq!(
            d(WindowSpec::hopping("2w".parse().unwrap(), "90m".parse().unwrap()).unwrap()),
            "hopping 14d every 90m"
        );
        assert_eq!(
            d(WindowSpec::tumbling(Duration::from_millis(1500)).unwrap()),
            "tumbling 1500ms"
        );
        assert_eq!(d(cal("year", "UTC", None, Some(1))), "calendar year (UTC)");
        assert_eq!(
            d(cal("day", "Asia/Kolkata", Some("friday"), Some(7))),
            "calendar day (Asia/Kolkata)"
        );
    }

    // ---- properties ----

    const ZONES: [&str; 7] = [
        "UTC",
        "America/New_York",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "America/Sao_Paulo",
        "Pacific/Chatham",
    ];
    const UNITS: [&str; 5] = ["day", "week", "month", "quarter", "year"];
    const WEEKDAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];

    fn instant() -> impl Strategy<Value = Timestamp> {
        let lo = ts("1971-01-01T00:00:00Z").as_nanos();
        let hi = ts("2100-01-01T00:00:00Z").as_nanos();
        (lo..hi).prop_map(Timestamp::from_nanos)
    }

    fn calendar_spec() -> impl Strategy<Value = WindowSpec> {
        (
            proptest::sample::select(&UNITS[..]),
            proptest::sample::select(&ZONES[..]),
            proptest::sample::select(&WEEKDAYS[..]),
            1i64..=12,
        )
            .prop_map(|(unit, zone, day, fsm)| cal(unit, zone, Some(day), Some(fsm)))
    }

    /// Reference period start, by walking back one day at a time.
    fn reference_first(spec: &CalendarSpec, mut d: NaiveDate) -> NaiveDate {
        let is_first = |d: NaiveDate| match spec.unit {
            CalendarUnit::Day => true,
            CalendarUnit::Week => d.weekday() == spec.week_start,
            CalendarUnit::Month => d.day() == 1,
            CalendarUnit::Quarter => {
                d.day() == 1 && (d.month() + 12 - spec.fiscal_year_start_month) % 3 == 0
            }
            CalendarUnit::Year => d.day() == 1 && d.month() == spec.fiscal_year_start_month,
        };
        while !is_first(d) {
            d = d.pred_opt().unwrap();
        }
        d
    }

    fn local_date(tz: Tz, t: Timestamp) -> NaiveDate {
        DateTime::<Utc>::from_timestamp_nanos(t.as_nanos())
            .with_timezone(&tz)
            .date_naive()
    }

    /// Checks shared by tumbling and calendar specs: one window, containing `t`, which maps back
    /// to itself from its first and last instants, and is followed by a window starting at its end.
    fn check_single(spec: &WindowSpec, t: Timestamp) -> Result<Window, TestCaseError> {
        let out = all(spec, t);
        prop_assert_eq!(out.len(), 1);
        let win = out[0];
        prop_assert!(win.start < win.end, "{}", win);
        prop_assert!(win.contains(t), "{} does not contain {}", win, t);
        prop_assert_eq!(one(spec, win.start), win);
        prop_assert_eq!(one(spec, n(win.end.as_nanos() - 1)), win);
        let next = one(spec, win.end);
        prop_assert_eq!(next.start, win.end);
        prop_assert!(!next.contains(n(win.end.as_nanos() - 1)));
        Ok(win)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn tumbling_windows_tile_time(t in instant(), size in 1i64..(400 * DAY)) {
            let spec = WindowSpec::tumbling(Duration::from_nanos(size)).unwrap();
            let win = check_single(&spec, t)?;
            prop_assert_eq!(win.end.as_nanos() - win.start.as_nanos(), size);
            prop_assert_eq!(win.start.as_nanos().rem_euclid(size), 0);
        }

        #[test]
        fn tumbling_handles_negative_instants(t in any::<i64>(), size in 1i64..(400 * DAY)) {
            prop_assume!(t > i64::MIN + 400 * DAY && t < i64::MAX - 400 * DAY);
            let spec = WindowSpec::tumbling(Duration::from_nanos(size)).unwrap();
            check_single(&spec, n(t))?;
        }

        #[test]
        fn hopping_windows_are_exactly_those_containing_t(
            t in instant(),
            every in 1i64..(2 * DAY),
            hops in 1i64..40,
            extra in 0i64..(2 * DAY),
        ) {
            let size = every * hops + extra % every;
            let spec = WindowSpec::hopping(Duration::from_nanos(size), Duration::from_nanos(every)).unwrap();
            let out = all(&spec, t);
            let max = spec.max_windows_per_instant();
            prop_assert_eq!(max as i64, (size + every - 1) / every);
            prop_assert!(!out.is_empty() && out.len() <= max);
            if size % every == 0 {
                prop_assert_eq!(out.len() as i64, size / every);
            }
            for pair in out.windows(2) {
                prop_assert_eq!(pair[1].start.as_nanos() - pair[0].start.as_nanos(), every);
            }
            for win in &out {
                prop_assert!(win.contains(t));
                prop_assert!(win.start < win.end);
                prop_assert_eq!(win.start.as_nanos().rem_euclid(every), 0);
                prop_assert!(all(&spec, win.start).contains(win));
                prop_assert!(all(&spec, n(win.end.as_nanos() - 1)).contains(win));
                let after = all(&spec, win.end);
                prop_assert!(!after.contains(win));
                if size % every == 0 {
                    prop_assert!(after.iter().any(|a| a.start == win.end));
                }
            }
            // Nothing is missing: the windows just before the first and after the last miss t.
            let first = out[0].start.as_nanos() - every;
            let last = out[out.len() - 1].start.as_nanos() + every;
            prop_assert!(!nw(first, first + size).contains(t));
            prop_assert!(!nw(last, last + size).contains(t));
        }

        #[test]
        fn calendar_windows_match_local_periods(t in instant(), spec in calendar_spec()) {
            let win = check_single(&spec, t)?;
            let WindowSpec::Calendar(cs) = &spec else { unreachable!() };
            let tz = cs.timezone;
            let first = reference_first(cs, local_date(tz, t));
            // The window starts at the first instant whose local date reaches the period's first
            // date, and ends at the first instant of the next period.
            prop_assert_eq!(local_date(tz, win.start), first);
            prop_assert!(local_date(tz, n(win.start.as_nanos() - 1)) < first);
            let last = local_date(tz, n(win.end.as_nanos() - 1));
            prop_assert_eq!(reference_first(cs, last), first);
            prop_assert!(reference_first(cs, local_date(tz, win.end)) > first);
            let local_start = win.start.to_datetime().with_timezone(&tz);
            if local_start.time() != NaiveTime::MIN {
                let before = n(win.start.as_nanos() - 1).to_datetime().with_timezone(&tz);
                prop_assert_ne!(local_start.offset().fix(), before.offset().fix());
            }
            let midnight = tz.from_local_datetime(&first.and_time(NaiveTime::MIN)).earliest();
            if let Some(m) = midnight {
                prop_assert_eq!(Timestamp::from_datetime(&m).unwrap(), win.start);
            }
        }
    }
}
