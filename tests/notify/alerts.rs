//! The whole path on the broker: sales events -> `goalpost run` -> attainment topic -> `goalpost
//! notify` -> a real Alertmanager -> its webhook receiver. Alerts fire and group as goals go at
//! risk, stay firing across a kill -9 of notify (restored from its state topic, neither resolved
//! nor fired again as new), and resolve as a goal recovers and as a window ends.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use goalpost::model::{SalesEvent, Timestamp};
use serde_json::Value;

use crate::spawn_notify;
use crate::support::alertmanager::{next, pair, receiver, starts_at, statuses, Alertmanager};
use crate::support::dirs::{tmp_dir, unique};
use crate::support::events::deal_won as won;
use crate::support::kafka::{spawn_with_log, Kafka};

/// Alertmanager's `resolve_timeout` here: above the consumer session timeout (6 s) plus a start,
/// so that the restarted notify gets the partitions and re-sends before it runs out.
const RESOLVE_SECS: u64 = 15;

/// Daily wins per region against a linear pace, judged every hour; a region is at risk once it
/// is behind the pace at all (`tolerance = 0`, `for = "0s"`).
const GOALS: &str = r#"
[[goals]]
id = "daily-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "1d" }
target = 24
status = { every = "1h", tolerance = 0.0 }
grace = "0s"
"#;

/// A child process killed (SIGKILL) when dropped, also when an assertion fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The service config of input `name` (attainments on `{name}-out`), with notify posting to `am`.
fn config(k: &Kafka, name: &str, am: &Alertmanager) -> PathBuf {
    let path = k.write_config(name, GOALS, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n[notify]\nlisten = \"127.0.0.1:0\"\n\
         [notify.alertmanager]\nurls = [\"{}\"]\nresend_interval = \"1s\"\n",
        am.url
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// `2026-01-01T{hhmmss}Z` (or the next day with `day = 2`).
fn at(day: u32, hhmmss: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("2026-01-0{day}T{hhmmss}Z")).unwrap()
}

/// An event of no goal that moves stream time to `at`, deciding the ticks before it.
fn clock(id: &str, at: Timestamp) -> SalesEvent {
    SalesEvent {
        event_id: id.into(),
        event_type: "activity_logged".into(),
        occurred_at: at,
        ..SalesEvent::default()
    }
}

fn quiet_for(rx: &Receiver<Value>, d: Duration, what: &str) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("{what}: Alertmanager notified: {other:?}"),
        }
    }
}

/// A numeric annotation of an alert.
fn annotation(alert: &Value, name: &str) -> f64 {
    let text = alert["annotations"][name].as_str();
    text.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("annotation {name}: {alert}"))
}

/// Starts `goalpost run` on `cfg`, its log draining in the background.
fn spawn_run(cfg: &Path) -> Killed {
    let (child, log) = spawn_with_log(cfg, "i0", &[]);
    std::thread::spawn(move || for _ in log {});
    Killed(child)
}

#[test]
fn goals_at_risk_fire_survive_a_kill_and_resolve_as_they_recover() {
    let k = Kafka::connect();
    let name = unique("alerts");
    k.create_topic(&name, 1);
    let (hook, rx) = receiver();
    let am = Alertmanager::start_with(&hook, RESOLVE_SECS);
    let cfg = config(&k, &name, &am);
    let log = tmp_dir().join("notify.log");

    // One win each at 00:30: on pace at the 01:00 tick, behind it at 02:00.
    k.produce_json(
        &name,
        &[
            won("e-east-0", "east", at(1, "00:30:00")),
            won("w-west-0", "west", at(1, "00:30:00")),
            clock("c1", at(1, "02:30:00")),
        ],
    );
    let _run = spawn_run(&cfg);
    k.wait_group_committed(&format!("{name}-app"), &name, Duration::from_secs(60));
    let notify = Killed(spawn_notify(&cfg, &log));
    let fired = next(&rx);
    assert_eq!(fired["status"], "firing", "{fired}");
    assert_eq!(
        statuses("region", &fired),
        [pair("east", "firing"), pair("west", "firing")]
    );
    let alerts = fired["alerts"].as_array().unwrap();
    for a in alerts {
        assert_eq!(a["labels"]["alertname"], "GoalpostGoalAtRisk", "{a}");
        assert_eq!(a["labels"]["goal"], "daily-wins", "{a}");
        assert_eq!(a["labels"]["window_start"], "2026-01-01T00:00:00Z", "{a}");
        // At 02:00, 2 of 24 are expected; 1 win projects to 12 by the day's end.
        assert_eq!(a["annotations"]["value"], "1", "{a}");
        assert!((annotation(a, "expected") - 2.0).abs() < 1e-9, "{a}");
        assert!((annotation(a, "projected") - 12.0).abs() < 1e-9, "{a}");
    }
    let starts: Vec<Timestamp> = alerts.iter().map(starts_at).collect();
    // Up to the end: past the marker of run's last transaction too.
    k.wait_group_committed(
        &format!("{name}-app-notify"),
        &format!("{name}-out"),
        Duration::from_secs(30),
    );
    drop(notify); // SIGKILL

    let _notify = Killed(spawn_notify(&cfg, &log));
    quiet_for(&rx, Duration::from_secs(RESOLVE_SECS + 5), "after the kill");
    let active = am.active_alerts();
    assert_eq!(active.len(), 2, "{active:?}");
    for a in &active {
        assert!(starts.contains(&starts_at(a)), "startsAt changed: {a}");
    }

    // East wins 24 more before 03:00 and is back on pace at that tick; west stays behind.
    let mut catch_up: Vec<SalesEvent> = (0..24)
        .map(|i| {
            let t = Timestamp::from_nanos(at(1, "02:35:00").as_nanos() + i * 60_000_000_000);
            won(&format!("e-east-{}", i + 1), "east", t)
        })
        .collect();
    catch_up.push(clock("c2", at(1, "03:30:00")));
    k.produce_json(&name, &catch_up);
    let resolved = next(&rx);
    assert_eq!(
        statuses("region", &resolved),
        [pair("east", "resolved"), pair("west", "firing")]
    );

    // The day ends: west's final (missed) resolves its alert.
    k.produce_json(&name, &[clock("c3", at(2, "00:30:00"))]);
    let done = next(&rx);
    assert_eq!(done["status"], "resolved", "{done}");
    assert_eq!(statuses("region", &done), [pair("west", "resolved")]);
}
