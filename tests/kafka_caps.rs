//! Caps on state on Kafka: overflow and dedupe evictions are counted as replay counts them, and a
//! restart in the middle (state restored from the changelog) changes nothing.

#[allow(dead_code)]
mod support;

use support::bin::stderr;
use support::dirs::unique;
use support::events::*;
use support::kafka::*;
use support::replay::*;

const GOALS: &str = r#"
[[goals]]
id = "rep-daily"
metric = "count"
group_by = ["rep_id"]
window = { calendar = "day" }
target = 3
max_groups = 4
grace = "30d"

[[goals]]
id = "accounts-daily"
metric = "count_distinct"
field = "account_id"
window = { calendar = "day" }
target = 5
max_distinct = 3
grace = "30d"
"#;

const MAX_IDS: &str = "50";

/// The number after each `key ` in `text`, summed.
fn sum_of(text: &str, key: &str) -> u64 {
    text.match_indices(&format!("{key} "))
        .filter_map(|(i, _)| {
            text[i + key.len() + 1..]
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// `replay --dedupe-max-ids MAX_IDS` of the events: attainments and summary.
fn replay_capped(events: &[goalpost::model::SalesEvent]) -> (Vec<Attainment>, String) {
    let out = replay_output(GOALS, &json_lines(events), &["--dedupe-max-ids", MAX_IDS]);
    (attainments(&out), stderr(&out))
}

/// The exit line of `goalpost run` (the last line of its stderr).
fn exit_line(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "goalpost run failed:\n{stderr}");
    stderr.lines().last().unwrap_or_default().to_string()
}

#[test]
fn overflow_and_dedupe_evictions_match_replay_across_a_restart() {
    let k = Kafka::connect();
    let name = unique("caps");
    // One input partition, so one owner: the order contributions reach it is the log's, as in
    // replay, and so are the groups and values that find room. A grace longer than the
    // events' span: nothing is late, not even a redelivery (on Kafka the owner's watermark can
    // lag replay's, so lateness could differ).
    k.create_topic(&name, 1);
    let mut events = generated_events(5, 1_000);
    // Redeliveries 5, 80 and 300 events later: the first still remembered among 50 ids, the
    // others forgotten by then.
    for (i, delay) in [(100, 5), (200, 80), (300, 300), (500, 5), (600, 80)] {
        let copy = events[i].clone();
        events.insert(i + 1 + delay, copy);
    }
    let (replayed, summary) = replay_capped(&events);
    let expected = [
        ("duplicates", sum_of(&summary, "duplicates")),
        ("overflow", sum_of(&summary, "overflow")),
        ("evicted", sum_of(&summary, "evicted")),
    ];
    for (key, n) in expected {
        assert!(n > 0, "{key} in {summary}");
    }

    let cfg = k.write_config(&name, GOALS, &format!("dedupe_max_ids = {MAX_IDS}"));
    let (first, second) = events.split_at(events.len() / 2);
    k.produce_json(&name, first);
    let first_run = exit_line(&run_goalpost(&cfg, &["--until-caught-up"]));
    // The second run starts from the changelog: windows, groups and remembered ids.
    k.produce_json(&name, second);
    let second_run = exit_line(&run_goalpost(
        &cfg,
        &["--until-caught-up", "--close-all-at-end"],
    ));
    for (key, n) in expected {
        assert_eq!(
            sum_of(&first_run, key) + sum_of(&second_run, key),
            n,
            "{key}: replay {summary}\nrun 1: {first_run}\nrun 2: {second_run}"
        );
    }
    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(GOALS, &replayed, &live);
}
