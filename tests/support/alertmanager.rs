//! A real Prometheus Alertmanager for tests: installed and started by `scripts/alertmanager` on
//! loopback, with a webhook receiver in the test process whose notifications arrive on a channel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::dirs::TempDir;

/// The script that installs, starts and stops Alertmanager.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/alertmanager");
/// Alertmanager's `resolve_timeout` in these tests: an alert not sent again within it resolves.
pub const RESOLVE_TIMEOUT_SECS: u64 = 4;
/// How long a notification may take to arrive.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Installs Alertmanager once per test run (a clear failure when Go is missing).
pub fn install() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        let out = Command::new(SCRIPT).arg("install").output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = done {
        panic!("cannot install Alertmanager with scripts/alertmanager (Go is needed): {e}");
    }
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Alertmanager, stopped when dropped.
pub struct Alertmanager {
    /// Its base URL.
    pub url: String,
    data: PathBuf,
    _dir: TempDir,
}

impl Alertmanager {
    /// Starts one whose route groups by `goal` and whose receiver posts to `hook`, with
    /// `resolve_timeout` [`RESOLVE_TIMEOUT_SECS`].
    pub fn start(hook: &str) -> Alertmanager {
        Self::start_with(hook, RESOLVE_TIMEOUT_SECS)
    }

    /// The same with `resolve_timeout` `resolve_secs` seconds.
    pub fn start_with(hook: &str, resolve_secs: u64) -> Alertmanager {
        install();
        let dir = TempDir::new();
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, config_yaml(hook, resolve_secs)).unwrap();
        let port = free_port();
        let data = dir.join("data");
        let status = Command::new(SCRIPT)
            .args(["start", path(&config), &port.to_string(), path(&data)])
            .status()
            .unwrap();
        assert!(status.success(), "scripts/alertmanager start failed");
        Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            data,
            _dir: dir,
        }
    }

    /// The alerts it holds as active.
    pub fn active_alerts(&self) -> Vec<Value> {
        let url = format!(
            "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
            self.url
        );
        let text = ureq::get(&url).call().unwrap().into_string().unwrap();
        let alerts: Value = serde_json::from_str(&text).unwrap();
        alerts.as_array().unwrap().clone()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .args(["stop", path(&self.data)])
            .status();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Its config: `resolve_timeout` `resolve_secs`, a route grouping by `goal` with
/// `group_wait` and `group_interval` 1s, and a webhook receiver posting to `hook`.
fn config_yaml(hook: &str, resolve_secs: u64) -> String {
    format!(
        "global:\n  resolve_timeout: {resolve_secs}s\n\
         route:\n  receiver: hook\n  group_by: [goal]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook}\n        send_resolved: true\n"
    )
}

/// A webhook receiver: every notification body Alertmanager posts arrives on the channel.
pub fn receiver() -> (String, Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, tx));
        }
    });
    (url, rx)
}

/// Answers the HTTP/1.1 requests of one connection with 200, sending each body on.
fn serve(stream: TcpStream, tx: mpsc::Sender<Value>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let _ = tx.send(serde_json::from_slice(&body).unwrap());
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(ok.as_bytes()).is_err() {
            return;
        }
    }
}

/// The next notification, waiting at most [`PATIENCE`].
pub fn next(rx: &Receiver<Value>) -> Value {
    rx.recv_timeout(PATIENCE)
        .expect("Alertmanager sent no notification")
}

/// (value of `label`, alert status) of a notification's alerts, sorted.
pub fn statuses(label: &str, notification: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = notification["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let value = a["labels"][label].as_str().unwrap().to_string();
            (value, a["status"].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

/// An alert's `startsAt`.
pub fn starts_at(alert: &Value) -> goalpost::model::Timestamp {
    goalpost::model::Timestamp::parse_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap()
}

/// A (label value, status) pair, as [`statuses`] lists them.
pub fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}
