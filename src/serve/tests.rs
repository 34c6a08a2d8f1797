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
use super::hub::{Answer, Hub, Num, WindowView};
use super::peers::{Peer, PeerTrust, Peers};
use super::Telemetry;
use crate::goals::GoalSet;

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
                    super::hub::sort_views(&mut windows, q.order);
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
        "goal": serde_json::to_value(super::hub::GoalView::of(
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

#[test]
fn a_peers_numbers_must_be_numbers_and_its_markup_never_reaches_the_answer() {
    // A peer answers a window whose progress is markup instead of a number.
    let evil = goal_body(&[view("west", 1, "peer")]).replace(
        "\"progress\":0.25",
        "\"progress\":\"\\\"><img src=x onerror=alert(1)>\"",
    );
    assert!(
        evil.contains("onerror"),
        "the fake answer carries the markup: {evil}"
    );
    let peer = fake_peer(evil, Duration::ZERO);
    let opts = ServeOptions {
        peers: Some(with_peers(
            vec![Peer {
                instance: "peer".into(),
                url: peer.url.clone(),
            }],
            &["127.0.0.1"],
            None,
        )),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(vec![view("east", 2, "me")]));
    let (status, body, _) = get(&format!("{base}/v1/goals/wins"), &[]);
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("onerror"),
        "peer markup passed through: {body}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["unavailable"], serde_json::json!(["peer"]));
    assert_eq!(v["windows"].as_array().unwrap().len(), 1);
    assert!(v["windows"][0]["progress"].is_number());
}

#[test]
fn peer_types_refuse_strings_unknown_kinds_and_bad_times() {
    let w = serde_json::to_string(&view("x", 1, "p")).unwrap();
    assert!(serde_json::from_str::<WindowView>(&w).is_ok());
    let evil = w.replace("\"value\":1", "\"value\":\"<b>1</b>\"");
    assert!(serde_json::from_str::<WindowView>(&evil).is_err(), "{evil}");
    let parsed: WindowView =
        serde_json::from_str(&w.replace("2026-01-01T00:00:00Z", "<x>")).unwrap();
    assert!(parsed.check("wins", "p").is_err());
    assert!(view("x", 1, "p").check("wins", "other").is_err());

    let a = r#"{"attainment_id":"a1","goal_id":"wins","kind":"milestone","group":{"region":"w"},
        "window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-02T00:00:00Z","value":2,
        "target":4,"progress":0.5,"milestone":0.5,"triggered_by":"e1","event_time":"2026-01-01T01:00:00Z"}"#;
    let ok: super::hub::RawJson = serde_json::from_str(a).unwrap();
    let back: serde_json::Value = serde_json::from_str(&ok.0).unwrap();
    assert_eq!(back["progress"], serde_json::json!(0.5));
    for bad in [
        a.replace("\"progress\":0.5", "\"progress\":\"<script>\""),
        a.replace("\"kind\":\"milestone\"", "\"kind\":\"<img>\""),
        a.replace(
            "\"event_time\":\"2026-01-01T01:00:00Z\"",
            "\"event_time\":\"<img>\"",
        ),
        a.replace(
            "\"triggered_by\"",
            "\"extra\":{\"html\":\"<script>\"},\"triggered_by\"",
        ),
    ] {
        assert!(
            serde_json::from_str::<super::hub::RawJson>(&bad).is_err(),
            "accepted {bad}"
        );
    }
}

#[test]
fn every_response_carries_the_security_headers() {
    let opts = ServeOptions {
        token: Token::new(TOKEN),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(Vec::new()));
    let auth = bearer(TOKEN);
    for (path, with_token, want) in [
        ("/healthz", false, 200),
        ("/", false, 401),
        ("/", true, 200),
        ("/v1/goals/nope", true, 404),
        ("/v1/goals/wins", true, 200),
    ] {
        let headers: Vec<(&str, &str)> = if with_token {
            vec![("Authorization", &auth)]
        } else {
            Vec::new()
        };
        let (status, _, hs) = get(&format!("{base}{path}"), &headers);
        assert_eq!(status, want, "{path}");
        let h = |n: &str| hs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let csp = h("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"));
        assert_eq!(
            h("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(h("x-frame-options").as_deref(), Some("DENY"), "{path}");
    }
}

#[test]
fn peers_get_the_peer_secret_and_untrusted_members_get_nothing() {
    let trusted = fake_peer(goal_body(&[view("west", 1, "good")]), Duration::ZERO);
    let untrusted = fake_peer(goal_body(&[view("north", 3, "evil")]), Duration::ZERO);
    // Only `localhost` is trusted: the member advertising 127.0.0.1 is not asked.
    let trusted_url = trusted.url.replace("127.0.0.1", "localhost");
    let opts = ServeOptions {
        token: Token::new(TOKEN),
        peers: Some(with_peers(
            vec![
                Peer {
                    instance: "good".into(),
                    url: trusted_url,
                },
                Peer {
                    instance: "evil".into(),
                    url: untrusted.url.clone(),
                },
            ],
            &["localhost"],
            Some(PEER_SECRET),
        )),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(vec![view("east", 2, "me")]));
    let (status, body, _) = get(
        &format!("{base}/v1/goals/wins"),
        &[("Authorization", &bearer(TOKEN))],
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["instances"], serde_json::json!(["good", "me"]));
    assert_eq!(v["unavailable"], serde_json::json!(["evil"]));
    assert!(
        untrusted.heads.lock().unwrap().is_empty(),
        "an untrusted member was called"
    );
    let heads = trusted.heads.lock().unwrap().join("\n");
    assert!(heads.contains(PEER_SECRET), "{heads}");
    assert!(
        !heads.contains(TOKEN),
        "the user's token was sent to a peer: {heads}"
    );
}

#[test]
fn the_peer_secret_allows_only_local_queries() {
    let opts = ServeOptions {
        token: Token::new(TOKEN),
        peer_token: Token::new(PEER_SECRET),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(vec![view("east", 2, "me")]));
    let peer = bearer(PEER_SECRET);
    let status = |path: &str| get(&format!("{base}{path}"), &[("Authorization", &peer)]).0;
    assert_eq!(status("/v1/goals/wins?scope=local"), 200);
    assert_eq!(status("/v1/attainments?scope=local"), 200);
    assert_eq!(status("/v1/goals/wins"), 401);
    assert_eq!(status("/metrics?scope=local"), 401);
    assert_eq!(status("/?scope=local"), 401);
    assert_eq!(status("/v1/stream?scope=local"), 401);
}

#[test]
fn without_a_token_on_loopback_foreign_host_names_are_refused() {
    let base = server(ServeOptions::default(), Worker::Windows(Vec::new()));
    let port = base.rsplit(':').next().unwrap();
    let status = |host: &str| get(&format!("{base}/v1/goals"), &[("Host", host)]).0;
    assert_eq!(status("evil.example"), 403);
    assert_eq!(status(&format!("rebound.evil.example:{port}")), 403);
    assert_eq!(status(&format!("localhost:{port}")), 200);
    assert_eq!(status(&format!("127.0.0.1:{port}")), 200);
}

#[test]
fn the_cookie_is_lax_and_secure_behind_https() {
    let opts = ServeOptions {
        token: Token::new(TOKEN),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(Vec::new()));
    let cookie = |proto: Option<&str>| {
        let mut req = ureq::AgentBuilder::new()
            .redirects(0)
            .build()
            .get(&format!("{base}/?token={TOKEN}"));
        if let Some(p) = proto {
            req = req.set("X-Forwarded-Proto", p);
        }
        let r = req.call().unwrap();
        assert_eq!(r.status(), 303);
        r.header("set-cookie").unwrap().to_string()
    };
    assert!(cookie(Some("https")).contains("; Secure"));
    let plain = cookie(None);
    assert!(!plain.contains("Secure"), "{plain}");
    // Lax: a link from another site to `/?token=` keeps the cookie on the redirect.
    assert!(plain.contains("; SameSite=Lax;"), "{plain}");
}

#[test]
fn event_streams_and_requests_are_capped() {
    let opts = ServeOptions {
        limits: Limits {
            max_streams: 1,
            max_requests: 2,
            ..Limits::default()
        },
        ..Default::default()
    };
    let (waiting, queued) = std::sync::mpsc::channel();
    let base = server(opts, Worker::Silent(Some(waiting)));
    let first = ureq::get(&format!("{base}/v1/stream")).call().unwrap();
    assert_eq!(first.status(), 200);
    let (status, body, _) = get(&format!("{base}/v1/stream"), &[]);
    assert_eq!(status, 503, "a second stream: {body}");
    drop(first);
    // Two queries the worker does not answer hold both request slots; a third is refused.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = format!("{base}/v1/goals/wins");
            std::thread::spawn(move || get(&url, &[]).0)
        })
        .collect();
    while queued.recv_timeout(Duration::from_secs(10)).unwrap() < 2 {}
    let (status, body, _) = get(&format!("{base}/v1/goals"), &[]);
    assert_eq!(status, 503, "a third request: {body}");
    // The probes are not capped.
    assert_eq!(get(&format!("{base}/healthz"), &[]).0, 200);
    let (status, body, _) = get(&format!("{base}/readyz"), &[]);
    assert_eq!(status, 200, "readyz under load: {body}");
    for t in slow {
        assert_eq!(t.join().unwrap(), 503);
    }
}

#[test]
fn slow_requests_and_slow_headers_time_out() {
    let opts = ServeOptions {
        limits: Limits {
            header_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Default::default()
    };
    let base = server(opts, Worker::Silent(None));
    let started = Instant::now();
    let (status, _, _) = get(&format!("{base}/v1/goals/wins"), &[]);
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A client that never finishes its headers is disconnected.
    let mut raw = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "still connected after {:?}",
        started.elapsed()
    );
}

#[test]
fn slow_peers_are_cut_off_at_the_fan_out_deadline() {
    // More slow peers than the blocking pool has threads: asked one batch after another they
    // would take several peer timeouts.
    let slow = fake_peer(goal_body(&[]), Duration::from_secs(8));
    let peers = (0..20)
        .map(|i| Peer {
            instance: format!("slow-{i:02}"),
            url: slow.url.clone(),
        })
        .collect();
    let opts = ServeOptions {
        peers: Some(with_peers(peers, &["127.0.0.1"], None)),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(vec![view("east", 2, "me")]));
    let started = Instant::now();
    let (status, body, _) = get(&format!("{base}/v1/goals/wins"), &[]);
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        took < super::peers::FAN_OUT_DEADLINE + Duration::from_secs(2),
        "took {took:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["unavailable"].as_array().unwrap().len(), 20);
    assert_eq!(v["windows"].as_array().unwrap().len(), 1);
}

#[test]
fn hung_peers_hold_no_more_than_the_bound_of_peer_requests() {
    let hung = fake_peer(goal_body(&[]), Duration::from_secs(30));
    let peers = (0..3)
        .map(|i| Peer {
            instance: format!("hung-{i}"),
            url: hung.url.clone(),
        })
        .collect();
    let opts = ServeOptions {
        peers: Some(with_peers(peers, &["127.0.0.1"], None).with_max_calls(4)),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(vec![view("east", 2, "me")]));
    // 6 queries of 3 peers each want 18 peer requests at once.
    let queries: Vec<_> = (0..6)
        .map(|_| {
            let url = format!("{base}/v1/goals/wins");
            std::thread::spawn(move || {
                let started = Instant::now();
                (get(&url, &[]), started.elapsed())
            })
        })
        .collect();
    for q in queries {
        let ((status, body, _), took) = q.join().unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(
            took < super::peers::FAN_OUT_DEADLINE + Duration::from_secs(2),
            "took {took:?}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["windows"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(v["unavailable"].as_array().unwrap().len(), 3, "{body}");
    }
    let most = hung.open.1.load(Ordering::SeqCst);
    assert!((1..=4).contains(&most), "{most} peer requests held at once");
}

#[test]
fn a_failed_group_listing_is_remembered() {
    let mut client = rdkafka::config::ClientConfig::new();
    client.set("bootstrap.servers", "127.0.0.1:1");
    let peers = Peers::new(
        client,
        "g".into(),
        "me".into(),
        PeerTrust::new(&[], "http://127.0.0.1:1", None),
    );
    assert!(peers.members().is_err());
    let started = Instant::now();
    assert!(peers.members().is_err());
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "waited again: {:?}",
        started.elapsed()
    );
}

#[test]
fn goal_queries_page_through_every_instances_windows() {
    let peer_windows: Vec<WindowView> =
        ["b", "d", "f"].iter().map(|r| view(r, 1, "peer")).collect();
    let peer = fake_peer(goal_body(&peer_windows), Duration::ZERO);
    let opts = ServeOptions {
        peers: Some(with_peers(
            vec![Peer {
                instance: "peer".into(),
                url: peer.url.clone(),
            }],
            &["127.0.0.1"],
            None,
        )),
        ..Default::default()
    };
    let mine = ["a", "c", "e"]
        .iter()
        .enumerate()
        .map(|(i, r)| view(r, i as i64 + 2, "me"))
        .collect();
    let base = server(opts, Worker::Windows(mine));
    let page = |query: &str| {
        let (status, body, _) = get(&format!("{base}/v1/goals/wins?{query}"), &[]);
        assert_eq!(status, 200, "{query}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let regions: Vec<String> = v["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["group"]["region"].as_str().unwrap().to_string())
            .collect();
        (regions, v["total"].as_u64().unwrap())
    };
    assert_eq!(page("limit=2&offset=1"), (vec!["b".into(), "c".into()], 6));
    assert_eq!(
        page("order=progress&limit=3"),
        (vec!["e".into(), "c".into(), "a".into()], 6)
    );
    // The fake peer answers its 3 windows whatever it is asked: more than 2 is refused, and its
    // windows are missing from the answer and its total.
    assert_eq!(
        page("order=progress&limit=2"),
        (vec!["e".into(), "c".into()], 3)
    );
    assert_eq!(page("offset=4").0, vec!["e".to_string(), "f".to_string()]);
    let heads = peer.heads.lock().unwrap().join("\n");
    assert!(
        heads.contains("scope=local&order=group&current=false&limit=3"),
        "{heads}"
    );
    for bad in [
        "limit=0",
        "limit=20000",
        "offset=9999&limit=2",
        "order=value",
    ] {
        let (status, _, _) = get(&format!("{base}/v1/goals/wins?{bad}"), &[]);
        assert_eq!(status, 400, "{bad}");
    }
}

#[test]
fn connections_beyond_the_cap_are_closed() {
    let opts = ServeOptions {
        limits: Limits {
            max_connections: 1,
            ..Limits::default()
        },
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(Vec::new()));
    let addr = base.trim_start_matches("http://").to_string();
    let _held = std::net::TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut second = std::net::TcpStream::connect(&addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = second.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut buf = Vec::new();
    let _ = second.read_to_end(&mut buf);
    assert!(
        buf.is_empty(),
        "a second connection was served: {}",
        String::from_utf8_lossy(&buf)
    );
    drop(_held);
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

#[test]
fn a_peer_heard_late_has_its_earlier_events_relayed() {
    // `a` has an event at T2 from the first round on; `b` answers nothing usable at first,
    // then an event at T1, earlier than T2 but after relaying started.
    let (t1, t2) = ("2099-01-01T00:00:00Z", "2099-06-01T00:00:00Z");
    let a = fake_peer(attainments_body("a", &[t2]), Duration::ZERO);
    let b = fake_peer_answering(
        vec!["not json".into(), attainments_body("b", &[t1])],
        Duration::ZERO,
    );
    let peers = [("a", &a.url), ("b", &b.url)]
        .map(|(i, u)| Peer {
            instance: i.into(),
            url: u.clone(),
        })
        .to_vec();
    let opts = ServeOptions {
        peers: Some(with_peers(peers, &["127.0.0.1"], None)),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(Vec::new()));
    let stream = ureq::get(&format!("{base}/v1/stream"))
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stream.into_reader()));
    let mut relayed = Vec::new();
    while relayed.len() < 2 {
        let Some(Ok(line)) = lines.next() else {
            panic!("the stream ended after relaying {relayed:?}");
        };
        if let Some(data) = line.strip_prefix("data:") {
            let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
            if let Some(at) = v["committed_at"].as_str() {
                relayed.push((v["instance"].as_str().unwrap().to_string(), at.to_string()));
            }
        }
    }
    assert_eq!(
        relayed,
        vec![
            ("a".to_string(), t2.to_string()),
            ("b".to_string(), t1.to_string())
        ]
    );
    let heads = b.heads.lock().unwrap().join("\n");
    assert!(
        !heads.contains("since=2099-06"),
        "b asked from a's point: {heads}"
    );
}

#[test]
fn a_peers_huge_total_saturates() {
    let huge = goal_body(&[]).replace("\"total\":0", &format!("\"total\":{}", usize::MAX));
    assert!(huge.contains(&usize::MAX.to_string()), "{huge}");
    let peer = fake_peer(huge, Duration::ZERO);
    let peers = vec![Peer {
        instance: "peer".into(),
        url: peer.url.clone(),
    }];
    let opts = ServeOptions {
        peers: Some(with_peers(peers, &["127.0.0.1"], None)),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(vec![view("east", 2, "me")]));
    let (status, body, _) = get(&format!("{base}/v1/goals/wins"), &[]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"].as_u64(), Some(usize::MAX as u64));
}

#[test]
fn late_and_overflow_are_summed_over_the_instances_answering() {
    let counted = goal_body(&[]).replace("\"total\":0", "\"total\":0,\"late\":5,\"overflow\":7");
    assert!(counted.contains("\"overflow\":7"), "{counted}");
    let peer = fake_peer(counted, Duration::ZERO);
    let peers = vec![Peer {
        instance: "peer".into(),
        url: peer.url.clone(),
    }];
    let opts = ServeOptions {
        peers: Some(with_peers(peers, &["127.0.0.1"], None)),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(vec![view("east", 2, "me")]));
    let counts = |query: &str| {
        let (status, body, _) = get(&format!("{base}/v1/goals/wins{query}"), &[]);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (v["late"].as_u64(), v["overflow"].as_u64())
    };
    assert_eq!(
        counts(""),
        (Some(7), Some(10)),
        "this instance's and the peer's"
    );
    assert_eq!(
        counts("?scope=local"),
        (Some(2), Some(3)),
        "this instance's"
    );
}

fn view_from(region: &str, value: i64, instance: &str, day: u32) -> WindowView {
    WindowView {
        window_start: format!("2026-01-{day:02}T00:00:00Z"),
        window_end: format!("2026-01-{:02}T00:00:00Z", day + 20),
        ..view(region, value, instance)
    }
}

#[test]
fn current_windows_are_each_groups_newest_on_every_instance() {
    // Hopping windows: every group has an old, advanced window and a newer one.
    let peer_windows = [
        view_from("west", 3, "peer", 1),
        view_from("west", 1, "peer", 2),
    ];
    let peer = fake_peer(goal_body(&peer_windows), Duration::ZERO);
    let peers = vec![Peer {
        instance: "peer".into(),
        url: peer.url.clone(),
    }];
    let opts = ServeOptions {
        peers: Some(with_peers(peers, &["127.0.0.1"], None)),
        ..Default::default()
    };
    let mine = vec![view_from("east", 4, "me", 1), view_from("east", 2, "me", 2)];
    let base = server(opts, Worker::Windows(mine));
    let url = format!("{base}/v1/goals/wins?order=progress&current=true");
    let (status, body, _) = get(&url, &[]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let got: Vec<(String, String)> = v["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["group"]["region"].as_str().unwrap().to_string(),
                w["window_start"].as_str().unwrap()[..10].to_string(),
            )
        })
        .collect();
    let want = [("east", "2026-01-02"), ("west", "2026-01-02")]
        .map(|(r, d)| (r.to_string(), d.to_string()));
    assert_eq!(got, want.to_vec());
    let heads = peer.heads.lock().unwrap().join("\n");
    assert!(heads.contains("current=true"), "{heads}");
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

#[test]
fn peer_redirects_are_not_followed() {
    let target = fake_peer(goal_body(&[view("west", 1, "peer")]), Duration::ZERO);
    let redirecting = fake_redirect(format!("{}/v1/goals/wins?scope=local", target.url));
    let peers = vec![Peer {
        instance: "peer".into(),
        url: redirecting,
    }];
    let opts = ServeOptions {
        peers: Some(with_peers(peers, &["127.0.0.1"], Some(PEER_SECRET))),
        ..Default::default()
    };
    let base = server(opts, Worker::Windows(vec![view("east", 2, "me")]));
    let (status, body, _) = get(&format!("{base}/v1/goals/wins"), &[]);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["unavailable"], serde_json::json!(["peer"]), "{body}");
    assert!(
        target.heads.lock().unwrap().is_empty(),
        "a redirect was followed"
    );
}
