//! What peers are sent and what of their answers is kept: secrets, checked data, deadlines,
//! bounds, relayed events and redirects.

use super::*;

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
    let ok: crate::serve::hub::RawJson = serde_json::from_str(a).unwrap();
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
            serde_json::from_str::<crate::serve::hub::RawJson>(&bad).is_err(),
            "accepted {bad}"
        );
    }
}

#[test]
fn a_peers_look_ahead_events_are_kept_byte_for_byte_and_checked() {
    let a = r#"{"attainment_id":"r1","goal_id":"wins","kind":"at_risk","group":{"region":"w"},"window_start":"2026-01-01T00:00:00Z","window_end":"2026-01-02T00:00:00Z","value":1,"target":4,"progress":0.25,"event_time":"2026-01-01T12:00:00Z","expected":2,"projected":2.5,"tick":"2026-01-01T12:00:00Z"}"#;
    let ok: crate::serve::hub::RawJson = serde_json::from_str(a).unwrap();
    assert_eq!(ok.0, a);
    let on_track = a
        .replace("at_risk", "on_track")
        .replace(",\"projected\":2.5", "");
    let ok: crate::serve::hub::RawJson = serde_json::from_str(&on_track).unwrap();
    assert_eq!(ok.0, on_track);
    for bad in [
        a.replace("\"expected\":2", "\"expected\":\"<b>2</b>\""),
        a.replace("\"tick\":\"2026-01-01T12:00:00Z\"", "\"tick\":\"<img>\""),
        a.replace("at_risk", "at_peril"),
    ] {
        assert!(
            serde_json::from_str::<crate::serve::hub::RawJson>(&bad).is_err(),
            "accepted {bad}"
        );
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
        took < crate::serve::peers::FAN_OUT_DEADLINE + Duration::from_secs(2),
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
            took < crate::serve::peers::FAN_OUT_DEADLINE + Duration::from_secs(2),
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
