//! Properties of every kind of window over random instants and specs.

use super::*;
use chrono::{DateTime, Datelike, NaiveTime, Offset, TimeZone, Utc};

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
