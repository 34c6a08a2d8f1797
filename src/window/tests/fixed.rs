//! Tumbling and hopping windows.

use super::*;

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
