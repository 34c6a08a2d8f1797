//! The HTTP server against fake workers and fake peers on loopback: what peers are sent and
//! what of their answers is kept, the security headers, the Host check and the limits.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;

use super::guard::Limits;
use super::http::{self, ServeOptions, Token};
use super::peers::{Peer, PeerTrust, Peers};
use super::Telemetry;
use crate::goals::GoalSet;
use crate::serve::hub::{Answer, Hub, Num, WindowView};

mod guard;
mod look_ahead;
mod peers;
mod queries;

const GOALS: &str = r#"
[[goals]]
id = "wins"
metric = "count"
filter = { event_type = "deal_won" }
group_by = ["region"]
window = { tumbling = "1d" }
target = 4
"#;

const TOKEN: &str = "user-token-1234";

const PEER_SECRET: &str = "peer-secret-5678";

fn view(region: &str, value: i64, instance: &str) -> WindowView {
    WindowView {
        goal_id: "wins".into(),
        group: [("region".to_string(), region.to_string())].into(),
        window_start: "2026-01-01T00:00:00Z".into(),
        window_end: "2026-01-02T00:00:00Z".into(),
        value: Some(Num(Decimal::from(value))),
        target: Num(Decimal::from(4)),
        direction: "at_least".into(),
        progress: Some(Num(Decimal::from(value) / Decimal::from(4))),
        milestones: Vec::new(),
        breached: false,
        time_left_seconds: Some(60),
        pace: None,
        status: None,
        status_tick: None,
        expected: None,
        projected: None,
        instance: instance.into(),
    }
}

/// How the fake worker answers window queries.
enum Worker {
    /// With these windows, honouring the query's order and limit.
    Windows(Vec<WindowView>),
    /// Never (queries wait); sends how many wait after each new one.
    Silent(Option<std::sync::mpsc::Sender<usize>>),
}

/// A server on a free loopback port; its worker answers as `worker` says.
fn server(mut opts: ServeOptions, worker: Worker) -> String {
    let goals = Arc::new(GoalSet::from_toml(GOALS).unwrap());
    let (hub, queries) = Hub::new(goals.clone(), "me".into(), Telemetry::new(&goals, &[]));
    hub.set_ready(true);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for q in queries {
            match &worker {
                Worker::Windows(all) => {
                    let mut windows = all.clone();
                    crate::serve::hub::sort_views(&mut windows, q.order);
                    windows.truncate(q.limit);
                    let total = all.len();
                    let (late, overflow) = (2, 3);
                    let _ = q.reply.send(Answer {
                        windows,
                        total,
                        late,
                        overflow,
                    });
                }
                Worker::Silent(waiting) => {
                    held.push(q);
                    if let Some(tx) = waiting {
                        let _ = tx.send(held.len());
                    }
                }
            }
        }
    });
    opts.listen = "127.0.0.1:0".parse().unwrap();
    let server = http::start(hub, opts).unwrap();
    format!("http://{}", server.addr)
}

/// A fake peer: answers every request with `body` after `delay` (unless the client hangs up
/// first), keeps the request heads, and counts the requests it holds at once.
struct FakePeer {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
    /// Requests held now, and the most ever held at once.
    open: Arc<(AtomicUsize, AtomicUsize)>,
}

fn fake_peer(body: String, delay: Duration) -> FakePeer {
    fake_peer_answering(vec![body], delay)
}

/// A fake peer whose n-th request gets `bodies[n]` (the last one from then on).
fn fake_peer_answering(bodies: Vec<String>, delay: Duration) -> FakePeer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let open = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let (seen, counts) = (heads.clone(), open.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (seen, bodies, counts) = (seen.clone(), bodies.clone(), counts.clone());
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let body = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(String::from_utf8_lossy(&head).into_owned());
                    bodies[(seen.len() - 1).min(bodies.len() - 1)].clone()
                };
                let now = counts.0.fetch_add(1, Ordering::SeqCst) + 1;
                counts.1.fetch_max(now, Ordering::SeqCst);
                if wait_unless_closed(&mut stream, delay) {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                counts.0.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    FakePeer { url, heads, open }
}

/// Waits `delay`; false as soon as the client closes the connection.
fn wait_unless_closed(stream: &mut std::net::TcpStream, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    while Instant::now() < until {
        match stream.read(&mut [0u8; 1]) {
            Ok(0) => return false,
            Err(e)
                if e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            _ => {}
        }
    }
    true
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<(String, String)>) {
    let mut req = ureq::get(url).timeout(Duration::from_secs(20));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let names = r.headers_names();
    let hs = names
        .iter()
        .map(|n| {
            (
                n.to_ascii_lowercase(),
                r.header(n).unwrap_or("").to_string(),
            )
        })
        .collect();
    (r.status(), r.into_string().unwrap_or_default(), hs)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn goal_body(windows: &[WindowView]) -> String {
    serde_json::json!({
        "goal": serde_json::to_value(crate::serve::hub::GoalView::of(
            &GoalSet::from_toml(GOALS).unwrap().goals[0]
        )).unwrap(),
        "windows": windows,
        "total": windows.len(),
        "instances": ["peer"],
        "unavailable": [],
    })
    .to_string()
}

fn with_peers(peers: Vec<Peer>, hosts: &[&str], credential: Option<&str>) -> Peers {
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let trust = PeerTrust::new(
        &hosts,
        "http://127.0.0.1:1",
        credential.and_then(Token::new),
    );
    Peers::fixed(peers, "me".into(), trust)
}

fn attainments_body(instance: &str, committed_at: &[&str]) -> String {
    let attainment: serde_json::Value = serde_json::from_str(
        r#"{"attainment_id":"a1","goal_id":"wins","kind":"milestone","group":{"region":"w"},
        "window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-02T00:00:00Z","value":2,
        "target":4,"progress":0.5,"milestone":0.5,"triggered_by":"e1",
        "event_time":"2026-01-01T01:00:00Z"}"#,
    )
    .unwrap();
    let items: Vec<serde_json::Value> = committed_at
        .iter()
        .enumerate()
        .map(|(i, at)| {
            serde_json::json!({ "seq": i + 1, "committed_at": at, "instance": instance,
                "attainment": attainment })
        })
        .collect();
    serde_json::json!({ "attainments": items, "unavailable": [] }).to_string()
}

fn view_from(region: &str, value: i64, instance: &str, day: u32) -> WindowView {
    WindowView {
        window_start: format!("2026-01-{day:02}T00:00:00Z"),
        window_end: format!("2026-01-{:02}T00:00:00Z", day + 20),
        ..view(region, value, instance)
    }
}

/// A fake peer that redirects every request to `location`.
fn fake_redirect(location: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            );
        }
    });
    url
}
