//! Producing: every line of a file as fast as the broker takes it, or at a steady rate.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::{base_config, create_topic, now_ns};

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

pub fn produce(bootstrap: &str, topic: &str, partitions: i32, file: &PathBuf) {
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

#[allow(clippy::too_many_arguments)]
pub fn feed(
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
