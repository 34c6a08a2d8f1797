//! Reading a sink's state topic back when partitions are assigned: each partition up to its
//! high watermark, the latest value of every key (tombstoned keys left out).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::error::NotifyError;
use super::sink::StateRecord;

/// How long reading a state topic may take.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a metadata call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The state records of `partitions` of `topic`, per partition.
pub fn read(
    client: &ClientConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, Vec<StateRecord>>, NotifyError> {
    let kafka = |what: &str| {
        let what = format!("{what} of state topic `{topic}`");
        move |e| NotifyError::kafka(&what, e)
    };
    let mut cc = client.clone();
    cc.set("enable.auto.commit", "false")
        .set("group.id", "goalpost-notify-state-reader")
        .set("isolation.level", "read_uncommitted");
    let consumer: BaseConsumer = cc.create().map_err(kafka("create a reader"))?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for &p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, CALL_TIMEOUT)
            .map_err(kafka("read the offsets"))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(kafka("assign"))?;
            ends.insert(p, high);
        }
    }
    let mut latest: BTreeMap<i32, BTreeMap<Vec<u8>, Option<Vec<u8>>>> = BTreeMap::new();
    if !ends.is_empty() {
        consumer.assign(&tpl).map_err(kafka("assign"))?;
        read_to_ends(&consumer, topic, &mut ends, &mut latest)?;
    }
    Ok(partitions
        .iter()
        .map(|&p| {
            let records = latest
                .remove(&p)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| v.is_some())
                .collect();
            (p, records)
        })
        .collect())
}

type Latest = BTreeMap<i32, BTreeMap<Vec<u8>, Option<Vec<u8>>>>;

fn read_to_ends(
    consumer: &BaseConsumer,
    topic: &str,
    ends: &mut BTreeMap<i32, i64>,
    latest: &mut Latest,
) -> Result<(), NotifyError> {
    let deadline = Instant::now() + READ_TIMEOUT;
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(NotifyError::Topic(format!(
                "reading state topic `{topic}` took longer than {}s",
                READ_TIMEOUT.as_secs()
            )));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            drop_reached(consumer, ends);
            continue;
        };
        let msg = msg.map_err(|e| NotifyError::kafka(&format!("read state topic `{topic}`"), e))?;
        let p = msg.partition();
        if let Some(key) = msg.key() {
            latest
                .entry(p)
                .or_default()
                .insert(key.to_vec(), msg.payload().map(<[u8]>::to_vec));
        }
        if ends.get(&p).is_some_and(|&end| msg.offset() + 1 >= end) {
            ends.remove(&p);
        }
    }
    Ok(())
}

/// Drops the partitions whose position reached their end (the last records may be gone to
/// compaction or be transaction markers).
fn drop_reached(consumer: &BaseConsumer, ends: &mut BTreeMap<i32, i64>) {
    if let Ok(positions) = consumer.position() {
        for e in positions.elements() {
            if let (Offset::Offset(o), Some(&end)) = (e.offset(), ends.get(&e.partition())) {
                if o >= end {
                    ends.remove(&e.partition());
                }
            }
        }
    }
}
