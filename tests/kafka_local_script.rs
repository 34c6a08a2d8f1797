//! `deploy/kafka-local.sh`, the test broker itself: `fresh` starts from empty storage (so topics
//! never pile up across test runs), every start reports the partitions on disk, and the broker
//! gets a raised open-file limit.
//!
//! Runs a second broker of its own, on free ports and in a home of its own (the jar cache is
//! shared with the usual home when it exists), and never touches the broker the other tests use.

#[allow(dead_code)]
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::dirs::{tmp_dir, unique};
use support::kafka::Kafka;

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The jar cache of the usual home (`GOALPOST_KAFKA_HOME`, else the XDG cache), if installed.
fn usual_dist() -> Option<PathBuf> {
    let home = match std::env::var_os("GOALPOST_KAFKA_HOME") {
        Some(h) => PathBuf::from(h),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(c) => PathBuf::from(c).join("goalpost/kafka"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/goalpost/kafka"),
        },
    };
    let dist = home.join("dist");
    dist.is_dir().then_some(dist)
}

/// The script with a home and ports of its own; stopped when dropped.
struct Script {
    home: PathBuf,
    port: u16,
    controller: u16,
}

impl Script {
    fn new() -> Script {
        let home = tmp_dir();
        if let Some(dist) = usual_dist() {
            std::os::unix::fs::symlink(dist, home.join("dist")).unwrap();
        }
        Script {
            home,
            port: free_port(),
            controller: free_port(),
        }
    }

    /// `deploy/kafka-local.sh CMD` with this home and these ports.
    fn command(&self, cmd: &str) -> Command {
        let mut c =
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kafka-local.sh"));
        c.arg(cmd)
            .env("GOALPOST_KAFKA_HOME", &self.home)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller.to_string())
            .env("KAFKA_SASL_PORT", "0")
            .env("KAFKA_HEAP", "-Xms128m -Xmx512m");
        c
    }

    /// Runs `deploy/kafka-local.sh CMD`, asserts success, returns its stderr.
    fn run(&self, cmd: &str) -> String {
        let out = self.command(cmd).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "kafka-local.sh {cmd} failed:\n{err}");
        err
    }

    fn kafka(&self) -> Kafka {
        Kafka {
            bootstrap: format!("127.0.0.1:{}", self.port),
        }
    }

    fn pid(&self) -> u32 {
        let out = self.command("pid").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.run("reset");
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The "N partitions on disk; open-file limit M" line of a start: (N, M).
fn start_report(stderr: &str) -> (usize, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("partitions on disk"))
        .unwrap_or_else(|| panic!("no partition report in:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = words[1].parse().unwrap();
    let limit = words.last().unwrap().parse().unwrap();
    (n, limit)
}

/// The soft "Max open files" limit of a live process.
fn open_file_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Soft open-file limit of this process.
fn own_open_file_limit() -> u64 {
    open_file_limit(std::process::id())
}

#[test]
fn fresh_starts_from_empty_storage_and_every_start_reports_partitions_and_file_limit() {
    let script = Script::new();
    let (partitions, limit) = start_report(&script.run("start"));
    assert_eq!(partitions, 0, "a new broker has no partitions");
    assert!(
        limit >= own_open_file_limit(),
        "the broker's open-file limit {limit} is below the caller's {}",
        own_open_file_limit()
    );
    assert_eq!(
        open_file_limit(script.pid()),
        limit,
        "the broker runs with the reported limit"
    );

    let topic = unique("piles");
    script.kafka().create_topic(&topic, 5);
    script.run("stop");
    let (partitions, _) = start_report(&script.run("start"));
    assert!(
        partitions >= 5,
        "a restart keeps the data: {partitions} partitions reported"
    );

    let stderr = script.run("fresh");
    let (partitions, _) = start_report(&stderr);
    assert_eq!(partitions, 0, "fresh starts from empty storage:\n{stderr}");
    assert!(
        !script.kafka().topic_exists(&topic),
        "topic {topic} survived `fresh`"
    );
}
