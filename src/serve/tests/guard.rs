//! Security headers, the Host check, the token cookie, the peer secret's scope, and the caps
//! on connections, requests, streams and slow clients.

use super::*;

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
