//! `goalpost run --config goalpost.toml`: the service configuration, one file per section.

mod app;
mod de;
mod input;
mod kafka;
mod output;
#[cfg(test)]
mod tests;
mod validate;

use std::path::{Path, PathBuf};

use rdkafka::config::ClientConfig;
use serde::Deserialize;
use thiserror::Error;

use crate::notify::NotifyConfig;
use crate::serve::{HttpConfig, Instance, MetricsConfig};
pub use app::AppConfig;
pub use input::InputConfig;
pub use kafka::{is_secret_key, redact_secrets_in, redacted_properties, KafkaConfig, REDACTED};
pub use output::OutputConfig;

/// Why a service configuration was not accepted.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config `{path}`: {cause}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// Not valid, or breaks a rule.
    #[error("config `{path}`: {message}")]
    Invalid {
        /// The path.
        path: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Path of the goal file, relative to the config file's directory unless absolute.
    pub goals: PathBuf,
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// The application: group, transactional ids, internal topics, timing.
    #[serde(default)]
    pub app: AppConfig,
    /// Where events come from.
    pub input: InputConfig,
    /// Where attainment events and dead letters go.
    #[serde(default)]
    pub output: OutputConfig,
    /// The HTTP server: metrics, query API, dashboard, health.
    #[serde(default)]
    pub http: HttpConfig,
    /// Optional metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// What `goalpost notify` delivers, and where.
    #[serde(default)]
    pub notify: NotifyConfig,
}

impl RunConfig {
    /// Parses and checks a config file's text; `base` resolves a relative goal path.
    pub fn from_toml(text: &str, path: &Path) -> Result<RunConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let mut cfg: RunConfig =
            // TOML errors quote the offending line: never a secret's value.
            toml::from_str(text).map_err(|e| invalid(redact_secrets_in(e.to_string().trim_end(), text)))?;
        if cfg.goals.is_relative() {
            if let Some(dir) = path.parent() {
                cfg.goals = dir.join(&cfg.goals);
            }
        }
        if let Ok(b) = std::env::var("KAFKA_BOOTSTRAP") {
            if !b.trim().is_empty() {
                cfg.kafka.bootstrap_servers = b;
            }
        }
        cfg.validate().map_err(invalid)?;
        Ok(cfg)
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Io {
            path: path.display().to_string(),
            cause,
        })?;
        Self::from_toml(&text, path)
    }

    /// The repartition topic.
    pub fn repartition_topic(&self) -> String {
        format!("{}-repartition", self.app.application_id)
    }

    /// The changelog topic.
    pub fn changelog_topic(&self) -> String {
        format!("{}-changelog", self.app.application_id)
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic(&self) -> String {
        self.output
            .dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}-dead-letters", self.app.application_id))
    }

    /// The settings every Kafka client of this instance starts from: the bootstrap servers and
    /// `kafka.properties`.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.kafka.bootstrap_servers);
        for (k, v) in &self.kafka.properties {
            c.set(k, v);
        }
        c
    }

    /// What the HTTP side needs to know about this instance.
    pub fn serve_instance(&self) -> Instance {
        Instance {
            http: self.http.clone(),
            progress_gauges: self.metrics.progress_gauges.clone(),
            id: self.instance_id(),
            group: self.app.application_id.clone(),
            kafka: self.client_config(),
        }
    }

    /// This instance's id.
    pub fn instance_id(&self) -> String {
        self.app
            .instance_id
            .clone()
            .or_else(|| {
                std::env::var("GOALPOST_INSTANCE_ID")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "goalpost-0".into())
    }
}
