//! The look-ahead fields of the query API: each window's status, last decided tick, expected
//! and projected values for goals with `status`, none of them for other goals, and what a peer
//! may send in them.

use std::collections::BTreeMap;

use super::*;
use crate::engine::Pipeline;
use crate::goals::{Pace, StatusSpec};
use crate::model::{SalesEvent, StringField, Timestamp};
use crate::serve::hub::{window_page, GoalView, Order};

/// Four goals alike: without status; status with `for = 0s`; status with `for = 6h`; status
/// with `for = 0s` and a back-loaded pace.
fn goals() -> Arc<GoalSet> {
    let one = |id: &str| {
        format!(
            "[[goals]]\nid = \"{id}\"\nmetric = \"count\"\ngroup_by = [\"region\"]\n\
             window = {{ tumbling = \"1d\" }}\ntarget = 4\ngrace = \"0s\"\n\n"
        )
    };
    let text: String = ["plain", "now", "held", "curve"].map(one).concat();
    let mut set = GoalSet::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    let hours = |h: i64| crate::model::Duration::from_secs(h * 3600);
    for (goal, hold) in set.goals.iter_mut().skip(1).zip([0, 6, 0]) {
        goal.status = Some(StatusSpec {
            every: hours(6),
            tolerance: "0.1".parse().unwrap(),
            hold: hours(hold),
        });
    }
    set.goals[3].pace = Pace::from_points(&[
        (Decimal::ZERO, Decimal::ZERO),
        ("0.5".parse().unwrap(), "0.25".parse().unwrap()),
        (Decimal::ONE, Decimal::ONE),
    ])
    .unwrap();
    Arc::new(set)
}

/// North wins once just after midnight, east twice, west once at noon: the owner's stream
/// time is noon, half of the day's window.
fn pipeline(goals: &Arc<GoalSet>) -> Pipeline {
    let mut p = Pipeline::new(goals.clone());
    let mut out = Vec::new();
    for (i, (region, time)) in [
        ("north", "00:10"),
        ("east", "00:30"),
        ("east", "01:00"),
        ("west", "12:00"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ev = SalesEvent {
            event_id: format!("e{i}"),
            event_type: "deal_won".into(),
            occurred_at: Timestamp::parse_rfc3339(&format!("2026-01-01T{time}:00Z")).unwrap(),
            ..SalesEvent::default()
        };
        ev.set_string(StringField::Region, region);
        p.process(&ev, &mut out);
    }
    p
}

/// Each group's window of goal `index`.
fn windows(p: &Pipeline, goals: &GoalSet, index: usize) -> BTreeMap<String, WindowView> {
    let goal = &goals.goals[index];
    let answer = window_page(
        goal,
        index,
        std::iter::once(p.owner()),
        "me",
        Order::default(),
        10,
    );
    answer
        .windows
        .into_iter()
        .map(|w| (w.group["region"].clone(), w))
        .collect()
}

/// (status, status_tick, expected, projected) of a window, as JSON text.
fn look(w: &WindowView) -> [String; 4] {
    let v = serde_json::to_value(w).unwrap();
    ["status", "status_tick", "expected", "projected"].map(|k| v[k].to_string())
}

#[test]
fn windows_of_goals_with_status_show_their_status_expected_and_projected_values() {
    let goals = goals();
    let p = pipeline(&goals);
    let noon = "\"2026-01-01T12:00:00Z\"";
    let got = windows(&p, &goals, 1);
    // Expected by noon: 4 × 0.5. North fell below 2 × 0.9 at the noon tick; west had no event
    // before any tick, so no tick has been decided for it yet.
    assert_eq!(look(&got["east"]), ["\"on_track\"", noon, "2", "4"]);
    assert_eq!(look(&got["north"]), ["\"at_risk\"", noon, "2", "2"]);
    assert_eq!(look(&got["west"]), ["\"on_track\"", "null", "2", "2"]);
    // The linear `pace` field stays as it was.
    assert_eq!(got["east"].pace, Some(Num(Decimal::from(4))));

    let held = windows(&p, &goals, 2);
    assert_eq!(look(&held["north"]), ["\"pending\"", noon, "2", "2"]);

    // Along the curve 4 × 0.25 is expected by noon, and east's 2 projects to 2 ÷ 0.25.
    let curve = windows(&p, &goals, 3);
    assert_eq!(look(&curve["east"]), ["\"on_track\"", noon, "1", "8"]);
    assert_eq!(look(&curve["north"])[2..], ["1", "4"]);
}

#[test]
fn goals_without_status_have_no_look_ahead_fields() {
    let goals = goals();
    let p = pipeline(&goals);
    for w in windows(&p, &goals, 0).values() {
        let w = serde_json::to_value(w).unwrap();
        for key in ["status", "status_tick", "expected", "projected"] {
            assert!(w.get(key).is_none(), "{key} in {w}");
        }
    }
    let plain = serde_json::to_value(GoalView::of(&goals.goals[0])).unwrap();
    assert!(plain.get("pace").is_none() && plain.get("status").is_none());

    let curve = curve_goal_json();
    assert!(
        curve.ends_with(
            r#""pace":[[0,0],[0.5,0.25],[1,1]],"status":{"every":"6h","tolerance":0.1,"for":"0s"}}"#
        ),
        "{curve}"
    );
    let linear = serde_json::to_value(GoalView::of(&goals.goals[1])).unwrap();
    assert_eq!(linear["pace"], "linear");
}

#[test]
fn look_ahead_fields_read_from_a_peer_keep_null_apart_from_absent_and_are_checked() {
    let goals = goals();
    let p = pipeline(&goals);
    let text = serde_json::to_string(&windows(&p, &goals, 1)["west"]).unwrap();
    assert!(text.contains("\"status_tick\":null"), "{text}");
    let read: WindowView = serde_json::from_str(&text).unwrap();
    assert_eq!(read.status_tick, Some(None));
    assert_eq!(
        serde_json::to_string(&read).unwrap(),
        text,
        "written back alike"
    );
    assert!(read.check("now", "me").is_ok());

    let plain: WindowView = serde_json::to_string(&view("east", 1, "me"))
        .and_then(|t| serde_json::from_str(&t))
        .unwrap();
    assert_eq!((plain.status, plain.status_tick), (None, None));

    let mut bad = read.clone();
    bad.status = Some("<b>late</b>".into());
    let e = bad.check("now", "me").unwrap_err().to_string();
    assert!(e.contains("on_track, pending or at_risk"), "{e}");
    let mut bad = read;
    bad.status_tick = Some(Some("noon".into()));
    assert!(bad.check("now", "me").is_err());
    let pace: Result<GoalView, _> = serde_json::from_str(
        &curve_goal_json().replace("[[0,0],[0.5,0.25],[1,1]]", "\"<script>\""),
    );
    assert!(pace.is_err());
    let back: GoalView = serde_json::from_str(&curve_goal_json()).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), curve_goal_json());
}

fn curve_goal_json() -> String {
    serde_json::to_string(&GoalView::of(&goals().goals[3])).unwrap()
}
