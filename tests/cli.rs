//! The command line, end to end: check, generate, replay (JSON and protobuf), dead letters.

use std::path::PathBuf;

#[allow(dead_code)]
mod support;

use support::bin::{goalpost, run, stderr};
use support::dirs::tmp_dir;
use support::goals::EXAMPLE_GOALS;

/// `goalpost replay` with the example goals, its stdin, stdout and stderr piped.
fn spawn_replay() -> std::process::Child {
    use std::process::Stdio;
    goalpost()
        .args(["replay", "--goals", EXAMPLE_GOALS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn check_prints_the_goals() {
    let o = run(goalpost().args(["check", "--goals", EXAMPLE_GOALS]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    for id in [
        "region-monthly-revenue",
        "team-win-rate",
        "avg-won-deal-30d",
    ] {
        assert!(text.contains(id), "{text}");
    }
    assert!(
        text.contains("calendar quarter (Asia/Kolkata, fiscal year from April)"),
        "{text}"
    );
    assert!(text.contains("8 goal(s) OK"), "{text}");
}

#[test]
fn check_reports_every_problem_and_exits_1() {
    let path = tmp_dir().join("bad-goals.toml");
    std::fs::write(
        &path,
        r#"
[[goals]]
id = "a"
metric = "sum"
window = { calendar = "month", timezone = "Mars/Olympus" }
target = 10
colour = "red"

[[goals]]
id = "a"
metric = "count"
window = { tumbling = "7days" }
target = 5
direction = "at_most"
milestones = [0.5]
"#,
    )
    .unwrap();
    let o = run(goalpost().args(["check", "--goals", path.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for expected in [
        "goal `a`, key `field`: missing",
        "Mars/Olympus",
        "key `colour`: unknown key",
        "duplicate goal id `a`",
        "`7days` is not a duration",
        "key `milestones`: not allowed on an at_most goal",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
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
fn replay_reads_stdin_and_fails_clearly_without_goals() {
    let o = run(goalpost().args(["replay", "--goals", "/nonexistent/goals.toml"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/goals.toml"),
        "{}",
        stderr(&o)
    );

    use std::io::Write;
    let mut child = spawn_replay();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"event_id":"e","event_type":"lead_created","occurred_at":"2026-01-05T10:00:00Z","attributes":{"segment":"enterprise"}}"#)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains(r#""goal_id":"enterprise-leads-per-day","kind":"final""#),
        "{out}"
    );
    assert!(out.contains(r#""outcome":"missed""#), "{out}");
}

/// A reader that stops early (`goalpost replay ... | head -1`) ends the replay quietly with
/// status 0, as a broken pipe should.
#[test]
fn replay_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader, Write};
    let events = run(goalpost().args(["generate", "--seed", "5", "--events", "50000"]));
    assert!(events.status.success(), "{}", stderr(&events));
    let mut child = spawn_replay();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // Fails once goalpost has exited; that is expected here.
        let _ = stdin.write_all(&events.stdout);
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"goal_id\""), "{first}");
    // stdout is closed here: goalpost's next write fails with a broken pipe.
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("error"), "{}", stderr(&o));
}

/// An error names its cause once: `{e:#}` prints the chain of sources, so no error both
/// includes its source's text and returns it as the source.
#[test]
fn errors_name_their_cause_once() {
    let missing = tmp_dir().join("missing-config.toml");
    let o = run(goalpost().args(["run", "--config", missing.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("cannot read config"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // The HTTP port is taken: the bind error, then its cause, once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = tmp_dir().join("port-taken.toml");
    std::fs::write(
        &config,
        format!(
            r#"goals = "{EXAMPLE_GOALS}"
[kafka]
bootstrap_servers = "127.0.0.1:1"
[app]
application_id = "port-taken"
[input]
topics = ["in"]
[output]
topic = "out"
[http]
listen = "{}"
"#,
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let o = run(goalpost().args(["run", "--config", config.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("cannot listen on"), "{err}");
    assert_eq!(err.matches("ddress already in use").count(), 1, "{err}");
}

/// `check --config` refuses what `run` would refuse before connecting: an empty bootstrap list,
/// progress gauges of unknown goals, an HTTP token that cannot be read, a missing goal file.
#[test]
fn check_config_refuses_what_run_would() {
    let check = |name: &str, body: &str| {
        let path = tmp_dir().join(name);
        std::fs::write(&path, body).unwrap();
        let o = run(goalpost()
            .args(["check", "--config", path.to_str().unwrap()])
            .env_remove("KAFKA_BOOTSTRAP")
            .env_remove("GOALPOST_TEST_NO_SUCH_TOKEN"));
        (
            o.status.code(),
            stderr(&o),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let base = |bootstrap: &str, goals: &str, extra: &str| {
        format!(
            "goals = \"{goals}\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[input]\ntopics = [\"in\"]\n{extra}"
        )
    };
    let (code, err, _) = check("empty-bootstrap.toml", &base("", EXAMPLE_GOALS, ""));
    assert_eq!(code, Some(1));
    assert!(err.contains("kafka.bootstrap_servers is empty"), "{err}");

    let (code, err, _) = check(
        "gauges.toml",
        &base(
            "b:9092",
            EXAMPLE_GOALS,
            "[metrics]\nprogress_gauges = [\"team-win-rate\", \"no-such-goal\"]\n",
        ),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("progress_gauges names `no-such-goal`"),
        "{err}"
    );

    let (code, err, _) = check(
        "token.toml",
        &base(
            "b:9092",
            EXAMPLE_GOALS,
            "[http]\ntoken_env = \"GOALPOST_TEST_NO_SUCH_TOKEN\"\n",
        ),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("GOALPOST_TEST_NO_SUCH_TOKEN` is not set"),
        "{err}"
    );

    // A missing goal file fails before anything is reported as OK.
    let (code, err, out) = check(
        "no-goals.toml",
        &base("b:9092", "/nonexistent/goals.toml", ""),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("/nonexistent/goals.toml"), "{err}");
    assert!(!out.contains("OK"), "{out}");

    let (code, err, out) = check("fine.toml", &base("b:9092", EXAMPLE_GOALS, ""));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("OK"), "{out}");
}

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
