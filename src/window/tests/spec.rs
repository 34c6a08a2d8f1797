//! Parsing, errors and descriptions of specs.

use super::*;

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
