//! Calendar windows across DST changes, week starts and fiscal years.

use super::*;
use chrono::{NaiveTime, Offset};

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
