//! Status ticks: validation, fixed and calendar grids across DST changes, elapsed fractions.

use super::*;
use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use rust_decimal::Decimal;

fn every(text: &str) -> TickSpec {
    TickSpec::new(text.parse().unwrap()).unwrap()
}

fn tick_list(spec: &WindowSpec, win: Window, e: &str) -> Vec<Timestamp> {
    ticks(spec, &win, &every(e)).collect()
}

fn rfc(v: &[Timestamp]) -> Vec<String> {
    v.iter().map(|t| t.to_rfc3339()).collect()
}

fn check_err(spec: &WindowSpec, e: &str) -> String {
    every(e).check_window(spec).unwrap_err().to_string()
}

#[test]
fn tick_spec_rejects_zero_and_negative() {
    assert_eq!(TickSpec::new(Duration::ZERO), Err(TickError::ZeroEvery));
    assert_eq!(
        TickSpec::new(Duration::ZERO).unwrap_err().to_string(),
        "status `every` must be greater than zero (got 0s)"
    );
    assert_eq!(
        TickSpec::new(Duration::from_secs(-5))
            .unwrap_err()
            .to_string(),
        "status `every` must be greater than zero (got -5s)"
    );
    assert_eq!(every("6h").every(), Duration::from_secs(6 * 3_600));
}

#[test]
fn every_must_fit_the_window() {
    let day = WindowSpec::tumbling("1d".parse().unwrap()).unwrap();
    assert!(every("1d").check_window(&day).is_ok());
    assert!(every("1ms").check_window(&day).is_ok());
    assert_eq!(
        check_err(&day, "25h"),
        "status `every` (25h) must not exceed the window size (1d)"
    );
    let hop = WindowSpec::hopping("7d".parse().unwrap(), "1d".parse().unwrap()).unwrap();
    assert!(every("7d").check_window(&hop).is_ok());
    assert_eq!(
        check_err(&hop, "8d"),
        "status `every` (8d) must not exceed the window size (1w)"
    );
    let shortest = [
        ("day", "1d"),
        ("week", "7d"),
        ("month", "28d"),
        ("quarter", "89d"),
        ("year", "365d"),
    ];
    for (unit, longest_ok) in shortest {
        let spec = cal(unit, "Europe/Berlin", None, None);
        assert!(every(longest_ok).check_window(&spec).is_ok(), "{unit}");
        let ms: Duration = longest_ok.parse().unwrap();
        let too_long = TickSpec::new(Duration::from_nanos(ms.as_nanos() + 1)).unwrap();
        assert!(too_long.check_window(&spec).is_err(), "{unit}");
    }
    assert_eq!(
        check_err(&cal("month", "UTC", None, None), "29d"),
        "status `every` (29d) must not exceed 28d, the wall-clock length of the shortest \
         calendar month"
    );
}

#[test]
fn fixed_windows_tick_at_multiples_of_every_from_the_start() {
    let spec = WindowSpec::tumbling("1d".parse().unwrap()).unwrap();
    let win = one(&spec, ts("2021-03-14T12:00:00Z"));
    assert_eq!(
        rfc(&tick_list(&spec, win, "6h")),
        [
            "2021-03-14T06:00:00Z",
            "2021-03-14T12:00:00Z",
            "2021-03-14T18:00:00Z"
        ]
    );
    assert_eq!(
        rfc(&tick_list(&spec, win, "7h")),
        [
            "2021-03-14T07:00:00Z",
            "2021-03-14T14:00:00Z",
            "2021-03-14T21:00:00Z"
        ]
    );
    assert!(tick_list(&spec, win, "1d").is_empty());
    let five = WindowSpec::tumbling("5s".parse().unwrap()).unwrap();
    assert_eq!(
        tick_list(&five, nw(0, 5_000_000_000), "1500ms"),
        [n(1_500_000_000), n(3_000_000_000), n(4_500_000_000)]
    );
    // A hopping window starts at a multiple of its hop, not of the tick interval.
    let hop = WindowSpec::hopping("30d".parse().unwrap(), "1d".parse().unwrap()).unwrap();
    let win = all(&hop, ts("2021-03-14T12:00:00Z"))[3];
    let got = tick_list(&hop, win, "1w");
    let want: Vec<_> = (1..=4)
        .map(|k| n(win.start.as_nanos() + k * 7 * DAY))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn daily_ticks_are_local_midnights_across_dst() {
    let spec = cal("month", "America/New_York", None, None);
    let march = tick_list(&spec, one(&spec, ts("2021-03-10T00:00:00Z")), "1d");
    assert_eq!(march.len(), 30);
    assert_eq!(march[0], ts("2021-03-02T00:00:00-05:00"));
    assert_eq!(march[12], ts("2021-03-14T00:00:00-05:00"));
    assert_eq!(march[13], ts("2021-03-15T00:00:00-04:00"));
    assert_eq!(march[13].as_nanos() - march[12].as_nanos(), 23 * HOUR);
    assert_eq!(march[29], ts("2021-03-31T00:00:00-04:00"));
    let november = tick_list(&spec, one(&spec, ts("2021-11-10T00:00:00Z")), "1d");
    assert_eq!(november.len(), 29);
    assert_eq!(november[5], ts("2021-11-07T00:00:00-04:00"));
    assert_eq!(november[6], ts("2021-11-08T00:00:00-05:00"));
    assert_eq!(november[6].as_nanos() - november[5].as_nanos(), 25 * HOUR);
}

#[test]
fn hourly_ticks_merge_in_a_gap_and_take_the_first_of_a_repeat() {
    let spec = cal("day", "America/New_York", None, None);
    // 2021-03-14: 02:00 EST jumps to 03:00 EDT; the 02:00 grid time becomes the gap's end.
    let spring = tick_list(&spec, one(&spec, ts("2021-03-14T12:00:00Z")), "1h");
    assert_eq!(spring.len(), 22);
    assert_eq!(
        rfc(&spring[..3]),
        [
            "2021-03-14T06:00:00Z",
            "2021-03-14T07:00:00Z",
            "2021-03-14T08:00:00Z"
        ]
    );
    assert_eq!(spring[21], ts("2021-03-14T23:00:00-04:00"));
    let half = tick_list(&spec, one(&spec, ts("2021-03-14T12:00:00Z")), "30m");
    assert_eq!(half.len(), 45);
    assert_eq!(
        rfc(&half[1..5]),
        [
            "2021-03-14T06:00:00Z",
            "2021-03-14T06:30:00Z",
            "2021-03-14T07:00:00Z",
            "2021-03-14T07:30:00Z"
        ]
    );
    // 2021-11-07: 01:00-01:59 happens twice; 01:00 ticks once, at its first (EDT) occurrence.
    let fall = tick_list(&spec, one(&spec, ts("2021-11-07T12:00:00Z")), "1h");
    assert_eq!(fall.len(), 23);
    assert_eq!(
        rfc(&fall[..2]),
        ["2021-11-07T05:00:00Z", "2021-11-07T07:00:00Z"]
    );
    assert_eq!(fall[22], ts("2021-11-07T23:00:00-05:00"));
}

#[test]
fn half_hour_dst_in_lord_howe() {
    // 2021-10-03: 02:00 +10:30 jumps to 02:30 +11:00.
    let spec = cal("day", "Australia/Lord_Howe", None, None);
    let day = one(&spec, ts("2021-10-03T12:00:00+11:00"));
    let got = tick_list(&spec, day, "1h");
    assert_eq!(
        got[..3],
        [
            ts("2021-10-03T01:00:00+10:30"),
            ts("2021-10-03T02:30:00+11:00"),
            ts("2021-10-03T03:00:00+11:00")
        ]
    );
    assert_eq!(got.len(), 23);
}

#[test]
fn midnight_gap_and_repeated_midnight_follow_calendar_starts() {
    // Sao Paulo skipped 2018-11-04 00:00-00:59: that day's tick is 01:00 local.
    let sp = cal("month", "America/Sao_Paulo", None, None);
    let nov = tick_list(&sp, one(&sp, ts("2018-11-10T12:00:00Z")), "1d");
    assert_eq!(nov.len(), 29);
    assert_eq!(
        rfc(&nov[1..4]),
        [
            "2018-11-03T03:00:00Z",
            "2018-11-04T03:00:00Z",
            "2018-11-05T02:00:00Z"
        ]
    );
    let sp_day = cal("day", "America/Sao_Paulo", None, None);
    let gap_day = one(&sp_day, ts("2018-11-04T12:00:00Z"));
    assert_eq!(
        rfc(&tick_list(&sp_day, gap_day, "6h")),
        [
            "2018-11-04T08:00:00Z",
            "2018-11-04T14:00:00Z",
            "2018-11-04T20:00:00Z"
        ]
    );
    // Havana repeats midnight on 2021-11-07: the tick is the earlier one.
    let havana = cal("month", "America/Havana", None, None);
    let nov = tick_list(&havana, one(&havana, ts("2021-11-10T12:00:00Z")), "1d");
    assert_eq!(
        rfc(&nov[5..7]),
        ["2021-11-07T04:00:00Z", "2021-11-08T05:00:00Z"]
    );
}

#[test]
fn weekly_ticks_in_berlin() {
    let monday = cal("month", "Europe/Berlin", None, None);
    let march = one(&monday, ts("2021-03-10T12:00:00Z"));
    // 1 March 2021 is a Monday: the window's start, so not a tick.
    assert_eq!(
        rfc(&tick_list(&monday, march, "1w")),
        [
            "2021-03-07T23:00:00Z",
            "2021-03-14T23:00:00Z",
            "2021-03-21T23:00:00Z",
            "2021-03-28T22:00:00Z"
        ]
    );
    let sunday = cal("month", "Europe/Berlin", Some("sunday"), None);
    assert_eq!(
        rfc(&tick_list(&sunday, march, "1w")),
        [
            "2021-03-06T23:00:00Z",
            "2021-03-13T23:00:00Z",
            "2021-03-20T23:00:00Z",
            "2021-03-27T23:00:00Z"
        ]
    );
    // Two weeks count from the week containing the first date (Monday 2020-12-28).
    let quarter = cal("quarter", "Europe/Berlin", None, None);
    let q1 = one(&quarter, ts("2021-02-10T12:00:00Z"));
    assert_eq!(
        rfc(&tick_list(&quarter, q1, "2w")),
        [
            "2021-01-10T23:00:00Z",
            "2021-01-24T23:00:00Z",
            "2021-02-07T23:00:00Z",
            "2021-02-21T23:00:00Z",
            "2021-03-07T23:00:00Z",
            "2021-03-21T23:00:00Z"
        ]
    );
    // A week window has no weekly tick inside it.
    let week = cal("week", "Europe/Berlin", None, None);
    assert!(tick_list(&week, one(&week, ts("2021-03-10T12:00:00Z")), "1w").is_empty());
}

#[test]
fn elapsed_fraction_is_exact_and_truncated() {
    let win = nw(0, 3);
    assert_eq!(elapsed_fraction(&win, n(0)), Decimal::ZERO);
    assert_eq!(elapsed_fraction(&win, n(3)), Decimal::ONE);
    assert_eq!(
        elapsed_fraction(&win, n(1)).to_string(),
        "0.3333333333333333333333333333"
    );
    assert_eq!(
        elapsed_fraction(&win, n(2)).to_string(),
        "0.6666666666666666666666666666"
    );
    assert_eq!(elapsed_fraction(&nw(0, 4), n(2)).to_string(), "0.5");
    assert_eq!(elapsed_fraction(&win, n(-5)), Decimal::ZERO);
    assert_eq!(elapsed_fraction(&win, n(10)), Decimal::ONE);
    assert_eq!(elapsed_fraction(&nw(5, 5), n(5)), Decimal::ONE);
    // The widest window: 2^63 / (2^64 - 1) is just above one half.
    let widest = Window {
        start: Timestamp::MIN,
        end: Timestamp::MAX,
    };
    assert_eq!(
        elapsed_fraction(&widest, n(0)).to_string(),
        "0.5000000000000000000271050543"
    );
    assert!(elapsed_fraction(&widest, n(1)) > elapsed_fraction(&widest, n(0)));
}

const TICK_ZONES: [&str; 6] = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "America/Havana",
];
const LONG_UNITS: [&str; 4] = ["week", "month", "quarter", "year"];
const EVERIES: [&str; 8] = ["1d", "2d", "1w", "2w", "6h", "1h", "30m", "7h"];

fn instant() -> impl Strategy<Value = Timestamp> {
    let lo = ts("1975-01-01T00:00:00Z").as_nanos();
    let hi = ts("2060-01-01T00:00:00Z").as_nanos();
    (lo..hi).prop_map(Timestamp::from_nanos)
}

/// A calendar spec of `units` in a zone with DST, any week start and fiscal year.
fn tick_calendar(units: &'static [&'static str]) -> impl Strategy<Value = WindowSpec> {
    (
        proptest::sample::select(units),
        proptest::sample::select(&TICK_ZONES[..]),
        0u8..7,
        1u32..=12,
    )
        .prop_map(|(unit, zone, day, fiscal_year_start_month)| {
            WindowSpec::Calendar(CalendarSpec {
                unit: unit.parse().unwrap(),
                timezone: zone.parse().unwrap(),
                week_start: chrono::Weekday::try_from(day).unwrap(),
                fiscal_year_start_month,
            })
        })
}

fn calendar(spec: &WindowSpec) -> &CalendarSpec {
    match spec {
        WindowSpec::Calendar(c) => c,
        _ => unreachable!("a calendar spec"),
    }
}

fn local(tz: Tz, t: Timestamp) -> NaiveDateTime {
    DateTime::<Utc>::from_timestamp_nanos(t.as_nanos())
        .with_timezone(&tz)
        .naive_local()
}

/// Whether the zone's offset changes at `t`, so that `t` can be the end of a DST gap.
fn offset_changes_at(tz: Tz, t: Timestamp) -> bool {
    let at = |t: Timestamp| {
        tz.offset_from_utc_datetime(&t.to_datetime().naive_utc())
            .fix()
    };
    at(t) != at(n(t.as_nanos() - 1))
}

fn assert_increasing_inside(win: Window, got: &[Timestamp]) -> Result<(), TestCaseError> {
    let mut prev = win.start;
    let mut prev_fraction = Decimal::ZERO;
    for &t in got {
        prop_assert!(prev < t && t < win.end, "{} in {}", t, win);
        let f = elapsed_fraction(&win, t);
        prop_assert!(prev_fraction < f && f < Decimal::ONE, "{} at {}", f, t);
        prev = t;
        prev_fraction = f;
    }
    Ok(())
}

proptest! {
    #[test]
    fn calendar_ticks_increase_inside_the_window(
        spec in tick_calendar(&LONG_UNITS),
        t in instant(),
        e in proptest::sample::select(&EVERIES[..]),
    ) {
        let tick = every(e);
        prop_assume!(tick.check_window(&spec).is_ok());
        let win = one(&spec, t);
        assert_increasing_inside(win, &tick_list(&spec, win, e))?;
    }

    #[test]
    fn daily_ticks_are_the_local_day_starts(spec in tick_calendar(&LONG_UNITS), t in instant()) {
        let c = calendar(&spec);
        let tz = c.timezone;
        let win = one(&spec, t);
        let got = tick_list(&spec, win, "1d");
        let day_spec = cal("day", tz.name(), None, None);
        let mut want = Vec::new();
        let mut day = one(&day_spec, win.start);
        while day.end < win.end {
            want.push(day.end);
            day = one(&day_spec, day.end);
        }
        prop_assert_eq!(&got, &want);
        for &tick in &got {
            let midnight = local(tz, tick).time() == NaiveTime::MIN;
            prop_assert!(midnight || offset_changes_at(tz, tick), "{} in {}", tick, tz);
        }
        let first = local(tz, win.start).date();
        let last = local(tz, n(win.end.as_nanos() - 1)).date();
        prop_assert_eq!(got.len() as i64, (last - first).num_days());
        if c.unit == CalendarUnit::Month {
            let next = first.checked_add_months(chrono::Months::new(1)).unwrap();
            prop_assert_eq!(got.len() as i64, (next - first).num_days() - 1);
        }
    }

    #[test]
    fn weekly_ticks_are_local_week_starts(
        spec in tick_calendar(&["month", "quarter", "year"]),
        t in instant(),
    ) {
        let c = calendar(&spec);
        let win = one(&spec, t);
        let got = tick_list(&spec, win, "1w");
        for (i, &tick) in got.iter().enumerate() {
            let at = local(c.timezone, tick);
            prop_assert_eq!(at.date().weekday(), c.week_start);
            let midnight = at.time() == NaiveTime::MIN;
            prop_assert!(midnight || offset_changes_at(c.timezone, tick));
            if i > 0 {
                prop_assert_eq!((at.date() - local(c.timezone, got[i - 1]).date()).num_days(), 7);
            }
        }
    }

    #[test]
    fn sub_day_ticks_are_the_local_grid(
        spec in tick_calendar(&["day", "week", "month"]),
        t in instant(),
        e in proptest::sample::select(&["6h", "1h", "30m", "7h", "2d"][..]),
    ) {
        let tz = calendar(&spec).timezone;
        let win = one(&spec, t);
        let got = tick_list(&spec, win, e);
        let step = TimeDelta::nanoseconds(every(e).every().as_nanos());
        let anchor = local(tz, win.start).date().and_time(NaiveTime::MIN);
        // Every grid time that exists locally and falls inside the window is a tick ...
        let mut on_grid = 0;
        let mut at = anchor + step;
        while at < local(tz, win.end) + TimeDelta::days(1) {
            if let Some(dt) = tz.from_local_datetime(&at).earliest() {
                let instant = Timestamp::from_datetime(&dt).unwrap();
                if win.start < instant && instant < win.end {
                    prop_assert!(got.contains(&instant), "{} missing", at);
                    on_grid += 1;
                }
            }
            at += step;
        }
        // ... and every other tick is the end of a DST gap.
        let off_grid = got.iter().filter(|&&t| {
            let since = (local(tz, t) - anchor).num_nanoseconds().unwrap();
            since % step.num_nanoseconds().unwrap() != 0
        });
        for &tick in off_grid {
            prop_assert!(offset_changes_at(tz, tick), "{} in {}", tick, tz);
        }
        prop_assert!(got.len() >= on_grid);
        assert_increasing_inside(win, &got)?;
    }

    #[test]
    fn fixed_ticks_are_multiples_from_the_start(
        size_s in 1i64..200_000,
        hop_div in 1i64..5,
        every_s in 1i64..200_000,
        t in instant(),
    ) {
        let size = Duration::from_secs(size_s);
        let spec = WindowSpec::hopping(size, Duration::from_secs((size_s / hop_div).max(1))).unwrap();
        let tick = TickSpec::new(Duration::from_secs(every_s)).unwrap();
        prop_assume!(tick.check_window(&spec).is_ok());
        let win = all(&spec, t)[0];
        let got: Vec<_> = ticks(&spec, &win, &tick).collect();
        let step = every_s * 1_000_000_000;
        let want: Vec<_> = (1..)
            .map(|k| n(win.start.as_nanos() + k * step))
            .take_while(|&x| x < win.end)
            .collect();
        prop_assert_eq!(&got, &want);
        assert_increasing_inside(win, &got)?;
    }
}
