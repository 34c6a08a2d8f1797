//! Short human descriptions of window specifications.

use chrono::Weekday;

use super::{CalendarUnit, WindowSpec};
use crate::model::time::Duration;

impl WindowSpec {
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
