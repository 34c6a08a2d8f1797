//! What `goalpost notify` writes to Kafka: dead letters and sink state records, produced by one
//! idempotent producer and flushed before offsets are committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::dead_letters::DeadLetter;
use super::error::NotifyError;
use super::sink::StateRecord;

/// How long a flush may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts records the broker did not take.
#[derive(Default)]
struct Ctx {
    failed: Arc<AtomicU64>,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "a dead letter or state record was not written");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The producer of dead letters and state records.
pub struct Output {
    producer: ThreadedProducer<Ctx>,
    failed: Arc<AtomicU64>,
    dead_letter_topic: String,
}

impl Output {
    /// An idempotent producer (`acks=all`) writing dead letters to `dead_letter_topic`.
    pub fn new(client: &ClientConfig, dead_letter_topic: String) -> Result<Output, NotifyError> {
        let mut pc = client.clone();
        pc.set("enable.idempotence", "true").set("acks", "all");
        let ctx = Ctx::default();
        let failed = ctx.failed.clone();
        let producer = pc
            .create_with_context(ctx)
            .map_err(|e| NotifyError::kafka("create the producer", e))?;
        Ok(Output {
            producer,
            failed,
            dead_letter_topic,
        })
    }

    /// Queues a dead letter.
    pub fn dead_letter(&self, d: &DeadLetter) -> Result<(), NotifyError> {
        let mut headers = OwnedHeaders::new_with_capacity(d.headers.len());
        for (k, v) in &d.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut r = BaseRecord::<[u8], [u8]>::to(&self.dead_letter_topic)
            .payload(&d.value[..])
            .headers(headers);
        if let Some(k) = &d.key {
            r = r.key(&k[..]);
        }
        self.send(r)
    }

    /// Queues a state record of `topic` to `partition`.
    pub fn state(
        &self,
        topic: &str,
        partition: i32,
        record: &StateRecord,
    ) -> Result<(), NotifyError> {
        let (key, value) = record;
        let mut r = BaseRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .key(&key[..]);
        if let Some(v) = value {
            r = r.payload(&v[..]);
        }
        self.send(r)
    }

    fn send(&self, mut r: BaseRecord<'_, [u8], [u8]>) -> Result<(), NotifyError> {
        loop {
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    r = back;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(NotifyError::kafka("queue a record", e)),
            }
        }
    }

    /// Waits until every queued record is written; an error if any was not (offsets must not be
    /// committed then).
    pub fn flush(&self) -> Result<(), NotifyError> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| NotifyError::kafka("flush dead letters and state records", e))?;
        match self.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => Err(NotifyError::Lost(n)),
        }
    }
}
