//! A broker restart in the middle of `goalpost run` is survived: the read_committed output equals
//! replay's, with no duplicate and no loss. Alone in its test binary, because it restarts the broker
//! every other Kafka test uses.

#[allow(dead_code)]
mod support;

use std::time::Duration;

use support::dirs::*;
use support::events::*;
use support::goals::*;
use support::kafka::*;
use support::replay::*;

#[test]
fn broker_restart_mid_run_is_survived() {
    let restart = std::env::var("GOALPOST_TEST_BROKER_RESTART").expect(
        "GOALPOST_TEST_BROKER_RESTART is not set: it names the command that restarts the broker \
         (scripts/test sets it to `deploy/kafka-local.sh restart`)",
    );
    let k = Kafka::connect();
    let name = unique("restart");
    let events = generated_events(41, 150_000);
    k.create_topic(&name, 6);
    k.produce_json(&name, &events);
    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    // Small fetches keep the run going for a few seconds, so that the restart lands mid-run
    // however fast processing gets.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[kafka.properties]\n\"max.partition.fetch.bytes\" = \"16384\"\n");
    std::fs::write(&cfg, text).unwrap();

    let (mut child, rx) = spawn_with_log(&cfg, "i0", &["--until-caught-up", "--close-all-at-end"]);
    // Restart once processing is under way (not during startup, which fails fast by design).
    let mut log = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("goalpost logs");
        log.push_str(&line);
        log.push('\n');
        if line.contains("router ready") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "goalpost did not start processing"
        );
    }
    // A second more: the topics goalpost created at startup have settled in every client's
    // metadata by then, so the restart hits the steady state this test is about.
    std::thread::sleep(Duration::from_secs(1));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&restart)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("restart the broker");
    assert!(status.success(), "broker restart command failed");
    let exit = child.wait().unwrap();
    // The receiver ends with the log.
    log.extend(rx.iter().map(|l| l + "\n"));
    if let Ok(path) = std::env::var("GOALPOST_TEST_LOGS") {
        std::fs::write(path, log.as_bytes()).unwrap();
    }
    assert!(
        exit.success(),
        "goalpost did not survive the restart:\n{log}"
    );

    // If the run finished before the restart, the test proved nothing.
    let finished_at = log
        .lines()
        .rev()
        .find(|l| l.contains("caught up"))
        .unwrap_or_default()
        .to_string();
    assert!(
        log.contains("Disconnected")
            || log.contains("aborting")
            || log.contains("Connection refused")
            || log.contains("connection"),
        "goalpost saw no sign of the restart (finished too early?): {finished_at}\n{log}"
    );

    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(&goals, &replay(&goals, &events), &live);
}
