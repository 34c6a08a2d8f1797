//! Look-ahead goals in the engine: status ticks, pace, rosters, and the same transitions however
//! the events are split over routers and owners.

use std::sync::Arc;

use proptest::prelude::*;

use super::partition::{goal_hash, owner_partition_after};
use super::*;
use crate::goals::{GoalSet, Pace, RosterDecl, StatusSpec};
use crate::model::{
    Attainment, AttainmentKind, Decimal, Duration, Outcome, SalesEvent, StringField, Timestamp,
};

const HOUR: i64 = 3_600_000_000_000;
const DAY: i64 = 24 * HOUR;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn won(id: &str, t: Timestamp, region: &str, amount: i64) -> SalesEvent {
    let mut ev = SalesEvent {
        event_id: id.into(),
        event_type: "deal_won".into(),
        occurred_at: t,
        amount: Some(Decimal::from(amount)),
        ..SalesEvent::default()
    };
    ev.set_string(StringField::Region, region);
    ev
}

/// A goal file, with `status` (and a roster `regions` on every goal when `roster` is set) added
/// to each goal.
fn goals(text: &str, status: &StatusSpec, pace: Pace, roster: Option<bool>) -> Arc<GoalSet> {
    let mut set = GoalSet::from_toml(text).unwrap_or_else(|e| panic!("{e}"));
    for g in &mut set.goals {
        g.status = Some(status.clone());
        g.pace = pace.clone();
        g.roster = roster.map(|_| 0);
    }
    if let Some(strict) = roster {
        set.rosters.push(RosterDecl {
            name: "regions".into(),
            file: None,
            topic: None,
            columns: Vec::new(),
            strict,
        });
    }
    Arc::new(set)
}

fn rosters(set: &GoalSet, csv: &str) -> Vec<Option<Roster>> {
    set.goals
        .iter()
        .map(|g| {
            g.roster.map(|_| {
                let fields: Vec<&str> = g.group_by_names.iter().map(|n| &**n).collect();
                Roster::from_csv(csv, &fields, &[]).unwrap()
            })
        })
        .collect()
}

fn replay(set: &Arc<GoalSet>, roster: Option<&str>, events: &[SalesEvent]) -> Vec<Attainment> {
    let mut p = Pipeline::new(set.clone());
    if let Some(csv) = roster {
        p.set_rosters(rosters(set, csv));
    }
    let mut out = Vec::new();
    for ev in events {
        p.process(ev, &mut out);
    }
    p.finish(&mut out);
    out
}

const WEEKLY_COUNT: &str = r#"
[[goals]]
id = "weekly-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "10d" }
target = 10
grace = "2h"
"#;

fn daily(tolerance: &str, hold_days: i64) -> StatusSpec {
    StatusSpec {
        every: Duration::from_nanos(DAY),
        tolerance: d(tolerance),
        hold: Duration::from_nanos(hold_days * DAY),
    }
}

fn day(n: f64) -> Timestamp {
    Timestamp::from_nanos((n * DAY as f64) as i64)
}

fn status_events(out: &[Attainment]) -> Vec<(AttainmentKind, &str, Timestamp, Decimal)> {
    out.iter()
        .filter(|a| matches!(a.kind, AttainmentKind::AtRisk | AttainmentKind::OnTrack))
        .map(|a| {
            (
                a.kind,
                a.group[0].1.as_str(),
                a.tick.unwrap(),
                a.value.unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_group_behind_its_pace_goes_at_risk_once_and_back_on_track_once() {
    let set = goals(WEEKLY_COUNT, &daily("0", 0), Pace::Linear, None);
    let mut events = vec![won("a", day(0.5), "East", 1)];
    // Days 1.5 to 3.5: nothing. Then 6 wins on day 3.5: back on pace at the day-4 tick.
    for i in 0..6 {
        events.push(won(&format!("b{i}"), day(3.5), "East", 1));
    }
    events.push(won("z", day(30.0), "East", 1));
    let out = replay(&set, None, &events);
    // Back on track at day 4 (7 >= 4), at risk again at day 8 (7 < 8), each once.
    assert_eq!(
        status_events(&out)[..3],
        [
            (AttainmentKind::AtRisk, "East", day(2.0), d("1")),
            (AttainmentKind::OnTrack, "East", day(4.0), d("7")),
            (AttainmentKind::AtRisk, "East", day(8.0), d("7")),
        ]
    );
    let risk = out
        .iter()
        .find(|a| a.kind == AttainmentKind::AtRisk)
        .unwrap();
    assert_eq!(risk.expected, Some(d("2")));
    assert_eq!(risk.projected, Some(d("5")));
    assert_eq!(risk.event_time, day(2.0));
    assert_eq!(risk.progress, Some(d("0.1")));
    assert_ne!(
        risk.attainment_id,
        out.iter()
            .find(|a| a.kind == AttainmentKind::OnTrack)
            .unwrap()
            .attainment_id
    );
}

#[test]
fn the_status_at_a_tick_counts_only_events_before_it() {
    // Target 20 over 10 days: 2 expected at day 1. The tick at day 1 is decided at day 1 + 2h;
    // a win at day 1 + 1h arrives before that but is after the tick, so it does not count there.
    let set = goals(
        &WEEKLY_COUNT.replace("target = 10", "target = 20"),
        &daily("0", 0),
        Pace::Linear,
        None,
    );
    let events = [
        won("a", day(0.1), "East", 1),
        won("b", Timestamp::from_nanos(DAY + HOUR), "East", 1),
        won("c", Timestamp::from_nanos(DAY + 3 * HOUR), "East", 1),
        won("d", Timestamp::from_nanos(DAY + 4 * HOUR), "East", 1),
    ];
    let out = replay(&set, None, &events);
    assert_eq!(
        status_events(&out)[..2],
        [
            (AttainmentKind::AtRisk, "East", day(1.0), d("1")),
            (AttainmentKind::OnTrack, "East", day(2.0), d("4")),
        ]
    );
    // The same with the late win arriving before anything else: the same statuses.
    let mut reordered = events.to_vec();
    reordered.swap(0, 1);
    assert_eq!(
        status_events(&replay(&set, None, &reordered)),
        status_events(&out)
    );
}

#[test]
fn at_risk_waits_for_the_hold_and_tolerance_allows_a_gap() {
    let events = [won("a", day(0.5), "East", 1), won("z", day(9.9), "West", 1)];
    // Tolerance 0.5: at risk once value < expected / 2: day 3 (1 < 1.5). Hold 2 days: fires at day 5.
    let set = goals(WEEKLY_COUNT, &daily("0.5", 2), Pace::Linear, None);
    let out = replay(&set, None, &events);
    let east: Vec<_> = status_events(&out)
        .into_iter()
        .filter(|e| e.1 == "East")
        .collect();
    assert_eq!(
        east,
        vec![(AttainmentKind::AtRisk, "East", day(5.0), d("1"))]
    );
}

#[test]
fn a_back_loaded_pace_expects_less_early() {
    // Expected at half-time is 10% of the target: 1 win by day 5 is on pace.
    let pace = Pace::from_points(&[
        (Decimal::ZERO, Decimal::ZERO),
        (d("0.5"), d("0.1")),
        (Decimal::ONE, Decimal::ONE),
    ])
    .unwrap();
    let set = goals(WEEKLY_COUNT, &daily("0", 0), pace, None);
    let events = [won("a", day(0.5), "East", 1), won("z", day(9.9), "West", 1)];
    let out = replay(&set, None, &events);
    let east: Vec<_> = status_events(&out)
        .into_iter()
        .filter(|e| e.1 == "East")
        .map(|e| e.2)
        .collect();
    // pace(0.6) = 0.1 + 0.9 * 0.2 = 0.28: expected 2.8 > 1 at day 6.
    assert_eq!(east, vec![day(6.0)]);
}

const ROSTER: &str = "region\nEast\nWest\nSouth\n";

#[test]
fn every_roster_member_gets_every_window_and_a_missed_final() {
    let set = goals(WEEKLY_COUNT, &daily("0", 0), Pace::Linear, Some(false));
    let events = [
        won("a", day(1.5), "East", 1),
        won("b", day(12.0), "North", 1),
        won("c", day(25.0), "East", 1),
    ];
    let out = replay(&set, Some(ROSTER), &events);
    let mut finals: Vec<(Timestamp, &str, Outcome)> = out
        .iter()
        .filter(|a| a.kind == AttainmentKind::Final)
        .map(|a| (a.window.start, a.group[0].1.as_str(), a.outcome.unwrap()))
        .collect();
    finals.sort();
    let mut want = Vec::new();
    for start in [0.0, 10.0, 20.0] {
        for region in ["East", "South", "West"] {
            want.push((day(start), region, Outcome::Missed));
        }
    }
    want.push((day(10.0), "North", Outcome::Missed));
    want.sort();
    assert_eq!(finals, want);
    let south: Vec<_> = status_events(&out)
        .into_iter()
        .filter(|e| e.1 == "South")
        .map(|e| (e.0, e.2))
        .collect();
    // The log starts at day 1.5: ticks at day 2 on, in every window.
    assert_eq!(
        south,
        vec![
            (AttainmentKind::AtRisk, day(2.0)),
            (AttainmentKind::AtRisk, day(11.0)),
            (AttainmentKind::AtRisk, day(21.0)),
        ]
    );
}

/// Two goals without `status` listing the roster, one a sum, one an average.
const SUM_AND_AVG: &str = r#"
[[goals]]
id = "weekly-revenue"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "7d" }
target = 100
grace = "1h"

[[goals]]
id = "monthly-avg-deal"
metric = "avg"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "month", timezone = "Europe/Berlin" }
target = 50
grace = "1h"
"#;

#[test]
fn a_member_without_events_gets_every_window_of_every_goal_listing_the_roster() {
    let mut set = GoalSet::from_toml(SUM_AND_AVG).unwrap();
    for g in &mut set.goals {
        g.roster = Some(0);
    }
    set.rosters.push(RosterDecl {
        name: "regions".into(),
        file: None,
        topic: None,
        columns: Vec::new(),
        strict: false,
    });
    let set = Arc::new(set);
    // January 2 to March 20 (Berlin months January to March; 7-day windows from Jan 1 on).
    let events: Vec<SalesEvent> = (0..12)
        .map(|i| won(&format!("e{i}"), day(1.5 + 7.0 * i as f64), "East", 80))
        .collect();
    let out = replay(&set, Some(ROSTER), &events);
    let finals = |goal: &str, region: &str| -> Vec<(Timestamp, Option<Decimal>, Outcome)> {
        out.iter()
            .filter(|a| a.kind == AttainmentKind::Final && &*a.goal_id == goal)
            .filter(|a| a.group[0].1 == region)
            .map(|a| (a.window.start, a.value, a.outcome.unwrap()))
            .collect()
    };
    let east_weeks: Vec<Timestamp> = finals("weekly-revenue", "East")
        .iter()
        .map(|f| f.0)
        .collect();
    let south_weeks = finals("weekly-revenue", "South");
    assert_eq!(south_weeks.len(), 12);
    assert_eq!(
        south_weeks.iter().map(|f| f.0).collect::<Vec<_>>(),
        east_weeks
    );
    assert!(south_weeks
        .iter()
        .all(|f| f.1 == Some(Decimal::ZERO) && f.2 == Outcome::Missed));
    // Berlin months January to March 1970; an average of nothing has no value.
    let south_months = finals("monthly-avg-deal", "South");
    assert_eq!(south_months.len(), 3, "{south_months:?}");
    assert!(south_months
        .iter()
        .all(|f| f.1.is_none() && f.2 == Outcome::InsufficientData));
    let east_months = finals("monthly-avg-deal", "East");
    assert!(east_months.iter().all(|f| f.2 == Outcome::Attained));
}

#[test]
fn a_strict_roster_skips_unlisted_groups_and_counts_them() {
    let set = goals(WEEKLY_COUNT, &daily("0", 0), Pace::Linear, Some(true));
    let events = [
        won("a", day(1.5), "East", 1),
        won("b", day(2.0), "North", 1),
    ];
    let mut p = Pipeline::new(set.clone());
    p.set_rosters(rosters(&set, ROSTER));
    let mut out = Vec::new();
    for ev in &events {
        p.process(ev, &mut out);
    }
    p.finish(&mut out);
    assert!(out.iter().all(|a| a.group[0].1 != "North"));
    assert_eq!(p.owner().stats().off_roster, vec![1]);
    assert_eq!(p.owner().stats().unlisted, vec![0]);

    let lax = goals(WEEKLY_COUNT, &daily("0", 0), Pace::Linear, Some(false));
    let mut p = Pipeline::new(lax.clone());
    p.set_rosters(rosters(&lax, ROSTER));
    for ev in &events {
        p.process(ev, &mut out);
    }
    assert_eq!(p.owner().stats().off_roster, vec![0]);
    assert_eq!(p.owner().stats().unlisted, vec![1]);
}

#[test]
fn members_active_later_get_only_the_windows_they_overlap() {
    let set = goals(WEEKLY_COUNT, &daily("0", 0), Pace::Linear, Some(false));
    let csv = "region,active_from\nEast,\nWest,1970-01-15T00:00:00Z\n";
    let events = [
        won("a", day(1.5), "East", 1),
        won("z", day(25.0), "East", 1),
    ];
    let out = replay(&set, Some(csv), &events);
    let west: Vec<Timestamp> = out
        .iter()
        .filter(|a| a.kind == AttainmentKind::Final && a.group[0].1 == "West")
        .map(|a| a.window.start)
        .collect();
    assert_eq!(west, vec![day(10.0), day(20.0)]);
}

/// Runs `events` split over `inputs` routers (by event index) and `owners` owners, delivering in
/// an interleaving driven by `seed`, and returns every owner's output.
fn distributed(
    set: &Arc<GoalSet>,
    roster: &str,
    queues: &[Vec<SalesEvent>],
    owners: u32,
    seed: u64,
) -> Vec<Attainment> {
    let inputs = queues.len() as u32;
    let limits = crate::limits::Limits::DEFAULT;
    let mut routers: Vec<Router> = (0..inputs)
        .map(|p| Router::new(set.clone(), p, &limits))
        .collect();
    let mut own: Vec<Owner> = (0..owners)
        .map(|i| {
            let mut o = Owner::new(set.clone(), inputs);
            o.set_rosters(rosters(set, roster), (i, owners));
            o
        })
        .collect();
    let hashes: Vec<u64> = set.goals.iter().map(|g| goal_hash(&g.id)).collect();
    let mut next = vec![0usize; inputs as usize];
    let mut out = Vec::new();
    let mut rng = seed;
    while next.iter().zip(queues).any(|(n, q)| *n < q.len()) {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let p = (rng >> 33) as usize % inputs as usize;
        let burst = 1 + (rng >> 50) as usize % 5;
        for _ in 0..burst {
            let Some(ev) = queues[p].get(next[p]) else {
                break;
            };
            next[p] += 1;
            let routed = routers[p].route(ev, |c| {
                let o = owner_partition_after(hashes[c.goal], &c.group, owners);
                own[o as usize].apply(&c, &mut out);
            });
            if let Routed::Accepted {
                progress: Some(pr), ..
            } = routed
            {
                for o in &mut own {
                    o.progress(pr, &mut out);
                }
            }
        }
    }
    for o in &mut own {
        o.close_all(&mut out);
    }
    out
}

/// `events` split over `inputs` partitions by id, each ending with an event 40 days after the
/// last, so that every window closes by the watermark.
fn partitioned(events: &[SalesEvent], inputs: u32) -> Vec<Vec<SalesEvent>> {
    let mut queues = vec![Vec::new(); inputs as usize];
    for ev in events {
        let p = super::partition::fnv1a(&[ev.event_id.as_bytes()]) % u64::from(inputs);
        queues[p as usize].push(ev.clone());
    }
    let last = events.iter().map(|e| e.occurred_at).max().unwrap();
    for (p, q) in queues.iter_mut().enumerate() {
        let mut end = won(
            &format!("end{p}"),
            last.saturating_add(Duration::from_nanos(40 * DAY)),
            "East",
            0,
        );
        end.event_type = "noop".into();
        q.push(end);
    }
    queues
}

/// Events of three regions over five weeks, in time order but for swaps of neighbours less than
/// the grace apart.
fn stream(seed: u64, n: usize) -> Vec<SalesEvent> {
    let regions = ["East", "West", "North", "East", "West"];
    let mut rng = seed | 1;
    let mut t = 3 * HOUR;
    let mut events: Vec<SalesEvent> = (0..n)
        .map(|i| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            t += (rng % (14 * HOUR as u64)) as i64;
            let region = regions[(rng >> 20) as usize % regions.len()];
            won(
                &format!("e{i}"),
                Timestamp::from_nanos(t),
                region,
                (rng >> 40) as i64 % 500,
            )
        })
        .collect();
    for i in (1..events.len()).step_by(3) {
        let gap = events[i].occurred_at.as_nanos() - events[i - 1].occurred_at.as_nanos();
        if gap < 2 * HOUR {
            events.swap(i, i - 1);
        }
    }
    events
}

/// The finals and status transitions, by id. (Which event triggers a milestone depends on the
/// order events arrive in, as it always has; finals and statuses do not.)
fn sorted(mut out: Vec<Attainment>) -> Vec<Attainment> {
    out.retain(|a| !matches!(a.kind, AttainmentKind::Milestone | AttainmentKind::Breached));
    out.sort_by(|a, b| a.attainment_id.cmp(&b.attainment_id));
    out
}

const TWO_GOALS: &str = r#"
[[goals]]
id = "weekly-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "7d" }
target = 8
grace = "6h"

[[goals]]
id = "monthly-revenue"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "month", timezone = "America/New_York" }
target = 4000
grace = "6h"
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Replay and any split over routers and owners give the same attainment events, status
    /// transitions and roster finals included.
    #[test]
    fn every_split_gives_the_same_transitions(seed in 1u64.., inputs in 1u32..4, owners in 1u32..4, order in any::<u64>()) {
        let status = StatusSpec {
            every: Duration::from_nanos(DAY),
            tolerance: d("0.2"),
            hold: Duration::from_nanos(DAY),
        };
        let pace = Pace::from_points(&[(Decimal::ZERO, Decimal::ZERO), (d("0.5"), d("0.4")), (Decimal::ONE, Decimal::ONE)]).unwrap();
        let set = goals(TWO_GOALS, &status, pace, Some(false));
        let events = stream(seed, 120);
        let queues = partitioned(&events, inputs);
        let mut in_order = events.clone();
        in_order.extend(queues.iter().map(|q| q.last().unwrap().clone()));
        let one = sorted(replay(&set, Some(ROSTER), &in_order));
        let many = sorted(distributed(&set, ROSTER, &queues, owners, order));
        prop_assert!(one.iter().any(|a| a.kind == AttainmentKind::AtRisk));
        prop_assert!(one.iter().any(|a| a.group[0].1 == "South"));
        let only_one: Vec<_> = one.iter().filter(|a| !many.contains(a)).collect();
        let only_many: Vec<_> = many.iter().filter(|a| !one.contains(a)).collect();
        prop_assert!(only_one.is_empty() && only_many.is_empty(), "replay only: {only_one:#?}\nsplit only: {only_many:#?}");
    }
}
