//! Starting and finishing: quiet partitions, SIGTERM, missing and new topics, `--until-caught-up`.

use crate::run_within;
use crate::support::dirs::*;
use crate::support::events::*;
use crate::support::goals::*;
use crate::support::kafka::*;
use crate::support::replay::*;

/// Only one of three partitions gets events: the quiet ones are marked idle after the idle timeout,
/// so windows close while the service runs (no end of input). SIGTERM then ends it cleanly.
#[test]
fn quiet_partitions_do_not_hold_windows_open_and_sigterm_exits_cleanly() {
    use std::time::{Duration, Instant};
    let k = Kafka::connect();
    let name = unique("idle");
    k.create_topic(&name, 3);
    let events = generated_events(3, 3_000);
    let records: Vec<(String, Vec<u8>)> = events.iter().map(json_record).collect();
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
    assert!(sigterm(&child));
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
    let records: Vec<(String, Vec<u8>)> = events.iter().map(json_record).collect();
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
