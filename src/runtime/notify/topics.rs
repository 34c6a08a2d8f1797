//! The topics `goalpost notify` reads and writes: the attainment topic must exist; the notify
//! dead-letter topic and the sinks' compacted state topics (partitioned like the attainment
//! topic) are created when missing and `app.create_topics` allows.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use super::error::NotifyError;
use crate::runtime::kafka::admin::partition_counts;
use crate::runtime::kafka::RunConfig;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A topic notify writes: its name and whether it is compacted.
pub type Wanted = (String, bool);

/// Checks the attainment topic and creates the missing `wanted` topics; returns the attainment
/// topic's partition count.
pub fn prepare(
    cfg: &RunConfig,
    client: &ClientConfig,
    wanted: &[Wanted],
) -> Result<i32, NotifyError> {
    let topic = &cfg.output.topic;
    let mut names: Vec<String> = wanted.iter().map(|(n, _)| n.clone()).collect();
    names.push(topic.clone());
    let counts = partition_counts(client, &names).map_err(|e| NotifyError::Topic(e.to_string()))?;
    let partitions = *counts.get(topic).ok_or_else(|| {
        NotifyError::Topic(format!(
            "the attainment topic `{topic}` ([output] topic) does not exist: start `goalpost run` first"
        ))
    })?;
    let mut missing = Vec::new();
    for (name, compact) in wanted {
        match counts.get(name) {
            Some(&n) if *compact && n != partitions => {
                return Err(NotifyError::Topic(format!(
                    "the state topic `{name}` has {n} partitions; it needs {partitions}, as many as `{topic}`"
                )))
            }
            Some(_) => {}
            None => missing.push((name.clone(), *compact)),
        }
    }
    if !missing.is_empty() {
        if !cfg.app.create_topics {
            let list: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
            return Err(NotifyError::Topic(format!(
                "missing topic(s) {}: create them, or set app.create_topics = true",
                list.join(", ")
            )));
        }
        create(cfg, client, &missing, partitions)?;
    }
    Ok(partitions)
}

fn create(
    cfg: &RunConfig,
    client: &ClientConfig,
    topics: &[Wanted],
    partitions: i32,
) -> Result<(), NotifyError> {
    let admin: AdminClient<DefaultClientContext> = client
        .create()
        .map_err(|e| NotifyError::kafka("create an admin client", e))?;
    let replication = cfg.app.replication_factor;
    let specs: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, compact)| {
            let t = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
            if *compact {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics(specs.iter(), &opts))
        .map_err(|e| NotifyError::kafka("create topics", e))?;
    for r in results {
        match r {
            Ok(name) => tracing::info!(topic = %name, partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(NotifyError::Topic(format!(
                    "cannot create topic `{name}`: {code}"
                )))
            }
        }
    }
    Ok(())
}
