//! The Alertmanager sink against a real Prometheus Alertmanager v0.28.1 (built with `go install`
//! by `scripts/alertmanager`, started on loopback), whose receiver is a webhook to a server in
//! this test: alerts fire, group, stay firing across re-sends and a restart from the state
//! records, and resolve.

#[allow(dead_code)]
mod support;

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goalpost::model::{
    Attainment, AttainmentKind, Duration as GpDuration, Outcome, Timestamp, Window,
};
use goalpost::notify::alertmanager::AlertmanagerConfig;
use goalpost::runtime::notify::{
    AlertmanagerSink, Delivery, Sink, StateRecord, ALERTMANAGER_RETRY as RETRY,
};
use serde_json::Value;
use support::alertmanager::{
    free_port, next, pair, receiver, starts_at, statuses, Alertmanager, RESOLVE_TIMEOUT_SECS,
};

/// Longer than `resolve_timeout`, and long enough for Alertmanager to notify about anything new
/// (group_wait and group_interval 1s).
const QUIET: Duration = Duration::from_secs(RESOLVE_TIMEOUT_SECS + 2);

/// Ticks `sink` for [`QUIET`] and checks Alertmanager notified nothing meanwhile.
fn tick_quietly(sink: &mut AlertmanagerSink, rx: &Receiver<Value>, what: &str) {
    let end = Instant::now() + QUIET;
    while Instant::now() < end {
        sink.tick();
        match rx.recv_timeout(Duration::from_millis(200)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("{what}: Alertmanager notified: {other:?}"),
        }
    }
}

fn sink(urls: Vec<String>) -> AlertmanagerSink {
    let mut config = AlertmanagerConfig::with_urls(urls);
    config.resend_interval = GpDuration::from_secs(1);
    config.dashboard_url = Some("http://127.0.0.1:8080".into());
    config.labels.insert("team".into(), "sales-ops".into());
    AlertmanagerSink::new(&config, &support::dirs::unique("am")).unwrap()
}

const HOUR_NANOS: i64 = 3_600_000_000_000;
const WINDOW_START: i64 = 1_764_547_200_000_000_000; // 2025-12-01T00:00:00Z

fn event(kind: AttainmentKind, goal: &str, team: &str) -> Delivery {
    let attainment = Attainment {
        attainment_id: format!("{kind}-{goal}-{team}"),
        goal_id: Arc::from(goal),
        kind,
        group: vec![(Arc::from("team.id"), team.to_string())],
        window: Window {
            start: Timestamp::from_nanos(WINDOW_START),
            end: Timestamp::from_nanos(WINDOW_START + 24 * HOUR_NANOS),
        },
        value: Some("7".parse().unwrap()),
        target: "20".parse().unwrap(),
        progress: Some("0.35".parse().unwrap()),
        milestone: None,
        outcome: (kind == AttainmentKind::Final).then_some(Outcome::Missed),
        triggered_by: None,
        event_time: Timestamp::from_nanos(WINDOW_START + HOUR_NANOS),
        expected: Some("10".parse().unwrap()),
        projected: Some("16.8".parse().unwrap()),
        tick: Some(Timestamp::from_nanos(WINDOW_START + HOUR_NANOS)),
    };
    Delivery {
        attainment,
        json: Vec::new(),
        partition: 0,
        offset: 0,
    }
}

fn deliver(sink: &mut AlertmanagerSink, batch: &[Delivery]) {
    let given_up = sink.deliver(batch);
    assert!(given_up.is_empty(), "{given_up:?}");
}

#[test]
fn alerts_fire_group_survive_a_restart_and_resolve() {
    let (hook, rx) = receiver();
    let am = Alertmanager::start(&hook);
    let mut first = sink(vec![am.url.clone()]);

    // Two groups of one goal go at risk: one notification, grouped by goal.
    deliver(
        &mut first,
        &[
            event(AttainmentKind::AtRisk, "win_rate", "a"),
            event(AttainmentKind::AtRisk, "win_rate", "b"),
        ],
    );
    let fired = next(&rx);
    assert_eq!(fired["status"], "firing");
    assert_eq!(fired["groupLabels"]["goal"], "win_rate");
    assert_eq!(
        statuses("team_id", &fired),
        [pair("a", "firing"), pair("b", "firing")]
    );
    let alert = &fired["alerts"][0];
    let labels = &alert["labels"];
    assert_eq!(labels["alertname"], "GoalpostGoalAtRisk");
    assert_eq!(labels["goal"], "win_rate");
    assert_eq!(labels["window_start"], "2025-12-01T00:00:00Z");
    assert_eq!(labels["team"], "sales-ops");
    assert_eq!(labels.as_object().unwrap().len(), 5, "{labels}");
    let annotations = &alert["annotations"];
    assert_eq!(annotations["value"], "7");
    assert_eq!(annotations["target"], "20");
    assert_eq!(annotations["progress"], "0.35");
    assert_eq!(annotations["expected"], "10");
    assert_eq!(annotations["projected"], "16.8");
    let team = labels["team_id"].as_str().unwrap();
    assert_eq!(
        annotations["attainment_id"],
        format!("at_risk-win_rate-{team}")
    );
    assert_eq!(
        annotations["dashboard"],
        "http://127.0.0.1:8080/#goal=win_rate"
    );
    assert_eq!(alert["generatorURL"], annotations["dashboard"]);
    let sent: Vec<Timestamp> = first
        .active()
        .iter()
        .map(|a| Timestamp::from_nanos(a.starts_at))
        .collect();
    assert!(sent.contains(&starts_at(alert)), "{alert} vs {sent:?}");

    // Re-sending every second keeps them firing past resolve_timeout, without a new notification.
    tick_quietly(&mut first, &rx, "re-sending the active alerts");

    // A fresh sink restored from the state records (a restart) keeps them firing: no resolve after
    // resolve_timeout, no new fire.
    let state: Vec<StateRecord> = first.take_state().into_iter().map(|(_, r)| r).collect();
    assert_eq!(state.len(), 2);
    drop(first);
    let mut restarted = sink(vec![am.url.clone()]);
    for record in state {
        restarted.restore(0, record);
    }
    restarted.assigned(&[0]);
    tick_quietly(&mut restarted, &rx, "after the restart");
    let active = am.active_alerts();
    assert_eq!(active.len(), 2, "{active:?}");
    for a in &active {
        assert!(sent.contains(&starts_at(a)), "startsAt changed: {a}");
    }

    // on_track resolves team a's alert; team b's stays firing.
    deliver(
        &mut restarted,
        &[event(AttainmentKind::OnTrack, "win_rate", "a")],
    );
    let resolved = next(&rx);
    assert_eq!(resolved["status"], "firing");
    assert_eq!(
        statuses("team_id", &resolved),
        [pair("a", "resolved"), pair("b", "firing")]
    );

    // The window's final resolves the rest (team a's alert, notified as resolved already, is no
    // longer in the group).
    deliver(
        &mut restarted,
        &[event(AttainmentKind::Final, "win_rate", "b")],
    );
    let done = next(&rx);
    assert_eq!(done["status"], "resolved");
    assert_eq!(statuses("team_id", &done), [pair("b", "resolved")]);
    assert!(restarted.active().is_empty());
    let tombstones = restarted.take_state();
    assert_eq!(tombstones.len(), 2);
    assert!(tombstones.iter().all(|(_, (_, value))| value.is_none()));
}

#[test]
fn every_url_is_posted_to_and_a_down_one_does_not_hold_delivery() {
    let (hook_one, rx_one) = receiver();
    let (hook_two, rx_two) = receiver();
    let one = Alertmanager::start(&hook_one);
    let two = Alertmanager::start(&hook_two);
    let down = format!("http://127.0.0.1:{}", free_port());

    let mut sink = sink(vec![down.clone(), one.url.clone(), two.url.clone()]);
    deliver(&mut sink, &[event(AttainmentKind::Breached, "cost", "a")]);
    for rx in [&rx_one, &rx_two] {
        let fired = next(rx);
        assert_eq!(
            fired["alerts"][0]["labels"]["alertname"],
            "GoalpostGoalBreached"
        );
        assert_eq!(statuses("team_id", &fired), [pair("a", "firing")]);
    }

    // With no Alertmanager up, the events that changed alerts are given up with the last error.
    let mut alone = self::sink(vec![down.clone()]);
    let batch = [
        event(AttainmentKind::Milestone, "cost", "a"),
        event(AttainmentKind::Breached, "cost", "a"),
    ];
    let given_up = alone.deliver(&batch);
    assert_eq!(given_up.len(), 1, "{given_up:?}");
    assert_eq!(
        given_up[0].delivery.attainment.kind,
        AttainmentKind::Breached
    );
    assert_eq!(given_up[0].attempts, RETRY.max_attempts);
    assert!(
        given_up[0].last_error.contains(&down),
        "{}",
        given_up[0].last_error
    );
    assert_eq!(alone.active().len(), 1, "it stays active, to be sent again");
}
