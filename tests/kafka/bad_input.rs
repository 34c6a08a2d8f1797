//! Input that cannot be used: per-record formats, bad and unreadable records, far-future events.

use crate::support::dirs::*;
use crate::support::events::*;
use crate::support::goals::*;
use crate::support::kafka::*;
use crate::support::replay::*;
use crate::{header, run_within};

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
        records.push(json_record(e));
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
        ..Default::default()
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
        records.push(json_record(e));
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
