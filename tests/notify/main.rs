//! `goalpost notify` against a real Apache Kafka broker (any cluster named by `KAFKA_BOOTSTRAP`)
//! and a webhook receiver written here: deliveries through failures, dead letters, kill -9; and
//! through a real Prometheus Alertmanager (`alerts`).

mod alerts;
mod server;
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use support::bin::goalpost;
use support::dirs::tmp_dir;
use support::kafka::Kafka;

/// The HMAC key the tests' webhooks sign with.
pub const SECRET: &str = "whsec_notify_test";

/// Writes a config whose attainment topic is `topic`, with `webhook` (TOML lines of one
/// `[[notify.webhooks]]` entry).
pub fn write_config(k: &Kafka, topic: &str, webhook: &str) -> PathBuf {
    let dir = tmp_dir();
    let cfg = format!(
        r#"
goals = "goals.toml"
[kafka]
bootstrap_servers = "{}"
[app]
application_id = "{topic}-app"
[input]
topics = ["{topic}-in"]
[output]
topic = "{topic}"
[notify]
listen = "127.0.0.1:0"
[[notify.webhooks]]
{webhook}
"#,
        k.bootstrap
    );
    let path = dir.join("goalpost.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// Starts `goalpost notify` with its log in `log`.
pub fn spawn_notify(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(goalpost().get_program())
        .args(["notify", "--config"])
        .arg(config)
        .env("RUST_LOG", "info,goalpost=debug")
        .env("NOTIFY_TEST_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start goalpost notify")
}

/// The text of `/metrics` of the notify process whose log is `log` (its listen address logged).
pub fn get_metrics(log: &Path) -> String {
    use std::io::{Read, Write};
    let text = std::fs::read_to_string(log).unwrap();
    let addr = text
        .lines()
        .rev()
        .find(|l| l.contains("HTTP server listening"))
        .and_then(|l| l.split("addr=").nth(1))
        .map(|a| a.split_whitespace().next().unwrap().to_string())
        .expect("the listen address in the log");
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}
