//! The webhook sink end to end: failures, timeouts, 429, refusals, kill -9, batches.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::server::{Answer, Request, Server};
use super::support::dirs::{tmp_dir, unique};
use super::support::kafka::{sigterm, Kafka, RawRecord};
use super::{spawn_notify, write_config, SECRET};

/// An attainment event (JSON) of `goal` for region `region`, number `seq` of its group.
fn event(goal: &str, region: &str, seq: u32, suffix: &str) -> (String, Vec<u8>) {
    let id = format!("{goal}-{region}-{seq:03}{suffix}");
    let json = format!(
        r#"{{"attainment_id":"{id}","goal_id":"{goal}","kind":"milestone","group":{{"region":"{region}"}},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-02-01T00:00:00Z","value":{seq},"target":100,"progress":0.01,"milestone":0.25,"triggered_by":"ev-{seq}","event_time":"2026-01-02T00:00:00Z"}}"#
    );
    (format!("{goal}|{region}"), json.into_bytes())
}

/// Events `seqs` of every group of two goals and three regions, groups interleaved.
fn events(seqs: std::ops::Range<u32>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for seq in seqs {
        for goal in ["revenue", "calls"] {
            for region in ["east", "west", "north"] {
                out.push(event(goal, region, seq, ""));
            }
        }
    }
    out
}

fn ids_in(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    let one = |e: &serde_json::Value| e["attainment_id"].as_str().unwrap().to_string();
    match &v {
        serde_json::Value::Array(items) => items.iter().map(one).collect(),
        _ => vec![one(&v)],
    }
}

fn header<'a>(r: &'a RawRecord, name: &str) -> &'a str {
    r.3.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| std::str::from_utf8(v).unwrap())
        .unwrap_or_else(|| panic!("no header {name}"))
}

/// Waits until `done` holds, or fails with `what` after a minute.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The answers: ids ending `-refused` always 400, `-down` always 500; otherwise by `seq % 7`
/// on the first attempt: 1 → 500, 2 → no answer within the timeout, 3 → 429 with
/// `Retry-After: 1`; every other attempt 200.
fn script(key: &str, attempt: usize) -> Answer {
    if key.ends_with("-refused") {
        return Answer::Status(400);
    }
    if key.ends_with("-down") {
        return Answer::Status(500);
    }
    let seq: u32 = key.rsplit('-').next().unwrap().parse().unwrap_or(0);
    match (attempt, seq % 7) {
        (1, 1) => Answer::Status(500),
        (1, 2) => Answer::Stall(Duration::from_millis(1500)),
        (1, 3) => Answer::TooMany,
        _ => Answer::Ok,
    }
}

fn is_accepted(r: &Request) -> bool {
    matches!(r.answer, Answer::Ok | Answer::Slow(_))
}

fn accepted(requests: &[Request]) -> BTreeSet<String> {
    requests
        .iter()
        .filter(|r| is_accepted(r))
        .flat_map(|r| ids_in(&r.body))
        .collect()
}

#[test]
fn every_event_arrives_through_failures_and_a_kill() {
    let k = Kafka::connect();
    let topic = unique("notify");
    k.create_topic(&topic, 3);
    let server = Server::start(SECRET, Box::new(script));
    let cfg = write_config(
        &k,
        &topic,
        &format!(
            "name = \"crm\"\nurl = \"{}\"\nsecret_env = \"NOTIFY_TEST_SECRET\"\ntimeout = \"1s\"\nmax_attempts = 4\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"",
            server.url
        ),
    );
    let log = tmp_dir().join("notify.log");
    let mut first = events(0..5);
    first.push(event("revenue", "east", 100, "-refused"));
    first.push(event("calls", "west", 100, "-down"));
    first.push(("revenue|east".into(), b"{not an attainment".to_vec()));
    k.produce_raw(&topic, &first);

    let mut notify = spawn_notify(&cfg, &log);
    wait_for("ten deliveries before the kill", || {
        accepted(&server.requests()).len() >= 10
    });
    notify.kill().unwrap(); // SIGKILL
    notify.wait().unwrap();
    k.produce_raw(&topic, &events(5..10));
    let mut notify = spawn_notify(&cfg, &log);
    let want: BTreeSet<String> = events(0..10)
        .iter()
        .flat_map(|(_, json)| ids_in(json))
        .collect();
    wait_for("every event delivered", || {
        want.is_subset(&accepted(&server.requests()))
    });
    let dead_letters = format!("{topic}-app-notify-dead-letters");
    let reason_count = |records: &[RawRecord], reason: &str| {
        records
            .iter()
            .filter(|r| header(r, "goalpost.reason") == reason)
            .count()
    };
    wait_for("the dead letters", || {
        let dl = k.read_all_raw(&dead_letters);
        reason_count(&dl, "notify_gave_up") >= 2 && reason_count(&dl, "notify_unreadable") >= 1
    });
    assert!(sigterm(&notify));
    let status = notify.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "notify failed: {text}");
    k.wait_group_committed(
        &format!("{topic}-app-notify"),
        &topic,
        Duration::from_secs(30),
    );

    let requests = server.requests();
    assert!(
        requests.iter().all(|r| r.signed),
        "a request was not signed"
    );
    for r in &requests {
        assert_eq!(ids_in(&r.body), vec![r.idempotency_key.clone()]);
    }
    // Order per goal and group: the first acceptance of each event comes in sequence.
    let mut seen = BTreeSet::new();
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in requests.iter().filter(|r| is_accepted(r)) {
        let id = r.idempotency_key.clone();
        if seen.insert(id.clone()) {
            let group = id.rsplit_once('-').unwrap().0.to_string();
            order.entry(group).or_default().push(id);
        }
    }
    for (group, ids) in &order {
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, &sorted, "order of {group}");
    }
    // Each failure mode happened and was retried.
    for answer in [
        Answer::Status(500),
        Answer::TooMany,
        Answer::Stall(Duration::from_millis(1500)),
    ] {
        assert!(requests.iter().any(|r| r.answer == answer), "{answer:?}");
    }
    // After a 429 with `Retry-After: 1`, the same request waits that second, although the
    // backoff schedule alone would retry within 200 ms.
    for (i, r) in requests.iter().enumerate() {
        if r.answer != Answer::TooMany {
            continue;
        }
        let retry = requests[i + 1..]
            .iter()
            .find(|s| s.idempotency_key == r.idempotency_key)
            .expect("a 429 is retried");
        let waited = retry.at - r.at;
        assert!(
            waited >= Duration::from_millis(950),
            "{} retried after {waited:?}",
            r.idempotency_key
        );
    }

    let dl = k.read_all_raw(&dead_letters);
    let gave_up: BTreeMap<String, (String, String, String)> = dl
        .iter()
        .filter(|r| header(r, "goalpost.reason") == "notify_gave_up")
        .map(|r| {
            (
                header(r, "goalpost.attainment_id").to_string(),
                (
                    header(r, "goalpost.detail").to_string(),
                    header(r, "goalpost.attempts").to_string(),
                    header(r, "goalpost.sink").to_string(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, String, String)> = [
        ("revenue-east-100-refused", "HTTP 400", "1"),
        ("calls-west-100-down", "HTTP 500", "4"),
    ]
    .into_iter()
    .map(|(id, detail, attempts)| {
        (
            id.to_string(),
            (detail.into(), attempts.into(), "webhook:crm".into()),
        )
    })
    .collect();
    assert_eq!(gave_up, expected);
    for r in dl
        .iter()
        .filter(|r| header(r, "goalpost.reason") == "notify_gave_up")
    {
        let id = header(r, "goalpost.attainment_id");
        assert_eq!(ids_in(r.2.as_deref().unwrap()), vec![id.to_string()]);
    }
    let unreadable: Vec<&RawRecord> = dl
        .iter()
        .filter(|r| header(r, "goalpost.reason") == "notify_unreadable")
        .collect();
    assert!(!unreadable.is_empty());
    for r in unreadable {
        assert_eq!(r.2.as_deref(), Some(&b"{not an attainment"[..]));
        assert_eq!(header(r, "goalpost.source.topic"), topic);
    }
}

#[test]
fn batches_are_arrays_under_one_key() {
    let k = Kafka::connect();
    let topic = unique("notify-batch");
    k.create_topic(&topic, 1);
    let server = Server::start(SECRET, Box::new(|_: &str, _| Answer::Ok));
    let cfg = write_config(
        &k,
        &topic,
        &format!(
            "name = \"bi\"\nurl = \"{}\"\nsecret_env = \"NOTIFY_TEST_SECRET\"\nbatch_max = 4\nkinds = [\"milestone\"]\ngoals = [\"revenue\"]",
            server.url
        ),
    );
    k.produce_raw(&topic, &events(0..4));
    let log = tmp_dir().join("notify.log");
    let mut notify = spawn_notify(&cfg, &log);
    let want: BTreeSet<String> = events(0..4)
        .iter()
        .flat_map(|(_, json)| ids_in(json))
        .filter(|id| id.starts_with("revenue-"))
        .collect();
    wait_for("every revenue event", || {
        accepted(&server.requests()) == want
    });
    assert!(sigterm(&notify));
    assert!(notify.wait().unwrap().success());
    for r in server.requests() {
        assert!(r.signed);
        assert!(r.body.starts_with(b"["), "a batch is an array");
        let ids = ids_in(&r.body);
        assert!((1..=4).contains(&ids.len()));
        assert!(r.idempotency_key.starts_with("batch-"));
    }
}

#[test]
fn protobuf_records_are_sent_as_their_json() {
    use goalpost::codec::{decode_attainment, json, proto, Format};
    let k = Kafka::connect();
    let topic = unique("notify-proto");
    k.create_topic(&topic, 1);
    let server = Server::start(SECRET, Box::new(|_: &str, _| Answer::Ok));
    let cfg = write_config(
        &k,
        &topic,
        &format!(
            "name = \"p\"\nurl = \"{}\"\nsecret_env = \"NOTIFY_TEST_SECRET\"",
            server.url
        ),
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("topic = \"{topic}\"\n"),
        &format!("topic = \"{topic}\"\nformat = \"proto\"\n"),
    );
    std::fs::write(&cfg, text).unwrap();
    let sent = events(0..1);
    let records: Vec<(String, Vec<u8>)> = sent
        .iter()
        .map(|(key, j)| {
            let a = decode_attainment(Format::Json, j).unwrap();
            let mut out = Vec::new();
            proto::encode_attainment(&a, &mut out);
            (key.clone(), out)
        })
        .collect();
    k.produce_raw(&topic, &records);
    let log = tmp_dir().join("notify.log");
    let mut notify = spawn_notify(&cfg, &log);
    wait_for("every event", || {
        accepted(&server.requests()).len() == sent.len()
    });
    assert!(sigterm(&notify));
    assert!(notify.wait().unwrap().success());
    let bodies: BTreeSet<Vec<u8>> = server.requests().into_iter().map(|r| r.body).collect();
    let want: BTreeSet<Vec<u8>> = sent
        .iter()
        .map(|(_, j)| {
            let mut out = Vec::new();
            json::encode_attainment(&decode_attainment(Format::Json, j).unwrap(), &mut out);
            out
        })
        .collect();
    assert_eq!(bodies, want);
}

#[test]
fn a_second_instance_takes_over_partitions_without_losing_events() {
    let k = Kafka::connect();
    let topic = unique("notify-scale");
    k.create_topic(&topic, 3);
    let slow = |_: &str, _| Answer::Slow(Duration::from_millis(100));
    let server = Server::start(SECRET, Box::new(slow));
    let cfg = write_config(
        &k,
        &topic,
        &format!(
            "name = \"crm\"\nurl = \"{}\"\nsecret_env = \"NOTIFY_TEST_SECRET\"",
            server.url
        ),
    );
    let all = events(0..20);
    k.produce_raw(&topic, &all);
    let (log_a, log_b) = (tmp_dir().join("a.log"), tmp_dir().join("b.log"));
    let mut a = spawn_notify(&cfg, &log_a);
    wait_for("a first delivery", || !server.requests().is_empty());
    let mut b = spawn_notify(&cfg, &log_b);
    let want: BTreeSet<String> = all.iter().flat_map(|(_, j)| ids_in(j)).collect();
    wait_for("every event delivered", || {
        want.is_subset(&accepted(&server.requests()))
    });
    for child in [&mut a, &mut b] {
        assert!(sigterm(child));
        assert!(child.wait().unwrap().success());
    }
    // Each instance delivered events of its own partitions.
    for log in [&log_a, &log_b] {
        let text = std::fs::read_to_string(log).unwrap();
        let read: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("read "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no summary in {text}"));
        assert!(read > 0, "{text}");
    }
    k.wait_group_committed(
        &format!("{topic}-app-notify"),
        &topic,
        Duration::from_secs(30),
    );
}
