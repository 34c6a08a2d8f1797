//! The feeder: generated events at a steady rate to the input topic.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::INPUT_TOPIC;
use crate::codec::json;
use crate::generate::{GenerateConfig, Generator};
use crate::model::Timestamp;

/// How often the feeder tops up its token bucket.
const TICK: StdDuration = StdDuration::from_millis(10);

/// What the feeder has sent.
#[derive(Default)]
pub struct FeedStats {
    /// Events the cluster accepted.
    pub delivered: AtomicU64,
    /// Events it did not.
    pub failed: AtomicU64,
    /// Largest `occurred_at` sent, in nanoseconds; 0 before the first.
    pub latest: AtomicI64,
}

impl FeedStats {
    pub(super) fn event_date(&self) -> String {
        match self.latest.load(Ordering::Relaxed) {
            0 => "-".to_string(),
            n => Timestamp::from_nanos(n)
                .to_datetime()
                .format("%Y-%m-%d")
                .to_string(),
        }
    }
}

struct FeedContext {
    stats: Arc<FeedStats>,
}

impl ClientContext for FeedContext {}

impl ProducerContext for FeedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.stats.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                tracing::warn!(error = %e, "demo feeder: event not delivered");
                self.stats.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Produces generated events (seed `seed`, JSON keyed by `event_id`) to the demo's input topic at
/// `rate` per second until `stop` is set.
pub fn feed_events(
    bootstrap: &str,
    rate: u64,
    seed: u64,
    stop: &AtomicBool,
    stats: &Arc<FeedStats>,
) -> Result<(), String> {
    let producer: BaseProducer<FeedContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create_with_context(FeedContext {
            stats: stats.clone(),
        })
        .map_err(|e| format!("cannot create the feeder's producer: {e}"))?;
    let mut generator = Generator::new(GenerateConfig {
        seed,
        events: u64::MAX,
        ..GenerateConfig::default()
    });
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut buf = Vec::with_capacity(1024);
    'feed: while !stop.load(Ordering::Relaxed) {
        // A token bucket refilled every tick: `rate` events per second on average.
        let due = (started.elapsed().as_nanos() * rate as u128 / 1_000_000_000) as u64;
        while sent < due {
            let Some(event) = generator.next() else {
                break 'feed;
            };
            buf.clear();
            json::encode_event(&event, &mut buf);
            let record = BaseRecord::to(INPUT_TOPIC)
                .key(event.event_id.as_bytes())
                .payload(buf.as_slice());
            if !send(&producer, record, stop)? {
                break 'feed;
            }
            stats
                .latest
                .fetch_max(event.occurred_at.as_nanos(), Ordering::Relaxed);
            sent += 1;
            if stop.load(Ordering::Relaxed) {
                break 'feed;
            }
        }
        // Serve delivery reports until the next tick.
        let next = started + TICK * ((started.elapsed().as_nanos() / TICK.as_nanos()) as u32 + 1);
        producer.poll(next.saturating_duration_since(Instant::now()));
    }
    producer
        .flush(StdDuration::from_secs(10))
        .map_err(|e| format!("cannot flush the feeder's producer: {e}"))
}

/// Sends one record, waiting while the producer's queue is full; `Ok(false)` when `stop` was set
/// while it waited.
fn send(
    producer: &BaseProducer<FeedContext>,
    mut record: BaseRecord<'_, [u8], [u8]>,
    stop: &AtomicBool,
) -> Result<bool, String> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(StdDuration::from_millis(5));
                if stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Err((e, _)) => return Err(format!("cannot produce an event: {e}")),
        }
    }
}
