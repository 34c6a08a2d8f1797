//! Record size limits: records too large for the producer, huge values.

use crate::set_message_max_bytes;
use crate::support::dirs::*;
use crate::support::events::*;
use crate::support::goals::*;
use crate::support::kafka::*;
use crate::support::replay::*;

/// A dead letter the producer refuses as too large (here `message.max.bytes` is 100 kB and the
/// bad record 300 kB) is written truncated, with its original length in a header, instead of
/// being lost or stopping the stream.
#[test]
fn a_dead_letter_too_large_for_the_producer_is_truncated_not_lost() {
    let k = Kafka::connect();
    let name = unique("dlqbig");
    k.create_topic(&name, 1);
    let good = generated_events(6, 200);
    let mut records: Vec<(String, Vec<u8>)> = good.iter().map(json_record).collect();
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
    let value = "v".repeat(goalpost::limits::Limits::DEFAULT.value_bytes);
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let records: Vec<(String, Vec<u8>)> = generated_events(6, 50)
        .into_iter()
        .map(|mut e| {
            for key in &keys {
                e.set_attribute(key.as_str(), value.as_str());
            }
            json_record(&e)
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
        .filter(|e| e.event_id.len() > goalpost::limits::Limits::DEFAULT.event_id_bytes)
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

/// `input.max_record_bytes` governs Kafka input beyond the 1 MiB default: a 2 MiB record (on a
/// topic whose `max.message.bytes` allows it) is applied when the limit allows it, and
/// dead-lettered as `oversized` under the default limit. Either way the results are replay's of
/// the events the run applied.
#[test]
fn a_2_mib_record_is_applied_when_max_record_bytes_allows_it() {
    let k = Kafka::connect();
    let events = generated_events(3, 1_000);
    let at = events
        .iter()
        .position(|e| e.event_type == "deal_won" && e.amount.is_some())
        .unwrap();
    // A second sale as of the same time (so not late), padded to 2 MiB by an attribute no goal
    // reads.
    let mut slim = events[at].clone();
    slim.event_id = "big-record".into();
    let mut big = slim.clone();
    big.attributes.push(("pad".into(), "x".repeat(2 << 20)));
    big.attributes.sort();
    let with = |extra: &goalpost::model::SalesEvent| {
        let mut v = events.clone();
        v.insert(at + 1, extra.clone());
        v
    };
    let records: Vec<(String, Vec<u8>)> = with(&big).iter().map(json_record).collect();
    assert!(records[at + 1].1.len() > 2 << 20);
    let goals = example_goals();
    let (applied, without) = (replay(&goals, &with(&slim)), replay(&goals, &events));
    assert_ne!(applied, without, "the big record changes the results");

    for (max_record_bytes, replayed) in [(Some(3 << 20), &applied), (None, &without)] {
        let name = unique("bigrecord");
        k.create_topic(&name, 1);
        k.set_topic_config(&name, "max.message.bytes", &(4 << 20).to_string());
        k.produce_raw(&name, &records);
        assert_eq!(k.read_all_raw(&name).len(), records.len(), "all produced");
        let cfg = k.write_config(&name, &goals, "");
        if let Some(max) = max_record_bytes {
            let text = std::fs::read_to_string(&cfg)
                .unwrap()
                .replace("[input]", &format!("[input]\nmax_record_bytes = {max}"));
            std::fs::write(&cfg, text).unwrap();
        }
        let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "goalpost run failed:\n{stderr}");
        let dead = k.read_all_raw(&format!("{name}-dlq"));
        if max_record_bytes.is_some() {
            assert!(stderr.contains("rejected 0 "), "{stderr}");
            assert!(dead.is_empty(), "nothing dead-lettered");
        } else {
            assert!(stderr.contains("rejected 1 "), "{stderr}");
            assert_eq!(dead.len(), 1, "the big record dead-lettered");
            let reason = dead[0].3.iter().find(|(n, _)| n == "goalpost.reason");
            assert_eq!(reason.unwrap().1, b"oversized");
        }
        let live = k.read_all(&format!("{name}-out"));
        assert_exactly_once(&live);
        assert_same_results(&goals, replayed, &live);
    }
}
