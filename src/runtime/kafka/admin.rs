//! Topic checks and creation.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;

use super::config::RunConfig;
use super::{RunError, SetupError};

const TIMEOUT: StdDuration = StdDuration::from_secs(30);

/// Partition counts of the topics that exist, among `names`.
pub fn partition_counts(
    client: &ClientConfig,
    names: &[String],
) -> Result<BTreeMap<String, i32>, RunError> {
    let consumer: rdkafka::consumer::BaseConsumer = client
        .create()
        .map_err(|e| RunError::kafka("create a metadata client", e))?;
    let md = consumer.fetch_metadata(None, TIMEOUT).map_err(|e| {
        RunError::kafka(
            "fetch cluster metadata (is the broker reachable, are the credentials right?)",
            e,
        )
    })?;
    let mut out = BTreeMap::new();
    for t in md.topics() {
        if names.iter().any(|n| n == t.name()) && t.error().is_none() && !t.partitions().is_empty()
        {
            out.insert(t.name().to_string(), t.partitions().len() as i32);
        }
    }
    Ok(out)
}

/// An existing changelog must be compacted: with `cleanup.policy=delete` alone, window state and
/// dedupe memory would expire with the retention time, and a restore would silently miss them.
/// A policy that cannot be read (no DescribeConfigs permission, say) is a warning, not an error.
fn check_compacted(client: &ClientConfig, changelog: &str) -> Result<(), RunError> {
    match cleanup_policy(client, changelog)? {
        Ok(policy) if !is_compacted(&policy) => Err(SetupError::NotCompacted {
            topic: changelog.to_string(),
            policy,
        }
        .into()),
        Ok(_) => Ok(()),
        Err(why) => {
            tracing::warn!(
                topic = changelog,
                reason = %why,
                "cannot verify that the changelog topic is compacted (cleanup.policy=compact)"
            );
            Ok(())
        }
    }
}

/// An existing progress topic should be compacted, or its table of windows grows with every
/// update and expires with the retention time; it still works, so this is a warning.
fn warn_unless_compacted(client: &ClientConfig, topic: &str) -> Result<(), RunError> {
    if let Ok(policy) = cleanup_policy(client, topic)? {
        if !is_compacted(&policy) {
            tracing::warn!(
                topic,
                policy = %policy,
                "the progress topic is not compacted: set cleanup.policy=compact to keep the latest record of each window"
            );
        }
    }
    Ok(())
}

/// Whether a `cleanup.policy` value includes `compact`.
pub fn is_compacted(policy: &str) -> bool {
    policy.split(',').any(|p| p.trim() == "compact")
}

/// The `cleanup.policy` of `topic` (empty if the broker gives none), or why it cannot be read.
pub fn cleanup_policy(
    client: &ClientConfig,
    topic: &str,
) -> Result<Result<String, String>, RunError> {
    let admin: AdminClient<DefaultClientContext> = client
        .create()
        .map_err(|e| RunError::kafka("create an admin client", e))?;
    let results = match futures_executor::block_on(admin.describe_configs(
        [ResourceSpecifier::Topic(topic)].iter(),
        &AdminOptions::new().request_timeout(Some(StdDuration::from_secs(10))),
    )) {
        Ok(results) => results,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let Some(result) = results.into_iter().next() else {
        return Ok(Err("no answer for the topic".to_string()));
    };
    Ok(result
        .map(|resource| {
            resource
                .get("cleanup.policy")
                .and_then(|e| e.value.clone())
                .unwrap_or_default()
        })
        .map_err(|code| code.to_string()))
}

/// Topics as [`prepare_topics`] left them.
#[derive(Debug)]
pub struct PreparedTopics {
    /// Partition count per input topic.
    pub inputs: BTreeMap<String, i32>,
    /// The number of owner partitions (the largest input partition count).
    pub owners: i32,
    /// The topics created by this call (each with `owners` partitions).
    pub created: Vec<String>,
}

/// A topic goalpost writes: (name, compacted, internal: its partition count must match the
/// input's).
type Wanted = (String, bool, bool);

/// Checks that the cluster accepts the connection (see `preflight`), then checks the input topics
/// and creates (or checks) the internal and output topics.
/// `check_policy`: read an existing changelog's `cleanup.policy` (see [`check_compacted`]).
pub fn prepare_topics(
    cfg: &RunConfig,
    client: &ClientConfig,
    check_policy: bool,
) -> Result<PreparedTopics, RunError> {
    // Wrong credentials or a failed TLS handshake end the run here, within a second or so,
    // instead of as a metadata timeout.
    super::preflight::check_connection(cfg, client, TIMEOUT)?;
    let inputs = partition_counts(client, &cfg.input.topics)?;
    for t in &cfg.input.topics {
        if !inputs.contains_key(t) {
            return Err(SetupError::InputTopicMissing {
                topic: t.clone(),
                bootstrap: cfg.kafka.bootstrap_servers.clone(),
            }
            .into());
        }
    }
    let owners = *inputs.values().max().expect("at least one input topic");

    let repartition = cfg.repartition_topic();
    let changelog = cfg.changelog_topic();
    let mut wanted: Vec<Wanted> = vec![
        (repartition.clone(), false, true),
        (changelog.clone(), true, true),
        (cfg.output.topic.clone(), false, false),
        (cfg.dead_letter_topic(), false, false),
    ];
    if let Some(progress) = &cfg.output.progress_topic {
        wanted.push((progress.clone(), true, false));
    }
    let names: Vec<String> = wanted.iter().map(|w| w.0.clone()).collect();
    let existing = partition_counts(client, &names)?;
    let mut missing = Vec::new();
    for (name, _compact, internal) in &wanted {
        match existing.get(name) {
            Some(n) if *internal && *n != owners => {
                return Err(SetupError::PartitionMismatch {
                    topic: name.clone(),
                    partitions: *n,
                    owners,
                }
                .into())
            }
            Some(_) => {}
            None => missing.push(name.clone()),
        }
    }
    if check_policy && !missing.contains(&changelog) {
        check_compacted(client, &changelog)?;
    }
    if let Some(progress) = cfg.output.progress_topic.as_ref() {
        if check_policy && !missing.contains(progress) {
            warn_unless_compacted(client, progress)?;
        }
    }
    if missing.is_empty() {
        return Ok(PreparedTopics {
            inputs,
            owners,
            created: Vec::new(),
        });
    }
    if !cfg.app.create_topics {
        return Err(SetupError::TopicsMissing(missing).into());
    }
    let wanted: Vec<&Wanted> = wanted.iter().filter(|w| missing.contains(&w.0)).collect();
    let created = create_topics(cfg, client, &wanted, owners)?;
    Ok(PreparedTopics {
        inputs,
        owners,
        created,
    })
}

/// Creates `topics` with `owners` partitions each; returns those this call created (another
/// instance may have created some meanwhile).
fn create_topics(
    cfg: &RunConfig,
    client: &ClientConfig,
    topics: &[&Wanted],
    owners: i32,
) -> Result<Vec<String>, RunError> {
    let admin: AdminClient<DefaultClientContext> = client
        .create()
        .map_err(|e| RunError::kafka("create an admin client", e))?;
    let specs: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, compact, _)| {
            let t = NewTopic::new(
                name,
                owners,
                TopicReplication::Fixed(cfg.app.replication_factor),
            );
            if *compact {
                t.set("cleanup.policy", "compact")
            } else {
                t
            }
        })
        .collect();
    let results = futures_executor::block_on(admin.create_topics(
        specs.iter(),
        &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
    ))
    .map_err(|e| RunError::kafka("create topics", e))?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => {
                tracing::info!(topic = %name, partitions = owners, "created topic");
                created.push(name);
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(SetupError::CreateTopic { topic: name, code }.into()),
        }
    }
    Ok(created)
}
