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
//! Build: `cargo build --release --example kafka_tool` (registered in `Cargo.toml` from `tools/`). Results go to stdout as `key: value`
//! lines (for the scripts to pick up); progress goes to stderr.
//!
//! `produce` writes records (`produce`, `feed`), `consume` reads them (`drain`, `watch`),
//! `latency` measures.

mod consume;
mod latency;
mod produce;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use consume::{drain, watch};
use latency::latency;
use produce::{feed, produce};

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
