//! Consuming: the bare consumer baseline, and watching a group's committed offsets.

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{base_config, now_ns, unique};

pub fn drain(bootstrap: &str, topic: &str) {
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

pub fn watch(bootstrap: &str, group: &str, topic: &str, seconds: u64) {
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
