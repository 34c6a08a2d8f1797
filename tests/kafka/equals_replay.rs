//! `run` gives replay's results: generated events, the CRM dataset, three instances.

use crate::support::crm_data;
use crate::support::dirs::*;
use crate::support::events::*;
use crate::support::goals::*;
use crate::support::kafka::*;
use crate::support::replay::*;

/// The generated stream on a 6-partition topic: `run --until-caught-up --close-all-at-end` gives the
/// same finals as `replay`, and for goals whose value only grows the same milestones and breaches;
/// every attainment event exactly once.
#[test]
fn run_equals_replay_on_generated_events() {
    let k = Kafka::connect();
    let name = unique("gen");
    let events = generated_events(11, 20_000);
    k.create_topic(&name, 6);
    k.produce_json(&name, &events);

    let goals = example_goals();
    let cfg = k.write_config(&name, &goals, "");
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    assert!(
        out.status.success(),
        "goalpost run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = k.read_all(&format!("{name}-out"));
    let replayed = replay(&goals, &events);
    assert_exactly_once(&live);
    assert_same_results(&goals, &replayed, &live);
}

/// The CRM dataset (with its disorder and redeliveries) on a 6-partition topic: the same results
/// as replay of the same lines.
#[test]
fn run_equals_replay_on_crm_data() {
    let k = Kafka::connect();
    let name = unique("crm");
    let (opportunities, teams) = crm_data::load();
    let mut events = crm_data::to_events(&opportunities, &teams);
    crm_data::disorder(&mut events);
    let (lines, copies) = crm_data::with_duplicates(&events);
    assert!(copies > 0);
    let records: Vec<(String, Vec<u8>)> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["event_id"].as_str().unwrap().to_string(),
                l.as_bytes().to_vec(),
            )
        })
        .collect();
    k.create_topic(&name, 6);
    k.produce_raw(&name, &records);

    // The example goals, with a grace that covers the dataset's day-long disorder.
    let goals = example_goals().replace("grace = \"1h\"", "grace = \"2d\"");
    let cfg = k.write_config(&name, &goals, "");
    let out = run_goalpost(&cfg, &["--until-caught-up", "--close-all-at-end"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "goalpost run failed:\n{log}");
    assert!(log.contains(&format!("duplicates {copies}")), "{log}");

    let live = k.read_all(&format!("{name}-out"));
    let replayed = replay_bytes(&goals, (lines.join("\n") + "\n").as_bytes());
    assert_exactly_once(&live);
    assert_same_results(&goals, &replayed, &live);
}

/// Three instances sharing the group give the same finals, milestones and breaches as one.
#[test]
fn three_instances_give_the_same_results_as_one() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    let k = Kafka::connect();
    let name = unique("scale");
    let events = generated_events(23, 30_000);
    k.create_topic(&name, 6);
    let goals = example_goals();
    // Balancing the group can take longer than the usual 5 s idle timeout: input partitions
    // marked idle before the first event would let the watermark pass windows that their events,
    // arriving later, still belong to (see README, "idle partitions").
    let cfg = k.write_config(&name, &goals, "idle_timeout = \"60s\"");

    // Three long-running instances; the group is balanced before any event arrives, so the work
    // is shared for certain.
    let mut children: Vec<std::process::Child> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            goalpost_cmd(&cfg, id, &[])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start goalpost")
        })
        .collect();
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    for (i, c) in children.iter_mut().enumerate() {
        let stderr = c.stderr.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send((i, line));
            }
        });
    }
    let mut logs: Vec<String> = vec![String::new(); 3];
    let mut holding = [false; 3];
    let deadline = Instant::now() + Duration::from_secs(60);
    while holding.iter().any(|h| !h) {
        assert!(
            Instant::now() < deadline,
            "the three instances did not all get partitions:\n{}",
            logs.join("\n")
        );
        if let Ok((i, line)) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.contains("partitions assigned") && !line.contains("partitions=[]") {
                holding[i] = true;
            }
            logs[i].push_str(&line);
            logs[i].push('\n');
        }
    }

    k.produce_json(&name, &events);
    k.wait_group_committed(&format!("{name}-app"), &name, Duration::from_secs(120));
    for c in &children {
        sigterm(c);
    }
    for (i, c) in children.into_iter().enumerate() {
        let status = c.wait_with_output().unwrap().status;
        while let Ok((j, line)) = rx.try_recv() {
            logs[j].push_str(&line);
            logs[j].push('\n');
        }
        assert!(status.success(), "instance {i} failed:\n{}", logs[i]);
    }

    // One more run closes the windows that are still open.
    finish_and_compare(&k, &cfg, &name, &goals, &events);
}
