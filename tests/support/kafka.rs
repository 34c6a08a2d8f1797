//! A Kafka broker for the tests: topics, producing, reading back, and `goalpost run` on them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use goalpost::model::SalesEvent;

use super::bin::goalpost;
use super::dirs::{tmp_dir, unique};
use super::events::json_record;
use super::replay::{
    assert_exactly_once, assert_same_results, parse_attainment, replay, Attainment,
};

pub struct Kafka {
    pub bootstrap: String,
}

/// A record read back: partition, key, payload, headers.
pub type RawRecord = (
    i32,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Vec<u8>)>,
);

impl Kafka {
    pub fn connect() -> Kafka {
        let bootstrap = std::env::var("KAFKA_BOOTSTRAP").expect(
            "KAFKA_BOOTSTRAP is not set: run the tests with scripts/test, which starts a local broker",
        );
        Kafka { bootstrap }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let res =
            futures_executor::block_on(admin.create_topics([&t], &AdminOptions::new())).unwrap();
        for r in res {
            r.unwrap_or_else(|(n, e)| panic!("create {n}: {e}"));
        }
        // The controller has it; wait until the broker serves it, with a leader for every
        // partition (on a broker that has just started, metadata can lag by a moment, and a
        // goalpost started at once would report the input topic missing).
        let consumer: BaseConsumer = self.config().create().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ready = consumer
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok()
                .and_then(|md| {
                    md.topics().iter().find(|t| t.name() == name).map(|t| {
                        t.error().is_none()
                            && t.partitions().len() == partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "topic {name} not served with {partitions} led partitions within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the broker knows `topic` (a topic it does not know comes back with an error).
    pub fn topic_exists(&self, topic: &str) -> bool {
        let consumer: BaseConsumer = self.config().create().unwrap();
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        md.topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none())
    }

    /// Sets one configuration value of a topic.
    pub fn set_topic_config(&self, topic: &str, key: &str, value: &str) {
        use rdkafka::admin::AlterConfig;
        use rdkafka::admin::ResourceSpecifier;
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let change = AlterConfig::new(ResourceSpecifier::Topic(topic)).set(key, value);
        let res = futures_executor::block_on(admin.alter_configs([&change], &AdminOptions::new()))
            .unwrap();
        for r in res {
            r.unwrap_or_else(|(spec, e)| panic!("alter {spec:?}: {e}"));
        }
    }

    /// Deletes every record of every partition of `topic` (`DeleteRecords` up to the end offset):
    /// the log start offset becomes the end offset, as when retention removed them all. Returns
    /// the new log start offset of each partition.
    pub fn delete_all_records(&self, topic: &str) -> Vec<i64> {
        let admin: AdminClient<DefaultClientContext> = self.config().create().unwrap();
        let c: BaseConsumer = self.config().create().unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let parts = md.topics()[0].partitions().len() as i32;
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts {
            tpl.add_partition_offset(topic, p, Offset::End).unwrap();
        }
        let res = futures_executor::block_on(admin.delete_records(&tpl, &AdminOptions::new()))
            .unwrap_or_else(|e| panic!("delete records of {topic}: {e}"));
        res.elements()
            .iter()
            .map(|el| {
                if let Err(e) = el.error() {
                    panic!("delete records of {topic} [{}]: {e}", el.partition());
                }
                match el.offset() {
                    Offset::Offset(o) => o,
                    other => panic!("log start offset of {topic}: {other:?}"),
                }
            })
            .collect()
    }

    /// Produces events keyed by event id (so redeliveries land on the same partition).
    pub fn produce_json(&self, topic: &str, events: &[SalesEvent]) {
        let lines: Vec<(String, Vec<u8>)> = events.iter().map(json_record).collect();
        self.produce_raw(topic, &lines);
    }

    pub fn produce_raw(&self, topic: &str, records: &[(String, Vec<u8>)]) {
        self.produce_to(topic, None, records)
    }

    /// Produces to one partition, or by key when `partition` is `None`.
    pub fn produce_to(&self, topic: &str, partition: Option<i32>, records: &[(String, Vec<u8>)]) {
        let with_headers: Vec<(String, Vec<u8>, Option<&str>)> = records
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), None))
            .collect();
        self.produce_with_content_type(topic, partition, &with_headers)
    }

    /// Produces records with binary keys to one partition.
    pub fn produce_bytes_to(&self, topic: &str, partition: i32, records: &[(Vec<u8>, Vec<u8>)]) {
        let p: BaseProducer = self
            .config()
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        for (k, v) in records {
            let rec = BaseRecord::to(topic)
                .key(k.as_slice())
                .payload(v.as_slice())
                .partition(partition);
            p.send(rec).unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }

    /// Produces keyed records in order, to one partition of `topic` (a compacted topic's order
    /// per key); a `None` value is a tombstone.
    pub fn produce_keyed(&self, topic: &str, partition: i32, records: &[(&[u8], Option<&[u8]>)]) {
        let p: BaseProducer = self
            .config()
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        for (k, v) in records {
            let mut rec: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(topic).key(*k).partition(partition);
            if let Some(v) = v {
                rec = rec.payload(*v);
            }
            p.send(rec).unwrap_or_else(|(e, _)| panic!("produce: {e}"));
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }

    /// Produces records, each with an optional `content-type` header.
    pub fn produce_with_content_type(
        &self,
        topic: &str,
        partition: Option<i32>,
        records: &[(String, Vec<u8>, Option<&str>)],
    ) {
        let p: BaseProducer = self
            .config()
            .set("linger.ms", "5")
            .set("enable.idempotence", "true")
            .set("message.max.bytes", "4000000")
            .create()
            .unwrap();
        for (k, v, content_type) in records {
            let mut rec = BaseRecord::to(topic)
                .key(k.as_bytes())
                .payload(v.as_slice());
            if let Some(ct) = content_type {
                rec = rec.headers(rdkafka::message::OwnedHeaders::new().insert(
                    rdkafka::message::Header {
                        key: "content-type",
                        value: Some(*ct),
                    },
                ));
            }
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        rec = r;
                        p.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => panic!("produce: {e}"),
                }
            }
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }

    /// Every committed record of a topic, in partition then offset order.
    pub fn read_all_raw(&self, topic: &str) -> Vec<RawRecord> {
        self.read_all_raw_with(topic, "read_committed")
    }

    /// Every record of a topic visible at `isolation` (`read_committed` or `read_uncommitted`),
    /// in partition then offset order.
    pub fn read_all_raw_with(&self, topic: &str, isolation: &str) -> Vec<RawRecord> {
        self.read_all_at(topic, isolation)
            .into_iter()
            .map(|(_, record)| record)
            .collect()
    }

    /// Every committed record of a topic with its offset, each partition's in offset order.
    /// Offsets skip transaction markers (and aborted records), so a gap in a partition's offsets
    /// separates transactions.
    pub fn read_all_with_offsets(&self, topic: &str) -> Vec<(i64, RawRecord)> {
        self.read_all_at(topic, "read_committed")
    }

    fn read_all_at(&self, topic: &str, isolation: &str) -> Vec<(i64, RawRecord)> {
        let c: BaseConsumer = self
            .config()
            .set("group.id", unique("reader"))
            .set("isolation.level", isolation)
            .set("enable.partition.eof", "true")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let parts = md.topics()[0].partitions().len() as i32;
        assert!(parts > 0, "topic {topic} does not exist");
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut eof = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while (eof.len() as i32) < parts {
            assert!(
                std::time::Instant::now() < deadline,
                "reading {topic} timed out"
            );
            match c.poll(Duration::from_millis(500)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    eof.insert(p);
                }
                Some(Err(e)) => panic!("read {topic}: {e}"),
                Some(Ok(m)) => {
                    use rdkafka::message::Headers;
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push((
                        m.offset(),
                        (
                            m.partition(),
                            m.key().map(<[u8]>::to_vec),
                            m.payload().map(<[u8]>::to_vec),
                            headers,
                        ),
                    ));
                }
            }
        }
        out
    }

    /// Waits until consumer group `group` has committed every partition of `topic` up to its end.
    pub fn wait_group_committed(&self, group: &str, topic: &str, timeout: Duration) {
        let c: BaseConsumer = self.config().set("group.id", group).create().unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let parts = md.topics()[0].partitions().len() as i32;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut tpl = TopicPartitionList::new();
            let mut ends = Vec::new();
            for p in 0..parts {
                tpl.add_partition(topic, p);
                ends.push(
                    c.fetch_watermarks(topic, p, Duration::from_secs(10))
                        .unwrap()
                        .1,
                );
            }
            let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
            let done = committed.elements().iter().all(|el| match el.offset() {
                Offset::Offset(o) => o >= ends[el.partition() as usize],
                _ => ends[el.partition() as usize] == 0,
            });
            if done {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "group {group} did not commit {topic} to its end in time"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn read_all(&self, topic: &str) -> Vec<Attainment> {
        self.read_all_raw(topic)
            .into_iter()
            .map(|(_, _, v, _)| {
                parse_attainment(std::str::from_utf8(&v.expect("payload")).unwrap())
            })
            .collect()
    }

    /// Writes a service config for input `topic` (output `{topic}-out`, application `{topic}-app`).
    pub fn write_config(&self, topic: &str, goals_toml: &str, extra_app: &str) -> PathBuf {
        let dir = tmp_dir();
        std::fs::write(dir.join("goals.toml"), goals_toml).unwrap();
        // 5 s and 100 ms unless the test sets its own.
        let idle = if extra_app.contains("idle_timeout") {
            ""
        } else {
            "idle_timeout = \"5s\""
        };
        let commit = if extra_app.contains("commit_interval") {
            ""
        } else {
            "commit_interval = \"100ms\""
        };
        let cfg = format!(
            r#"
goals = "goals.toml"
[kafka]
bootstrap_servers = "{}"
[app]
application_id = "{topic}-app"
{commit}
{idle}
{extra_app}
[input]
topics = ["{topic}"]
[output]
topic = "{topic}-out"
dead_letter_topic = "{topic}-dlq"
[http]
# An ephemeral port: several instances run side by side.
listen = "127.0.0.1:0"
"#,
            self.bootstrap
        );
        let path = dir.join("goalpost.toml");
        std::fs::write(&path, cfg).unwrap();
        path
    }
}

pub fn goalpost_cmd(config: &Path, instance: &str, args: &[&str]) -> Command {
    let mut c = goalpost();
    c.arg("run")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("GOALPOST_INSTANCE_ID", instance)
        .env("RUST_LOG", "info");
    c
}

/// Starts `goalpost run` with its stderr piped: the log lines arrive on the receiver, which ends
/// when the log does.
pub fn spawn_with_log(
    config: &Path,
    instance: &str,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = goalpost_cmd(config, instance, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start goalpost");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Sends SIGTERM to `child`; whether `kill` succeeded.
pub fn sigterm(child: &std::process::Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success()
}

pub fn run_goalpost(config: &Path, args: &[&str]) -> Output {
    goalpost_cmd(config, "i0", args)
        .output()
        .expect("start goalpost")
}

/// One last `run --until-caught-up --close-all-at-end`, then the output equals replay's.
pub fn finish_and_compare(k: &Kafka, cfg: &Path, name: &str, goals: &str, events: &[SalesEvent]) {
    let out = run_goalpost(cfg, &["--until-caught-up", "--close-all-at-end"]);
    assert_succeeded_with_replays_results(k, &out, name, goals, events);
}

/// The run exited 0, and `{name}-out` holds every attainment event once, with replay's results.
pub fn assert_succeeded_with_replays_results(
    k: &Kafka,
    out: &Output,
    name: &str,
    goals: &str,
    events: &[SalesEvent],
) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live = k.read_all(&format!("{name}-out"));
    assert_exactly_once(&live);
    assert_same_results(goals, &replay(goals, events), &live);
}
