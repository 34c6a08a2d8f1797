//! `goalpost replay` on its standard streams: reading stdin, writing into a closed pipe.

use crate::support::bin::{goalpost, run, stderr};
use crate::support::goals::EXAMPLE_GOALS;

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
