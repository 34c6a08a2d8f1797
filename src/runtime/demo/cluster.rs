//! The mock cluster: a client that owns it, and the topics `goalpost run` would create.

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientContext;

use super::DemoError;
use crate::runtime::kafka::RunConfig;

/// Creates on the mock cluster every topic `prepare_topics` would (the mock broker has no
/// CreateTopics API), each with `partitions` partitions; returns their names.
pub fn create_topics<C: ClientContext>(
    mock: &MockCluster<'_, C>,
    cfg: &RunConfig,
    partitions: i32,
) -> Result<Vec<String>, DemoError> {
    let mut topics = cfg.input.topics.clone();
    topics.extend([
        cfg.repartition_topic(),
        cfg.changelog_topic(),
        cfg.output.topic.clone(),
        cfg.dead_letter_topic(),
    ]);
    for t in &topics {
        mock.create_topic(t, partitions, 1)
            .map_err(DemoError::kafka(format!(
                "create topic `{t}` on the mock cluster"
            )))?;
    }
    Ok(topics)
}

/// A client that owns a one-broker mock cluster (`test.mock.num.brokers`), whose consumer groups
/// form at once: by default the mock broker holds a new group's first join for 3 seconds. The
/// cluster lives as long as the client (`client().mock_cluster()`).
pub fn mock_cluster_owner() -> Result<BaseProducer, DemoError> {
    let holder: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", "1")
        .create()
        .map_err(DemoError::kafka("start the mock Kafka cluster"))?;
    // SAFETY: `holder` is a live client handle for the whole block, and
    // `rd_kafka_handle_mock_cluster` returns the mock cluster it owns (checked non-null), which
    // lives as long as `holder`. The setter only writes a default under the cluster's lock.
    unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(holder.client().native_ptr());
        if !cluster.is_null() {
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        }
    }
    Ok(holder)
}
