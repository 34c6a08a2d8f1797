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
//!
//! The types are here; `spec.rs` builds and validates them, `assign.rs` assigns windows (the hot
//! path), `describe.rs` writes them for people and `calendar.rs` does the calendar arithmetic.

mod assign;
mod calendar;
mod describe;
mod spec;
mod ticks;

use std::fmt;
use std::str::FromStr;

use chrono::Weekday;
use chrono_tz::Tz;

// `Window` is a plain time span, defined with the other time types so that `model` does not
// depend on this module.
use crate::model::time::Duration;
pub use crate::model::time::Window;

pub use spec::{parse_weekday, WindowError};
pub use ticks::{elapsed_fraction, ticks, TickError, TickSpec, MAX_TICKS_PER_WINDOW};

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

#[cfg(test)]
mod tests;
