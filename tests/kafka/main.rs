//! `goalpost run` against a real Apache Kafka broker (started by `scripts/test`, or any cluster
//! named by `KAFKA_BOOTSTRAP`), by subject: results equal replay's, recovery from kills and
//! fencing, starting and finishing, record size limits, bad input.

mod bad_input;
mod equals_replay;
mod lifecycle;
mod limits;
mod lookahead;
mod progress;
mod recovery;
mod roster_topic;
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

use support::kafka::spawn_with_log;

/// Appends `[kafka.properties] message.max.bytes = max` to the config at `cfg`.
fn set_message_max_bytes(cfg: &std::path::Path, max: usize) {
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text.push_str(&format!(
        "[kafka.properties]\n\"message.max.bytes\" = \"{max}\"\n"
    ));
    std::fs::write(cfg, text).unwrap();
}

/// Runs `goalpost run` with `args`, which must end by itself within `limit`: returns whether it
/// succeeded and its log; a run still going at the limit is killed and fails the test.
fn run_within(cfg: &std::path::Path, args: &[&str], limit: std::time::Duration) -> (bool, String) {
    let started = std::time::Instant::now();
    let (mut child, log) = spawn_with_log(cfg, "i0", args);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            let lines: Vec<String> = log.try_iter().collect();
            panic!(
                "goalpost run {args:?} still running after {limit:?}; last lines:\n{}",
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let lines: Vec<String> = log.iter().collect();
    (status.success(), lines.join("\n"))
}

/// The header `name` of a dead letter, as text.
fn header(headers: &[(String, Vec<u8>)], name: &str) -> String {
    let value = headers
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("header {name}"));
    String::from_utf8(value.1.clone()).unwrap()
}
