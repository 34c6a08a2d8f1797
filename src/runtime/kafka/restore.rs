//! Reading a changelog partition back into state.

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::RunError;

/// Client context of the restore consumer: reaching the end of the partition is how a restore
/// ends, not an error worth logging.
struct RestoreContext;

impl rdkafka::ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_)
                | KafkaError::MessageConsumption(RDKafkaErrorCode::PartitionEOF)
        ) || reason.contains("reached end of partition");
        if !eof {
            tracing::warn!(error = %error, reason, "restore consumer error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for RestoreContext {}

/// The latest value of every key in one changelog partition (tombstoned keys removed).
pub fn read_partition(
    base: &ClientConfig,
    topic: &str,
    partition: i32,
) -> Result<HashMap<Vec<u8>, Vec<u8>>, RunError> {
    let mut cfg = base.clone();
    cfg.set("group.id", format!("{topic}-restore"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // The end of the partition is signalled after a fetch that waits up to this long.
        .set("fetch.wait.max.ms", "10");
    let consumer: BaseConsumer<RestoreContext> = cfg
        .create_with_context(RestoreContext)
        .map_err(|e| RunError::kafka("create the restore consumer", e))?;
    // If this fails (e.g. metadata lagging after a broker restart), the worker retries the whole
    // rebuild every second without processing these partitions.
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, StdDuration::from_secs(10))
        .map_err(|e| RunError::kafka("read changelog offsets", e))?;
    let mut state = HashMap::new();
    if high <= low {
        return Ok(state);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(|e| RunError::kafka("assign the changelog partition", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| RunError::kafka("assign the changelog partition", e))?;
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut records: u64 = 0;
    loop {
        match consumer.poll(StdDuration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => {
                if let KafkaError::MessageConsumption(RDKafkaErrorCode::PartitionEOF) = e {
                    break;
                }
                return Err(RunError::kafka("read the changelog", e));
            }
            Some(Ok(m)) => {
                records += 1;
                if let Some(k) = m.key() {
                    match m.payload() {
                        Some(v) => {
                            state.insert(k.to_vec(), v.to_vec());
                        }
                        None => {
                            state.remove(k);
                        }
                    }
                }
                if last_log.elapsed() >= StdDuration::from_secs(2) {
                    last_log = Instant::now();
                    tracing::info!(
                        topic,
                        partition,
                        offset = m.offset(),
                        end = high,
                        "restoring: {:.0}%",
                        100.0 * (m.offset() - low) as f64 / (high - low).max(1) as f64
                    );
                }
            }
        }
    }
    tracing::info!(
        topic,
        partition,
        records,
        keys = state.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "restored changelog partition"
    );
    Ok(state)
}
