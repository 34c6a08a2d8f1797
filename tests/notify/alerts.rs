//! `goalpost notify` with `[notify.alertmanager]`, on the broker, against a real Alertmanager:
//! alerts fire from the attainment topic, stay firing across a kill -9 (restored from the state
//! topic, neither resolved nor fired again), and resolve.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use goalpost::model::Timestamp;
use serde_json::Value;

use crate::spawn_notify;
use crate::support::alertmanager::{next, pair, receiver, starts_at, statuses, Alertmanager};
use crate::support::dirs::{tmp_dir, unique};
use crate::support::kafka::Kafka;

/// Alertmanager's `resolve_timeout` here: above the consumer session timeout (6 s) plus a start,
/// so that the restarted notify gets the partitions and re-sends before it runs out.
const RESOLVE_SECS: u64 = 15;

/// `goalpost notify`, killed (SIGKILL) when dropped, also when an assertion fails.
struct Notify(std::process::Child);

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(k: &Kafka, topic: &str, am: &Alertmanager) -> PathBuf {
    let path = tmp_dir().join("goalpost.toml");
    let text = format!(
        "goals = \"goals.toml\"\n[kafka]\nbootstrap_servers = \"{}\"\n[app]\napplication_id = \"{topic}-app\"\n\
         [input]\ntopics = [\"{topic}-in\"]\n[output]\ntopic = \"{topic}\"\n[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n[notify]\nlisten = \"127.0.0.1:0\"\n\
         [notify.alertmanager]\nurls = [\"{}\"]\nresend_interval = \"1s\"\n",
        k.bootstrap, am.url
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn event(kind: &str, region: &str) -> (String, Vec<u8>) {
    let extra = match kind {
        "at_risk" | "on_track" => r#","expected":40,"tick":"2026-01-10T00:00:00Z""#,
        "final" => r#","outcome":"missed""#,
        _ => "",
    };
    let json = format!(
        r#"{{"attainment_id":"{kind}-{region}","goal_id":"revenue","kind":"{kind}","group":{{"region":"{region}"}},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-02-01T00:00:00Z","value":10,"target":100,"progress":0.1,"event_time":"2026-01-10T00:00:00Z"{extra}}}"#
    );
    (format!("revenue|{region}"), json.into_bytes())
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

#[test]
fn alerts_survive_a_kill_and_resolve() {
    let k = Kafka::connect();
    let topic = unique("alerts");
    k.create_topic(&topic, 3);
    let (hook, rx) = receiver();
    let am = Alertmanager::start_with(&hook, RESOLVE_SECS);
    let cfg = config(&k, &topic, &am);
    let log = tmp_dir().join("notify.log");
    k.produce_raw(
        &topic,
        &[event("at_risk", "east"), event("at_risk", "west")],
    );

    let notify = Notify(spawn_notify(&cfg, &log));
    let fired = next(&rx);
    assert_eq!(fired["status"], "firing");
    assert_eq!(
        statuses("region", &fired),
        [pair("east", "firing"), pair("west", "firing")]
    );
    let starts: Vec<Timestamp> = fired["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(starts_at)
        .collect();
    k.wait_group_committed(
        &format!("{topic}-app-notify"),
        &topic,
        Duration::from_secs(30),
    );
    drop(notify); // SIGKILL

    let _notify = Notify(spawn_notify(&cfg, &log));
    quiet_for(&rx, Duration::from_secs(RESOLVE_SECS + 5), "after the kill");
    let active = am.active_alerts();
    assert_eq!(active.len(), 2, "{active:?}");
    for a in &active {
        assert!(starts.contains(&starts_at(a)), "startsAt changed: {a}");
    }

    k.produce_raw(&topic, &[event("on_track", "east")]);
    let resolved = next(&rx);
    assert_eq!(
        statuses("region", &resolved),
        [pair("east", "resolved"), pair("west", "firing")]
    );
    k.produce_raw(&topic, &[event("final", "west")]);
    let done = next(&rx);
    assert_eq!(done["status"], "resolved");
    assert_eq!(statuses("region", &done), [pair("west", "resolved")]);
}
