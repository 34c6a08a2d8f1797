//! `goalpost run` against a real Apache Kafka broker (started by `scripts/test`, or any cluster
//! named by `KAFKA_BOOTSTRAP`).

mod kafka_support;

use std::collections::{BTreeMap, BTreeSet};

use kafka_support::*;

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

    let goals = examples_goals();
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

fn assert_exactly_once(live: &[Attainment]) {
    let mut seen = BTreeSet::new();
    for a in live {
        assert!(
            seen.insert(a.attainment_id.clone()),
            "attainment {} emitted twice",
            a.attainment_id
        );
    }
}

fn assert_same_results(goals_toml: &str, replayed: &[Attainment], live: &[Attainment]) {
    let finals = |v: &[Attainment]| -> BTreeMap<String, (String, String)> {
        v.iter()
            .filter(|a| a.kind == "final")
            .map(|a| {
                (
                    a.attainment_id.clone(),
                    (a.value.clone(), a.outcome.clone()),
                )
            })
            .collect()
    };
    let (r, l) = (finals(replayed), finals(live));
    assert!(!r.is_empty());
    assert_eq!(r.len(), l.len(), "number of finals");
    assert_eq!(r, l, "finals (value, outcome) by attainment id");

    let monotone = monotone_goals(goals_toml);
    let crossings = |v: &[Attainment]| -> BTreeSet<String> {
        v.iter()
            .filter(|a| a.kind != "final" && monotone.contains(&a.goal_id))
            .map(|a| a.attainment_id.clone())
            .collect()
    };
    let (rc, lc) = (crossings(replayed), crossings(live));
    assert!(!rc.is_empty());
    assert_eq!(rc, lc, "milestones and breaches of monotone goals");
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
    let goals = examples_goals();
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
