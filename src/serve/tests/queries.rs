//! Goal queries merged over every instance: pages, late and overflow sums, current windows.

use super::*;

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
