use std::sync::Arc;

use super::state::{self, Stored};
use super::*;
use crate::model::{Attainment, AttainmentKind, Duration, Outcome, Timestamp, Window};

const HOUR: i64 = 3_600_000_000_000;

fn config() -> AlertmanagerConfig {
    let mut c = AlertmanagerConfig::with_urls(vec!["http://am:9093".into()]);
    c.dashboard_url = Some("https://goalpost.example/".into());
    c.labels.insert("severity".into(), "warning".into());
    c
}

fn book(c: &AlertmanagerConfig) -> AlertBook {
    AlertBook::new(Arc::new(Rules::new(c).unwrap()))
}

fn event(kind: AttainmentKind, team: &str, window: i64) -> Attainment {
    Attainment {
        attainment_id: format!("id-{kind}-{team}-{window}"),
        goal_id: Arc::from("win rate"),
        kind,
        group: vec![
            (Arc::from("team_id"), team.to_string()),
            (Arc::from("attributes.segment"), "smb".to_string()),
        ],
        window: Window {
            start: Timestamp::from_nanos(window * HOUR),
            end: Timestamp::from_nanos((window + 1) * HOUR),
        },
        value: Some("12.50".parse().unwrap()),
        target: "40".parse().unwrap(),
        progress: Some("0.3125".parse().unwrap()),
        milestone: None,
        outcome: (kind == AttainmentKind::Final).then_some(Outcome::Missed),
        triggered_by: Some("evt-9".into()),
        event_time: Timestamp::from_nanos(window * HOUR + 60),
        expected: Some("20".parse().unwrap()),
        projected: None,
        tick: None,
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_nanos(1_700_000_000_000_000_000 + secs * 1_000_000_000)
}

fn fired(changes: &[Change]) -> Vec<&Alert> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Fired(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn resolved(changes: &[Change]) -> Vec<&Alert> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Resolved(a) => Some(a),
            _ => None,
        })
        .collect()
}

#[test]
fn at_risk_fires_with_labels_and_annotations() {
    let mut b = book(&config());
    let changes = b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    let [alert] = fired(&changes)[..] else {
        panic!("{changes:?}")
    };
    let labels: Vec<(&str, &str)> = alert
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("alertname", "GoalpostGoalAtRisk"),
            ("attributes_segment", "smb"),
            ("goal", "win rate"),
            ("severity", "warning"),
            ("team_id", "a"),
            ("window_start", "1970-01-01T05:00:00Z"),
        ]
    );
    let ann = &alert.annotations;
    assert_eq!(ann["value"], "12.5");
    assert_eq!(ann["target"], "40");
    assert_eq!(ann["progress"], "0.3125");
    assert_eq!(ann["expected"], "20");
    assert!(!ann.contains_key("projected"));
    assert_eq!(ann["triggered_by"], "evt-9");
    assert_eq!(ann["attainment_id"], "id-at_risk-a-5");
    assert_eq!(ann["dashboard"], "https://goalpost.example/#goal=win+rate");
    assert_eq!(alert.generator_url.as_deref(), Some(&*ann["dashboard"]));
    assert_eq!(alert.starts_at, at(0).as_nanos());
    assert_eq!(alert.ends_at, None);
    assert_eq!(b.len(), 1);
}

#[test]
fn times_are_kept_to_the_millisecond() {
    let mut b = book(&config());
    let now = Timestamp::from_nanos(at(0).as_nanos() + 1_999_999);
    let changes = b.apply(&event(AttainmentKind::AtRisk, "a", 5), now);
    assert_eq!(fired(&changes)[0].starts_at, at(0).as_nanos() + 1_000_000);
}

#[test]
fn a_second_at_risk_changes_nothing_and_keeps_starts_at() {
    let mut b = book(&config());
    b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    assert_eq!(b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(30)), []);
    assert_eq!(b.active().next().unwrap().starts_at, at(0).as_nanos());
}

#[test]
fn on_track_resolves_only_the_at_risk_alert_of_its_window() {
    let mut b = book(&config());
    b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    b.apply(&event(AttainmentKind::Breached, "a", 5), at(1));
    b.apply(&event(AttainmentKind::AtRisk, "b", 5), at(2));
    let changes = b.apply(&event(AttainmentKind::OnTrack, "a", 5), at(10));
    let [alert] = resolved(&changes)[..] else {
        panic!("{changes:?}")
    };
    assert_eq!(alert.key.kind, AlertKind::AtRisk);
    assert_eq!(alert.labels["team_id"], "a");
    assert_eq!(alert.ends_at, Some(at(10).as_nanos()));
    assert_eq!(b.len(), 2);
    assert_eq!(b.apply(&event(AttainmentKind::OnTrack, "a", 5), at(11)), []);
}

#[test]
fn final_resolves_every_alert_of_its_window_and_group() {
    let mut b = book(&config());
    b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    b.apply(&event(AttainmentKind::Breached, "a", 5), at(1));
    b.apply(&event(AttainmentKind::AtRisk, "b", 5), at(2));
    let changes = b.apply(&event(AttainmentKind::Final, "a", 5), at(10));
    assert_eq!(resolved(&changes).len(), 2);
    assert!(fired(&changes).is_empty(), "missed_alert is off");
    assert_eq!(
        b.active().map(|a| &a.labels["team_id"]).collect::<Vec<_>>(),
        ["b"]
    );
}

#[test]
fn a_newer_window_resolves_the_older_windows_alerts() {
    let mut b = book(&config());
    b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    b.apply(&event(AttainmentKind::AtRisk, "b", 5), at(0));
    let changes = b.apply(&event(AttainmentKind::Milestone, "a", 6), at(5));
    let [alert] = resolved(&changes)[..] else {
        panic!("{changes:?}")
    };
    assert_eq!(alert.labels["team_id"], "a");
    assert_eq!(b.len(), 1);
}

#[test]
fn missed_final_fires_a_short_alert_that_expires() {
    let mut c = config();
    c.missed_alert = true;
    c.missed_alert_for = Duration::from_secs(600);
    let mut b = book(&c);
    b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    let changes = b.apply(&event(AttainmentKind::Final, "a", 5), at(100));
    assert_eq!(resolved(&changes).len(), 1);
    let [missed] = fired(&changes)[..] else {
        panic!("{changes:?}")
    };
    assert_eq!(missed.labels["alertname"], "GoalpostGoalMissed");
    assert_eq!(missed.annotations["outcome"], "missed");
    assert_eq!(missed.ends_at, Some(at(700).as_nanos()));
    // The next window does not cut it short; reading the final again changes nothing.
    assert_eq!(
        b.apply(&event(AttainmentKind::AtRisk, "a", 6), at(200))
            .len(),
        1
    );
    assert_eq!(b.apply(&event(AttainmentKind::Final, "a", 5), at(201)), []);
    let (_, expired) = b.take_due(at(699));
    assert!(expired.is_empty());
    let (due, expired) = b.take_due(at(700));
    assert!(due.iter().all(|a| a.key.kind == AlertKind::AtRisk));
    assert!(matches!(&expired[..], [Change::Expired(a)] if a.key.kind == AlertKind::Missed));
    assert_eq!(expired[0].to_post(), None);
    assert_eq!(expired[0].state_record().1, None);
}

#[test]
fn only_configured_kinds_and_goals_fire() {
    let mut c = config();
    c.fire = vec!["breached".into()];
    let mut b = book(&c);
    assert_eq!(b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0)), []);
    assert_eq!(
        fired(&b.apply(&event(AttainmentKind::Breached, "a", 5), at(0))).len(),
        1
    );
    c.goals = vec!["other".into()];
    let mut b = book(&c);
    assert_eq!(b.apply(&event(AttainmentKind::Breached, "a", 5), at(0)), []);
}

#[test]
fn alerts_are_due_every_resend_interval() {
    let mut b = book(&config());
    b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    b.apply(&event(AttainmentKind::AtRisk, "b", 5), at(30));
    assert!(b.take_due(at(59)).0.is_empty());
    let (due, _) = b.take_due(at(60));
    assert_eq!(
        due.iter().map(|a| &a.labels["team_id"]).collect::<Vec<_>>(),
        ["a"]
    );
    let (due, _) = b.take_due(at(90));
    assert_eq!(
        due.iter().map(|a| &a.labels["team_id"]).collect::<Vec<_>>(),
        ["b"]
    );
    assert!(b.take_due(at(119)).0.is_empty());
    assert_eq!(b.take_due(at(120)).0.len(), 1);
}

#[test]
fn state_records_restore_the_same_alerts_due_at_once() {
    let c = config();
    let mut b = book(&c);
    let mut records = Vec::new();
    for (kind, team) in [
        (AttainmentKind::AtRisk, "a"),
        (AttainmentKind::AtRisk, "b"),
        (AttainmentKind::OnTrack, "b"),
    ] {
        for change in b.apply(&event(kind, team, 5), at(0)) {
            records.push(change.state_record());
        }
    }
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].0, records[1].0, "the resolve is the same key");
    assert_eq!(records[2].1, None, "a tombstone");
    let mut fresh = book(&c);
    for (key, value) in &records {
        fresh.restore(state::decode(key, value.as_deref()).unwrap());
    }
    assert_eq!(
        fresh.active().collect::<Vec<_>>(),
        b.active().collect::<Vec<_>>()
    );
    assert_eq!(
        fresh.take_due(at(1)).0.len(),
        1,
        "restored alerts are sent at once"
    );
    assert_eq!(
        fresh.apply(&event(AttainmentKind::AtRisk, "a", 5), at(2)),
        [],
        "a restored alert does not fire again"
    );
}

#[test]
fn unreadable_state_records_are_errors_naming_the_key() {
    let err = state::decode(b"nope", None).unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");
    let mut b = book(&config());
    let changes = b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    let (key, _) = changes[0].state_record();
    let err = state::decode(&key, Some(b"{}")).unwrap_err();
    assert!(err.to_string().contains("is not an alert"), "{err}");
    let other = b.apply(&event(AttainmentKind::AtRisk, "b", 5), at(0));
    let (_, value) = other[0].state_record();
    assert!(state::decode(&key, value.as_deref()).is_err());
    assert!(matches!(state::decode(&key, None), Ok(Stored::Gone(_))));
}

#[test]
fn postable_json_is_alertmanager_api_v2() {
    let mut b = book(&config());
    let fired = b.apply(&event(AttainmentKind::AtRisk, "a", 5), at(0));
    let resolved = b.apply(&event(AttainmentKind::OnTrack, "a", 5), at(61));
    let body = postable_json(fired.iter().chain(&resolved).filter_map(Change::to_post));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let [first, second] = json.as_array().unwrap().as_slice() else {
        panic!("{json}")
    };
    assert_eq!(first["labels"]["alertname"], "GoalpostGoalAtRisk");
    assert_eq!(first["annotations"]["target"], "40");
    assert_eq!(first["startsAt"], "2023-11-14T22:13:20Z");
    assert!(first.get("endsAt").is_none());
    assert_eq!(
        first["generatorURL"],
        "https://goalpost.example/#goal=win+rate"
    );
    assert_eq!(second["startsAt"], first["startsAt"]);
    assert_eq!(second["endsAt"], "2023-11-14T22:14:21Z");
}

#[test]
fn config_defaults_and_errors() {
    let c: AlertmanagerConfig = toml::from_str(r#"urls = ["http://am:9093"]"#).unwrap();
    assert_eq!(c.fire, ["breached", "at_risk"]);
    assert_eq!(c.alertnames, Alertnames::default());
    assert_eq!(c.resend_interval, Duration::from_secs(60));
    assert_eq!(c.missed_alert_for, Duration::from_secs(3600));
    assert_eq!(c.timeout, Duration::from_secs(10));
    assert!(!c.missed_alert);
    c.validate().unwrap();
    let err = toml::from_str::<AlertmanagerConfig>("urls = []\nresend = \"1m\"").unwrap_err();
    assert!(err.to_string().contains("resend"), "{err}");
    let bad = |edit: fn(&mut AlertmanagerConfig)| {
        let mut c = config();
        edit(&mut c);
        c.validate().unwrap_err().to_string()
    };
    assert!(bad(|c| c.urls.clear()).contains("urls is empty"));
    assert!(bad(|c| c.urls.push("am:9093".into())).contains("`am:9093`"));
    assert!(bad(|c| c.fire.push("milestone".into())).contains("`milestone` cannot fire"));
    assert!(bad(|c| c.alertnames.missed.clear()).contains("alertnames.missed"));
    assert!(bad(|c| c.alertnames.missed = "GoalpostGoalAtRisk".into())
        .contains("`GoalpostGoalAtRisk` is used twice"));
    assert!(bad(|c| c.resend_interval = Duration::ZERO).contains("resend_interval"));
    assert!(bad(|c| {
        c.labels.insert("goal".into(), "x".into());
    })
    .contains("`goal`"));
    assert!(bad(|c| {
        c.labels.insert("team-id".into(), "x".into());
    })
    .contains("`team-id`"));
}
