//! Status ticks: the instants inside a window at which a group's status is evaluated, and how far
//! through its window each one is. The building block for issue 15's status evaluation
//! (`status = { every = ... }`); not yet used by the runtimes.
//!
//! The ticks of a window are the instants of its tick grid that lie strictly inside
//! `(start, end)`: the window's start is not a tick (nothing has happened yet) and its end is not
//! one either (the window's final is judged there).
//!
//! - **Tumbling and hopping windows** (UTC): `start + k * every` for `k >= 1`.
//! - **Calendar windows**: local wall-clock times `anchor + k * every` in the window's time zone,
//!   where `anchor` is local midnight of the window's first date, or, when `every` is a whole
//!   number of weeks, local midnight of the first day of the calendar week (the spec's
//!   `week_start`) containing that date. So `"1d"` ticks at every local midnight (23 or 25 hours
//!   apart across a DST change), `"1w"` at every local week start and `"6h"` at local 06:00,
//!   12:00 and 18:00 of each day.
//!
//! A local time is turned into an instant by the rule calendar windows use for their starts: a
//! local time skipped by a DST gap becomes the first instant after the gap, and a local time that
//! occurs twice becomes its earlier occurrence. Several grid times that fall into one gap
//! therefore give a single tick at the gap's end, and ticks stay strictly increasing.

use chrono::{NaiveDateTime, NaiveTime, TimeDelta};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use thiserror::Error;

use super::calendar::{local_instant, period_first, to_local};
use super::{CalendarSpec, CalendarUnit, Window, WindowSpec};
use crate::model::time::{Duration, Timestamp};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
const NANOS_PER_WEEK: i64 = 7 * NANOS_PER_DAY;

/// Most ticks one window may have: a goal's `status.every` giving more for its windows is refused,
/// which bounds the per-window work and state of status evaluation.
pub const MAX_TICKS_PER_WINDOW: usize = 10_000;

/// Decimal places of an [`elapsed_fraction`]: the most a [`Decimal`] holds.
const FRACTION_SCALE: u32 = 28;

/// Why a status tick interval was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TickError {
    /// A tick interval of zero.
    #[error("status `every` must be greater than zero (got 0s)")]
    ZeroEvery,
    /// A negative tick interval.
    #[error("status `every` must be greater than zero (got {0})")]
    NegativeEvery(Duration),
    /// A tick interval longer than a tumbling or hopping window.
    #[error("status `every` ({every}) must not exceed the window size ({size})")]
    LongerThanWindow {
        /// The requested tick interval.
        every: Duration,
        /// The window size.
        size: Duration,
    },
    /// A tick interval longer than the shortest window of a calendar unit.
    #[error(
        "status `every` ({every}) must not exceed {shortest_days}d, the wall-clock length of \
         the shortest calendar {unit}"
    )]
    LongerThanCalendarWindow {
        /// The requested tick interval.
        every: Duration,
        /// The calendar unit of the windows.
        unit: CalendarUnit,
        /// Local days in the unit's shortest period (e.g. 28 for a month).
        shortest_days: i64,
    },
    /// A tick interval that gives a window more than [`MAX_TICKS_PER_WINDOW`] ticks.
    #[error(
        "status `every` ({every}) gives up to {ticks} ticks per window, over the limit of \
         {limit}: use a longer `every`"
    )]
    TooManyTicks {
        /// The requested tick interval.
        every: Duration,
        /// The most ticks one window would have.
        ticks: u64,
        /// [`MAX_TICKS_PER_WINDOW`].
        limit: usize,
    },
}

/// How often a group's status is evaluated within a window: every `every` of event time, in the
/// window's time zone for calendar windows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TickSpec {
    every: Duration,
}

impl TickSpec {
    /// A tick every `every` (> 0). Whether it fits a window is checked by
    /// [`check_window`](Self::check_window).
    pub fn new(every: Duration) -> Result<Self, TickError> {
        if every.is_zero() {
            return Err(TickError::ZeroEvery);
        }
        if every.as_nanos() < 0 {
            return Err(TickError::NegativeEvery(every));
        }
        Ok(TickSpec { every })
    }

    /// The interval between ticks.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Checks that `every` is at most the window size: the size of a tumbling or hopping window,
    /// or for calendar windows the wall-clock length of the unit's shortest period (1d, 7d, 28d,
    /// 89d for a quarter, 365d). An interval equal to the size is accepted and gives no ticks.
    pub fn check_window(&self, spec: &WindowSpec) -> Result<(), TickError> {
        let every = self.every;
        match spec {
            WindowSpec::Tumbling { size } | WindowSpec::Hopping { size, .. } => {
                if every > *size {
                    return Err(TickError::LongerThanWindow { every, size: *size });
                }
            }
            WindowSpec::Calendar(cal) => {
                let shortest_days = shortest_days(cal.unit);
                if every.as_nanos() > shortest_days * NANOS_PER_DAY {
                    let unit = cal.unit;
                    return Err(TickError::LongerThanCalendarWindow {
                        every,
                        unit,
                        shortest_days,
                    });
                }
            }
        }
        Ok(())
    }
}

impl TickSpec {
    /// Checks that no window of `spec` gets more than [`MAX_TICKS_PER_WINDOW`] ticks, counting
    /// for calendar windows the unit's longest period with every day 25 hours long (the worst
    /// case across a DST change).
    pub fn check_count(&self, spec: &WindowSpec) -> Result<(), TickError> {
        let ticks = self.max_ticks(spec);
        if ticks > MAX_TICKS_PER_WINDOW as u64 {
            return Err(TickError::TooManyTicks {
                every: self.every,
                ticks,
                limit: MAX_TICKS_PER_WINDOW,
            });
        }
        Ok(())
    }

    /// An upper bound on the ticks of one window of `spec`: the grid points strictly inside a
    /// window of the longest length.
    fn max_ticks(&self, spec: &WindowSpec) -> u64 {
        let step = i128::from(self.every.as_nanos().max(1));
        let longest = match spec {
            WindowSpec::Tumbling { size } | WindowSpec::Hopping { size, .. } => {
                i128::from(size.as_nanos())
            }
            WindowSpec::Calendar(cal) => {
                i128::from(longest_days(cal.unit)) * i128::from(NANOS_PER_DAY / 24 * 25)
            }
        };
        u64::try_from((longest - 1).max(0) / step).unwrap_or(u64::MAX)
    }
}

/// Local days in the longest period of `unit` (for a quarter: July to September).
fn longest_days(unit: CalendarUnit) -> i64 {
    match unit {
        CalendarUnit::Day => 1,
        CalendarUnit::Week => 7,
        CalendarUnit::Month => 31,
        CalendarUnit::Quarter => 92,
        CalendarUnit::Year => 366,
    }
}

/// Local days in the shortest period of `unit` (for a quarter: February to April).
fn shortest_days(unit: CalendarUnit) -> i64 {
    match unit {
        CalendarUnit::Day => 1,
        CalendarUnit::Week => 7,
        CalendarUnit::Month => 28,
        CalendarUnit::Quarter => 89,
        CalendarUnit::Year => 365,
    }
}

/// The ticks of `window`, a window of `spec`, ascending: the instants of the tick grid strictly
/// inside `(start, end)` (see the module documentation for the grid). Lazy; the window's start
/// and end are never ticks, and a window no longer than `every` has none.
pub fn ticks(
    spec: &WindowSpec,
    window: &Window,
    every: &TickSpec,
) -> impl Iterator<Item = Timestamp> {
    let step = every.every.as_nanos();
    let grid = match spec {
        WindowSpec::Tumbling { .. } | WindowSpec::Hopping { .. } => Grid::Fixed {
            start: window.start,
            step,
        },
        WindowSpec::Calendar(cal) => Grid::Local {
            tz: cal.timezone,
            anchor: local_anchor(cal, window.start, step),
            step,
        },
    };
    Ticks {
        grid,
        k: 0,
        last: window.start,
        end: window.end,
    }
}

/// Local midnight of the window's first date, or of the first day of its week when `step` is a
/// whole number of weeks.
fn local_anchor(cal: &CalendarSpec, start: Timestamp, step: i64) -> NaiveDateTime {
    let first = to_local(cal.timezone, start).date();
    let date = if step % NANOS_PER_WEEK == 0 {
        let week = CalendarSpec {
            unit: CalendarUnit::Week,
            ..cal.clone()
        };
        period_first(&week, first)
    } else {
        first
    };
    date.and_time(NaiveTime::MIN)
}

/// Grid point `k` of a window's ticks.
enum Grid {
    /// `start + k * step` nanoseconds.
    Fixed { start: Timestamp, step: i64 },
    /// Local wall-clock time `anchor + k * step` in `tz`.
    Local {
        tz: Tz,
        anchor: NaiveDateTime,
        step: i64,
    },
}

impl Grid {
    /// The instant of grid point `k`; `None` beyond the representable range.
    fn at(&self, k: i64) -> Option<Timestamp> {
        match *self {
            Grid::Fixed { start, step } => {
                let t = i128::from(start.as_nanos()) + i128::from(k) * i128::from(step);
                i64::try_from(t).ok().map(Timestamp::from_nanos)
            }
            Grid::Local { tz, anchor, step } => {
                let offset = TimeDelta::nanoseconds(k.checked_mul(step)?);
                Some(local_instant(tz, anchor.checked_add_signed(offset)?))
            }
        }
    }

    /// The first grid point after `t` on the grid's own clock (UTC, or local wall-clock time).
    fn index_after(&self, t: Timestamp) -> Option<i64> {
        let (elapsed, step) = match *self {
            Grid::Fixed { start, step } => (
                i128::from(t.as_nanos()) - i128::from(start.as_nanos()),
                step,
            ),
            Grid::Local { tz, anchor, step } => {
                let since = (to_local(tz, t) - anchor).num_nanoseconds()?;
                (i128::from(since), step)
            }
        };
        i64::try_from(elapsed.div_euclid(i128::from(step)) + 1).ok()
    }
}

/// The iterator behind [`ticks`].
struct Ticks {
    grid: Grid,
    /// Next grid point to try.
    k: i64,
    /// The last tick returned, or the window's start.
    last: Timestamp,
    end: Timestamp,
}

impl Iterator for Ticks {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        loop {
            let t = self.grid.at(self.k).filter(|t| *t < self.end);
            let Some(t) = t else {
                // Past the window: stay exhausted.
                self.k = i64::MAX;
                self.last = self.end;
                return None;
            };
            if t > self.last {
                self.last = t;
                self.k = self.k.saturating_add(1);
                return Some(t);
            }
            // Grid point `k` is not after the last tick (it is the window's start or before it,
            // or it fell into a DST gap that ends at the last tick): go on from the first grid
            // point after the last tick's clock reading, never backwards.
            let after = self.grid.index_after(self.last).unwrap_or(i64::MAX);
            self.k = after.max(self.k.saturating_add(1));
        }
    }
}

/// How far through `window` the instant `tick` is, in real elapsed time:
/// `(tick - start) / (end - start)`, with `tick` clamped into `[start, end]`, so 0 at the start
/// and 1 at the end (and 1 for an empty window). The exact quotient is rounded towards zero to
/// 28 decimal places, an error below 10^-28, while one nanosecond is more than 10^-19 of any
/// window: distinct instants give distinct fractions in the same order.
pub fn elapsed_fraction(window: &Window, tick: Timestamp) -> Decimal {
    let start = i128::from(window.start.as_nanos());
    let end = i128::from(window.end.as_nanos());
    if end <= start {
        return Decimal::ONE;
    }
    let t = i128::from(tick.as_nanos()).clamp(start, end);
    truncated_quotient(t - start, end - start)
}

/// `num / den` for `0 <= num <= den`, `0 < den < 2^65`, rounded towards zero to
/// [`FRACTION_SCALE`] decimal places by long division.
fn truncated_quotient(num: i128, den: i128) -> Decimal {
    let mut mantissa = num / den;
    let mut rem = num % den;
    for _ in 0..FRACTION_SCALE {
        rem *= 10;
        mantissa = mantissa * 10 + rem / den;
        rem %= den;
    }
    // At most 10^28, within the 96-bit mantissa.
    Decimal::try_from_i128_with_scale(mantissa, FRACTION_SCALE)
        .map(|d| d.normalize())
        .unwrap_or(Decimal::ONE)
}
