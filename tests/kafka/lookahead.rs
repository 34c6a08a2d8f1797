//! Look-ahead goals on Kafka: the at_risk / on_track events and the roster finals of `run` equal
//! replay's on the CRM data, with one instance, three, and across kill -9 restarts.

use std::collections::BTreeMap;

use crate::support::crm_data;
use crate::support::dirs::*;
use crate::support::kafka::*;
use crate::support::replay::*;

/// Agents' quarterly revenue against a back-loaded pace and their monthly wins, both listing the
/// roster `reps` (every agent of `sales_teams.csv`), read from `FILE`.
const GOALS: &str = r#"
[rosters.reps]
file = "FILE"
columns = { rep_id = "sales_agent" }

[[goals]]
id = "agent-quarter-revenue"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
roster = "reps"
window = { calendar = "quarter", timezone = "America/New_York" }
target = 150000
pace = [[0.0, 0.0], [0.5, 0.3], [1.0, 1.0]]
status = { every = "7d", tolerance = 0.1, for = "14d" }
grace = "2d"

[[goals]]
id = "agent-month-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
roster = "reps"
window = { calendar = "month" }
target = 5
status = { every = "1d", tolerance = 0.2 }
grace = "2d"
"#;

/// The goal file with the roster read from `file`.
fn goals(file: &str) -> String {
    GOALS.replace("FILE", file)
}

/// The CRM lines (disordered, with redeliveries) as records keyed by event id, and the lines.
fn crm_records() -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let (opportunities, teams) = crm_data::load();
    let mut events = crm_data::to_events(&opportunities, &teams);
    crm_data::disorder(&mut events);
    let (lines, copies) = crm_data::with_duplicates(&events);
    assert!(copies > 0);
    let records: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["event_id"].as_str().unwrap().to_string();
            (id, l.as_bytes().to_vec())
        })
        .collect();
    (records, lines.iter().map(|l| l.to_string()).collect())
}

/// The CRM records on a new 6-partition topic; returns the topic and the lines.
fn crm_topic(k: &Kafka, prefix: &str) -> (String, Vec<String>) {
    let name = unique(prefix);
    let (records, lines) = crm_records();
    k.create_topic(&name, 6);
    k.produce_raw(&name, &records);
    (name, lines)
}

/// A config for `name` whose goal file reads the roster from a copy of `sales_teams.csv` next
/// to it.
fn config(k: &Kafka, name: &str, extra_app: &str) -> std::path::PathBuf {
    let cfg = k.write_config(name, &goals("sales_teams.csv"), extra_app);
    let csv = crm_data::data_dir().join("sales_teams.csv");
    std::fs::copy(csv, cfg.parent().unwrap().join("sales_teams.csv")).unwrap();
    cfg
}

/// The look-ahead events and finals by attainment id, whole records.
fn status_and_finals(v: &[Attainment]) -> BTreeMap<&str, &str> {
    v.iter()
        .filter(|a| a.is_look_ahead() || a.kind == "final")
        .map(|a| (a.attainment_id.as_str(), a.raw.as_str()))
        .collect()
}

/// `{name}-out` holds every attainment event once, with replay's results: the at_risk, on_track
/// and final events record for record; and there are at_risk, on_track and roster-only `missed`
/// finals (an agent without a win in a quarter) among them.
fn assert_replays_results(k: &Kafka, name: &str, lines: &[String]) {
    let live = k.read_all(&format!("{name}-out"));
    let csv = crm_data::data_dir().join("sales_teams.csv");
    let replay_goals = goals(csv.to_str().unwrap());
    let replayed = replay_bytes(&replay_goals, (lines.join("\n") + "\n").as_bytes());
    assert_exactly_once(&live);
    assert_same_results(&replay_goals, &replayed, &live);
    let (r, l) = (status_and_finals(&replayed), status_and_finals(&live));
    let only_replay: Vec<_> = r
        .iter()
        .filter(|(id, _)| !l.contains_key(*id))
        .take(5)
        .collect();
    assert_eq!(r, l, "whole records; first only in replay: {only_replay:?}");
    for kind in ["at_risk", "on_track"] {
        assert!(live.iter().any(|a| a.kind == kind), "no {kind} event");
    }
    let roster_only = live
        .iter()
        .filter(|a| a.goal_id == "agent-quarter-revenue" && a.kind == "final" && a.value == "0");
    assert!(
        roster_only.clone().all(|a| a.outcome == "missed") && roster_only.count() > 0,
        "missed finals of agents without a win in a quarter"
    );
}

/// One instance, `run --until-caught-up --close-all-at-end`: replay's look-ahead events and
/// finals, each once.
#[test]
fn lookahead_run_equals_replay_on_crm_data() {
    let k = Kafka::connect();
    let (name, lines) = crm_topic(&k, "ahead");
    let cfg = config(&k, &name, "");
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "goalpost run failed:\n{log}");
    assert_replays_results(&k, &name, &lines);
}

/// Starts instance `id` and waits until it holds partitions; returns it and its log so far.
fn started_with_partitions(cfg: &std::path::Path, id: &str) -> (std::process::Child, String) {
    use std::time::{Duration, Instant};
    let (child, rx) = spawn_with_log(cfg, id, &[]);
    let (mut log, deadline) = (String::new(), Instant::now() + Duration::from_secs(60));
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        log.push_str(&line);
        log.push('\n');
        if line.contains("partitions assigned") && !line.contains("partitions=[]") {
            // The rest of the log is drained so the instance never blocks on it.
            std::thread::spawn(move || rx.iter().for_each(drop));
            return (child, log);
        }
    }
    panic!("instance {id} got no partitions:\n{log}");
}

/// Three instances sharing the group, then one more run that closes every window: the same
/// look-ahead events and finals as replay, each once.
#[test]
fn three_instances_give_replays_lookahead_events() {
    use std::time::Duration;
    let k = Kafka::connect();
    let name = unique("ahead3");
    let (records, lines) = crm_records();
    k.create_topic(&name, 6);
    // Balancing can outlast the usual idle timeout (see `three_instances_give_the_same_results_as_one`).
    let cfg = config(&k, &name, "idle_timeout = \"60s\"");
    let mut children: Vec<std::process::Child> = Vec::new();
    for id in ["a", "b", "c"] {
        children.push(started_with_partitions(&cfg, id).0);
    }
    // Each instance holds partitions once all three have joined: wait for the last rebalance.
    std::thread::sleep(Duration::from_secs(3));
    k.produce_raw(&name, &records);
    k.wait_group_committed(&format!("{name}-app"), &name, Duration::from_secs(60));
    for c in &children {
        sigterm(c);
    }
    for (i, c) in children.into_iter().enumerate() {
        assert!(
            c.wait_with_output().unwrap().status.success(),
            "instance {i}"
        );
    }
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_replays_results(&k, &name, &lines);
}

/// kill -9 at random moments (mid-run, mid-restore), restarting each time, then a run to the
/// end: the same look-ahead events and finals as replay, none lost, none twice.
#[test]
fn kill_nine_and_restart_give_replays_lookahead_events_once() {
    use std::time::{Duration, Instant};
    let k = Kafka::connect();
    let (name, lines) = crm_topic(&k, "ahead9");
    let cfg = config(&k, &name, "");
    // (delay after start, or kill as soon as restoring begins)
    let plan: [(u64, bool); 6] = [
        (900, false),
        (0, true),
        (1_400, false),
        (500, false),
        (0, true),
        (1_100, false),
    ];
    let mut killed = 0;
    for (delay_ms, at_restore) in plan {
        let (mut child, rx) =
            spawn_with_log(&cfg, "i0", &["--until-caught-up", "--close-all-at-end"]);
        let wait = if at_restore { 30_000 } else { delay_ms };
        let deadline = Instant::now() + Duration::from_millis(wait);
        while Instant::now() < deadline {
            let line = rx.recv_timeout(Duration::from_millis(10));
            if at_restore && line.is_ok_and(|l| l.contains("restoring state")) {
                break;
            }
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 3,
        "only {killed} of the runs were still going when killed"
    );
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_replays_results(&k, &name, &lines);
}
