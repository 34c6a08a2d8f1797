//! `goalpost run` against a real Apache Kafka broker (started by `scripts/test`, or any cluster
//! named by `KAFKA_BOOTSTRAP`).

#[allow(dead_code)]
mod support;

use support::dirs::*;
use support::events::*;
use support::goals::*;
use support::kafka::*;
use support::replay::*;

/// The generated stream on a 6-partition topic: `run --until-caught-up --close-all-at-end` gives the
/// same finals as `replay`, and for goals whose value only grows the same milestones and breaches;
/// every attainment event exactly once.
#[test]
fn run_equals_replay_on_generated_events() {
    let k = Kafka::connect();
    let name = unique("gen");
    let events = generated_events(11, 20_000);
    k.create_topic(&name, 6);
    k.produce_json(&name, &events);

    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    assert!(
        out.status.success(),
        "goalpost run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = k.read_all(&format!("{name}-out"));
    let replayed = replay(&goals, &events);
    assert_exactly_once(&live);
    assert_same_results(&goals, &replayed, &live);
}

/// The CRM dataset (with its disorder and redeliveries) on a 6-partition topic: the same results
/// as replay of the same lines.
#[test]
fn run_equals_replay_on_crm_data() {
    let k = Kafka::connect();
    let name = unique("crm");
    let (opportunities, teams) = support::crm_data::load();
    let mut events = support::crm_data::to_events(&opportunities, &teams);
    support::crm_data::disorder(&mut events);
    let (lines, copies) = support::crm_data::with_duplicates(&events);
    assert!(copies > 0);
    let records: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event_id"].as_str().unwrap().to_string(),
                l.as_bytes().to_vec(),
            )
        })
        .collect();
    k.create_topic(&name, 6);
    k.produce_raw(&name, &records);

    // The example goals, with a grace that covers the dataset's day-long disorder.
    let goals = example_goals().replace("grace = \"1h\"", "grace = \"2d\"");
    let cfg = k.write_config(&name, &goals, "");
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "goalpost run failed:\n{log}");
    assert!(log.contains(&format!("duplicates {copies}")), "{log}");

    let live = k.read_all(&format!("{name}-out"));
    let replayed = replay_bytes(&goals, (lines.join("\n") + "\n").as_bytes());
    assert_exactly_once(&live);
    assert_same_results(&goals, &replayed, &live);
}

/// Three instances sharing the group give the same finals, milestones and breaches as one.
#[test]
fn three_instances_give_the_same_results_as_one() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    let k = Kafka::connect();
    let name = unique("scale");
    let events = generated_events(23, 30_000);
    k.create_topic(&name, 6);
    let goals = example_goals();
    // Balancing the group can take longer than the usual 5 s idle timeout: input partitions
    // marked idle before the first event would let the watermark pass windows that their events,
    // arriving later, still belong to (see README, "idle partitions").
    let cfg = k.write_config(&name, &goals, "idle_timeout = \"60s\"");

    // Three long-running instances; the group is balanced before any event arrives, so the work
    // is shared for certain.
    let mut children: Vec<std::process::Child> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            goalpost_cmd(&cfg, id, &[])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start goalpost")
        })
        .collect();
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    for (i, c) in children.iter_mut().enumerate() {
        let stderr = c.stderr.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send((i, line));
            }
        });
    }
    let mut logs: Vec<String> = vec![String::new(); 3];
    let mut holding = [false; 3];
    let deadline = Instant::now() + Duration::from_secs(60);
    while holding.iter().any(|h| !h) {
        assert!(
            Instant::now() < deadline,
            "the three instances did not all get partitions:\n{}",
            logs.join("\n")
        );
        if let Ok((i, line)) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("partitions assigned") && !line.contains("partitions=[]") {
                holding[i] = true;
            }
            logs[i].push_str(&line);
            logs[i].push('\n');
        }
    }

    k.produce_json(&name, &events);
    k.wait_group_committed(&format!("{name}-app"), &name, Duration::from_secs(120));
    for c in &children {
        std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
    }
    for (i, c) in children.into_iter().enumerate() {
        let status = c.wait_with_output().unwrap().status;
        while let Ok((j, line)) = rx.try_recv() {
            logs[j].push_str(&line);
            logs[j].push('\n');
        }
        assert!(status.success(), "instance {i} failed:\n{}", logs[i]);
    }

    // One more run closes the windows that are still open.
    finish_and_compare(&k, &cfg, &name, &goals, &events);
}

/// kill -9 at random moments (mid-transaction, mid-restore), restarting each time: the
/// read_committed output equals the uninterrupted result, with no duplicate and no loss.
#[test]
fn kill_nine_and_restart_loses_and_duplicates_nothing() {
    use std::time::{Duration, Instant};

    let k = Kafka::connect();
    let name = unique("crash");
    let events = generated_events(31, 40_000);
    k.create_topic(&name, 6);
    k.produce_json(&name, &events);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");

    // (delay after start, or kill as soon as restoring begins)
    let plan: [(u64, bool); 6] = [
        (1_200, false),
        (0, true),
        (2_300, false),
        (700, false),
        (0, true),
        (1_700, false),
    ];
    let mut killed = 0;
    for (delay_ms, at_restore) in plan {
        let (mut child, rx) =
            spawn_with_log(&cfg, "i0", &["--until-caught-up", "--close-all-at-end"]);
        let deadline =
            Instant::now() + Duration::from_millis(if at_restore { 30_000 } else { delay_ms });
        loop {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(10)) {
                if at_restore && line.contains("restoring state") {
                    break;
                }
            }
            if Instant::now() >= deadline {
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
        killed >= 4,
        "only {killed} of the runs were still going when killed"
    );

    finish_and_compare(&k, &cfg, &name, &goals, &events);
}

/// One instance owns every repartition partition. Right after the assignment it sends each owner
/// a barrier through the repartition topic; once an owner has read it back, contributions are
/// applied to it directly. A live feed gets there, is killed -9 with the owners local, and a
/// restart gets there again: the read_committed output still equals replay's, every attainment
/// once.
#[test]
fn local_owners_skip_the_repartition_topic_and_survive_kill_nine() {
    use std::time::{Duration, Instant};

    let k = Kafka::connect();
    let name = unique("local");
    let events = generated_events(41, 40_000);
    k.create_topic(&name, 6);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let (first, second) = events.split_at(events.len() / 2);

    // Starts a live instance, feeds `part` in chunks, and waits until every owner is local.
    let start_and_feed = |part: &[goalpost::model::SalesEvent]| {
        let (child, rx) = spawn_with_log(&cfg, "i0", &[]);
        let mut log = String::new();
        let mut local = std::collections::BTreeSet::new();
        let mut chunks = part.chunks(1_000);
        let deadline = Instant::now() + Duration::from_secs(60);
        while local.len() < 6 {
            assert!(Instant::now() < deadline, "owners never went local:\n{log}");
            if let Some(chunk) = chunks.next() {
                k.produce_json(&name, chunk);
            }
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                if line.contains("skip the repartition topic") {
                    local.insert(
                        line.rsplit("partition=")
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                log.push_str(&line);
                log.push('\n');
            }
        }
        // The rest of the part reaches the owners directly.
        for chunk in chunks {
            k.produce_json(&name, chunk);
            std::thread::sleep(Duration::from_millis(20));
        }
        (child, rx, log)
    };

    let (mut child, _, _) = start_and_feed(first);
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL, with the owners local
    child.wait().unwrap();

    let (child, rx, mut log) = start_and_feed(second);
    k.wait_group_committed(&format!("{name}-app"), &name, Duration::from_secs(60));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "SIGTERM should end the run with exit 0"
    );
    // The reader thread ends at the end of the log.
    log.extend(rx.iter().map(|l| l + "\n"));
    let local: u64 = log
        .split("local contributions ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in the log:\n{log}"));
    assert!(
        local > 0,
        "no contribution skipped the repartition topic:\n{log}"
    );

    // One more run closes the windows that are still open.
    finish_and_compare(&k, &cfg, &name, &goals, &events);
}

/// Only one of three partitions gets events: the quiet ones are marked idle after the idle timeout,
/// so windows close while the service runs (no end of input). SIGTERM then ends it cleanly.
#[test]
fn quiet_partitions_do_not_hold_windows_open_and_sigterm_exits_cleanly() {
    use std::time::{Duration, Instant};
    let k = Kafka::connect();
    let name = unique("idle");
    k.create_topic(&name, 3);
    let events = generated_events(3, 3_000);
    let records: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            goalpost::codec::json::encode_event(e, &mut b);
            (e.event_id.clone(), b)
        })
        .collect();
    k.produce_to(&name, Some(0), &records);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("idle_timeout = \"5s\"", "idle_timeout = \"2s\"");
    std::fs::write(&cfg, text).unwrap();

    let child = goalpost_cmd(&cfg, "i0", &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start goalpost");
    let replayed = replay(&goals, &events);
    let deadline = Instant::now() + Duration::from_secs(90);
    let live = loop {
        std::thread::sleep(Duration::from_secs(2));
        let live = k.read_all(&format!("{name}-out"));
        if live.iter().filter(|a| a.kind == "final").count() >= 20 || Instant::now() > deadline {
            break live;
        }
    };
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SIGTERM should end the run with exit 0:\n{log}"
    );
    assert!(log.contains("shutdown requested"), "{log}");

    let finals: Vec<&Attainment> = live.iter().filter(|a| a.kind == "final").collect();
    assert!(
        finals.len() >= 20,
        "windows closed on a quiet stream: {} finals",
        finals.len()
    );
    for f in finals {
        let r = replayed
            .iter()
            .find(|r| r.attainment_id == f.attainment_id)
            .unwrap_or_else(|| panic!("live final not in replay: {}", f.raw));
        assert_eq!((&r.value, &r.outcome), (&f.value, &f.outcome), "{}", f.raw);
    }
}

/// A `content-type` header overrides the configured input format per record: JSON and protobuf
/// records mixed on one topic give replay's results.
#[test]
fn content_type_header_selects_the_format_per_record() {
    let k = Kafka::connect();
    let name = unique("mixed");
    k.create_topic(&name, 3);
    let events = generated_events(9, 3_000);
    let records: Vec<(String, Vec<u8>, Option<&str>)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut b = Vec::new();
            if i % 2 == 0 {
                goalpost::codec::proto::encode_event(e, &mut b);
                (e.event_id.clone(), b, Some("application/x-protobuf"))
            } else {
                goalpost::codec::json::encode_event(e, &mut b);
                (e.event_id.clone(), b, None)
            }
        })
        .collect();
    k.produce_with_content_type(&name, None, &records);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("rejected 0"), "{log}");
    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(&goals, &replay(&goals, &events), &live);
}

/// Missing topics: an input topic is never created and its absence is a clear error; with
/// `create_topics = false` every missing topic is named.
#[test]
fn missing_topics_are_reported_clearly() {
    let k = Kafka::connect();
    let name = unique("missing");
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let out = run_goalpost(&cfg, &["--until-caught-up"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("input topic `{name}` does not exist")),
        "{log}"
    );

    k.create_topic(&name, 2);
    let cfg = k.write_config(&name, &goals, "create_topics = false");
    let out = run_goalpost(&cfg, &["--until-caught-up"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    for t in [
        format!("{name}-app-repartition"),
        format!("{name}-app-changelog"),
        format!("{name}-out"),
        format!("{name}-dlq"),
    ] {
        assert!(log.contains(&t), "missing topic {t} not named:\n{log}");
    }
    assert!(log.contains("app.create_topics = true"), "{log}");

    // Created by hand with the default cleanup.policy (delete): refused, since state would
    // expire with the retention time. Compacted, it is accepted.
    for t in [
        format!("{name}-app-repartition"),
        format!("{name}-app-changelog"),
        format!("{name}-out"),
        format!("{name}-dlq"),
    ] {
        k.create_topic(&t, 2);
    }
    let out = run_goalpost(&cfg, &["--until-caught-up"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "changelog topic `{name}-app-changelog` has cleanup.policy=delete"
        )),
        "{log}"
    );
    k.set_topic_config(
        &format!("{name}-app-changelog"),
        "cleanup.policy",
        "compact",
    );
    let out = run_goalpost(&cfg, &["--until-caught-up"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
}

/// Topics created at start are warmed up with one aborted transaction: a read_uncommitted reader
/// sees one `goalpost.warmup` record per partition, a read_committed reader none, and a later run
/// (which creates nothing) writes no more.
#[test]
fn new_topics_are_warmed_up_invisibly() {
    let k = Kafka::connect();
    let name = unique("warmup");
    k.create_topic(&name, 2);
    k.produce_json(&name, &generated_events(3, 300));
    // A producer queue of one record: the warm-up (a record per new partition) and every later
    // send must wait for room instead of failing.
    let small_queue = "[kafka.properties]\n\"queue.buffering.max.messages\" = \"1\"";
    let cfg = k.write_config(&name, &example_goals(), small_queue);
    let warm_ups = |isolation: &str| {
        k.read_all_raw_with(&format!("{name}-out"), isolation)
            .iter()
            .filter(|r| r.1.as_deref() == Some(b"goalpost.warmup".as_slice()))
            .count()
    };
    for run in 1..=2 {
        let out = run_goalpost(&cfg, &["--until-caught-up"]);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {run}: {log}");
        assert_eq!(
            log.contains("warmed up the new topics"),
            run == 1,
            "run {run}: {log}"
        );
        assert_eq!(warm_ups("read_uncommitted"), 2, "run {run}");
        assert_eq!(warm_ups("read_committed"), 0, "run {run}");
    }
}

/// A second instance with the same instance id fences the first: the first stops with a clear
/// message instead of producing duplicates, and the second carries on to the same results.
#[test]
fn a_fenced_instance_stops_with_a_clear_error() {
    use std::time::{Duration, Instant};
    let k = Kafka::connect();
    let name = unique("fence");
    k.create_topic(&name, 3);
    let events = generated_events(13, 5_000);
    k.produce_json(&name, &events);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");

    let mut first = goalpost_cmd(&cfg, "same", &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start goalpost");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first instance should still run"
    );
    let second = goalpost_cmd(&cfg, "same", &["--until-caught-up", "--close-all-at-end"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start goalpost");

    // The first instance learns it is fenced at its next transaction (idle markers and clock
    // records keep it committing) and must stop on its own.
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            first.kill().unwrap();
            panic!("the fenced instance kept running");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = first.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("fenced"),
        "the error names the fencing:\n{log}"
    );

    let out = second.wait_with_output().unwrap();
    assert_succeeded_with_replays_results(&k, &out, &name, &goals, &events);
}

/// A dead letter the producer refuses as too large (here `message.max.bytes` is 100 kB and the
/// bad record 300 kB) is written truncated, with its original length in a header, instead of
/// being lost or stopping the stream.
#[test]
fn a_dead_letter_too_large_for_the_producer_is_truncated_not_lost() {
    let k = Kafka::connect();
    let name = unique("dlqbig");
    k.create_topic(&name, 1);
    let good = generated_events(6, 200);
    let mut records: Vec<(String, Vec<u8>)> = good
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            goalpost::codec::json::encode_event(e, &mut b);
            (e.event_id.clone(), b)
        })
        .collect();
    let big = format!("{{not json {}", "x".repeat(300_000)).into_bytes();
    records.insert(100, ("big".to_string(), big.clone()));
    k.produce_raw(&name, &records);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    set_message_max_bytes(&cfg, 100_000);
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "goalpost run failed:\n{stderr}");
    assert!(stderr.contains("rejected 1 "), "{stderr}");

    let dead = k.read_all_raw(&format!("{name}-dlq"));
    assert_eq!(dead.len(), 1, "the bad record dead-lettered once");
    let (_, key, payload, headers) = &dead[0];
    assert_eq!(key.as_deref(), Some(b"big".as_slice()));
    let truncated_from = headers
        .iter()
        .find(|(n, _)| n == "goalpost.truncated_from")
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap());
    assert_eq!(truncated_from, Some(big.len().to_string()));
    let payload = payload.as_deref().unwrap_or_default();
    assert!(
        !payload.is_empty() && payload.len() < 100_000 && big.starts_with(payload),
        "a prefix of the original that fits: {} bytes",
        payload.len()
    );
    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(&goals, &replay(&goals, &good), &live);
}

/// Appends `[kafka.properties] message.max.bytes = max` to the config at `cfg`.
fn set_message_max_bytes(cfg: &std::path::Path, max: usize) {
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text.push_str(&format!(
        "[kafka.properties]\n\"message.max.bytes\" = \"{max}\"\n"
    ));
    std::fs::write(cfg, text).unwrap();
}

/// A record goalpost cannot split or cut, here anything carrying a group key (30 values of 1 KiB)
/// larger than `message.max.bytes` = 20,000: a contribution, a window's state, an attainment event,
/// stops the instance with an error naming the size, the topic and the settings to raise, instead
/// of aborting and redoing its transaction forever. Nothing of that transaction is committed.
#[test]
fn a_record_too_large_for_the_producer_stops_the_instance_with_a_clear_error() {
    let k = Kafka::connect();
    let name = unique("toolarge");
    k.create_topic(&name, 1);
    // Each group value within the engine's limit (1 KiB), but 30 of them make a group key of
    // 30 kB: a contribution, a window's state and an attainment event that cannot be split.
    let value = "v".repeat(goalpost::engine::MAX_GROUP_VALUE_BYTES);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let records: Vec<(String, Vec<u8>)> = generated_events(6, 50)
        .into_iter()
        .map(|mut e| {
            for key in &keys {
                e.set_attribute(key.as_str(), value.as_str());
            }
            let mut b = Vec::new();
            goalpost::codec::json::encode_event(&e, &mut b);
            (e.event_id.clone(), b)
        })
        .collect();
    k.produce_raw(&name, &records);
    let group_by: Vec<String> = keys.iter().map(|k| format!("\"attributes.{k}\"")).collect();
    let goals = format!(
        r#"
[[goals]]
id = "daily-events-per-huge-group"
metric = "count"
group_by = [{}]
window = {{ calendar = "day" }}
target = 1
"#,
        group_by.join(", ")
    );
    let cfg = k.write_config(&name, &goals, "");
    set_message_max_bytes(&cfg, 20_000);
    let (mut child, log) = spawn_with_log(&cfg, "i0", &["--until-caught-up", "--close-all-at-end"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let lines: Vec<String> = log.try_iter().collect();
            panic!(
                "goalpost did not stop within 120 s; last lines:\n{}",
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let stderr: Vec<String> = log.iter().collect();
    let stderr = stderr.join("\n");
    assert!(!status.success(), "goalpost should fail:\n{stderr}");
    assert!(
        stderr.contains("exceeds the producer's message.max.bytes = 20000")
            && stderr.contains("max.message.bytes"),
        "the error names the limit and the settings:\n{stderr}"
    );
    assert!(
        k.read_all_raw(&format!("{name}-out")).is_empty(),
        "nothing committed to the output"
    );
}

/// Huge values in otherwise valid records do not stop the stream, even with a small
/// `message.max.bytes`: an event_id over 1 KiB is dead-lettered as `oversized`, and a group-by or
/// count_distinct value over 1 KiB is skipped for its goal. The results are replay's.
#[test]
fn huge_values_are_rejected_or_skipped_and_the_stream_goes_on() {
    let k = Kafka::connect();
    let name = unique("hugevalues");
    k.create_topic(&name, 2);
    let mut events = generated_events(8, 600);
    let huge = "r".repeat(30_000);
    for (i, e) in events.iter_mut().enumerate() {
        if i % 50 == 3 {
            e.set_string(goalpost::model::StringField::RepId, huge.as_str());
        }
        if i % 100 == 7 {
            e.event_id = format!("{}-{}", e.event_id, "x".repeat(2_000));
        }
    }
    let records: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            goalpost::codec::json::encode_event(e, &mut b);
            // The key stays short: the producer's limit is on the whole record.
            (e.event_id.chars().take(40).collect(), b)
        })
        .collect();
    k.produce_raw(&name, &records);
    let goals = r#"
[[goals]]
id = "rep-daily-events"
metric = "count"
group_by = ["rep_id"]
window = { calendar = "day" }
target = 3

[[goals]]
id = "reps-active-daily"
metric = "count_distinct"
field = "rep_id"
window = { calendar = "day" }
target = 5
"#;
    let cfg = k.write_config(&name, goals, "");
    set_message_max_bytes(&cfg, 20_000);
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "goalpost run failed:\n{stderr}");
    let long_ids = events
        .iter()
        .filter(|e| e.event_id.len() > goalpost::codec::MAX_EVENT_ID_BYTES)
        .count();
    assert!(long_ids > 0);
    assert!(
        stderr.contains(&format!("rejected {long_ids} ")),
        "{stderr}"
    );
    let dead = k.read_all_raw(&format!("{name}-dlq"));
    assert_eq!(
        dead.len(),
        long_ids,
        "every long event_id dead-lettered once"
    );
    for (_, _, _, headers) in &dead {
        let reason = headers
            .iter()
            .find(|(n, _)| n == "goalpost.reason")
            .unwrap();
        assert_eq!(reason.1, b"oversized");
    }
    let live = k.read_all(&format!("{name}-out"));
    let replayed = replay(goals, &events);
    assert!(!live.is_empty());
    assert!(
        live.iter().all(|a| a.raw.len() < 5_000),
        "no huge group value reached the output"
    );
    assert_exactly_once(&live);
    assert_same_results(goals, &replayed, &live);
}

/// Malformed, oversized and wrongly typed records land on the dead-letter topic with their reason
/// and origin and the original bytes; the stream goes on.
#[test]
fn bad_records_are_dead_lettered_and_the_stream_goes_on() {
    let k = Kafka::connect();
    let name = unique("dlq");
    k.create_topic(&name, 3);
    let good = generated_events(5, 2_000);
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{not json".to_vec()),
        ("wrong_type", br#"{"event_id":5,"event_type":"deal_won","occurred_at":"2026-01-05T10:00:00Z"}"#.to_vec()),
        ("missing_field", br#"{"event_type":"deal_won","occurred_at":"2026-01-05T10:00:00Z"}"#.to_vec()),
        ("invalid_timestamp", br#"{"event_id":"t","event_type":"deal_won","occurred_at":"yesterday"}"#.to_vec()),
        ("invalid_amount", br#"{"event_id":"a","event_type":"deal_won","occurred_at":"2026-01-05T10:00:00Z","amount":"lots"}"#.to_vec()),
        ("oversized", format!(r#"{{"event_id":"big","event_type":"x","occurred_at":"2026-01-05T10:00:00Z","pad":"{}"}}"#, "x".repeat(20_000)).into_bytes()),
        ("invalid_json", vec![0xff, 0xfe, 0x00, 0x01]),
    ];
    for (i, e) in good.iter().enumerate() {
        let mut b = Vec::new();
        goalpost::codec::json::encode_event(e, &mut b);
        records.push((e.event_id.clone(), b));
        if i % 300 == 7 {
            if let Some((_, payload)) = bad.get(i / 300) {
                records.push((format!("bad-{i}"), payload.clone()));
            }
        }
    }
    k.produce_raw(&name, &records);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[input]", "[input]\nmax_record_bytes = 10000");
    std::fs::write(&cfg, text).unwrap();
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "goalpost run failed:\n{stderr}");
    assert!(
        stderr.contains(&format!("rejected {}", bad.len())),
        "{stderr}"
    );

    let dead = k.read_all_raw(&format!("{name}-dlq"));
    assert_eq!(dead.len(), bad.len(), "every bad record dead-lettered once");
    let header = |h: &[(String, Vec<u8>)], k: &str| -> String {
        String::from_utf8(
            h.iter()
                .find(|(n, _)| n == k)
                .unwrap_or_else(|| panic!("header {k}"))
                .1
                .clone(),
        )
        .unwrap()
    };
    let mut reasons: Vec<String> = Vec::new();
    for (_, key, payload, headers) in &dead {
        let reason = header(headers, "goalpost.reason");
        assert_eq!(header(headers, "goalpost.source.topic"), name);
        let _: i32 = header(headers, "goalpost.source.partition")
            .parse()
            .unwrap();
        let _: i64 = header(headers, "goalpost.source.offset").parse().unwrap();
        assert!(!header(headers, "goalpost.detail").is_empty());
        // The original bytes and key are kept.
        let key = String::from_utf8(key.clone().unwrap()).unwrap();
        let original = records.iter().find(|(k, _)| *k == key).unwrap();
        assert_eq!(payload.as_deref(), Some(original.1.as_slice()));
        reasons.push(reason);
    }
    reasons.sort();
    let mut expected: Vec<String> = bad.iter().map(|(r, _)| r.to_string()).collect();
    expected.sort();
    assert_eq!(reasons, expected);

    // The good events were processed as if the bad ones were not there.
    let live = k.read_all(&format!("{name}-out"));
    let replayed = replay(&goals, &good);
    assert_exactly_once(&live);
    assert_same_results(&goals, &replayed, &live);
}

/// Runs `goalpost run` with `args`, which must end by itself within `limit`: returns whether it
/// succeeded and its log; a run still going at the limit is killed and fails the test.
fn run_within(cfg: &std::path::Path, args: &[&str], limit: std::time::Duration) -> (bool, String) {
    let started = std::time::Instant::now();
    let (mut child, log) = spawn_with_log(cfg, "i0", args);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            let lines: Vec<String> = log.try_iter().collect();
            panic!(
                "goalpost run {args:?} still running after {limit:?}; last lines:\n{}",
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let lines: Vec<String> = log.iter().collect();
    (status.success(), lines.join("\n"))
}

/// Records produced to a topic, then all deleted (`DeleteRecords` to the end, as retention does):
/// the log start offset is the end offset, the group has no committed offset. Nothing is left to
/// read, so `--until-caught-up` finishes at once with nothing read; records produced afterwards
/// are read by the next run.
#[test]
fn until_caught_up_finishes_when_the_input_records_were_deleted() {
    use std::time::Duration;
    let k = Kafka::connect();
    let name = unique("deleted");
    k.create_topic(&name, 2);
    let events = generated_events(12, 400);
    let (gone, later) = events.split_at(200);
    k.produce_json(&name, gone);
    let starts = k.delete_all_records(&name);
    assert!(
        starts.iter().all(|&s| s > 0) && starts.iter().sum::<i64>() == 200,
        "every record deleted: log start offsets {starts:?}"
    );
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let args = ["--until-caught-up", "--close-all-at-end"];
    // Seconds, not forever: with nothing left to read, the run used to wait for records that
    // would never come (still waiting 90 s later). The limit leaves room for a loaded machine.
    let (ok, log) = run_within(&cfg, &args, Duration::from_secs(60));
    assert!(ok, "goalpost run failed:\n{log}");
    assert!(log.contains("read 0 "), "nothing left to read:\n{log}");

    k.produce_json(&name, later);
    let (ok, log) = run_within(&cfg, &args, Duration::from_secs(60));
    assert!(ok, "goalpost run failed:\n{log}");
    assert!(
        log.contains("read 200 "),
        "the records produced since:\n{log}"
    );
    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(&goals, &replay(&goals, later), &live);
}

/// An input partition that never had a record does not hold `--until-caught-up` back.
#[test]
fn until_caught_up_finishes_with_an_input_partition_that_never_had_a_record() {
    let k = Kafka::connect();
    let name = unique("emptypart");
    k.create_topic(&name, 3);
    let events = generated_events(13, 500);
    let records: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| {
            let mut b = Vec::new();
            goalpost::codec::json::encode_event(e, &mut b);
            (e.event_id.clone(), b)
        })
        .collect();
    // Partitions 0 and 1 get the events; partition 2 stays empty.
    let (a, b) = records.split_at(250);
    k.produce_to(&name, Some(0), a);
    k.produce_to(&name, Some(1), b);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let (ok, log) = run_within(
        &cfg,
        &["--until-caught-up", "--close-all-at-end"],
        std::time::Duration::from_secs(60),
    );
    assert!(ok, "goalpost run failed:\n{log}");
    assert!(log.contains("read 500 "), "{log}");
    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(&goals, &replay(&goals, &events), &live);
}

/// The header `name` of a dead letter, as text.
fn header(headers: &[(String, Vec<u8>)], name: &str) -> String {
    let value = headers
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("header {name}"));
    String::from_utf8(value.1.clone()).unwrap()
}

/// The internal topics are input too. Undecodable records, batches naming an upstream partition
/// that does not exist (one just above the real count, one near u32::MAX) and contributions for
/// an unknown goal, written to the repartition topic; an unknown key, a window whose value is not
/// a state and an out-of-range upstream, written to the changelog: the run goes on, skips and
/// dead-letters each with its origin (the unknown goal's contributions are counted, not
/// dead-lettered), logs each kind once per partition, and gives replay's results. The forged upstream is not saved, and the changelog's bad records are dead-lettered
/// once, not at every restore.
#[test]
fn unreadable_internal_records_are_dead_lettered_and_the_stream_goes_on() {
    use goalpost::runtime::kafka::wire::{pb, ChangelogKey};
    use prost::Message as _;
    use std::time::Duration;

    let k = Kafka::connect();
    let name = unique("internal");
    k.create_topic(&name, 2);
    let events = generated_events(14, 2_000);
    let (first, second) = events.split_at(1_000);
    k.produce_json(&name, first);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let (ok, log) = run_within(&cfg, &["--until-caught-up"], Duration::from_secs(60));
    assert!(ok, "goalpost run failed:\n{log}");

    let repartition = format!("{name}-app-repartition");
    let changelog = format!("{name}-app-changelog");
    let mut garbage: Vec<(String, Vec<u8>)> = (0..30u8)
        .map(|i| (format!("garbage-{i}"), [&[0xff; 11][..], &[i]].concat()))
        .collect();
    for upstream in [2, u32::MAX - 1] {
        let forged = pb::RepartitionBatch {
            upstream,
            stream_time: Some(1_000),
            ..Default::default()
        };
        garbage.push((format!("upstream-{upstream}"), forged.encode_to_vec()));
    }
    k.produce_to(&repartition, Some(0), &garbage);
    let unknown_goal = pb::RepartitionBatch {
        upstream: 0,
        // More than the 2,000 goalpost puts in one batch: read twice rather than held whole.
        contributions: (0..2_500)
            .map(|i| pb::ContributionRecord {
                goal_id: "no-such-goal".into(),
                event_id: format!("e{i}"),
                delta: Some(pb::contribution_record::Delta::Count(true)),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    k.produce_to(
        &repartition,
        Some(0),
        &[("unknown-goal".into(), unknown_goal.encode_to_vec())],
    );
    let bad_window = ChangelogKey::Window {
        goal_id: "no-such-goal".into(),
        start: goalpost::model::Timestamp::from_nanos(0),
        group: vec![],
    };
    let far_upstream = pb::UpstreamRecord {
        stream_time: Some(5),
        idle: false,
    };
    let bad_changelog: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"zz-not-a-key".to_vec(), b"x".to_vec()),
        (bad_window.to_bytes(), vec![0xff; 11]),
        (
            ChangelogKey::Upstream(u32::MAX - 1).to_bytes(),
            far_upstream.encode_to_vec(),
        ),
    ];
    k.produce_bytes_to(&changelog, 0, &bad_changelog);

    k.produce_json(&name, second);
    let args = ["--until-caught-up", "--close-all-at-end"];
    let (ok, log) = run_within(&cfg, &args, Duration::from_secs(60));
    assert!(ok, "goalpost run failed:\n{log}");
    let skipped = garbage.len() + bad_changelog.len();
    assert!(
        log.contains(&format!(
            "{skipped} record(s) of the repartition or changelog topic"
        )),
        "{log}"
    );
    // Rate-limited: one warning of each kind for the partition, not one per record.
    assert!(
        log.contains(
            "2500 contribution(s) of the repartition topic for goals not in the goal file"
        ),
        "the unknown goal's contributions are counted:\n{log}"
    );
    for (what, most) in [
        ("unreadable repartition record", 1),
        ("unreadable changelog record", 1),
        ("contribution for a goal not in the goal file", 1),
    ] {
        let n = log.lines().filter(|l| l.contains(what)).count();
        assert!(n >= 1 && n <= most, "{n} warnings `{what}`:\n{log}");
    }

    let dead = k.read_all_raw(&format!("{name}-dlq"));
    assert_eq!(
        dead.len(),
        skipped,
        "every bad internal record dead-lettered once"
    );
    let mut offsets = std::collections::BTreeSet::new();
    for (_, key, payload, headers) in &dead {
        assert_eq!(
            header(headers, "goalpost.reason"),
            "unreadable_internal_record"
        );
        assert!(!header(headers, "goalpost.detail").is_empty());
        let topic = header(headers, "goalpost.source.topic");
        assert_eq!(header(headers, "goalpost.source.partition"), "0");
        let offset: i64 = header(headers, "goalpost.source.offset").parse().unwrap();
        assert!(
            offsets.insert((topic.clone(), offset)),
            "one dead letter per origin"
        );
        let (key, payload) = (key.clone().unwrap(), payload.clone().unwrap());
        if topic == repartition {
            let original = garbage.iter().find(|(k, _)| k.as_bytes() == key).unwrap();
            assert_eq!(payload, original.1);
        } else {
            assert_eq!(topic, changelog);
            assert!(bad_changelog.contains(&(key, payload)));
        }
    }
    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(&goals, &replay(&goals, &events), &live);
    // No upstream beyond the input's two partitions is in the changelog (the forged one written
    // there is tombstoned).
    let mut latest = std::collections::HashMap::new();
    for (p, key, value, _) in k.read_all_raw(&changelog) {
        latest.insert((p, key.unwrap()), value);
    }
    for ((_, key), value) in latest {
        if let (Ok(ChangelogKey::Upstream(up)), Some(_)) = (ChangelogKey::from_bytes(&key), value) {
            assert!(up < 2, "upstream {up} saved");
        }
    }

    // The changelog's bad records were tombstoned: a restart does not dead-letter them again.
    let (ok, log) = run_within(&cfg, &args, Duration::from_secs(60));
    assert!(ok, "goalpost run failed:\n{log}");
    assert!(!log.contains("could not be read"), "{log}");
    assert_eq!(k.read_all_raw(&format!("{name}-dlq")).len(), skipped);
}

/// A `count_distinct` window holding over 1 MB of distinct values, with `message.max.bytes` =
/// 100,000: its state is stored in parts, survives a restart, and the final counts every value.
#[test]
fn a_window_state_larger_than_a_record_survives_a_restart() {
    use goalpost::model::{StringField, Timestamp};
    use std::time::Duration;

    let k = Kafka::connect();
    let name = unique("bigstate");
    k.create_topic(&name, 1);
    let day = 1_767_607_200_000_000_000i64; // 2026-01-05T10:00:00Z
    let pad = "a".repeat(500);
    let mut events = generated_events(15, 2_400);
    for (i, e) in events.iter_mut().enumerate() {
        // Unique ids (the generator redelivers some events).
        e.event_id = format!("big-{i}");
        e.occurred_at = Timestamp::from_nanos(day + i as i64 * 1_000_000_000);
        e.set_string(StringField::AccountId, format!("acct-{i:05}-{pad}"));
    }
    let goals = r#"
[[goals]]
id = "accounts-daily"
metric = "count_distinct"
field = "account_id"
window = { calendar = "day" }
target = 1000000
"#;
    let cfg = k.write_config(&name, goals, "");
    set_message_max_bytes(&cfg, 100_000);
    let (first, second) = events.split_at(1_600);
    k.produce_json(&name, first);
    let (ok, log) = run_within(&cfg, &["--until-caught-up"], Duration::from_secs(120));
    assert!(ok, "goalpost run failed:\n{log}");
    // The latest record of each key: the changelog as a restore reads it.
    let latest = |k: &Kafka| {
        let mut latest = std::collections::HashMap::new();
        for (p, key, value, _) in k.read_all_raw(&format!("{name}-app-changelog")) {
            latest.insert((p, key.unwrap()), value);
        }
        latest
    };
    let parts = latest(&k)
        .iter()
        .filter(|((_, key), value)| value.is_some() && key.starts_with(b"p"))
        .count();
    assert!(parts > 10, "the window's state is stored in parts: {parts}");

    k.produce_json(&name, second);
    let args = ["--until-caught-up", "--close-all-at-end"];
    let (ok, log) = run_within(&cfg, &args, Duration::from_secs(120));
    assert!(ok, "goalpost run failed:\n{log}");
    let live = k.read_all(&format!("{name}-out"));
    let finals: Vec<&Attainment> = live.iter().filter(|a| a.kind == "final").collect();
    assert_eq!(finals.len(), 1, "{live:?}");
    assert_eq!(finals[0].value, "2400");
    let replayed = replay(goals, &events);
    let replayed: Vec<&Attainment> = replayed.iter().filter(|a| a.kind == "final").collect();
    assert_eq!(finals[0].raw, replayed[0].raw, "replay's final");
    // The closed window's head and parts are all tombstoned.
    let left = latest(&k)
        .iter()
        .filter(|((_, key), value)| value.is_some() && key.starts_with(b"p"))
        .count();
    assert_eq!(left, 0, "parts left");
}

/// An event in the year 2199 would become stream time on its partition, close every window and
/// make every later event late, and the watermark would be saved to the changelog. It is
/// dead-lettered as `future_timestamp` with its origin instead, and the run gives replay's results
/// for the other events: none of them late.
#[test]
fn a_far_future_event_is_dead_lettered_and_later_events_are_not_late() {
    let k = Kafka::connect();
    let name = unique("future");
    // One partition: its stream time alone drives the watermark.
    k.create_topic(&name, 1);
    let good = generated_events(15, 2_000);
    let far = br#"{"event_id":"evt-far","event_type":"deal_won","occurred_at":"2199-01-01T00:00:00Z","region":"East","amount":"100"}"#.to_vec();
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, e) in good.iter().enumerate() {
        if i == 500 {
            records.push(("evt-far".into(), far.clone()));
        }
        let mut b = Vec::new();
        goalpost::codec::json::encode_event(e, &mut b);
        records.push((e.event_id.clone(), b));
    }
    k.produce_raw(&name, &records);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "goalpost run failed:\n{stderr}");
    assert!(stderr.contains("rejected 1 "), "{stderr}");

    let dead = k.read_all_raw(&format!("{name}-dlq"));
    assert_eq!(dead.len(), 1, "the far-future event dead-lettered once");
    let (_, key, payload, headers) = &dead[0];
    let header = |k: &str| -> String {
        let (_, v) = headers
            .iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("header {k}"));
        String::from_utf8(v.clone()).unwrap()
    };
    assert_eq!(header("goalpost.reason"), "future_timestamp");
    assert!(
        header("goalpost.detail").starts_with(
            "occurred_at `2199-01-01T00:00:00Z` is more than max_future = 1h ahead of the wall clock"
        ),
        "{}",
        header("goalpost.detail")
    );
    assert_eq!(header("goalpost.source.topic"), name);
    assert_eq!(header("goalpost.source.partition"), "0");
    assert_eq!(header("goalpost.source.offset"), "500");
    assert_eq!(key.as_deref(), Some(&b"evt-far"[..]));
    assert_eq!(payload.as_deref(), Some(far.as_slice()));

    // Replay of the good events has no late event; a watermark in 2199 would have made the 1,500
    // after it late and closed their windows early.
    let live = k.read_all(&format!("{name}-out"));
    let replayed = replay(&goals, &good);
    assert_exactly_once(&live);
    assert_same_results(&goals, &replayed, &live);
}
