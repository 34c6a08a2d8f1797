//! Kafka helpers for the benchmark scripts `scripts/bench-kafka-throughput` and
//! `scripts/bench-kafka-latency`. Not part of goalpost itself.
//!
//! ```text
//! kafka_tool create  --bootstrap B --topic T --partitions P
//! kafka_tool produce --bootstrap B --topic T --partitions P FILE
//!     create the topic, produce every line of FILE keyed by its event_id, wait for delivery
//! kafka_tool drain   --bootstrap B --topic T
//!     the bare consumer baseline: read every record of the topic and drop it
//! kafka_tool feed    --bootstrap B --topic T --rate R --seconds S --sent SENT FILE
//!     produce lines of FILE at a steady rate, each with a `bench.sent_ns` header; writes
//!     `event_id<TAB>sent_ns` lines to SENT (atomically renamed into place at the end)
//! kafka_tool watch   --bootstrap B --group G --topic T [--seconds S]
//!     poll the committed offsets of consumer group G on topic T (without joining the group) and
//!     print `unix_seconds committed` whenever they change; exit when they reach the end offsets
//! kafka_tool latency --bootstrap B --topic OUT --seconds S --sent SENT
//!     read attainments (read_committed) for S seconds, then join each milestone / breached
//!     attainment's `triggered_by` with SENT: latency = received - sent
//! ```
//!
//! Build: `cargo build --release --example kafka_tool`. Results go to stdout as `key: value`
//! lines (for the scripts to pick up); progress goes to stderr.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

#[derive(Parser)]
#[command(about = "Kafka helpers for goalpost's benchmark scripts")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a topic.
    Create {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 6)]
        partitions: i32,
    },
    /// Create a topic and produce every line of FILE, keyed by its event_id.
    Produce {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        file: PathBuf,
    },
    /// Read every record of a topic (up to the end offsets at start) and drop it.
    Drain {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
    },
    /// Produce lines of FILE at a steady rate, stamped with a `bench.sent_ns` header.
    Feed {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        /// Events per second.
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        seconds: u64,
        /// Where `event_id<TAB>sent_ns` lines go.
        #[arg(long)]
        sent: PathBuf,
        /// Producer linger.ms (counted in the latency, as the send time is taken at send()).
        #[arg(long, default_value_t = 1)]
        linger_ms: u64,
        file: PathBuf,
    },
    /// Watch a consumer group's committed offsets on a topic until they reach its end offsets.
    Watch {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        topic: String,
        /// Give up after this long.
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
    },
    /// Measure event-to-attainment latency on the attainment topic.
    Latency {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        /// How long to read the attainment topic.
        #[arg(long)]
        seconds: u64,
        /// The feeder's `event_id<TAB>sent_ns` file (waited for after reading).
        #[arg(long)]
        sent: PathBuf,
        /// Per-second latency figures go here (CSV), if given.
        #[arg(long)]
        timeline: Option<PathBuf>,
        /// Also report percentiles without events sent in the first this many seconds.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Create {
            bootstrap,
            topic,
            partitions,
        } => create_topic(&bootstrap, &topic, partitions),
        Cmd::Produce {
            bootstrap,
            topic,
            partitions,
            file,
        } => produce(&bootstrap, &topic, partitions, &file),
        Cmd::Drain { bootstrap, topic } => drain(&bootstrap, &topic),
        Cmd::Feed {
            bootstrap,
            topic,
            rate,
            seconds,
            sent,
            linger_ms,
            file,
        } => feed(&bootstrap, &topic, rate, seconds, &sent, linger_ms, &file),
        Cmd::Watch {
            bootstrap,
            group,
            topic,
            seconds,
        } => watch(&bootstrap, &group, &topic, seconds),
        Cmd::Latency {
            bootstrap,
            topic,
            seconds,
            sent,
            timeline,
            warmup,
        } => latency(
            &bootstrap,
            &topic,
            seconds,
            &sent,
            timeline.as_deref(),
            warmup,
        ),
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), now_ns())
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        base_config(bootstrap).create().expect("admin client");
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let res = futures_executor::block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("create topics");
    for r in res {
        match r {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                eprintln!("kafka_tool: topic {name} already exists")
            }
            Err((name, e)) => panic!("create topic {name}: {e}"),
        }
    }
    // Wait until the topic's partitions are visible with leaders.
    let c: BaseConsumer = base_config(bootstrap).create().expect("metadata client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            if let Some(t) = md.topics().first() {
                if t.error().is_none()
                    && t.partitions().len() as i32 == partitions
                    && t.partitions().iter().all(|p| p.leader() >= 0)
                {
                    break;
                }
            }
        }
        assert!(Instant::now() < deadline, "topic {topic} did not appear");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("kafka_tool: created {topic} with {partitions} partitions");
}

/// Counts deliveries.
#[derive(Default)]
struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("kafka_tool: delivery failed: {e}");
                }
                0
            }
        };
    }
}

/// The `event_id` of a JSON line: a cheap scan for `"event_id":"...`, else serde_json.
fn event_id(line: &[u8]) -> Option<&[u8]> {
    const PAT: &[u8] = b"\"event_id\":\"";
    if let Some(i) = line.windows(PAT.len()).position(|w| w == PAT) {
        let rest = &line[i + PAT.len()..];
        if let Some(j) = rest.iter().position(|&b| b == b'"' || b == b'\\') {
            if rest[j] == b'"' {
                return Some(&rest[..j]);
            }
        }
    }
    None
}

fn event_id_owned(line: &[u8]) -> Option<Vec<u8>> {
    if let Some(id) = event_id(line) {
        return Some(id.to_vec());
    }
    #[derive(serde::Deserialize)]
    struct Id {
        event_id: Option<String>,
    }
    serde_json::from_slice::<Id>(line)
        .ok()
        .and_then(|i| i.event_id)
        .map(String::into_bytes)
}

fn read_lines(file: &PathBuf) -> Vec<Vec<u8>> {
    let r = BufReader::with_capacity(1 << 20, File::open(file).expect("open input file"));
    r.split(b'\n')
        .map(|l| l.expect("read input file"))
        .filter(|l| !l.is_empty())
        .collect()
}

fn send_retrying<'a>(
    p: &BaseProducer<Counting>,
    mut rec: BaseRecord<'a, [u8], [u8]>,
) -> Result<(), KafkaError> {
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                rec = r;
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

fn produce(bootstrap: &str, topic: &str, partitions: i32, file: &PathBuf) {
    let lines = read_lines(file);
    create_topic(bootstrap, topic, partitions);
    let p: BaseProducer<Counting> = base_config(bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "true")
        .create_with_context(Counting::default())
        .expect("producer");
    let start = Instant::now();
    let mut no_key = 0u64;
    for line in &lines {
        let id = event_id_owned(line);
        if id.is_none() {
            no_key += 1;
        }
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(line.as_slice());
        if let Some(id) = &id {
            rec = rec.key(id.as_slice());
        }
        send_retrying(&p, rec).expect("produce");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    let secs = start.elapsed().as_secs_f64();
    let delivered = p.context().delivered.load(Ordering::Relaxed);
    let failed = p.context().failed.load(Ordering::Relaxed);
    eprintln!(
        "kafka_tool: produced {delivered} records to {topic} in {secs:.2} s = {:.0} records/s ({failed} failed, {no_key} without an event_id key)",
        delivered as f64 / secs
    );
    println!("produced: {delivered}");
    println!("failed: {failed}");
    println!("produce_seconds: {secs:.3}");
    println!("produce_rate: {:.0}", delivered as f64 / secs);
    if failed > 0 || delivered != lines.len() as u64 {
        std::process::exit(1);
    }
}

fn drain(bootstrap: &str, topic: &str) {
    let c: BaseConsumer = base_config(bootstrap)
        // goalpost's own default (see `worker::run`). With librdkafka's 1 s, a fetcher that
        // finds the local queue full waits a whole second, and this consumer, faster than its
        // fetcher, ran anywhere between 0.6 M and 1.7 M records/s on the same topic.
        .set("fetch.queue.backoff.ms", "20")
        .set("group.id", unique("bench-drain"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts = md.topics()[0].partitions().len() as i32;
    assert!(parts > 0, "topic {topic} does not exist");
    let mut total: i64 = 0;
    for p in 0..parts {
        let (low, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        total += high - low;
    }
    c.subscribe(&[topic]).expect("subscribe");
    let first_poll = Instant::now();
    let mut first_record: Option<Instant> = None;
    let mut last_record = first_poll;
    let mut read: i64 = 0;
    let mut bytes: u64 = 0;
    let deadline = first_poll + Duration::from_secs(600);
    while read < total {
        assert!(
            Instant::now() < deadline,
            "drain timed out at {read}/{total}"
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => eprintln!("kafka_tool: consumer error: {e}"),
            Some(Ok(m)) => {
                bytes += m.payload_len() as u64;
                std::hint::black_box(m.payload());
                read += 1;
                let now = Instant::now();
                first_record.get_or_insert(now);
                last_record = now;
            }
        }
    }
    let from_poll = (last_record - first_poll).as_secs_f64();
    let from_first = (last_record - first_record.unwrap_or(first_poll)).as_secs_f64();
    eprintln!(
        "kafka_tool: drained {read} records ({:.0} MB) of {topic}: {:.0} events/s from first poll ({from_poll:.2} s), {:.0} events/s from first record ({from_first:.2} s)",
        bytes as f64 / 1e6,
        read as f64 / from_poll,
        read as f64 / from_first
    );
    println!("records: {read}");
    println!("drain_seconds: {from_poll:.3}");
    println!("drain_rate: {:.0}", read as f64 / from_poll);
    println!("drain_seconds_from_first_record: {from_first:.3}");
    println!(
        "drain_rate_from_first_record: {:.0}",
        read as f64 / from_first
    );
}

fn unix_secs() -> f64 {
    now_ns() as f64 / 1e9
}

fn watch(bootstrap: &str, group: &str, topic: &str, seconds: u64) {
    let c: BaseConsumer = base_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts = md.topics()[0].partitions().len() as i32;
    assert!(parts > 0, "topic {topic} does not exist");
    let mut tpl = TopicPartitionList::new();
    let mut total: i64 = 0;
    for p in 0..parts {
        let (_, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        total += high;
        tpl.add_partition(topic, p);
    }
    println!("{:.3} end {total}", unix_secs());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut last = -1i64;
    while Instant::now() < deadline {
        if let Ok(committed) = c.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            let sum: i64 = committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum();
            if sum != last {
                last = sum;
                println!("{:.3} committed {sum}", unix_secs());
                let _ = std::io::stdout().flush();
            }
            if sum >= total {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("kafka_tool: watch: gave up at {last} of {total}");
    std::process::exit(1);
}

#[allow(clippy::too_many_arguments)]
fn feed(
    bootstrap: &str,
    topic: &str,
    rate: u64,
    seconds: u64,
    sent: &PathBuf,
    linger_ms: u64,
    file: &PathBuf,
) {
    let lines = read_lines(file);
    let wanted = (rate * seconds) as usize;
    if lines.len() < wanted {
        eprintln!(
            "kafka_tool: {} has {} lines, fewer than rate x seconds = {wanted}: feeding what there is",
            file.display(),
            lines.len()
        );
    }
    let n = wanted.min(lines.len());
    let ids: Vec<Vec<u8>> = lines[..n]
        .iter()
        .map(|l| event_id_owned(l).expect("every line has an event_id"))
        .collect();
    let p: BaseProducer<Counting> = base_config(bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("enable.idempotence", "true")
        .create_with_context(Counting::default())
        .expect("producer");
    // Warm up before the clock starts: every partition has a leader in the producer's metadata
    // (a freshly created topic may not, and the first sends would wait for metadata retries).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = p
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|md| {
                md.topics().first().map(|t| {
                    t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions()
                            .iter()
                            .all(|pm| pm.leader() >= 0 && pm.error().is_none())
                })
            })
            .unwrap_or(false);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "topic {topic} has no leaders");
        std::thread::sleep(Duration::from_millis(100));
    }
    // And the idempotent producer has its producer id: until the broker hands one out (it took
    // 0.5 s at times), nothing is sent, while the records' send times are already stamped. One
    // record delivered to a side topic makes sure, without touching the measured topic.
    let warmup = format!("{topic}-feeder-warmup");
    create_topic(bootstrap, &warmup, 1);
    let rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&warmup).payload(b"warm-up");
    send_retrying(&p, rec).expect("produce the warm-up record");
    while p.context().delivered.load(Ordering::Relaxed) == 0 {
        assert!(
            p.context().failed.load(Ordering::Relaxed) == 0,
            "the warm-up record was not delivered"
        );
        assert!(
            Instant::now() < deadline,
            "the warm-up record was not delivered in time"
        );
        p.poll(Duration::from_millis(10));
    }
    p.context().delivered.store(0, Ordering::Relaxed);
    let tmp = sent.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp).expect("create sent file"));
    let start = Instant::now();
    let mut i = 0usize;
    let mut max_behind = 0usize;
    let mut next_report = 5u64;
    while i < n {
        let elapsed = start.elapsed();
        let due = ((elapsed.as_nanos() * rate as u128) / 1_000_000_000) as usize + 1;
        let due = due.min(n);
        max_behind = max_behind.max(due.saturating_sub(i + 1));
        while i < due {
            let sent_ns = now_ns();
            let stamp = sent_ns.to_string();
            let headers = OwnedHeaders::new().insert(Header {
                key: "bench.sent_ns",
                value: Some(stamp.as_bytes()),
            });
            let rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
                .key(ids[i].as_slice())
                .payload(lines[i].as_slice())
                .headers(headers);
            send_retrying(&p, rec).expect("produce");
            out.write_all(&ids[i]).expect("write sent file");
            writeln!(out, "\t{sent_ns}").expect("write sent file");
            i += 1;
        }
        p.poll(Duration::ZERO);
        if elapsed.as_secs() >= next_report {
            eprintln!("kafka_tool: feed: {i} events sent after {next_report} s");
            next_report += 5;
        }
        // Sleep until the next event is due (at least a little, so this is not a spin).
        let next_due = Duration::from_nanos(((i as u128 * 1_000_000_000) / rate as u128) as u64);
        let now = start.elapsed();
        if next_due > now {
            std::thread::sleep((next_due - now).max(Duration::from_micros(200)));
        }
    }
    let send_secs = start.elapsed().as_secs_f64();
    p.flush(Duration::from_secs(60)).expect("flush");
    out.flush().expect("flush sent file");
    drop(out);
    std::fs::rename(&tmp, sent).expect("rename sent file");
    let delivered = p.context().delivered.load(Ordering::Relaxed);
    let failed = p.context().failed.load(Ordering::Relaxed);
    eprintln!(
        "kafka_tool: fed {n} events in {send_secs:.2} s = {:.0} events/s (target {rate}); delivered {delivered}, failed {failed}; at most {max_behind} events behind schedule",
        n as f64 / send_secs
    );
    println!("fed: {n}");
    println!("feed_seconds: {send_secs:.3}");
    println!("feed_rate: {:.0}", n as f64 / send_secs);
    println!("feed_failed: {failed}");
    println!("feed_max_behind: {max_behind}");
}

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

fn latency(
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

#[cfg(test)]
mod tests {
    #[test]
    fn event_id_scan() {
        assert_eq!(
            super::event_id(br#"{"event_id":"evt-1","x":1}"#),
            Some(&b"evt-1"[..])
        );
        assert_eq!(super::event_id(br#"{"event_id":"a\"b"}"#), None);
        assert_eq!(
            super::event_id_owned(br#"{"event_id" : "e2"}"#),
            Some(b"e2".to_vec())
        );
    }
}
