//! Events from the far future: rejected, measured against the wall clock or the stream, or let in.

use std::path::PathBuf;

use crate::support::bin::{goalpost, run, stderr};
use crate::support::dirs::tmp_dir;
use crate::support::goals::EXAMPLE_GOALS;

/// A replay of `events` with the example goals and `flags`: its attainment events, its summary
/// (the stderr lines from `read` on) and its dead letters.
fn replay_file(events: &std::path::Path, flags: &[&str]) -> (Vec<u8>, String, String) {
    let dl = events.with_extension("dead.jsonl");
    let o = run(goalpost()
        .args(["replay", "--goals", EXAMPLE_GOALS, "--events"])
        .arg(events)
        .arg("--dead-letter")
        .arg(&dl)
        .args(flags));
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let summary = err[err.find("read ").expect("a summary")..].to_string();
    (o.stdout, summary, std::fs::read_to_string(&dl).unwrap())
}

/// Generated events (which end in the past) with `extra` inserted as line 10,001.
fn generated_with(name: &str, extra: &str) -> (PathBuf, PathBuf) {
    let g = run(goalpost().args(["generate", "--seed", "17", "--events", "20000"]));
    assert!(g.status.success(), "{}", stderr(&g));
    let clean = tmp_dir().join(format!("{name}-clean.jsonl"));
    std::fs::write(&clean, &g.stdout).unwrap();
    let text = String::from_utf8(g.stdout).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(10_000, extra);
    let poisoned = tmp_dir().join(format!("{name}-poisoned.jsonl"));
    std::fs::write(&poisoned, lines.join("\n") + "\n").unwrap();
    (clean, poisoned)
}

/// The summary of a clean replay as it reads with one more record, rejected as `future_timestamp`.
fn with_one_future_rejection(clean: &str) -> String {
    let (first, rest) = clean.split_once('\n').unwrap();
    assert!(
        first.starts_with("read 20000  ") && first.ends_with("  rejected 0"),
        "{first}"
    );
    let first = first
        .replace("read 20000", "read 20001")
        .replace("rejected 0", "rejected 1");
    format!("{first}\n  rejected future_timestamp: 1\n{rest}")
}

/// One event in the year 2199 would become stream time, close every window at once and make
/// every later event late. It is rejected instead: the attainments are byte for byte those of the
/// input without it, and the summary counts one more rejection.
#[test]
fn a_far_future_event_is_rejected_and_changes_nothing_else() {
    let far = r#"{"event_id":"evt-far","event_type":"deal_won","occurred_at":"2199-01-01T00:00:00Z","region":"East","rep_id":"rep-01","team_id":"team-east-1","amount":"100"}"#;
    let (clean, poisoned) = generated_with("far", far);
    let (out, summary, dead) = replay_file(&clean, &[]);
    assert!(dead.is_empty(), "{dead}");
    let (out2, summary2, dead2) = replay_file(&poisoned, &[]);
    assert!(out == out2, "the far-future event changed the attainments");
    assert_eq!(summary2, with_one_future_rejection(&summary));
    let dead: serde_json::Value = serde_json::from_str(dead2.trim_end()).unwrap();
    assert_eq!(dead["reason"], "future_timestamp");
    assert_eq!(dead["line"], 10_001);
    assert_eq!(dead["raw"], far);
    let detail = dead["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "occurred_at `2199-01-01T00:00:00Z` is more than max_future = 1h ahead of the wall clock ("
        ),
        "{detail}"
    );
}

/// `--max-future-from stream` measures against the latest accepted event, which catches a
/// record years ahead of a historical file though still in the past; `--max-future off`
/// accepts anything, and the record then does the damage the bound prevents.
#[test]
fn max_future_from_stream_and_off() {
    // Generated events end in 2000; this one is ten years ahead of them.
    let ahead = r#"{"event_id":"evt-ahead","event_type":"lead_created","occurred_at":"2010-01-01T00:00:00Z"}"#;
    let (clean, poisoned) = generated_with("ahead", ahead);
    // Longer than the quiet weekends of generated events.
    let stream = ["--max-future", "7d", "--max-future-from", "stream"];
    let (out, summary, _) = replay_file(&clean, &stream);
    let (out2, summary2, dead2) = replay_file(&poisoned, &stream);
    assert!(
        out == out2,
        "the event ahead of the stream changed the attainments"
    );
    assert_eq!(summary2, with_one_future_rejection(&summary));
    assert!(
        dead2.contains("is more than max_future = 1w ahead of stream time (2000-"),
        "{dead2}"
    );

    let (wall, _, _) = replay_file(&poisoned, &[]);
    assert!(
        wall != out,
        "against the wall clock, 2010 is not in the future"
    );
    let (off, off_summary, off_dead) = replay_file(&poisoned, &["--max-future", "off"]);
    assert!(off != out && off_dead.is_empty());
    assert!(
        off_summary.contains("rejected 0") && off_summary.contains("late "),
        "{off_summary}"
    );

    // With `stream`, the bound must be chosen for the data: no default.
    let o = run(goalpost().args([
        "replay",
        "--goals",
        EXAMPLE_GOALS,
        "--max-future-from",
        "stream",
    ]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--max-future <DURATION|off>"),
        "{}",
        stderr(&o)
    );
    let o = run(goalpost().args(["replay", "--goals", EXAMPLE_GOALS, "--max-future", "soon"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`soon` is not a max_future"),
        "{}",
        stderr(&o)
    );
}
