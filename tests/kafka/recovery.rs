//! Recovery: kill -9 and restart, local owners, fencing, state restored from the changelog.

use crate::support::dirs::*;
use crate::support::events::*;
use crate::support::goals::*;
use crate::support::kafka::*;
use crate::support::replay::*;
use crate::{run_within, set_message_max_bytes};

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
    assert!(sigterm(&child));
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
