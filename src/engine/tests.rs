use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::goals::GoalSet;
use crate::model::{
    Attainment, AttainmentKind, Decimal, Outcome, SalesEvent, StringField, Timestamp,
};

fn goals(text: &str) -> Arc<GoalSet> {
    Arc::new(GoalSet::from_toml(text).unwrap_or_else(|e| panic!("{e}")))
}

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn event(id: &str, kind: &str, time: &str, region: &str, amount: Option<i64>) -> SalesEvent {
    let mut ev = SalesEvent {
        event_id: id.into(),
        event_type: kind.into(),
        occurred_at: at(time),
        amount: amount.map(Decimal::from),
        ..SalesEvent::default()
    };
    ev.set_string(StringField::Region, region);
    ev
}

fn run(goals: &Arc<GoalSet>, events: &[SalesEvent]) -> (Vec<Attainment>, Pipeline) {
    let mut p = Pipeline::new(goals.clone());
    let mut out = Vec::new();
    for ev in events {
        p.process(ev, &mut out);
    }
    p.finish(&mut out);
    (out, p)
}

const DAILY_SUM: &str = r#"
[[goals]]
id = "daily-won"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "1d" }
target = 100
milestones = [0.5, 1.0]
"#;

#[test]
fn milestones_are_latched_and_finals_close_windows() {
    let g = goals(DAILY_SUM);
    let events = [
        event("a", "deal_won", "2026-01-05T09:00:00Z", "East", Some(30)),
        event("b", "deal_won", "2026-01-05T10:00:00Z", "East", Some(30)),
        event("c", "deal_won", "2026-01-05T11:00:00Z", "East", Some(50)),
        event("d", "deal_won", "2026-01-05T12:00:00Z", "West", Some(10)),
        event("x", "deal_lost", "2026-01-05T13:00:00Z", "East", Some(999)),
        // crosses midnight: closes the 5th (grace 0)
        event("e", "deal_won", "2026-01-06T00:00:00Z", "East", Some(1)),
    ];
    let (out, _) = run(&g, &events);
    let kinds: Vec<(AttainmentKind, Option<&str>, &str)> = out
        .iter()
        .map(|a| (a.kind, a.triggered_by.as_deref(), a.group[0].1.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (AttainmentKind::Milestone, Some("b"), "East"),
            (AttainmentKind::Milestone, Some("c"), "East"),
            (AttainmentKind::Final, None, "East"),
            (AttainmentKind::Final, None, "West"),
            (AttainmentKind::Final, None, "East"),
        ]
    );
    assert_eq!(out[0].value, Some(Decimal::from(60)));
    assert_eq!(out[0].milestone, Some(Decimal::new(5, 1)));
    assert_eq!(out[1].value, Some(Decimal::from(110)));
    assert_eq!(out[2].outcome, Some(Outcome::Attained));
    assert_eq!(out[2].window.start, at("2026-01-05T00:00:00Z"));
    assert_eq!(out[2].event_time, at("2026-01-06T00:00:00Z"));
    assert_eq!(out[3].outcome, Some(Outcome::Missed));
    assert_eq!(out[3].progress, Some(Decimal::new(1, 1)));
    assert_eq!(out[4].value, Some(Decimal::ONE), "final at end of input");
}

#[test]
fn late_events_are_counted_not_applied() {
    let g = goals(&DAILY_SUM.replace("milestones = [0.5, 1.0]", "grace = \"1h\""));
    let events = [
        event("a", "deal_won", "2026-01-05T09:00:00Z", "East", Some(30)),
        event("b", "deal_won", "2026-01-06T00:30:00Z", "East", Some(1)),
        // within grace: the 5th is still open at stream time 00:30
        event("c", "deal_won", "2026-01-05T23:00:00Z", "East", Some(5)),
        event("d", "deal_won", "2026-01-06T01:00:00Z", "East", Some(1)),
        // the 5th closed at 01:00 (end + 1h): late
        event("e", "deal_won", "2026-01-05T23:30:00Z", "East", Some(7)),
    ];
    let (out, p) = run(&g, &events);
    let finals: Vec<_> = out
        .iter()
        .filter(|a| a.kind == AttainmentKind::Final)
        .collect();
    assert_eq!(finals[0].value, Some(Decimal::from(35)));
    assert_eq!(p.owner().stats().late, vec![1]);
}

#[test]
fn duplicates_within_horizon_are_dropped() {
    let g = goals(&format!("[dedupe]\nhorizon = \"1d\"\n{DAILY_SUM}"));
    let events = [
        event("a", "deal_won", "2026-01-05T09:00:00Z", "East", Some(30)),
        event("a", "deal_won", "2026-01-05T09:00:00Z", "East", Some(30)),
        event("b", "deal_won", "2026-01-07T09:00:00Z", "East", Some(1)),
        // more than a day of stream time later: remembered no more, accepted again
        event("a", "deal_won", "2026-01-07T09:00:00Z", "East", Some(30)),
    ];
    let (out, p) = run(&g, &events);
    assert_eq!(p.router().stats().duplicates, 1);
    assert_eq!(p.router().stats().accepted, 3);
    let finals: Vec<_> = out
        .iter()
        .filter(|a| a.kind == AttainmentKind::Final)
        .map(|a| a.value.unwrap())
        .collect();
    assert_eq!(finals, vec![Decimal::from(30), Decimal::from(31)]);
}

#[test]
fn ratio_needs_min_denominator_and_at_most_breaches_once() {
    let g = goals(
        r#"
[[goals]]
id = "win-rate"
metric = "ratio"
numerator = { event_type = "deal_won" }
denominator = { event_type = ["deal_won", "deal_lost"] }
min_denominator = 3
window = { calendar = "month" }
target = 0.5

[[goals]]
id = "losses"
metric = "count"
filter = { event_type = "deal_lost" }
window = { calendar = "month" }
target = 1
direction = "at_most"
"#,
    );
    let events = [
        event("1", "deal_won", "2026-01-05T09:00:00Z", "E", None),
        event("2", "deal_won", "2026-01-05T10:00:00Z", "E", None),
        event("3", "deal_lost", "2026-01-05T11:00:00Z", "E", None),
        event("4", "deal_lost", "2026-01-05T12:00:00Z", "E", None),
        event("5", "deal_lost", "2026-01-05T13:00:00Z", "E", None),
        event("6", "deal_won", "2026-02-05T09:00:00Z", "E", None),
    ];
    let (out, _) = run(&g, &events);
    let summary: Vec<(&str, AttainmentKind, Option<Outcome>, Option<&str>)> = out
        .iter()
        .map(|a| (&*a.goal_id, a.kind, a.outcome, a.triggered_by.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            // judged only from the third denominator event: 2/3 >= 0.5
            ("win-rate", AttainmentKind::Milestone, None, Some("3")),
            ("losses", AttainmentKind::Breached, None, Some("4")),
            (
                "win-rate",
                AttainmentKind::Final,
                Some(Outcome::Missed),
                None
            ),
            ("losses", AttainmentKind::Final, Some(Outcome::Missed), None),
            (
                "win-rate",
                AttainmentKind::Final,
                Some(Outcome::InsufficientData),
                None
            ),
        ]
    );
    assert_eq!(out[2].value, Some(Decimal::new(4, 1)));
}

#[test]
fn same_input_same_output() {
    let g = goals(DAILY_SUM);
    let events: Vec<SalesEvent> = (0..200)
        .map(|i| {
            event(
                &format!("e{i}"),
                "deal_won",
                &format!("2026-01-{:02}T{:02}:00:00Z", 1 + i / 24 % 28, i % 24),
                ["East", "West", "Central"][i % 3],
                Some(i as i64),
            )
        })
        .collect();
    assert_eq!(run(&g, &events).0, run(&g, &events).0);
}

// ---------------------------------------------------------------- properties

const MIXED_GOALS: &str = r#"
[[goals]]
id = "count-by-region"
metric = "count"
group_by = ["region"]
window = { tumbling = "6h" }
target = 5
grace = "GRACE"

[[goals]]
id = "sum-won"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
window = { calendar = "day", timezone = "America/New_York" }
target = 500
milestones = [0.25, 0.5, 1.0]
grace = "GRACE"

[[goals]]
id = "avg-deal"
metric = "avg"
field = "amount"
group_by = ["region"]
window = { hopping = "12h", every = "4h" }
target = 40
grace = "GRACE"

[[goals]]
id = "min-deal"
metric = "min"
field = "amount"
window = { tumbling = "1d" }
target = 10
direction = "at_most"
grace = "GRACE"

[[goals]]
id = "max-deal"
metric = "max"
field = "amount"
window = { tumbling = "1d" }
target = 90
grace = "GRACE"

[[goals]]
id = "distinct-regions"
metric = "count_distinct"
field = "region"
window = { calendar = "week", timezone = "Europe/Berlin" }
target = 3
grace = "GRACE"

[[goals]]
id = "win-rate"
metric = "ratio"
numerator = { event_type = "deal_won" }
denominator = { event_type = ["deal_won", "deal_lost"] }
min_denominator = 2
group_by = ["region"]
window = { tumbling = "1d" }
target = 0.5
grace = "GRACE"
"#;

fn arb_events() -> impl Strategy<Value = Vec<SalesEvent>> {
    prop::collection::vec(
        (0i64..(3 * 86_400), 0usize..3, 0usize..3, 0i64..100),
        1..120,
    )
    .prop_map(|rows| {
        let base = at("2026-03-06T00:00:00Z").as_nanos();
        rows.into_iter()
            .enumerate()
            .map(|(i, (secs, kind, region, amount))| {
                SalesEvent {
                    event_id: format!("e{i}"),
                    event_type: ["deal_won", "deal_lost", "activity_logged"][kind].into(),
                    occurred_at: Timestamp::from_nanos(base + secs * 1_000_000_000),
                    amount: (kind != 2).then(|| Decimal::new(amount * 100 + 5, 2)),
                    ..SalesEvent::default()
                }
                .with(StringField::Region, ["East", "West", "Central"][region])
            })
            .collect()
    })
}

type FinalKey = (
    String,
    Vec<(Arc<str>, String)>,
    Timestamp,
    Option<Decimal>,
    Option<Outcome>,
);

fn finals(out: &[Attainment]) -> Vec<FinalKey> {
    let mut v: Vec<FinalKey> = out
        .iter()
        .filter(|a| a.kind == AttainmentKind::Final)
        .map(|a| {
            (
                a.goal_id.to_string(),
                a.group.clone(),
                a.window.start,
                a.value,
                a.outcome,
            )
        })
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any arrival order whose disorder stays within `grace` gives the same finals.
    #[test]
    fn finals_do_not_depend_on_order_within_grace(
        events in arb_events(),
        jitter in prop::collection::vec(0i64..3_600, 120),
    ) {
        let g = goals(&MIXED_GOALS.replace("GRACE", "1h"));
        let mut sorted = events.clone();
        sorted.sort_by_key(|e| e.occurred_at);
        // Arrival order by time + jitter < 1h: every event arrives before stream time passes it by 1h.
        let mut shuffled = events.clone();
        shuffled.sort_by_key(|e| {
            let i: usize = e.event_id[1..].parse().unwrap();
            e.occurred_at.as_nanos() + jitter[i] * 1_000_000_000
        });
        let (a, pa) = run(&g, &sorted);
        let (b, pb) = run(&g, &shuffled);
        prop_assert_eq!(finals(&a), finals(&b));
        prop_assert!(pb.owner().stats().late.iter().all(|n| *n == 0));
        prop_assert!(pa.owner().stats().late.iter().all(|n| *n == 0));
    }

    /// Redelivering events within the dedupe horizon changes nothing, byte for byte.
    #[test]
    fn duplicates_never_change_results(
        events in arb_events(),
        repeats in prop::collection::vec((0usize..120, 0usize..10), 0..40),
    ) {
        let g = goals(&MIXED_GOALS.replace("GRACE", "30m"));
        let mut with_dups = events.clone();
        for (pick, delay) in repeats {
            let i = pick % events.len();
            // the copy arrives `delay` positions after the original (or at the end)
            let original_pos = with_dups.iter().position(|e| e.event_id == events[i].event_id).unwrap();
            let at = (original_pos + 1 + delay).min(with_dups.len());
            with_dups.insert(at, events[i].clone());
        }
        let (a, _) = run(&g, &events);
        let (b, pb) = run(&g, &with_dups);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(pb.router().stats().duplicates as usize, with_dups.len() - events.len());
    }
}

/// A goal per cap: daily count per region with at most 2 regions a day, distinct reps over two
/// days (hopping daily) with at most 2 reps a window.
const CAPPED: &str = r#"
[[goals]]
id = "per-region"
metric = "count"
group_by = ["region"]
window = { tumbling = "1d" }
target = 100
max_groups = 2

[[goals]]
id = "reps"
metric = "count_distinct"
field = "rep_id"
window = { hopping = "2d", every = "1d" }
target = 100
max_distinct = 2
"#;

fn rep_event(id: &str, time: &str, region: &str, rep: &str) -> SalesEvent {
    event(id, "activity_logged", time, region, None).with(StringField::RepId, rep)
}

#[test]
fn groups_beyond_max_groups_are_counted_as_overflow_not_applied() {
    let g = goals(CAPPED);
    let events = [
        rep_event("a", "2026-01-05T09:00:00Z", "East", "r1"),
        rep_event("b", "2026-01-05T10:00:00Z", "West", "r1"),
        // A third group while two hold open windows: skipped.
        rep_event("c", "2026-01-05T11:00:00Z", "North", "r1"),
        // Known groups still count.
        rep_event("d", "2026-01-05T12:00:00Z", "East", "r1"),
        // The next day is another window, with room for two groups again.
        rep_event("e", "2026-01-06T08:00:00Z", "East", "r1"),
        rep_event("f", "2026-01-06T09:00:00Z", "North", "r1"),
        rep_event("g", "2026-01-06T10:00:00Z", "South", "r1"),
    ];
    let (out, p) = run(&g, &events);
    let per_region: Vec<(String, Option<Decimal>)> = out
        .iter()
        .filter(|a| &*a.goal_id == "per-region" && a.kind == AttainmentKind::Final)
        .map(|a| (a.group[0].1.clone(), a.value))
        .collect();
    assert_eq!(
        per_region,
        [
            ("East".to_string(), Some(Decimal::from(2))),
            ("West".to_string(), Some(Decimal::ONE)),
            ("East".to_string(), Some(Decimal::ONE)),
            ("North".to_string(), Some(Decimal::ONE)),
        ]
    );
    assert_eq!(p.owner().stats().overflow, [2, 0]);
    assert_eq!(p.owner().stats().late, [0, 0]);
}

#[test]
fn distinct_values_beyond_max_distinct_are_counted_per_contribution() {
    let g = goals(CAPPED);
    let mut owner = Owner::new(g.clone(), 1);
    let mut out = Vec::new();
    let mut apply = |owner: &mut Owner, id: &str, time: &str, rep: &str| {
        let ev = rep_event(id, time, "East", rep);
        let c = Contribution {
            goal: 1,
            group: GroupValues::new(),
            delta: crate::aggregate::Delta::Text(rep.into()),
            event_id: &ev.event_id,
            event_time: ev.occurred_at,
        };
        owner.apply(&c, &mut out)
    };
    // Windows [4th, 6th) and [5th, 7th) both take events of the 5th.
    assert_eq!(
        apply(&mut owner, "a", "2026-01-05T01:00:00Z", "r1"),
        Applied::Applied
    );
    assert_eq!(
        apply(&mut owner, "b", "2026-01-05T02:00:00Z", "r2"),
        Applied::Applied
    );
    assert_eq!(
        apply(&mut owner, "c", "2026-01-05T03:00:00Z", "r3"),
        Applied::Overflow
    );
    assert_eq!(
        apply(&mut owner, "d", "2026-01-05T04:00:00Z", "r1"),
        Applied::Applied
    );
    // The 6th: [5th, 7th) is full, [6th, 8th) is new and takes it.
    assert_eq!(
        apply(&mut owner, "e", "2026-01-06T01:00:00Z", "r3"),
        Applied::Overflow
    );
    assert_eq!(owner.stats().overflow, [0, 2]);
    let mut values: Vec<(Timestamp, Option<Decimal>)> = owner
        .windows_of(1)
        .map(|(_, start, ws)| (start, ws.aggregate.value()))
        .collect();
    values.sort();
    assert_eq!(
        values,
        [
            (at("2026-01-04T00:00:00Z"), Some(Decimal::from(2))),
            (at("2026-01-05T00:00:00Z"), Some(Decimal::from(2))),
            (at("2026-01-06T00:00:00Z"), Some(Decimal::ONE)),
        ]
    );
}

#[test]
fn max_groups_counts_per_window_and_survives_a_restore() {
    let g = goals(
        r#"
[[goals]]
id = "per-region-2d"
metric = "count"
group_by = ["region"]
window = { hopping = "2d", every = "1d" }
target = 100
max_groups = 1
"#,
    );
    fn contribution(ev: &SalesEvent) -> Contribution<'_> {
        Contribution {
            goal: 0,
            group: GroupValues::from_slice(&[ev.string(StringField::Region).unwrap()]),
            delta: crate::aggregate::Delta::Count,
            event_id: &ev.event_id,
            event_time: ev.occurred_at,
        }
    }
    let mut owner = Owner::new(g.clone(), 1);
    owner.track_changes();
    let mut out = Vec::new();
    let east = rep_event("a", "2026-01-05T01:00:00Z", "East", "r1");
    // [4th, 6th) and [5th, 7th).
    assert_eq!(
        owner.apply(&contribution(&east), &mut out),
        Applied::Applied
    );
    // [5th, 7th) is full, [6th, 8th) has room.
    let west = rep_event("b", "2026-01-06T01:00:00Z", "West", "r1");
    assert_eq!(
        owner.apply(&contribution(&west), &mut out),
        Applied::Overflow
    );

    // A copy rebuilt from the changes decides as the original does.
    let mut restored = Owner::new(g.clone(), 1);
    for change in owner.take_changes() {
        if let OwnerChange::Window {
            goal,
            group,
            start,
            state,
        } = change
        {
            restored.restore_window(goal, group, start, state);
        }
    }
    for o in [&mut owner, &mut restored] {
        // West again, on the 5th: both its windows hold East.
        let west_early = rep_event("c", "2026-01-05T02:00:00Z", "West", "r1");
        assert_eq!(
            o.apply(&contribution(&west_early), &mut out),
            Applied::Overflow
        );
        let mut windows: Vec<(String, Timestamp)> = o
            .windows_of(0)
            .map(|(k, start, _)| (k.0[0].to_string(), start))
            .collect();
        windows.sort();
        assert_eq!(
            windows,
            [
                ("East".to_string(), at("2026-01-04T00:00:00Z")),
                ("East".to_string(), at("2026-01-05T00:00:00Z")),
                ("West".to_string(), at("2026-01-06T00:00:00Z")),
            ]
        );
    }
    assert_eq!(owner.stats().overflow, [2]);
}
