//! The progress topic (`[output] progress_topic`) read back as an upsert table: while windows
//! are open it equals the query API's answer field for field; once every window closed, its rows
//! are exactly the finals of the attainment topic and of `replay`; and no transaction holds two
//! records of one key.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use goalpost::model::{SalesEvent, Timestamp};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::support::dirs::*;
use crate::support::events::{deal_won, json_lines};
use crate::support::kafka::*;
use crate::support::replay::*;

const TOKEN: &str = "progress-test-token-5d1e";

/// Daily wins (milestones) and a daily cap (breaches), both open until the end of input; and a
/// monthly goal with look-ahead status whose daily ticks are decided as the input goes.
const GOALS: &str = r#"
[[goals]]
id = "wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "1d" }
target = 24
milestones = [0.5, 1.0]
grace = "3650d"

[[goals]]
id = "cap"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "1d" }
target = 15
direction = "at_most"
grace = "3650d"

[[goals]]
id = "paced"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { calendar = "month" }
target = 600
status = { every = "1d", tolerance = 0.1 }
grace = "1h"
"#;

/// A region name with the key separator in it: its key must stay apart from the others.
const REGIONS: [&str; 4] = ["north", "south", "east", "we|st"];

/// The last event time: every region has an event at it, so every window of `paced` was last
/// written at the stream time the query API computes its look-ahead at.
const LAST: &str = "2026-01-10T00:00:00Z";

fn event(i: usize, region: &str, at: Timestamp) -> SalesEvent {
    deal_won(&format!("e{i}"), region, at)
}

/// `n` wins from January 1st to 9th, 40, 30, 20 and 10 % of them by region, then one per
/// region at `LAST`. With 600, per day north reaches the wins target, south and east half of it,
/// "we|st" nothing; north and south breach the cap; by the 9th east and "we|st" are behind the
/// pace.
fn events(n: usize) -> Vec<SalesEvent> {
    let start = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let step = 9 * 24 * 3600 * 1_000_000_000i64 / n as i64;
    let mut out: Vec<SalesEvent> = (0..n)
        .map(|i| {
            let region = REGIONS[[0, 0, 0, 0, 1, 1, 1, 2, 2, 3][i % 10]];
            event(
                i,
                region,
                Timestamp::from_nanos(start.as_nanos() + step * i as i64),
            )
        })
        .collect();
    let last = Timestamp::parse_rfc3339(LAST).unwrap();
    for (j, region) in REGIONS.iter().enumerate() {
        out.push(event(n + j, region, last));
    }
    out
}

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `goalpost run` and waits for its HTTP address in the log.
fn start(config: &std::path::Path) -> Instance {
    let mut child = goalpost_cmd(config, "i0", &[])
        .env("GOALPOST_TEST_TOKEN", TOKEN)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start goalpost");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("HTTP server listening addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the instance reports its HTTP address");
    Instance {
        child,
        base: format!("http://{addr}"),
    }
}

fn get_json(url: &str) -> Value {
    let r = ureq::get(url)
        .timeout(Duration::from_secs(20))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    serde_json::from_str(&r.into_string().unwrap()).unwrap()
}

/// The value of the unlabelled counter `name` in the instance's `/metrics`.
fn counter(base: &str, name: &str) -> u64 {
    let text = ureq::get(&format!("{base}/metrics"))
        .timeout(Duration::from_secs(20))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// A JSON object's fields as their exact text (numbers as written, so decimals compare exactly).
type Fields = BTreeMap<String, String>;

fn fields_of(json: &str) -> Fields {
    let m: BTreeMap<String, Box<RawValue>> = serde_json::from_str(json).unwrap();
    m.into_iter()
        .map(|(k, v)| (k, v.get().to_string()))
        .collect()
}

/// (goal, group, window start) of a record or a view.
type Window = (String, String, String);

fn window_of(f: &Fields) -> Window {
    let group: BTreeMap<String, String> = serde_json::from_str(&f["group"]).unwrap();
    (
        f["goal_id"].clone(),
        serde_json::to_string(&group).unwrap(),
        f["window_start"].clone(),
    )
}

/// The progress topic as a table: each key's last record.
fn table(k: &Kafka, topic: &str) -> BTreeMap<String, Fields> {
    let mut rows = BTreeMap::new();
    for (_, (_, key, value, _)) in k.read_all_with_offsets(topic) {
        let key = String::from_utf8(key.expect("a key")).unwrap();
        let value = value.expect("never a tombstone");
        rows.insert(key, fields_of(std::str::from_utf8(&value).unwrap()));
    }
    rows
}

/// The fields a progress record shares with the query API's view of its window, from the
/// view: the reached milestones' fractions become `milestones_reached`.
fn shared_of_view(view: &Value) -> Fields {
    let mut f = fields_of(&view.to_string());
    let reached: Vec<String> = view["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["reached"] == true)
        .map(|m| m["fraction"].to_string())
        .collect();
    f.insert(
        "milestones_reached".into(),
        format!("[{}]", reached.join(",")),
    );
    for only_view in ["milestones", "time_left_seconds", "pace", "instance"] {
        f.remove(only_view);
    }
    f
}

/// The same fields of a progress record.
fn shared_of_record(record: &Fields) -> Fields {
    let mut f = record.clone();
    for only_record in ["open", "outcome", "last_event_time", "updated_at"] {
        f.remove(only_record);
    }
    f
}

/// The query API's open windows of every goal, by window.
fn api_windows(base: &str) -> BTreeMap<Window, Fields> {
    let mut out = BTreeMap::new();
    for goal in ["wins", "cap", "paced"] {
        let body = get_json(&format!("{base}/v1/goals/{goal}?limit=10000"));
        for w in body["windows"].as_array().unwrap() {
            let f = shared_of_view(w);
            out.insert(window_of(&f), f);
        }
    }
    out
}

/// The table's open rows, in the same shape; asserts the key of each row.
fn open_rows(rows: &BTreeMap<String, Fields>) -> BTreeMap<Window, Fields> {
    let mut out = BTreeMap::new();
    for (key, f) in rows.iter().filter(|(_, f)| f["open"] == "true") {
        let (goal, group, start) = window_of(f);
        let text = |raw: &str| serde_json::from_str::<String>(raw).unwrap();
        let region: BTreeMap<String, String> = serde_json::from_str(&group).unwrap();
        let escaped = region["region"].replace('|', "\\|");
        let want = format!("{}|{escaped}|{}", text(&goal), text(&start));
        assert_eq!(key, &want, "the key of {f:?}");
        out.insert((goal, group, start), shared_of_record(f));
    }
    out
}

/// No partition's transaction (records between two gaps in its offsets: a marker or aborted
/// records) holds two records of one key; returns how many transactions held records.
fn assert_one_record_per_key_per_transaction(k: &Kafka, topic: &str) -> usize {
    let mut by_partition: BTreeMap<i32, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    for (offset, (partition, key, _, _)) in k.read_all_with_offsets(topic) {
        by_partition
            .entry(partition)
            .or_default()
            .push((offset, key.unwrap()));
    }
    let mut transactions = 0;
    for records in by_partition.values() {
        let mut keys: BTreeSet<&[u8]> = BTreeSet::new();
        let mut previous: Option<i64> = None;
        for (offset, key) in records {
            if previous.is_none_or(|p| *offset != p + 1) {
                keys.clear();
                transactions += 1;
            }
            previous = Some(*offset);
            assert!(
                keys.insert(key),
                "key {} twice in one transaction",
                String::from_utf8_lossy(key)
            );
        }
    }
    transactions
}

#[test]
fn progress_table_equals_the_query_api_then_the_finals() {
    let k = Kafka::connect();
    let name = unique("progress");
    k.create_topic(&name, 4);
    let events = events(600);
    k.produce_json(&name, &events);
    let progress = format!("{name}-progress");
    let config = k.write_config(&name, GOALS, "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "[output]\n",
        &format!("[output]\nprogress_topic = \"{progress}\"\n"),
    );
    text.push_str("token_env = \"GOALPOST_TEST_TOKEN\"\n");
    std::fs::write(&config, text).unwrap();

    // (a) Caught up, windows open: the table's open rows are the query API's windows.
    let instance = start(&config);
    k.wait_group_committed(&format!("{name}-app"), &name, Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(60);
    let (rows, api) = loop {
        let rows = table(&k, &progress);
        let api = api_windows(&instance.base);
        if open_rows(&rows) == api || Instant::now() > deadline {
            break (rows, api);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let open = open_rows(&rows);
    let differ: Vec<_> = api
        .iter()
        .filter(|(w, f)| open.get(*w) != Some(*f))
        .take(3)
        .map(|(w, f)| (f, open.get(w)))
        .collect();
    assert_eq!(open.len(), api.len(), "open rows and API windows");
    assert!(differ.is_empty(), "(API, table) differ: {differ:?}");
    // 9 days (and the 10th) of 4 regions for two goals, and January of each region.
    assert_eq!(api.len(), 2 * 10 * 4 + 4);
    // Every kind of field is exercised: milestones, breaches, decided ticks with look-ahead.
    let any = |field: &str, pred: &dyn Fn(&str) -> bool| {
        open.values().any(|f| f.get(field).is_some_and(|v| pred(v)))
    };
    assert!(any("milestones_reached", &|v| v.contains("0.5")));
    assert!(any("breached", &|v| v == "true"));
    assert!(any("status_tick", &|v| v != "null"));
    assert!(any("status", &|v| v == "\"at_risk\""));
    assert!(any("status", &|v| v == "\"on_track\""));
    assert!(any("expected", &|v| v != "null"));
    assert!(rows.values().all(|f| f["outcome"] == "null"));
    assert!(rows
        .values()
        .filter(|f| f["goal_id"] == "\"paced\"")
        .all(|f| f["updated_at"] == format!("\"{LAST}\"")));
    // The metric counts the records the committed transactions wrote.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = counter(&instance.base, "goalpost_progress_records_total");
        let written = k.read_all_with_offsets(&progress).len() as u64;
        let after = counter(&instance.base, "goalpost_progress_records_total");
        if before == after && after == written {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "goalpost_progress_records_total {after}, records on the topic {written}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(instance);

    // (b) Every window closed: the table's rows are exactly the finals, of the attainment
    // topic and of replay.
    let out = goalpost_cmd(&config, "i0", &["--until-caught-up", "--close-all-at-end"])
        .env("GOALPOST_TEST_TOKEN", TOKEN)
        .output()
        .expect("start goalpost");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = table(&k, &progress);
    assert!(rows.values().all(|f| f["open"] == "false"), "all closed");
    let closed: Finals = rows
        .values()
        .map(|f| {
            let row = (
                f["window_end"].clone(),
                f["value"].clone(),
                f["outcome"].clone(),
            );
            (window_of(f), row)
        })
        .collect();
    assert_eq!(closed.len(), rows.len(), "one row per window");
    let live = k.read_all(&format!("{name}-out"));
    assert_eq!(
        closed,
        finals_of(&live),
        "rows and the attainment topic's finals"
    );
    let replayed = replay_bytes(GOALS, &json_lines(&events));
    assert_eq!(closed, finals_of(&replayed), "rows and replay's finals");

    // One record per key per transaction, over both runs.
    let transactions = assert_one_record_per_key_per_transaction(&k, &progress);
    assert!(transactions > 1, "{transactions} transactions");
}

/// The finals of attainment events by window: (window end, value, outcome).
type Finals = BTreeMap<Window, (String, String, String)>;

fn finals_of(v: &[Attainment]) -> Finals {
    v.iter()
        .filter(|a| a.kind == "final")
        .map(|a| {
            let f = fields_of(&a.raw);
            let row = (
                f["window_end"].clone(),
                f["value"].clone(),
                f["outcome"].clone(),
            );
            (window_of(&f), row)
        })
        .collect()
}

/// The protobuf progress topic as a table of closed rows, shaped like [`finals_of`]; asserts
/// that every row is closed.
fn proto_table(k: &Kafka, topic: &str) -> Finals {
    use goalpost::codec::proto::pb;
    use prost::Message;
    let mut last: BTreeMap<Vec<u8>, pb::GoalProgress> = BTreeMap::new();
    for (_, (_, key, value, _)) in k.read_all_with_offsets(topic) {
        let m = pb::GoalProgress::decode(value.expect("never a tombstone").as_slice()).unwrap();
        last.insert(key.unwrap(), m);
    }
    let json = |s: &str| serde_json::to_string(s).unwrap();
    let time = |t: Option<prost_types::Timestamp>| {
        let t = t.expect("a time");
        json(&Timestamp::from_nanos(t.seconds * 1_000_000_000 + t.nanos as i64).to_rfc3339())
    };
    last.into_values()
        .map(|m| {
            assert!(!m.open, "closed: {m:?}");
            let group: BTreeMap<String, String> = m
                .group
                .iter()
                .map(|g| (g.key.clone(), g.value.clone()))
                .collect();
            let window = (
                json(&m.goal_id),
                serde_json::to_string(&group).unwrap(),
                time(m.window_start),
            );
            let value = m.value.clone().unwrap_or_else(|| "null".into());
            let row = (time(m.window_end), value, json(&m.outcome.clone().unwrap()));
            (window, row)
        })
        .collect()
}

/// `output.format = "proto"`, kill -9 twice just after the instance got its partitions, then a
/// run to the end that restores from the changelog: the `goalpost.v1.GoalProgress` table holds
/// exactly replay's finals, with one record per key per transaction.
#[test]
fn protobuf_table_survives_kill_nine_and_ends_as_replays_finals() {
    let k = Kafka::connect();
    let name = unique("progress9");
    k.create_topic(&name, 4);
    let events = events(60_000);
    k.produce_json(&name, &events);
    let progress = format!("{name}-progress");
    let config = k.write_config(&name, GOALS, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[output]\n",
        &format!("[output]\nprogress_topic = \"{progress}\"\nformat = \"proto\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    for delay in [Duration::from_millis(0), Duration::from_millis(40)] {
        let (mut child, rx) = spawn_with_log(&config, "i0", &[]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if line.contains("partitions assigned") && !line.contains("partitions=[]") {
                break;
            }
        }
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let out = run_goalpost(&config, &["--until-caught-up", "--close-all-at-end"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = proto_table(&k, &progress);
    let replayed = finals_of(&replay_bytes(GOALS, &json_lines(&events)));
    assert_eq!(table.len(), replayed.len(), "one row per final");
    assert_eq!(table, replayed, "rows and replay's finals");
    assert_one_record_per_key_per_transaction(&k, &progress);
}
