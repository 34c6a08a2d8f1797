//! One builder per Kafka client role (transactional producer, group consumer, restore consumer)
//! and the client contexts that note broker disruptions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::config::RunConfig;

/// Bytes per record goalpost can split (dedupe changelog records, contribution batches), at most
/// (about): well under librdkafka's default `message.max.bytes` of 1,000,000, however many events
/// a transaction takes; half of `message.max.bytes` when that is set lower.
pub const MAX_SPLIT_RECORD_BYTES: usize = 256 * 1024;

/// `message.max.bytes` as `kafka.properties` sets it, if it does.
pub fn message_max_bytes(cfg: &RunConfig) -> Option<&str> {
    cfg.kafka
        .properties
        .get("message.max.bytes")
        .map(String::as_str)
}

/// The size at which records goalpost can split are split (see [`MAX_SPLIT_RECORD_BYTES`]).
pub fn split_bytes(cfg: &RunConfig) -> usize {
    message_max_bytes(cfg)
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(MAX_SPLIT_RECORD_BYTES, |max| {
            (max / 2).min(MAX_SPLIT_RECORD_BYTES)
        })
}

/// Sets goalpost's default for each property that `kafka.properties` leaves unset.
fn set_defaults(client: &mut ClientConfig, cfg: &RunConfig, defaults: &[(&str, &str)]) {
    for (key, value) in defaults {
        if !cfg.kafka.properties.contains_key(*key) {
            client.set(*key, *value);
        }
    }
}

/// The transactional producer's configuration (`transactional.id` = `txn_id`).
pub fn producer_config(cfg: &RunConfig, client: &ClientConfig, txn_id: &str) -> ClientConfig {
    let mut pc = client.clone();
    pc.set("transactional.id", txn_id)
        .set("enable.idempotence", "true");
    let defaults = [
        // Nothing produced is visible to read_committed readers before the commit, which flushes
        // at once (see `Txn::commit`): a long linger costs no latency and makes fewer, larger
        // produce requests.
        ("linger.ms", "50"),
        ("compression.type", "lz4"),
        ("transaction.timeout.ms", "60000"),
        // A transaction begun right after a commit may be told CONCURRENT_TRANSACTIONS; retry
        // soon, and keep retrying soon: librdkafka doubles the backoff on every retry (up to 1 s
        // by default).
        ("retry.backoff.ms", "10"),
        ("retry.backoff.max.ms", "100"),
    ];
    set_defaults(&mut pc, cfg, &defaults);
    pc
}

/// The group consumer's configuration: the application's group, cooperative-sticky, read
/// committed, offsets committed only through transactions. With an HTTP URL to advertise, the
/// `client.id` carries it to the group's member list, unless `kafka.properties` sets one.
pub fn consumer_config(
    cfg: &RunConfig,
    client: &ClientConfig,
    instance: &str,
    advertised_url: Option<&str>,
) -> ClientConfig {
    let mut cc = client.clone();
    let defaults = [
        // A crashed instance's partitions move on after this long (librdkafka default 45 s).
        ("session.timeout.ms", "10000"),
        // One fetch is outstanding per broker: a fetch parked on quiet repartition partitions
        // must not keep the busy input partitions waiting for the default 500 ms.
        ("fetch.wait.max.ms", "20"),
        // When the local queue is full librdkafka postpones fetching (1 s by default in 2.x),
        // which starves processing that is slower than fetching; retry soon instead.
        ("fetch.queue.backoff.ms", "20"),
    ];
    set_defaults(&mut cc, cfg, &defaults);
    if let Some(url) = advertised_url {
        if !cfg.kafka.properties.contains_key("client.id") {
            cc.set("client.id", crate::serve::peers::client_id(instance, url));
        }
    }
    cc.set("group.id", &cfg.app.application_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    cc
}

/// The restore consumer's configuration: reads changelog partitions it assigns itself, to their
/// end, read committed.
pub fn restore_config(base: &ClientConfig, changelog: &str) -> ClientConfig {
    let mut cfg = base.clone();
    cfg.set("group.id", format!("{changelog}-restore"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // The end of the partition is signalled after a fetch that waits up to this long.
        .set("fetch.wait.max.ms", "10");
    cfg
}

/// The transactional producer's context: notes broker disruptions; deliveries are checked through
/// the transaction's outcome, not one by one.
pub struct ProducerCtx {
    /// Set when a broker connection fails.
    pub disrupted: Arc<AtomicBool>,
}

impl ClientContext for ProducerCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        note_client_error(&self.disrupted, error, reason);
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Logs a client-wide error as rdkafka does, and remembers lost broker connections.
pub fn note_client_error(disrupted: &AtomicBool, error: KafkaError, reason: &str) {
    if is_disruption(error.rdkafka_error_code()) {
        disrupted.store(true, Ordering::Relaxed);
    }
    tracing::error!(target: "rdkafka::client", "librdkafka: {error}: {reason}");
}

/// Whether a client error means a broker connection was lost.
fn is_disruption(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode as Code;
    matches!(
        code,
        Some(Code::BrokerTransportFailure | Code::AllBrokersDown | Code::Resolve)
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(properties: &str) -> RunConfig {
        let text = format!(
            r#"
goals = "goals.toml"
[kafka]
bootstrap_servers = "127.0.0.1:9092"
[kafka.properties]
{properties}
[app]
application_id = "app"
[input]
topics = ["in"]
[output]
topic = "out"
"#
        );
        RunConfig::from_toml(&text, Path::new("goalpost.toml")).unwrap()
    }

    #[test]
    fn kafka_properties_override_goalposts_defaults() {
        let cfg = config(r#""linger.ms" = "5""#);
        let pc = producer_config(&cfg, &cfg.client_config(), "app-0");
        assert_eq!(pc.get("linger.ms"), Some("5"));
        assert_eq!(pc.get("compression.type"), Some("lz4"));
        assert_eq!(pc.get("transactional.id"), Some("app-0"));
        assert_eq!(pc.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn the_consumer_reads_committed_and_never_commits_by_itself() {
        let cfg = config(r#""session.timeout.ms" = "5000""#);
        let cc = consumer_config(&cfg, &cfg.client_config(), "i", Some("http://h:1"));
        assert_eq!(cc.get("isolation.level"), Some("read_committed"));
        assert_eq!(cc.get("enable.auto.commit"), Some("false"));
        assert_eq!(cc.get("group.id"), Some("app"));
        assert_eq!(cc.get("session.timeout.ms"), Some("5000"));
        assert_eq!(cc.get("fetch.wait.max.ms"), Some("20"));
        assert!(cc.get("client.id").is_some());
        let cfg = config(r#""client.id" = "mine""#);
        let cc = consumer_config(&cfg, &cfg.client_config(), "i", Some("http://h:1"));
        assert_eq!(cc.get("client.id"), Some("mine"));
    }

    #[test]
    fn split_records_stay_under_half_of_message_max_bytes() {
        assert_eq!(split_bytes(&config("")), MAX_SPLIT_RECORD_BYTES);
        assert_eq!(
            split_bytes(&config(r#""message.max.bytes" = "20000""#)),
            10_000
        );
        assert_eq!(
            split_bytes(&config(r#""message.max.bytes" = "100000000""#)),
            MAX_SPLIT_RECORD_BYTES
        );
    }

    #[test]
    fn lost_connections_count_as_disruptions() {
        assert!(is_disruption(Some(RDKafkaErrorCode::AllBrokersDown)));
        assert!(!is_disruption(Some(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(!is_disruption(None));
    }
}
