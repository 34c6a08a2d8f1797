//! `goalpost generate` and `goalpost replay`: determinism, dead letters, the summary's counts.

use std::path::PathBuf;

use crate::support::bin::{goalpost, run, stderr};
use crate::support::dirs::tmp_dir;
use crate::support::goals::EXAMPLE_GOALS;

fn summary_number(summary: &str, key: &str) -> u64 {
    let pos = summary
        .find(&format!("{key} "))
        .unwrap_or_else(|| panic!("{key} in {summary}"));
    summary[pos + key.len() + 1..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn generate_is_deterministic_per_seed() {
    let a = run(goalpost().args(["generate", "--seed", "3", "--events", "500"]));
    let b = run(goalpost().args(["generate", "--seed", "3", "--events", "500"]));
    let c = run(goalpost().args(["generate", "--seed", "4", "--events", "500"]));
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    assert_eq!(a.stdout.iter().filter(|b| **b == b'\n').count(), 500);
}

#[test]
fn replay_dead_letters_bad_records_and_goes_on() {
    let events = tmp_dir().join("mixed.jsonl");
    let good = |id: &str, t: &str| {
        format!(
            r#"{{"event_id":"{id}","event_type":"deal_won","occurred_at":"{t}","region":"East","amount":"100.10"}}"#
        )
    };
    let lines = [
        good("a", "2026-01-05T10:00:00Z"),
        "this is not json".to_string(),
        r#"{"event_type":"deal_won","occurred_at":"2026-01-05T10:00:00Z"}"#.to_string(),
        r#"{"event_id":"x","event_type":"deal_won","occurred_at":"2026-01-05 10:00"}"#.to_string(),
        r#"{"event_id":"y","event_type":"deal_won","occurred_at":"2026-01-05T10:00:00Z","amount":"ten"}"#.to_string(),
        good("a", "2026-01-05T10:00:00Z"),
        good("b", "2026-01-06T10:00:00Z"),
    ];
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let goals = tmp_dir().join("sum.toml");
    std::fs::write(
        &goals,
        r#"
[[goals]]
id = "daily"
metric = "sum"
field = "amount"
window = { calendar = "day" }
target = 100
"#,
    )
    .unwrap();
    let dl = tmp_dir().join("dead.jsonl");
    let o = run(goalpost().args([
        "replay",
        "--goals",
        goals.to_str().unwrap(),
        "--events",
        events.to_str().unwrap(),
        "--dead-letter",
        dl.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = stderr(&o);
    assert_eq!(summary_number(&summary, "read"), 7);
    assert_eq!(summary_number(&summary, "accepted"), 2);
    assert_eq!(summary_number(&summary, "duplicates"), 1);
    assert_eq!(summary_number(&summary, "rejected"), 4);
    assert!(summary.contains("rejected invalid_json: 1"), "{summary}");
    assert!(summary.contains("rejected missing_field: 1"), "{summary}");

    let dead: Vec<serde_json::Value> = std::fs::read_to_string(&dl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(String, u64)> = dead
        .iter()
        .map(|d| {
            (
                d["reason"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("invalid_json".to_string(), 2),
            ("missing_field".to_string(), 3),
            ("invalid_timestamp".to_string(), 4),
            ("invalid_amount".to_string(), 5),
        ]
    );
    assert_eq!(dead[0]["raw"], "this is not json");
    assert!(dead[2]["detail"]
        .as_str()
        .unwrap()
        .contains("2026-01-05 10:00"));

    let out = String::from_utf8(o.stdout).unwrap();
    let finals: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["kind"] == "final")
        .collect();
    assert_eq!(finals.len(), 2);
    assert_eq!(finals[0]["outcome"], "attained");
    assert!(
        out.contains(r#""value":100.1,"#),
        "exact decimal in output: {out}"
    );
}

#[test]
fn replay_is_byte_identical_and_proto_matches_json() {
    let json_events = tmp_dir().join("gen.jsonl");
    let proto_events = tmp_dir().join("gen.pb");
    let g = run(goalpost().args(["generate", "--seed", "11", "--events", "20000"]));
    std::fs::write(&json_events, &g.stdout).unwrap();
    let g = run(goalpost().args([
        "generate", "--seed", "11", "--events", "20000", "--format", "proto",
    ]));
    std::fs::write(&proto_events, &g.stdout).unwrap();

    let replay = |file: &PathBuf, format: &str| {
        let o = run(goalpost().args([
            "replay",
            "--goals",
            EXAMPLE_GOALS,
            "--events",
            file.to_str().unwrap(),
            "--format",
            format,
        ]));
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        (o.stdout, err)
    };
    let (a, summary) = replay(&json_events, "json");
    let (b, _) = replay(&json_events, "json");
    let (c, proto_summary) = replay(&proto_events, "proto");
    assert!(a.len() > 10_000, "some output expected");
    assert_eq!(a, b, "same input, same bytes");
    assert_eq!(
        a, c,
        "protobuf input gives the same attainment events as JSON"
    );
    assert_eq!(summary, proto_summary);
    let read = summary_number(&summary, "read");
    let accepted = summary_number(&summary, "accepted");
    let duplicates = summary_number(&summary, "duplicates");
    assert_eq!(read, 20_000);
    assert!(duplicates > 0, "the generator redelivers some events");
    assert_eq!(
        read,
        accepted + duplicates + summary_number(&summary, "rejected")
    );
}

/// `examples/goals-none.toml` is the throughput benchmark's "pipeline without goal work": it must
/// stay valid, and no generated event may match it (else the figure measures goal work after all).
#[test]
fn the_benchmarks_goal_file_without_work_matches_no_generated_event() {
    let events = tmp_dir().join("gen-none.jsonl");
    let g = run(goalpost().args(["generate", "--seed", "7", "--events", "20000"]));
    assert!(g.status.success(), "{}", stderr(&g));
    std::fs::write(&events, &g.stdout).unwrap();
    let goals = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/goals-none.toml");
    let o = run(goalpost().args([
        "replay",
        "--goals",
        goals,
        "--events",
        events.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = stderr(&o);
    assert_eq!(summary_number(&summary, "read"), 20_000);
    assert!(summary_number(&summary, "accepted") > 19_000, "{summary}");
    assert!(
        o.stdout.is_empty(),
        "no window, so no attainment: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn replay_counts_overflow_and_dedupe_evictions_in_the_summary() {
    let events = tmp_dir().join("capped.jsonl");
    let ev = |id: &str, region: &str, rep: &str, hour: u32| {
        format!(
            r#"{{"event_id":"{id}","event_type":"activity_logged","occurred_at":"2026-01-05T{hour:02}:00:00Z","region":"{region}","rep_id":"{rep}"}}"#
        )
    };
    let lines = [
        ev("a", "East", "r1", 1),
        ev("b", "West", "r2", 2),
        ev("c", "North", "r3", 3),
        ev("d", "East", "r4", 4),
        // A redelivery of `a`: a duplicate unless its id was evicted.
        ev("a", "East", "r1", 1),
    ];
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let goals = tmp_dir().join("capped.toml");
    std::fs::write(
        &goals,
        r#"
[[goals]]
id = "per-region"
metric = "count"
group_by = ["region"]
window = { calendar = "day" }
target = 10
max_groups = 2

[[goals]]
id = "reps"
metric = "count_distinct"
field = "rep_id"
window = { calendar = "day" }
target = 10
max_distinct = 3
"#,
    )
    .unwrap();
    let replay = |extra: &[&str]| {
        let o = run(goalpost()
            .args(["replay", "--goals", goals.to_str().unwrap()])
            .args(["--events", events.to_str().unwrap()])
            .args(extra));
        assert!(o.status.success(), "{}", stderr(&o));
        (stderr(&o), String::from_utf8(o.stdout).unwrap())
    };

    let (summary, out) = replay(&[]);
    assert!(
        summary.contains("goal per-region: late 0  skipped 0  overflow 1"),
        "{summary}"
    );
    assert!(
        summary.contains("goal reps: late 0  skipped 0  overflow 1"),
        "{summary}"
    );
    assert_eq!(summary_number(&summary, "duplicates"), 1);
    assert_eq!(summary_number(&summary, "evicted"), 0);
    assert!(!out.contains("North"), "{out}");
    assert!(out.contains(r#""goal_id":"reps","kind":"final""#) && out.contains(r#""value":3,"#));

    // Two ids remembered at most: `a` (the oldest) is forgotten by the time it comes again.
    let (summary, _) = replay(&["--dedupe-max-ids", "2"]);
    assert_eq!(summary_number(&summary, "duplicates"), 0);
    assert_eq!(summary_number(&summary, "evicted"), 3);
    let o = run(goalpost().args([
        "replay",
        "--goals",
        goals.to_str().unwrap(),
        "--dedupe-max-ids",
        "0",
    ]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--dedupe-max-ids"), "{}", stderr(&o));
}
