//! Progress records from an owner's changes: one per changed window, equal to the query API's
//! view of it while open, and carrying the final's outcome once closed; and the coalescing.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::*;
use crate::engine::{Owner, Routed, Router};
use crate::goals::GoalSet;
use crate::limits::Limits;
use crate::model::{Attainment, AttainmentKind, SalesEvent, StringField};
use crate::serve::hub::{window_page, Order};

const GOALS: &str = r#"
[[goals]]
id = "wins"
metric = "count"
group_by = ["region"]
window = { tumbling = "1d" }
target = 4
milestones = [0.25, 0.5, 1.0]
grace = "0s"
status = { every = "6h" }

[[goals]]
id = "cap"
metric = "count"
group_by = ["region"]
window = { tumbling = "1d" }
target = 1
direction = "at_most"
grace = "0s"
"#;

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

/// A router feeding an owner that tracks its changes.
struct Engine {
    goals: Arc<GoalSet>,
    router: Router,
    owner: Owner,
    out: Vec<Attainment>,
}

impl Engine {
    fn new() -> Self {
        let goals = Arc::new(GoalSet::from_toml(GOALS).unwrap_or_else(|e| panic!("{e}")));
        let mut owner = Owner::new(goals.clone(), 1);
        owner.track_changes();
        Engine {
            router: Router::new(goals.clone(), 0, &Limits::DEFAULT),
            goals,
            owner,
            out: Vec::new(),
        }
    }

    fn feed(&mut self, id: &str, region: &str, time: &str) {
        let mut ev = SalesEvent {
            event_id: id.into(),
            event_type: "deal_won".into(),
            occurred_at: at(time),
            ..SalesEvent::default()
        };
        ev.set_string(StringField::Region, region);
        let (owner, out) = (&mut self.owner, &mut self.out);
        let routed = self.router.route(&ev, |c| {
            owner.apply(&c, out);
        });
        if let Routed::Accepted { progress: Some(p) } = routed {
            self.owner.progress(p, &mut self.out);
        }
    }

    /// The progress records of the changes since the last take.
    fn take(&mut self) -> Vec<GoalProgress> {
        let now = self.owner.stream_time();
        let changes = self.owner.take_changes();
        progress_of_changes(&self.goals, &changes, now)
    }
}

fn keys(records: &[GoalProgress]) -> Vec<String> {
    records.iter().map(GoalProgress::key).collect()
}

#[test]
fn each_changed_window_has_one_record_equal_to_the_query_apis_view() {
    let mut e = Engine::new();
    e.feed("a", "east", "2026-01-01T01:00:00Z");
    e.feed("b", "east", "2026-01-01T02:00:00Z");
    e.feed("c", "west", "2026-01-01T07:00:00Z");
    e.feed("d", "east", "2026-01-01T09:00:00Z");
    let records = e.take();
    let mut expected_keys = vec![
        "cap|east|2026-01-01T00:00:00Z",
        "cap|west|2026-01-01T00:00:00Z",
        "wins|east|2026-01-01T00:00:00Z",
        "wins|west|2026-01-01T00:00:00Z",
    ];
    let mut got = keys(&records);
    got.sort();
    expected_keys.sort();
    assert_eq!(got, expected_keys, "one record per changed window");
    for p in &records {
        let index = e
            .goals
            .goals
            .iter()
            .position(|g| g.id == p.goal_id)
            .unwrap();
        let page = window_page(
            &e.goals.goals[index],
            index,
            std::iter::once(&e.owner),
            "me",
            Order::default(),
            10,
        );
        let view = page
            .windows
            .iter()
            .find(|v| v.group["region"] == p.group[0].1)
            .unwrap();
        let num = |d: Option<Decimal>| d.map(|d| d.normalize().to_string());
        let shown = |n: Option<crate::serve::hub::Num>| n.map(|n| n.0.normalize().to_string());
        assert_eq!(view.window_start, p.window.start.to_rfc3339());
        assert_eq!(view.window_end, p.window.end.to_rfc3339());
        assert_eq!(shown(view.value), num(p.value));
        assert_eq!(shown(view.progress), num(p.progress));
        assert_eq!(view.direction, p.direction);
        assert_eq!(view.breached, p.breached);
        let reached: Vec<String> = view
            .milestones
            .iter()
            .filter(|m| m.reached)
            .map(|m| m.fraction.0.normalize().to_string())
            .collect();
        let record_reached: Vec<String> =
            p.milestones_reached.iter().map(|m| m.to_string()).collect();
        assert_eq!(reached, record_reached);
        let status = p.status.as_ref();
        assert_eq!(view.status.as_deref(), status.map(|s| s.status));
        assert_eq!(
            view.status_tick.clone(),
            status.map(|s| s.tick.map(|t| t.to_rfc3339()))
        );
        assert_eq!(view.expected.map(shown), status.map(|s| num(s.expected)));
        assert_eq!(view.projected.map(shown), status.map(|s| num(s.projected)));
        assert!(p.open && p.outcome.is_none());
        assert_eq!(p.updated_at, Some(at("2026-01-01T09:00:00Z")));
    }
    let east = records
        .iter()
        .find(|p| p.key() == "wins|east|2026-01-01T00:00:00Z")
        .unwrap();
    assert_eq!(east.value, Some(Decimal::from(3)));
    assert_eq!(east.progress, Some("0.75".parse().unwrap()));
    assert_eq!(
        east.milestones_reached,
        ["0.25".parse::<Decimal>().unwrap(), "0.5".parse().unwrap()]
    );
    assert_eq!(east.last_event_time, Some(at("2026-01-01T09:00:00Z")));
    let status = east.status.as_ref().expect("a goal with status");
    assert_eq!(status.tick, Some(at("2026-01-01T06:00:00Z")));
    let cap_east = records
        .iter()
        .find(|p| p.key() == "cap|east|2026-01-01T00:00:00Z")
        .unwrap();
    assert!(cap_east.breached && cap_east.status.is_none());
    assert!(cap_east.milestones_reached.is_empty());

    // Nothing changed: no records.
    assert!(e.take().is_empty());
    // One window changed: only its record.
    e.feed("e", "west", "2026-01-01T10:00:00Z");
    assert_eq!(
        keys(&e.take()),
        [
            "wins|west|2026-01-01T00:00:00Z",
            "cap|west|2026-01-01T00:00:00Z"
        ]
    );
}

#[test]
fn a_closed_window_keeps_its_last_state_with_the_finals_outcome() {
    let mut e = Engine::new();
    e.feed("a", "east", "2026-01-01T01:00:00Z");
    e.feed("b", "west", "2026-01-01T02:00:00Z");
    e.feed("c", "west", "2026-01-01T03:00:00Z");
    e.take();
    e.out.clear();
    // The next day closes the first.
    e.feed("d", "east", "2026-01-02T05:00:00Z");
    let records = e.take();
    let finals: Vec<&Attainment> = e
        .out
        .iter()
        .filter(|a| a.kind == AttainmentKind::Final)
        .collect();
    assert_eq!(finals.len(), 4);
    for f in finals {
        let key = format!(
            "{}|{}|{}",
            f.goal_id,
            f.group[0].1,
            f.window.start.to_rfc3339()
        );
        let mine: Vec<&GoalProgress> = records.iter().filter(|p| p.key() == key).collect();
        assert_eq!(mine.len(), 1, "{key}: one record");
        let p = mine[0];
        assert!(!p.open, "{key}");
        assert_eq!(p.outcome, f.outcome, "{key}");
        assert_eq!(p.value, f.value, "{key}");
        assert_eq!(p.window, f.window, "{key}");
    }
    let west_cap = records
        .iter()
        .find(|p| p.key() == "cap|west|2026-01-01T00:00:00Z")
        .unwrap();
    assert_eq!(west_cap.outcome, Some(crate::model::Outcome::Missed));
    assert_eq!(west_cap.last_event_time, Some(at("2026-01-01T03:00:00Z")));
    assert_eq!(west_cap.updated_at, Some(at("2026-01-02T05:00:00Z")));
    // And the new day's windows of east, open.
    assert!(records
        .iter()
        .any(|p| p.open && p.key() == "wins|east|2026-01-02T00:00:00Z"));
}

#[test]
fn coalescing_keeps_the_last_record_of_each_key_in_the_order_of_those() {
    let mut e = Engine::new();
    e.feed("a", "east", "2026-01-01T01:00:00Z");
    let first = e.take();
    e.feed("b", "east", "2026-01-01T02:00:00Z");
    e.feed("c", "west", "2026-01-01T03:00:00Z");
    let second = e.take();
    let all: Vec<GoalProgress> = first.iter().chain(&second).cloned().collect();
    let kept = coalesce(all.clone());
    let mut kept_keys: Vec<&str> = kept.iter().map(|(k, _)| k.as_str()).collect();
    kept_keys.sort_unstable();
    kept_keys.dedup();
    assert_eq!(kept_keys.len(), kept.len(), "one record per key");
    assert_eq!(kept.len(), 4);
    for (key, p) in &kept {
        assert_eq!(*key, p.key());
        let last = all.iter().rev().find(|q| q.key() == *key).unwrap();
        assert_eq!(p, last, "{key}: the latest state");
    }
    // Order: by each key's last record.
    let order: Vec<String> = kept.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(order, keys(&second));
    assert!(coalesce(Vec::new()).is_empty());
}
