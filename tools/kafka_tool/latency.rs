//! Event-to-attainment latency, from the attainment topic and the feeder's send times.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{base_config, now_ns, unique};

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e6)
}

pub fn latency(
    bootstrap: &str,
    topic: &str,
    seconds: u64,
    sent: &PathBuf,
    timeline: Option<&std::path::Path>,
    warmup: u64,
) {
    #[derive(serde::Deserialize)]
    struct Att<'a> {
        #[serde(borrow)]
        kind: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        triggered_by: Option<std::borrow::Cow<'a, str>>,
    }
    // A short fetch wait bounds how long a fetch can sit on the broker after a record commits.
    let c: BaseConsumer = base_config(bootstrap)
        .set("group.id", unique("bench-latency"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    // Wait for the attainment topic (goalpost creates it), then read it from the beginning.
    let deadline = Instant::now() + Duration::from_secs(60);
    let parts = loop {
        if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().first() {
                if t.error().is_none() && !t.partitions().is_empty() {
                    break t.partitions().len() as i32;
                }
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} did not appear");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..parts {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    // One short poll so the fetchers start before the feeder does.
    let _ = c.poll(Duration::from_millis(200));
    println!("ready");
    let _ = std::io::stdout().flush();
    eprintln!("kafka_tool: latency: reading {topic} ({parts} partitions) for {seconds} s");

    let mut samples: Vec<(String, u64)> = Vec::new();
    let mut kinds: HashMap<String, u64> = HashMap::new();
    let mut bad = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    while Instant::now() < end {
        match c.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => eprintln!("kafka_tool: consumer error: {e}"),
            Some(Ok(m)) => {
                let recv = now_ns();
                let Some(payload) = m.payload() else { continue };
                match serde_json::from_slice::<Att<'_>>(payload) {
                    Ok(a) => {
                        *kinds.entry(a.kind.to_string()).or_default() += 1;
                        if a.kind == "milestone" || a.kind == "breached" {
                            if let Some(t) = a.triggered_by {
                                samples.push((t.into_owned(), recv));
                            }
                        }
                    }
                    Err(_) => bad += 1,
                }
            }
        }
    }
    // The feeder renames its file into place when done.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !sent.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear (is the feeder running?)",
            sent.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut sent_at: HashMap<String, u64> = HashMap::new();
    let r = BufReader::with_capacity(1 << 20, File::open(sent).expect("open sent file"));
    for line in r.lines() {
        let line = line.expect("read sent file");
        if let Some((id, ns)) = line.split_once('\t') {
            let ns: u64 = ns.parse().expect("sent ns");
            // A duplicate event id: the first send is the one accepted.
            sent_at
                .entry(id.to_string())
                .and_modify(|v| *v = (*v).min(ns))
                .or_insert(ns);
        }
    }
    let first_sent = sent_at.values().copied().min().unwrap_or(0);
    let mut lat: Vec<u64> = Vec::with_capacity(samples.len());
    let mut steady: Vec<u64> = Vec::with_capacity(samples.len());
    let mut timeline_rows: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    let mut missing = 0u64;
    let mut negative = 0u64;
    for (id, recv) in &samples {
        match sent_at.get(id) {
            None => missing += 1,
            Some(&s) if *recv < s => negative += 1,
            Some(&s) => {
                let l = recv - s;
                lat.push(l);
                if s >= first_sent + warmup * 1_000_000_000 {
                    steady.push(l);
                }
                timeline_rows
                    .entry((s.saturating_sub(first_sent)) / 1_000_000_000)
                    .or_default()
                    .push(l);
            }
        }
    }
    lat.sort_unstable();
    steady.sort_unstable();
    let mean = if lat.is_empty() {
        0
    } else {
        (lat.iter().map(|&l| l as u128).sum::<u128>() / lat.len() as u128) as u64
    };
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort();
    let kinds = kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(path) = timeline {
        let mut w = BufWriter::new(File::create(path).expect("create timeline"));
        writeln!(w, "second,count,p50_ms,p99_ms,max_ms").unwrap();
        for (sec, v) in &mut timeline_rows {
            v.sort_unstable();
            writeln!(
                w,
                "{sec},{},{},{},{}",
                v.len(),
                ms(percentile(v, 0.5)),
                ms(percentile(v, 0.99)),
                ms(*v.last().unwrap())
            )
            .unwrap();
        }
    }
    eprintln!(
        "kafka_tool: latency: {} samples ({kinds}; {missing} without a send time, {negative} negative, {bad} unparsable)",
        lat.len()
    );
    println!("attainments: {kinds}");
    println!("samples: {}", lat.len());
    println!("missing: {missing}");
    println!("negative: {negative}");
    println!("unparsable: {bad}");
    println!("p50_ms: {}", ms(percentile(&lat, 0.50)));
    println!("p90_ms: {}", ms(percentile(&lat, 0.90)));
    println!("p99_ms: {}", ms(percentile(&lat, 0.99)));
    println!("p999_ms: {}", ms(percentile(&lat, 0.999)));
    println!("max_ms: {}", ms(lat.last().copied().unwrap_or(0)));
    println!("mean_ms: {}", ms(mean));
    println!("steady_warmup_s: {warmup}");
    println!("steady_samples: {}", steady.len());
    println!("steady_p50_ms: {}", ms(percentile(&steady, 0.50)));
    println!("steady_p90_ms: {}", ms(percentile(&steady, 0.90)));
    println!("steady_p99_ms: {}", ms(percentile(&steady, 0.99)));
    println!("steady_max_ms: {}", ms(steady.last().copied().unwrap_or(0)));
}
