//! The rules a configuration must follow beyond its shape.

use std::collections::BTreeMap;
use std::path::Path;

use super::{AppConfig, ConfigError, RunConfig};

/// librdkafka properties goalpost sets itself.
const OWNED_PROPERTIES: &[&str] = &[
    "group.id",
    "isolation.level",
    "transactional.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "bootstrap.servers",
    "partition.assignment.strategy",
    "enable.idempotence",
];

impl RunConfig {
    /// Checks the rules that parsing alone does not; the error says what is wrong and what is
    /// allowed.
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return Err(
                "kafka.bootstrap_servers is empty: give HOST:PORT[,HOST:PORT...] (or set KAFKA_BOOTSTRAP)"
                    .into(),
            );
        }
        if self.input.topics.is_empty() {
            return Err("input.topics is empty: name at least one topic".into());
        }
        check_app(&self.app)?;
        self.input.check_max_record_bytes(&self.kafka.properties)?;
        self.check_topic_roles()?;
        self.http.validate()?;
        self.notify.validate()?;
        check_owned_properties(&self.kafka.properties)
    }

    /// Each topic has one role: reading an output back as input, or writing two outputs into one
    /// topic, would loop records or mix their formats.
    fn check_topic_roles(&self) -> Result<(), String> {
        let mut roles: Vec<(String, String)> = self
            .input
            .topics
            .iter()
            .map(|t| ("input.topics".to_string(), t.clone()))
            .collect();
        roles.push(("output.topic".into(), self.output.topic.clone()));
        roles.push(("output.dead_letter_topic".into(), self.dead_letter_topic()));
        if let Some(progress) = &self.output.progress_topic {
            roles.push(("output.progress_topic".into(), progress.clone()));
        }
        roles.push(("the repartition topic".into(), self.repartition_topic()));
        roles.push(("the changelog topic".into(), self.changelog_topic()));
        for (i, (role, topic)) in roles.iter().enumerate() {
            if topic.is_empty() {
                return Err(format!("{role} is an empty topic name"));
            }
            if let Some((other, _)) = roles[..i].iter().find(|(_, t)| t == topic) {
                return Err(if other == role {
                    format!("{role} names `{topic}` twice")
                } else {
                    format!("`{topic}` is both {other} and {role}: each topic has one role")
                });
            }
        }
        Ok(())
    }

    /// Checks what depends on the goal file: `metrics.progress_gauges` must name its goals.
    pub fn check_goals(
        &self,
        goals: &crate::goals::GoalSet,
        path: &Path,
    ) -> Result<(), ConfigError> {
        for id in &self.metrics.progress_gauges {
            if !goals.goals.iter().any(|g| &*g.id == id) {
                let known: Vec<&str> = goals.goals.iter().map(|g| &*g.id).collect();
                return Err(ConfigError::Invalid {
                    path: path.display().to_string(),
                    message: format!(
                        "metrics.progress_gauges names `{id}`, which is not a goal in {}; its goals: {}",
                        self.goals.display(),
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

fn check_app(app: &AppConfig) -> Result<(), String> {
    let id = &app.application_id;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "app.application_id `{id}` must be non-empty ASCII letters, digits, '.', '_' or '-'"
        ));
    }
    if app.commit_interval.is_zero() {
        return Err("app.commit_interval must be greater than 0".into());
    }
    if app.replication_factor < 1 {
        return Err(format!(
            "app.replication_factor `{}` must be at least 1 (and at most the number of brokers)",
            app.replication_factor
        ));
    }
    if app.dedupe_max_ids == 0 {
        return Err("app.dedupe_max_ids `0` must be at least 1 (default 5000000)".into());
    }
    Ok(())
}

fn check_owned_properties(properties: &BTreeMap<String, String>) -> Result<(), String> {
    match properties
        .keys()
        .find(|key| OWNED_PROPERTIES.contains(&key.as_str()))
    {
        Some(key) => Err(format!(
            "kafka.properties.\"{key}\" is set by goalpost and cannot be overridden"
        )),
        None => Ok(()),
    }
}
