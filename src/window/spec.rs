//! Building and validating window specifications.

use chrono::Weekday;
use chrono_tz::Tz;
use thiserror::Error;

use super::assign::ceil_div;
use super::{CalendarSpec, CalendarUnit, WindowSpec, MAX_HOPPING_WINDOWS};
use crate::model::time::Duration;

const UNIT_NAMES: &str = "day, week, month, quarter, year";
const WEEKDAY_NAMES: &str = "monday, tuesday, wednesday, thursday, friday, saturday, sunday";

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
