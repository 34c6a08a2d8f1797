//! Rosters read from a compacted topic: the same finals as replay with the roster file, refused
//! roster records dead-lettered, and members added while `run` is running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use goalpost::codec::Format;
use goalpost::engine::Roster;
use goalpost::goals::{GoalSet, RosterDecl};
use goalpost::model::{SalesEvent, StringField, Timestamp};
use goalpost::runtime::kafka::{self, RunConfig, RunOptions, RunReport};
use goalpost::runtime::replay::{replay, JsonDeadLetters, JsonLines, ReplayOptions};

use crate::header;
use crate::support::crm_data;
use crate::support::dirs::*;
use crate::support::kafka::*;
use crate::support::replay::*;

/// Agents' quarterly wins and offices' monthly revenue, both listing the roster `agents`.
const CRM_GOALS: &str = r#"
[[goals]]
id = "agent-quarter-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
window = { calendar = "quarter", timezone = "America/New_York" }
target = 25
grace = "2d"

[[goals]]
id = "office-month-revenue"
metric = "sum"
field = "amount"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "month" }
target = 400000
milestones = [0.5, 1.0]
grace = "2d"
"#;

/// `goals_toml` with every goal listing roster `agents`, read from `topic` (or, without one,
/// from no file: replay is given the members directly).
fn with_roster(goals_toml: &str, topic: Option<&str>, columns: &[(&str, &str)]) -> Arc<GoalSet> {
    let mut set = GoalSet::from_toml(goals_toml).unwrap_or_else(|e| panic!("{e}"));
    set.rosters.push(RosterDecl {
        name: "agents".into(),
        file: None,
        topic: topic.map(String::from),
        columns: columns
            .iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect(),
        strict: false,
    });
    for g in &mut set.goals {
        g.roster = Some(0);
    }
    Arc::new(set)
}

const CRM_COLUMNS: [(&str, &str); 2] = [("rep_id", "sales_agent"), ("region", "regional_office")];

/// Each goal's roster read from CSV `text`, as replay loads a roster file.
fn csv_rosters(set: &GoalSet, text: &str) -> Vec<Option<Roster>> {
    let rosters = set.goals.iter().map(|g| {
        let fields: Vec<&str> = g.group_by_names.iter().map(|n| &**n).collect();
        let columns: Vec<(&str, &str)> = CRM_COLUMNS
            .iter()
            .copied()
            .filter(|(f, _)| fields.contains(f))
            .collect();
        Roster::from_csv(text, &fields, &columns).unwrap()
    });
    rosters.map(Some).collect()
}

/// Replay, in process, of JSON-lines `input` with `rosters`.
fn replay_with(set: &Arc<GoalSet>, input: &str, rosters: Vec<Option<Roster>>) -> Vec<Attainment> {
    let mut out = JsonLines::new(Vec::new());
    let mut dead = JsonDeadLetters::new(std::io::sink(), Format::Json);
    let options = ReplayOptions {
        rosters,
        ..ReplayOptions::default()
    };
    replay(
        set.clone(),
        input.as_bytes(),
        Format::Json,
        options,
        &mut out,
        &mut dead,
        &mut (),
    )
    .unwrap();
    let bytes = out.into_inner().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    text.lines().map(parse_attainment).collect()
}

/// `run`, in process, with the goals of `set` (the config's goal file is not read).
fn run_in_process(
    cfg: &std::path::Path,
    set: &Arc<GoalSet>,
    options: RunOptions,
    stop: Arc<AtomicBool>,
) -> RunReport {
    let cfg = RunConfig::load(cfg).unwrap();
    kafka::run(cfg, set.clone(), options, stop, None).unwrap_or_else(|e| panic!("run: {e:#}"))
}

fn until_caught_up() -> RunOptions {
    RunOptions {
        until_caught_up: true,
        close_all_at_end: true,
        ..RunOptions::default()
    }
}

/// A compacted roster topic of one partition.
fn roster_topic(k: &Kafka, name: &str) -> String {
    let topic = format!("{name}-agents");
    k.create_topic(&topic, 1);
    k.set_topic_config(&topic, "cleanup.policy", "compact");
    topic
}

/// The records of the CRM agents' roster topic: one per row of `sales_teams.csv` keyed by an
/// opaque id, an extra member (4th) removed by a tombstone (last), and a record that is not JSON
/// (offset 36).
fn agent_records() -> Vec<(Vec<u8>, Option<String>)> {
    let columns = ["sales_agent", "manager", "regional_office"];
    let rows = crm_data::read_csv("sales_teams.csv", &columns);
    assert_eq!(rows.len(), 35);
    let value = |row: &[String]| {
        let object: serde_json::Map<String, serde_json::Value> = columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.to_string(), v.as_str().into()))
            .collect();
        serde_json::Value::Object(object).to_string()
    };
    let mut records: Vec<(Vec<u8>, Option<String>)> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| (format!("agent-{i}").into_bytes(), Some(value(row))))
        .collect();
    let extra = ["Zed Extra".to_string(), "Nobody".into(), "East".into()];
    records.insert(3, (b"extra".to_vec(), Some(value(&extra))));
    records.push((b"bad".to_vec(), Some("not json".into())));
    records.push((b"extra".to_vec(), None));
    records
}

/// The CRM agents on a roster topic (35 records, an extra member and its tombstone, and a record
/// that is not JSON) give replay's finals with the CSV roster, including the `missed` finals of
/// agents without a win in a quarter; the refused record is dead-lettered with its origin.
#[test]
fn a_roster_topic_gives_the_finals_of_the_roster_file() {
    let k = Kafka::connect();
    let name = unique("rtopic");
    let (opportunities, teams) = crm_data::load();
    let mut events = crm_data::to_events(&opportunities, &teams);
    crm_data::disorder(&mut events);
    let records: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| (e.id.clone(), e.line.as_bytes().to_vec()))
        .collect();
    k.create_topic(&name, 6);
    k.produce_raw(&name, &records);

    let topic = roster_topic(&k, &name);
    let records = agent_records();
    let keyed: Vec<(&[u8], Option<&[u8]>)> = records
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_deref().map(str::as_bytes)))
        .collect();
    k.produce_keyed(&topic, 0, &keyed);

    let set = with_roster(CRM_GOALS, Some(&topic), &CRM_COLUMNS);
    let cfg = k.write_config(&name, CRM_GOALS, "");
    let report = run_in_process(
        &cfg,
        &set,
        until_caught_up(),
        Arc::new(AtomicBool::new(false)),
    );
    assert_eq!(report.roster_rejected, 1);

    let live = k.read_all(&format!("{name}-out"));
    let input: String = events.iter().map(|e| format!("{}\n", e.line)).collect();
    let csv = std::fs::read_to_string(crm_data::data_dir().join("sales_teams.csv")).unwrap();
    let replayed = replay_with(&set, &input, csv_rosters(&set, &csv));
    assert_exactly_once(&live);
    assert_same_results(CRM_GOALS, &replayed, &live);
    let missed_without_wins = live
        .iter()
        .filter(|a| a.goal_id == "agent-quarter-wins" && a.kind == "final" && a.value == "0")
        .count();
    assert!(missed_without_wins > 0, "agents without a win in a quarter");
    assert!(!live.iter().any(|a| a.raw.contains("Zed Extra")));

    let dead = k.read_all_raw(&format!("{name}-dlq"));
    assert_eq!(dead.len(), 1, "the refused roster record, once");
    let (_, key, payload, headers) = &dead[0];
    assert_eq!(key.as_deref(), Some(&b"bad"[..]));
    assert_eq!(payload.as_deref(), Some(&b"not json"[..]));
    assert_eq!(header(headers, "goalpost.reason"), "roster_record");
    assert_eq!(header(headers, "goalpost.source.topic"), topic);
    assert_eq!(header(headers, "goalpost.source.offset"), "36");
    let detail = header(headers, "goalpost.detail");
    assert!(detail.contains("is not a JSON object"), "{detail}");
}

const DAY_WINS: &str = r#"
[[goals]]
id = "rep-day-wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["rep_id"]
window = { tumbling = "1d" }
target = 2
grace = "1h"
"#;

/// A `deal_won` of rep Anna at `nanos` after the epoch.
fn anna_won(id: &str, nanos: i64) -> SalesEvent {
    let mut ev = SalesEvent {
        event_id: id.into(),
        event_type: "deal_won".into(),
        occurred_at: Timestamp::from_nanos(nanos),
        ..SalesEvent::default()
    };
    ev.set_string(StringField::RepId, "Anna");
    ev
}

/// A member added to the roster topic while `run` is running, after some events of a window,
/// gets that window (a `missed` final of value 0) and the later ones.
#[test]
fn a_member_added_while_running_gets_the_open_window() {
    let k = Kafka::connect();
    let name = unique("rlive");
    k.create_topic(&name, 1);
    let topic = roster_topic(&k, &name);
    k.produce_keyed(&topic, 0, &[(b"a", Some(br#"{"rep_id":"Anna"}"#))]);
    let set = with_roster(DAY_WINS, Some(&topic), &[]);
    let cfg = k.write_config(&name, DAY_WINS, "");
    let stop = Arc::new(AtomicBool::new(false));
    let running = {
        let (cfg, set, stop) = (cfg.clone(), set.clone(), stop.clone());
        std::thread::spawn(move || run_in_process(&cfg, &set, RunOptions::default(), stop))
    };
    let won = |id: &str, d: i64| anna_won(id, (d * 24 + 10) * 3_600_000_000_000);
    k.produce_json(&name, &[won("e1", 0), won("e2", 0)]);
    let group = format!("{name}-app");
    k.wait_group_committed(&group, &name, Duration::from_secs(30));
    k.produce_keyed(&topic, 0, &[(b"b", Some(br#"{"rep_id":"Bob"}"#))]);
    // The run loop reads the roster topic every round (tens of milliseconds).
    std::thread::sleep(Duration::from_secs(2));
    k.produce_json(&name, &[won("e3", 1), won("e4", 2), won("e5", 3)]);
    let out = format!("{name}-out");
    let bob_finals = || {
        k.read_all(&out)
            .into_iter()
            .filter(|a| a.kind == "final" && a.raw.contains("\"Bob\""))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while bob_finals().len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    running.join().unwrap();
    let finals = bob_finals();
    let starts: Vec<String> = finals
        .iter()
        .map(|a| {
            let v: serde_json::Value = serde_json::from_str(&a.raw).unwrap();
            v["window_start"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        starts,
        [
            "1970-01-01T00:00:00Z",
            "1970-01-02T00:00:00Z",
            "1970-01-03T00:00:00Z"
        ],
        "{finals:?}"
    );
    for a in &finals {
        assert_eq!((a.value.as_str(), a.outcome.as_str()), ("0", "missed"));
    }
}
