//! `goalpost run` against the SASL_PLAINTEXT listener (mechanism PLAIN) of the local broker
//! (`deploy/kafka-local.sh`; `deploy/kafka-local.sh env` prints the variables this test reads:
//! `KAFKA_SASL_BOOTSTRAP`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`).
//!
//! With the right credentials the results equal replay's; with a wrong password or mechanism the
//! run stops within seconds with an error naming the authentication failure; and no password ever
//! appears on stderr, even at `RUST_LOG=debug` with librdkafka's own security debugging on.

#[allow(dead_code)]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::dirs::*;
use support::events::*;
use support::goals::*;
use support::kafka::*;
use support::replay::*;

/// The SASL listener and its one user.
struct Sasl {
    bootstrap: String,
    username: String,
    password: String,
}

fn sasl() -> Sasl {
    let var = |name: &str| {
        std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
            panic!(
                "{name} is not set: the SASL tests need the local broker's SASL_PLAINTEXT listener. \
                 Run them with scripts/test, or export the variables printed by \
                 `deploy/kafka-local.sh env` (KAFKA_SASL_BOOTSTRAP, KAFKA_SASL_USERNAME, \
                 KAFKA_SASL_PASSWORD)"
            )
        })
    };
    Sasl {
        bootstrap: var("KAFKA_SASL_BOOTSTRAP"),
        username: var("KAFKA_SASL_USERNAME"),
        password: var("KAFKA_SASL_PASSWORD"),
    }
}

/// A service config for input `topic` (see `Kafka::write_config`) on the SASL listener, with
/// these SASL settings and any `extra` properties.
fn sasl_config(
    s: &Sasl,
    topic: &str,
    goals: &str,
    mechanism: &str,
    password: &str,
    extra: &str,
) -> PathBuf {
    let path = Kafka {
        bootstrap: s.bootstrap.clone(),
    }
    .write_config(topic, goals, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        r#"
[kafka.properties]
"security.protocol" = "SASL_PLAINTEXT"
"sasl.mechanism" = "{mechanism}"
"sasl.username" = "{}"
"sasl.password" = "{password}"
{extra}
"#,
        s.username
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// `goalpost run` with `args` at log level `rust_log`, killed (and failed) if it outlives `limit`.
/// Returns its output and how long it ran.
fn run_within(config: &Path, args: &[&str], rust_log: &str, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = goalpost_cmd(config, "i0", args)
        // The test process's KAFKA_BOOTSTRAP names the PLAINTEXT listener and would override the
        // config's SASL listener.
        .env_remove("KAFKA_BOOTSTRAP")
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start goalpost");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).unwrap();
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "goalpost run still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let output = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (output, elapsed)
}

fn assert_no_password(stderr: &str, passwords: &[&str]) {
    for pw in passwords {
        assert!(
            !stderr.contains(pw),
            "a password ({} characters) appears on stderr:\n{stderr}",
            pw.len()
        );
    }
}

/// With the right credentials, every client (admin, transactional producer, consumer) works over
/// SASL: `run --until-caught-up --close-all-at-end` gives replay's results, and stderr at
/// `RUST_LOG=debug`, with librdkafka's `security` and `conf` debugging on, shows the SASL login but
/// never the password.
#[test]
fn run_over_sasl_plain_equals_replay_and_never_logs_the_password() {
    let s = sasl();
    // Topics are created, produced and read through the PLAINTEXT listener.
    let k = Kafka::connect();
    let name = unique("sasl-ok");
    let events = generated_events(37, 3_000);
    k.create_topic(&name, 3);
    k.produce_json(&name, &events);

    let goals = example_goals();
    let cfg = sasl_config(
        &s,
        &name,
        &goals,
        "PLAIN",
        &s.password,
        r#""debug" = "security,conf""#,
    );
    let (out, elapsed) = run_within(
        &cfg,
        &["--until-caught-up", "--close-all-at-end"],
        "debug",
        Duration::from_secs(240),
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("run over SASL took {elapsed:?}");
    assert!(
        out.status.success(),
        "goalpost run over SASL failed after {elapsed:?}:\n{log}"
    );
    assert_no_password(&log, &[&s.password]);
    // The run really logged in over SASL, and at debug level (so the check above saw everything).
    assert!(log.contains("sasl_plaintext://"), "{log}");
    assert!(log.contains("SASL"), "{log}");
    assert!(log.contains("DEBUG"), "{log}");
    assert!(log.contains(&format!("read {}", events.len())), "{log}");

    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(&goals, &replay(&goals, &events), &live);
}

/// A wrong password ends the run within seconds (librdkafka alone would retry until the 30 s
/// request timeouts), exit 1, with an error that names the authentication failure, the listener,
/// the mechanism and the user, but neither the wrong password nor the right one.
#[test]
fn a_wrong_password_fails_fast_with_a_clear_error_and_no_secret() {
    let s = sasl();
    let k = Kafka::connect();
    let name = unique("sasl-badpw");
    // The input topic exists: the credentials are the only problem.
    k.create_topic(&name, 1);
    let wrong = format!("not-the-password-{}", std::process::id());
    let cfg = sasl_config(&s, &name, &example_goals(), "PLAIN", &wrong, "");
    let (out, elapsed) = run_within(&cfg, &[], "debug", Duration::from_secs(60));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "wrong password: exit {:?} after {elapsed:?}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        elapsed < Duration::from_secs(15),
        "failing took {elapsed:?}, not well under the 30 s Kafka timeouts:\n{log}"
    );
    for expected in [
        format!("Kafka authentication failed at {}", s.bootstrap),
        "security.protocol=SASL_PLAINTEXT".to_string(),
        "sasl.mechanism=PLAIN".to_string(),
        format!("sasl.username={}", s.username),
        // The broker's reason, as librdkafka reports it.
        "SASL authentication error".to_string(),
        "check kafka.properties".to_string(),
    ] {
        assert!(log.contains(&expected), "missing {expected:?} in:\n{log}");
    }
    assert_no_password(&log, &[&wrong, &s.password]);
    // Nothing was created with credentials that do not work.
    let out_topic = format!("{name}-out");
    assert!(
        !topic_exists(&k, &out_topic),
        "{out_topic} was created despite the refused login"
    );
}

/// A mechanism the listener does not offer fails just as fast, naming the broker's mechanisms.
#[test]
fn an_unsupported_mechanism_fails_fast() {
    let s = sasl();
    let k = Kafka::connect();
    let name = unique("sasl-mech");
    k.create_topic(&name, 1);
    let cfg = sasl_config(
        &s,
        &name,
        &example_goals(),
        "SCRAM-SHA-256",
        &s.password,
        "",
    );
    let (out, elapsed) = run_within(&cfg, &[], "info", Duration::from_secs(60));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "unsupported mechanism: exit {:?} after {elapsed:?}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        elapsed < Duration::from_secs(15),
        "took {elapsed:?}:\n{log}"
    );
    assert!(log.contains("Kafka authentication failed"), "{log}");
    assert!(log.contains("sasl.mechanism=SCRAM-SHA-256"), "{log}");
    assert!(log.contains("PLAIN"), "the broker's mechanisms: {log}");
    assert_no_password(&log, &[&s.password]);
}

fn topic_exists(k: &Kafka, topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &k.bootstrap)
        .create()
        .unwrap();
    let md = c.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    md.topics().iter().any(|t| t.name() == topic)
}
