//! The HTTP side of `goalpost run` against a real broker: two instances answer every goal query
//! alike (each serves what it owns and fetches the rest from the other), the values equal what
//! `replay` computes, attainments and metrics are served, and the bearer token is enforced.

#[allow(dead_code)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::dirs::*;
use support::events::*;
use support::goals::*;
use support::kafka::*;
use support::replay::*;

const TOKEN: &str = "api-test-token-7f3a";
/// The secret the instances send each other (never the token above).
const PEER_SECRET: &str = "api-test-peer-secret-91c2";

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `goalpost run` and waits for its HTTP address in the log.
fn start(config: &std::path::Path, instance: &str) -> Instance {
    let mut child = goalpost_cmd(config, instance, &[])
        .env("GOALPOST_TEST_TOKEN", TOKEN)
        .env("GOALPOST_TEST_PEER_SECRET", PEER_SECRET)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start goalpost");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let name = instance.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(TOKEN) || line.contains(PEER_SECRET) {
                panic!("instance {name} logged the token: {line}");
            }
            if let Some(rest) = line.split("HTTP server listening addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("instance {instance} did not report its HTTP address"));
    Instance {
        child,
        base: format!("http://{addr}"),
    }
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let (status, body, _) = get_with_headers(url, token);
    (status, body)
}

/// GET: status, body and the response's header names (lower case) with their values.
fn get_with_headers(url: &str, token: Option<&str>) -> (u16, String, BTreeMap<String, String>) {
    let mut req = ureq::get(url).timeout(Duration::from_secs(20));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let headers = r
        .headers_names()
        .iter()
        .map(|n| {
            (
                n.to_ascii_lowercase(),
                r.header(n).unwrap_or("").to_string(),
            )
        })
        .collect();
    (r.status(), r.into_string().unwrap_or_default(), headers)
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url, Some(TOKEN));
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

type WindowKey = (String, BTreeMap<String, String>, String);

/// (goal, group, window start) -> value text, from a `/v1/goals/{id}` body.
fn windows_of(body: &Value) -> BTreeMap<WindowKey, String> {
    body["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|w| {
            let group: BTreeMap<String, String> =
                serde_json::from_value(w["group"].clone()).unwrap();
            (
                (
                    w["goal_id"].as_str().unwrap().to_string(),
                    group,
                    w["window_start"].as_str().unwrap().to_string(),
                ),
                w["value"].to_string(),
            )
        })
        .collect()
}

/// Pages of `/v1/goals/{id}` (both orders) are slices of the whole answer, with its total.
fn check_pages(url: &str, whole: &Value, total: usize) {
    let all = whole["windows"].as_array().unwrap();
    assert_eq!(whole["total"], total, "{url}: total");
    let page = get_json(&format!("{url}?limit=2&offset=1"));
    assert_eq!(page["total"], total);
    let want: Vec<&Value> = all.iter().skip(1).take(2).collect();
    assert_eq!(
        page["windows"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        want
    );
    // By progress: the top 3 of the whole answer, most progress first.
    let top = get_json(&format!("{url}?order=progress&limit=3"));
    let top = top["windows"].as_array().unwrap();
    let progress = |w: &Value| w["progress"].as_f64().unwrap_or(f64::NEG_INFINITY);
    let mut best: Vec<f64> = all.iter().map(progress).collect();
    best.sort_by(|a, b| b.total_cmp(a));
    best.truncate(3);
    assert_eq!(
        top.iter().map(progress).collect::<Vec<_>>(),
        best,
        "{url}: top 3"
    );
    check_current(url, all);
}

/// `current=true`: each group's newest open window only, most progress first.
fn check_current(url: &str, all: &[Value]) {
    let mut newest: BTreeMap<String, &Value> = BTreeMap::new();
    for w in all {
        let e = newest.entry(w["group"].to_string()).or_insert(w);
        if w["window_start"].as_str() > e["window_start"].as_str() {
            *e = w;
        }
    }
    let progress = |w: &Value| w["progress"].as_f64().unwrap_or(f64::NEG_INFINITY);
    let mut want: Vec<&Value> = newest.into_values().collect();
    want.sort_by(|a, b| progress(b).total_cmp(&progress(a)));
    let current = get_json(&format!("{url}?order=progress&current=true&limit=10000"));
    let got = current["windows"].as_array().unwrap();
    assert_eq!(current["total"], want.len(), "{url}: current total");
    let key = |w: &Value| (w["group"].to_string(), w["window_start"].to_string());
    let got_keys: BTreeSet<_> = got.iter().map(key).collect();
    let want_keys: BTreeSet<_> = want.iter().map(|w| key(w)).collect();
    assert_eq!(got_keys, want_keys, "{url}: current windows");
    assert_eq!(
        got.iter().map(progress).collect::<Vec<_>>(),
        want.iter().map(|w| progress(w)).collect::<Vec<_>>(),
        "{url}: current windows by progress"
    );
}

/// A goal with `status` and a pace curve. With the run's grace no tick is decided.
const PACED_GOAL: &str = r#"
[[goals]]
id = "rep-weekly-paced"
metric = "count"
filter = { event_type = "activity_logged" }
group_by = ["rep_id"]
window = { tumbling = "7d" }
target = 15
grace = "3650d"
pace = [[0.0, 0.0], [0.5, 0.3], [1.0, 1.0]]
status = { every = "1d", tolerance = 0.1, for = "2d" }
"#;

/// The look-ahead fields of a window view (served by either instance): present with status,
/// absent without.
fn check_look_ahead(goal: &str, w: &Value) {
    if goal != "rep-weekly-paced" {
        for key in ["status", "status_tick", "expected", "projected"] {
            assert!(w.get(key).is_none(), "goal {goal}: {key} in {w}");
        }
        return;
    }
    assert_eq!(w["status"], "on_track", "no tick decided yet: {w}");
    assert!(w["status_tick"].is_null(), "{w}");
    assert!(w["expected"].is_number(), "{w}");
    // null only while the pace expects nothing yet (at the window's first instant).
    assert!(
        w["projected"].is_number() || w["projected"].is_null(),
        "{w}"
    );
}

#[test]
fn two_instances_answer_queries_alike_and_match_replay() {
    let k = Kafka::connect();
    let name = unique("api");
    let events = generated_events(21, 6_000);
    k.create_topic(&name, 4);
    k.produce_json(&name, &events);
    // No window closes during the run, so every window is open at the end and its value is the
    // final value replay computes.
    let mut goals = example_goals().replace("grace = \"1h\"", "grace = \"3650d\"");
    // A goal with look-ahead status: its windows show status, expected and projected values.
    goals.push_str(PACED_GOAL);
    let config = k.write_config(&name, &goals, "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("token_env = \"GOALPOST_TEST_TOKEN\"\n");
    text.push_str("peer_token_env = \"GOALPOST_TEST_PEER_SECRET\"\n");
    text.push_str("[metrics]\nprogress_gauges = [\"rep-weekly-activities\"]\n");
    std::fs::write(&config, text).unwrap();

    let a = start(&config, "api-a");
    let b = start(&config, "api-b");
    k.wait_group_committed(&format!("{name}-app"), &name, Duration::from_secs(120));

    // Expected: replay's finals, keyed like the API's windows.
    let replayed = replay(&goals, &events);
    let mut expected: BTreeMap<String, BTreeMap<WindowKey, String>> = BTreeMap::new();
    for f in replayed.iter().filter(|a| a.kind == "final") {
        let v: Value = serde_json::from_str(&f.raw).unwrap();
        let group: BTreeMap<String, String> = serde_json::from_value(v["group"].clone()).unwrap();
        expected.entry(f.goal_id.clone()).or_default().insert(
            (
                f.goal_id.clone(),
                group,
                v["window_start"].as_str().unwrap().to_string(),
            ),
            v["value"].to_string(),
        );
    }
    assert_eq!(expected.len(), 9, "replay has finals for every goal");

    // Health and readiness never need the token; both instances become ready.
    for i in [&a, &b] {
        assert_eq!(get(&format!("{}/healthz", i.base), None).0, 200);
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&format!("{}/readyz", i.base), None).0 != 200 {
            assert!(Instant::now() < deadline, "{} never became ready", i.base);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // The token is enforced everywhere else.
    for path in ["/v1/goals", "/metrics", "/v1/attainments", "/"] {
        let (status, _, headers) = get_with_headers(&format!("{}{path}", a.base), None);
        assert_eq!(status, 401, "{path} without a token");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers["content-security-policy"].contains("default-src 'none'"));
        let (status, _) = get(&format!("{}{path}", a.base), Some("wrong-token"));
        assert_eq!(status, 401, "{path} with a wrong token");
        // The peer secret reads only what peers ask each other (scope=local queries).
        let (status, _) = get(&format!("{}{path}?scope=local", a.base), Some(PEER_SECRET));
        let peer_query = path == "/v1/attainments";
        assert_eq!(
            status,
            if peer_query { 200 } else { 401 },
            "{path} with the peer secret"
        );
    }

    // Definitions.
    let defs = get_json(&format!("{}/v1/goals", a.base));
    let ids: BTreeSet<String> = defs["goals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, expected.keys().cloned().collect::<BTreeSet<_>>());
    let paced = defs["goals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "rep-weekly-paced")
        .unwrap();
    assert_eq!(
        paced["pace"],
        serde_json::json!([[0, 0], [0.5, 0.3], [1, 1]])
    );
    assert_eq!(paced["status"]["for"], "2d", "{paced}");

    // Open windows: the owners finish the repartition topic shortly after the input is
    // committed, so wait until the answer matches, then check both instances in detail.
    for (goal, want) in &expected {
        let url_a = format!("{}/v1/goals/{goal}", a.base);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = windows_of(&get_json(&url_a));
            if &got == want {
                break;
            }
            if Instant::now() > deadline {
                let missing: Vec<_> = want
                    .keys()
                    .filter(|k| !got.contains_key(*k))
                    .take(3)
                    .collect();
                let wrong: Vec<_> = want
                    .iter()
                    .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                    .take(3)
                    .collect();
                panic!(
                    "goal {goal}: {} windows served, {} expected; missing e.g. {missing:?}; wrong e.g. {wrong:?}",
                    got.len(),
                    want.len()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let body_a = get_json(&url_a);
        let body_b = get_json(&format!("{}/v1/goals/{goal}", b.base));
        assert_eq!(
            serde_json::to_string(&body_a["windows"]).unwrap(),
            serde_json::to_string(&body_b["windows"]).unwrap(),
            "goal {goal}: both instances give the same answer"
        );
        assert_eq!(body_a["instances"], serde_json::json!(["api-a", "api-b"]));
        // The goal's counts, summed over the instances: nothing is late (the grace covers the
        // run) and no goal reaches its max_groups or max_distinct.
        assert_eq!(
            (body_a["late"].as_u64(), body_a["overflow"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(body_a["unavailable"], serde_json::json!([]));
        // Each instance's own share: disjoint, and together the whole answer.
        let local_a = windows_of(&get_json(&format!("{url_a}?scope=local")));
        let local_b = windows_of(&get_json(&format!(
            "{}/v1/goals/{goal}?scope=local",
            b.base
        )));
        assert!(
            local_a.keys().all(|k| !local_b.contains_key(k)),
            "goal {goal}: shares overlap"
        );
        let mut union = local_a.clone();
        union.extend(local_b.clone());
        assert_eq!(&union, want, "goal {goal}: the shares add up to the answer");
        check_pages(&url_a, &body_a, want.len());
        for w in body_a["windows"].as_array().unwrap() {
            let instance = w["instance"].as_str().unwrap();
            assert!(instance == "api-a" || instance == "api-b");
            assert!(w["time_left_seconds"].as_i64().is_some(), "{w}");
            check_look_ahead(goal, w);
        }
    }
    let unknown = get(&format!("{}/v1/goals/no-such-goal", a.base), Some(TOKEN));
    assert_eq!(unknown.0, 404);
    assert!(unknown.1.contains("no-such-goal"), "{}", unknown.1);
    let bad_scope = get(
        &format!("{}/v1/goals/team-win-rate?scope=some", a.base),
        Some(TOKEN),
    );
    assert_eq!(bad_scope.0, 400);

    // Attainments: the milestones of a goal whose value only grows are exactly replay's, from
    // whichever instance owns them; `since` returns only later commits.
    let goal = "rep-weekly-activities";
    let want: BTreeSet<String> = replayed
        .iter()
        .filter(|r| r.goal_id == goal && r.kind == "milestone")
        .map(|r| r.attainment_id.clone())
        .collect();
    assert!(!want.is_empty());
    let listed = get_json(&format!("{}/v1/attainments?goal={goal}&limit=2000", b.base));
    let items = listed["attainments"].as_array().unwrap();
    let got: BTreeSet<String> = items
        .iter()
        .map(|i| {
            i["attainment"]["attainment_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, want, "milestones served by /v1/attainments");
    assert!(items.iter().all(|i| i["attainment"]["goal_id"] == goal));
    let committed: Vec<&str> = items
        .iter()
        .map(|i| i["committed_at"].as_str().unwrap())
        .collect();
    let mut sorted = committed.clone();
    sorted.sort();
    assert_eq!(committed, sorted, "oldest first");
    let middle = committed[committed.len() / 2];
    let later = get_json(&format!(
        "{}/v1/attainments?goal={goal}&limit=2000&since={middle}",
        a.base
    ));
    let later = later["attainments"].as_array().unwrap();
    assert!(later.len() < items.len());
    assert!(later
        .iter()
        .all(|i| i["committed_at"].as_str().unwrap() > middle));
    let bad_since = get(
        &format!("{}/v1/attainments?since=yesterday", a.base),
        Some(TOKEN),
    );
    assert_eq!(bad_since.0, 400);
    assert!(bad_since.1.contains("yesterday"), "{}", bad_since.1);
    // A parameter that does not parse gets the same JSON error body, naming it.
    let bad_limit = get(&format!("{}/v1/attainments?limit=abc", a.base), Some(TOKEN));
    assert_eq!(bad_limit.0, 400);
    let body: serde_json::Value = serde_json::from_str(&bad_limit.1)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", bad_limit.1));
    assert!(
        body["error"].as_str().is_some_and(|m| m.contains("limit")),
        "{body}"
    );

    // Metrics: the instances together read every event once; the progress gauges switched on
    // appear (on whichever instance owns the goal's groups), and only for that goal.
    std::thread::sleep(Duration::from_millis(1500));
    let texts: Vec<String> = [&a, &b]
        .iter()
        .map(|i| {
            let (status, text) = get(&format!("{}/metrics", i.base), Some(TOKEN));
            assert_eq!(status, 200);
            assert!(text.contains("goalpost_ready 1"), "{text}");
            text
        })
        .collect();
    let read: f64 = texts
        .iter()
        .map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("goalpost_events_read_total "))
                .map(|v| v.trim().parse::<f64>().unwrap())
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(read, events.len() as f64);
    let progress: Vec<&str> = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter(|l| l.starts_with("goalpost_goal_progress_ratio{"))
        .collect();
    assert!(!progress.is_empty(), "progress gauges switched on");
    assert!(
        progress
            .iter()
            .all(|l| l.contains("goal=\"rep-weekly-activities\"")),
        "{progress:?}"
    );
    assert!(texts
        .iter()
        .any(|t| t.contains("goalpost_transaction_commit_seconds_bucket")));

    // The live feed of each instance carries every instance's new attainment events: its own at
    // once, the others' relayed. (Which instances emit depends on who owns the repartition
    // partitions; whoever does, the other instance's feed must relay them.)
    let open_stream = |base: &str| {
        let stream = ureq::get(&format!("{base}/v1/stream"))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .timeout(Duration::from_secs(120))
            .call()
            .expect("event stream");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stream.into_reader())
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("hello event");
        assert_eq!(first, "event: hello");
        rx
    };
    let streams = [open_stream(&a.base), open_stream(&b.base)];
    std::thread::sleep(Duration::from_millis(1500));
    let before: BTreeMap<String, usize> = [&a, &b]
        .iter()
        .map(|i| {
            let n = get_json(&format!("{}/v1/attainments?scope=local&limit=2000", i.base))
                ["attainments"]
                .as_array()
                .unwrap()
                .len();
            (i.base.clone(), n)
        })
        .collect();
    let more = generated_events(22, 6_000);
    k.produce_json(&name, &more);
    k.wait_group_committed(&format!("{name}-app"), &name, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let emitters: BTreeSet<String> = [(&a, "api-a"), (&b, "api-b")]
        .iter()
        .filter(|(i, _)| {
            let n = get_json(&format!("{}/v1/attainments?scope=local&limit=2000", i.base))
                ["attainments"]
                .as_array()
                .unwrap()
                .len();
            n > before[&i.base] || n == 2000
        })
        .map(|(_, name)| name.to_string())
        .collect();
    assert!(
        !emitters.is_empty(),
        "the new events crossed new milestones"
    );
    for (rx, base) in streams.iter().zip([&a.base, &b.base]) {
        let mut seen = BTreeSet::new();
        let mut event = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !emitters.is_subset(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("the stream of {base} carried attainments of {seen:?}, not of {emitters:?}")
            });
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_string();
            } else if let Some(data) = line.strip_prefix("data: ") {
                if event == "attainment" {
                    let v: Value = serde_json::from_str(data).unwrap();
                    assert!(v["attainment"]["attainment_id"].is_string(), "{v}");
                    seen.insert(v["instance"].as_str().unwrap().to_string());
                }
            }
        }
    }

    // The dashboard and the OpenAPI file are served.
    let (status, html) = get(&format!("{}/", a.base), Some(TOKEN));
    assert_eq!(status, 200);
    assert!(
        html.contains("<html") || html.contains("<!doctype html"),
        "{html}"
    );
    let (status, spec) = get(&format!("{}/v1/openapi.yaml", a.base), Some(TOKEN));
    assert_eq!(status, 200);
    assert!(
        spec.contains("/v1/goals/{id}"),
        "the OpenAPI file describes the API"
    );
}
