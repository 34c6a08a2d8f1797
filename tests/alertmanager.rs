//! The Alertmanager sink against a real Prometheus Alertmanager v0.28.1 (built with `go install`
//! by `scripts/alertmanager`, started on loopback), whose receiver is a webhook to a server in
//! this test: alerts fire, group, stay firing across re-sends and a restart from the state
//! records, and resolve.

#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use goalpost::model::{
    Attainment, AttainmentKind, Duration as GpDuration, Outcome, Timestamp, Window,
};
use goalpost::notify::alertmanager::AlertmanagerConfig;
use goalpost::runtime::notify::{AlertmanagerSink, Delivery, Sink, StateRecord};
use serde_json::Value;
use support::dirs::TempDir;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/alertmanager");
/// Alertmanager's `resolve_timeout` in these tests: an alert not sent again within it resolves.
const RESOLVE_TIMEOUT_SECS: u64 = 4;
/// Longer than `resolve_timeout`, and long enough for Alertmanager to notify about anything new
/// (group_wait and group_interval 1s).
const QUIET: Duration = Duration::from_secs(6);
const PATIENCE: Duration = Duration::from_secs(30);

/// Installs Alertmanager once per test run (a clear failure when Go is missing).
fn install() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        let out = Command::new(SCRIPT).arg("install").output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = done {
        panic!("cannot install Alertmanager with scripts/alertmanager (Go is needed): {e}");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Alertmanager, stopped when dropped.
struct Alertmanager {
    url: String,
    data: PathBuf,
    _dir: TempDir,
}

impl Alertmanager {
    /// Starts one whose route groups by `goal` and whose receiver posts to `hook`.
    fn start(hook: &str) -> Alertmanager {
        install();
        let dir = TempDir::new();
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, config_yaml(hook)).unwrap();
        let port = free_port();
        let data = dir.join("data");
        let status = Command::new(SCRIPT)
            .args(["start", path(&config), &port.to_string(), path(&data)])
            .status()
            .unwrap();
        assert!(status.success(), "scripts/alertmanager start failed");
        Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            data,
            _dir: dir,
        }
    }

    /// The alerts it holds as active.
    fn active_alerts(&self) -> Vec<Value> {
        let url = format!(
            "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
            self.url
        );
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        let alerts: Value = serde_json::from_str(&text).unwrap();
        alerts.as_array().unwrap().clone()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .args(["stop", path(&self.data)])
            .status();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn config_yaml(hook: &str) -> String {
    format!(
        "global:\n  resolve_timeout: {RESOLVE_TIMEOUT_SECS}s\n\
         route:\n  receiver: hook\n  group_by: [goal]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook}\n        send_resolved: true\n"
    )
}

/// A webhook receiver: every notification body Alertmanager posts arrives on the channel.
fn receiver() -> (String, Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, tx));
        }
    });
    (url, rx)
}

/// Answers the HTTP/1.1 requests of one connection with 200, sending each body on.
fn serve(stream: TcpStream, tx: mpsc::Sender<Value>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let _ = tx.send(serde_json::from_slice(&body).unwrap());
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(ok.as_bytes()).is_err() {
            return;
        }
    }
}

fn next(rx: &Receiver<Value>) -> Value {
    rx.recv_timeout(PATIENCE)
        .expect("Alertmanager sent no notification")
}

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

/// (team, alert status) of a notification's alerts, sorted.
fn statuses(notification: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = notification["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let team = a["labels"]["team_id"].as_str().unwrap().to_string();
            (team, a["status"].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

fn starts_at(alert: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
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
    assert_eq!(statuses(&fired), [pair("a", "firing"), pair("b", "firing")]);
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
        statuses(&resolved),
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
    assert_eq!(statuses(&done), [pair("b", "resolved")]);
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
        assert_eq!(statuses(&fired), [pair("a", "firing")]);
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
    assert_eq!(given_up[0].attempts, 6);
    assert!(
        given_up[0].last_error.contains(&down),
        "{}",
        given_up[0].last_error
    );
    assert_eq!(alone.active().len(), 1, "it stays active, to be sent again");
}
