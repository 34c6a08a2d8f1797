//! `goalpost run --config goalpost.toml`: the service configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rdkafka::config::ClientConfig;
use serde::{Deserialize, Deserializer};
use thiserror::Error;

use crate::codec::future::MaxFuture;
use crate::codec::Format;
use crate::model::Duration;
use crate::serve::{HttpConfig, Instance, MetricsConfig};

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

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn format<'de, D: Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_str() {
        "json" => Ok(Format::Json),
        "proto" => Ok(Format::Proto),
        other => Err(serde::de::Error::custom(format!(
            "`{other}` is not a format; allowed: json, proto"
        ))),
    }
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
}

/// `[kafka]`. Its `Debug` shows secret properties (see [`is_secret_key`]) as `<redacted>`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `"127.0.0.1:19092"`. The environment variable `KAFKA_BOOTSTRAP`
    /// overrides it when set.
    pub bootstrap_servers: String,
    /// librdkafka properties passed through to every client (consumer, producer, admin), e.g.
    /// `"security.protocol" = "SASL_SSL"`, `"sasl.mechanism" = "PLAIN"`, `"sasl.username"`,
    /// `"sasl.password"`, `"ssl.ca.location"`. Properties goalpost owns (group id, isolation level,
    /// transactional id, offsets) cannot be overridden.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// What a secret property's value is shown as.
pub const REDACTED: &str = "<redacted>";

/// Parts of librdkafka property names whose values are secrets, matched case-insensitively
/// anywhere in the key: passwords, client secrets, JAAS and OAUTHBEARER configurations, tokens,
/// inline private keys (`ssl.key.pem`, `sasl.oauthbearer.assertion.private.key.*`) and keystores.
/// Paths such as `ssl.key.location` or `ssl.ca.location` stay visible.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "secret",
    "sasl.jaas.config",
    "ssl.key.pem",
    "ssl.keystore",
    "token",
    "oauthbearer.config",
    "credential",
    "private",
];

/// Whether the value of librdkafka property `key` is a secret that must never be printed.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// `properties` with the value of every secret key replaced by [`REDACTED`].
pub fn redacted_properties(properties: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    properties
        .iter()
        .map(|(k, v)| {
            let v = if is_secret_key(k) {
                REDACTED.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// `message` (e.g. a TOML error that quotes the file) with the values found on every line of
/// `toml_text` that names a secret key replaced by [`REDACTED`]: those lines are treated as
/// secret even when they do not parse. Values shorter than 3 characters are left alone (replacing
/// them would garble the message without hiding anything).
pub fn redact_secrets_in(message: &str, toml_text: &str) -> String {
    let mut values: Vec<&str> = Vec::new();
    for line in toml_text.lines() {
        let Some((_, value)) = line.split_once('=') else {
            continue;
        };
        if !is_secret_key(line) {
            continue;
        }
        let value = value.trim();
        values.push(value);
        values.push(value.trim_matches(|c| c == '"' || c == '\''));
        // Quoted strings inside, e.g. of an inline table.
        values.extend(value.split(['"', '\'']).skip(1).step_by(2));
    }
    values.retain(|v| v.chars().count() >= 3);
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = message.to_string();
    for v in values {
        out = out.replace(v, REDACTED);
    }
    out
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("properties", &redacted_properties(&self.properties))
            .finish()
    }
}

/// `[app]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// Names the consumer group, the transactional ids and the internal topics
    /// (`{application_id}-repartition`, `{application_id}-changelog`). Default `goalpost`.
    pub application_id: String,
    /// Stable identity of this instance; its transactional id is `{application_id}-{instance_id}`.
    /// A restarted instance must keep it, so its predecessor's open transaction is aborted at once
    /// (fencing). Default: the `GOALPOST_INSTANCE_ID` environment variable, else the host name.
    pub instance_id: Option<String>,
    /// How often a transaction is committed. Default `100ms`.
    #[serde(deserialize_with = "duration")]
    pub commit_interval: Duration,
    /// An input partition without records for this long stops holding back the watermark.
    /// Default `30s`.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Create missing topics (input topics are never created). Default `true`; when `false`, a
    /// missing topic is an error naming it.
    pub create_topics: bool,
    /// Replication factor of created topics. Default 1.
    pub replication_factor: i32,
    /// Most event ids remembered for deduplication per input partition; beyond it the oldest are
    /// forgotten before the horizon and counted (`goalpost_dedupe_evicted_total`). At least 1.
    /// Default 5,000,000 (about 120 bytes of memory each).
    pub dedupe_max_ids: usize,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            application_id: "goalpost".into(),
            instance_id: None,
            commit_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(30),
            create_topics: true,
            replication_factor: 1,
            dedupe_max_ids: crate::engine::DEFAULT_DEDUPE_MAX_IDS,
        }
    }
}

/// `[input]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Topics of sales events.
    pub topics: Vec<String>,
    /// Format of their records, `json` (default) or `proto`; a record's `content-type` header
    /// (`application/json`, `application/x-protobuf`) overrides it.
    #[serde(default, deserialize_with = "format")]
    pub format: Format,
    /// Records larger than this are dead-lettered as `oversized`. Default 1048576 (1 MiB).
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// Events whose `occurred_at` lies more than this ahead of the wall clock are dead-lettered as
    /// `future_timestamp`: a duration, or `"off"`. Default `1h`, as Kafka 4 brokers' default for
    /// record timestamps.
    #[serde(default, deserialize_with = "max_future")]
    pub max_future: MaxFuture,
}

fn max_future<'de, D: Deserializer<'de>>(d: D) -> Result<MaxFuture, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn default_max_record_bytes() -> usize {
    crate::codec::MAX_RECORD_BYTES
}

/// `[output]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Topic of attainment events. Default `goal-attainments`.
    pub topic: String,
    /// Format of attainment records, `json` (default) or `proto`.
    #[serde(deserialize_with = "format")]
    pub format: Format,
    /// Topic of rejected records. Default `{application_id}-dead-letters`.
    pub dead_letter_topic: Option<String>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            topic: "goal-attainments".into(),
            format: Format::Json,
            dead_letter_topic: None,
        }
    }
}

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
        if cfg.kafka.bootstrap_servers.trim().is_empty() {
            return Err(invalid(
                "kafka.bootstrap_servers is empty: give HOST:PORT[,HOST:PORT...] (or set KAFKA_BOOTSTRAP)"
                    .into(),
            ));
        }
        if cfg.input.topics.is_empty() {
            return Err(invalid(
                "input.topics is empty: name at least one topic".into(),
            ));
        }
        if cfg.app.application_id.is_empty()
            || !cfg
                .app
                .application_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(format!(
                "app.application_id `{}` must be non-empty ASCII letters, digits, '.', '_' or '-'",
                cfg.app.application_id
            )));
        }
        if cfg.app.commit_interval.is_zero() {
            return Err(invalid("app.commit_interval must be greater than 0".into()));
        }
        if cfg.app.replication_factor < 1 {
            return Err(invalid(format!(
                "app.replication_factor `{}` must be at least 1 (and at most the number of brokers)",
                cfg.app.replication_factor
            )));
        }
        if cfg.app.dedupe_max_ids == 0 {
            return Err(invalid(
                "app.dedupe_max_ids `0` must be at least 1 (default 5000000)".into(),
            ));
        }
        // Each topic has one role: reading an output back as input, or writing two outputs into
        // one topic, would loop records or mix their formats.
        let mut roles: Vec<(String, String)> = cfg
            .input
            .topics
            .iter()
            .map(|t| ("input.topics".to_string(), t.clone()))
            .collect();
        roles.push(("output.topic".into(), cfg.output.topic.clone()));
        roles.push(("output.dead_letter_topic".into(), cfg.dead_letter_topic()));
        roles.push(("the repartition topic".into(), cfg.repartition_topic()));
        roles.push(("the changelog topic".into(), cfg.changelog_topic()));
        for (i, (role, topic)) in roles.iter().enumerate() {
            if topic.is_empty() {
                return Err(invalid(format!("{role} is an empty topic name")));
            }
            if let Some((other, _)) = roles[..i].iter().find(|(_, t)| t == topic) {
                return Err(invalid(if other == role {
                    format!("{role} names `{topic}` twice")
                } else {
                    format!("`{topic}` is both {other} and {role}: each topic has one role")
                }));
            }
        }
        cfg.http.validate().map_err(invalid)?;
        for key in cfg.kafka.properties.keys() {
            if OWNED_PROPERTIES.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "kafka.properties.\"{key}\" is set by goalpost and cannot be overridden"
                )));
            }
        }
        Ok(cfg)
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
goals = "goals.toml"
[kafka]
bootstrap_servers = "127.0.0.1:19092"
[input]
topics = ["sales-events"]
"#;

    #[test]
    fn defaults() {
        let c = RunConfig::from_toml(MIN, Path::new("/etc/goalpost/goalpost.toml")).unwrap();
        assert_eq!(c.goals, PathBuf::from("/etc/goalpost/goals.toml"));
        assert_eq!(c.app.commit_interval, Duration::from_millis(100));
        assert_eq!(c.repartition_topic(), "goalpost-repartition");
        assert_eq!(c.dead_letter_topic(), "goalpost-dead-letters");
        assert_eq!(c.input.format, Format::Json);
        assert_eq!(c.output.topic, "goal-attainments");
    }

    #[test]
    fn values_run_would_refuse_are_rejected_when_read() {
        let err = |extra: &str| {
            RunConfig::from_toml(&format!("{MIN}{extra}"), Path::new("c.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err("[app]\nreplication_factor = 0\n");
        assert!(
            e.contains("app.replication_factor `0` must be at least 1"),
            "{e}"
        );
        assert!(err("[app]\nreplication_factor = -1\n").contains("`-1`"));
        // An empty kafka.bootstrap_servers: tests/cli.rs (KAFKA_BOOTSTRAP, set in test runs,
        // would replace it here).
        // One role per topic.
        let e = err("[output]\ntopic = \"sales-events\"\n");
        assert!(
            e.contains("`sales-events` is both input.topics and output.topic"),
            "{e}"
        );
        let e = err("[output]\ntopic = \"a\"\ndead_letter_topic = \"a\"\n");
        assert!(
            e.contains("`a` is both output.topic and output.dead_letter_topic"),
            "{e}"
        );
        let e = err("[app]\napplication_id = \"x\"\n[output]\ntopic = \"x-repartition\"\n");
        assert!(
            e.contains("`x-repartition` is both output.topic and the repartition topic"),
            "{e}"
        );
        let e = RunConfig::from_toml(
            &MIN.replace(r#"["sales-events"]"#, r#"["a", "b", "a"]"#),
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("input.topics names `a` twice"), "{e}");
        // Distinct topics pass.
        RunConfig::from_toml(
            &format!("{MIN}[output]\ntopic = \"out\"\ndead_letter_topic = \"dlq\"\n"),
            Path::new("c.toml"),
        )
        .unwrap();
    }

    #[test]
    fn progress_gauges_must_name_goals() {
        let goals = crate::goals::GoalSet::from_toml(
            r#"
[[goals]]
id = "wins"
metric = "count"
filter = { event_type = "deal_won" }
window = { tumbling = "1d" }
target = 3
"#,
        )
        .unwrap();
        let with = |ids: &str| {
            RunConfig::from_toml(
                &format!("{MIN}[metrics]\nprogress_gauges = {ids}\n"),
                Path::new("c.toml"),
            )
            .unwrap()
        };
        with(r#"["wins"]"#)
            .check_goals(&goals, Path::new("c.toml"))
            .unwrap();
        let e = with(r#"["wins", "winz"]"#)
            .check_goals(&goals, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("progress_gauges names `winz`"), "{e}");
        assert!(e.contains("its goals: wins"), "{e}");
    }

    #[test]
    fn unknown_keys_and_owned_properties_are_rejected() {
        let e = RunConfig::from_toml(
            &format!("{MIN}\n[app]\ncommit_intreval = \"1s\"\n"),
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("commit_intreval"), "{e}");
        let e = RunConfig::from_toml(
            &MIN.replace(
                "[input]",
                "[kafka.properties]\n\"group.id\" = \"x\"\n[input]",
            ),
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("group.id"), "{e}");
        let e = RunConfig::from_toml(
            &format!("{MIN}\n[app]\ncommit_interval = \"soon\"\n"),
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
        let e = RunConfig::from_toml(
            &MIN.replace(
                "topics = [\"sales-events\"]",
                "topics = [\"t\"]\nformat = \"xml\"",
            ),
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("xml"), "{e}");
    }

    #[test]
    fn secret_keys_are_recognised() {
        for key in [
            "sasl.password",
            "SASL.PASSWORD",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.keystore.location",
            "ssl.truststore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "sasl.jaas.config",
            "some.access.token",
        ] {
            assert!(is_secret_key(key), "{key} should be secret");
        }
        for key in [
            "security.protocol",
            "sasl.mechanism",
            "sasl.username",
            "ssl.ca.location",
            "ssl.certificate.location",
            "ssl.key.location",
            "client.id",
            "session.timeout.ms",
        ] {
            assert!(!is_secret_key(key), "{key} should be shown");
        }
    }

    #[test]
    fn debug_of_the_kafka_config_redacts_secrets() {
        let text = MIN.replace(
            "[input]",
            "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\
             \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"svc-goalpost\"\n\
             \"sasl.password\" = \"hunter2-pw\"\n\"ssl.key.password\" = \"keypass-42\"\n\
             \"ssl.key.pem\" = \"-----BEGIN PRIVATE KEY-----abc\"\n\
             \"sasl.oauthbearer.client.secret\" = \"oauth-sekrit\"\n[input]",
        );
        let c = RunConfig::from_toml(&text, Path::new("c.toml")).unwrap();
        // The secrets stay usable: only their display is redacted.
        assert_eq!(c.kafka.properties["sasl.password"], "hunter2-pw");
        for shown in [
            format!("{:?}", c.kafka),
            format!("{c:?}"),
            format!("{c:#?}"),
        ] {
            for secret in [
                "hunter2-pw",
                "keypass-42",
                "BEGIN PRIVATE KEY",
                "oauth-sekrit",
            ] {
                assert!(!shown.contains(secret), "{secret} leaked in {shown}");
            }
            assert_eq!(shown.matches(REDACTED).count(), 4, "{shown}");
            for visible in [
                "SASL_SSL",
                "SCRAM-SHA-512",
                "svc-goalpost",
                "127.0.0.1:19092",
            ] {
                assert!(shown.contains(visible), "{visible} missing in {shown}");
            }
        }
        let r = redacted_properties(&c.kafka.properties);
        assert_eq!(r.len(), c.kafka.properties.len());
        assert_eq!(r["sasl.password"], REDACTED);
        assert_eq!(r["sasl.username"], "svc-goalpost");
    }

    #[test]
    fn secrets_quoted_by_toml_errors_are_redacted() {
        for (value, leaked) in [
            ("\"abc-secret-9", "abc-secret-9"),
            ("12345678", "12345678"),
            ("\"pw-in-a-string\" oops", "pw-in-a-string"),
        ] {
            let text = MIN.replace(
                "[input]",
                &format!("[kafka.properties]\n\"sasl.password\" = {value}\n[input]"),
            );
            let e = toml::from_str::<RunConfig>(&text).unwrap_err().to_string();
            assert!(
                e.contains(leaked),
                "the test needs an error quoting it: {e}"
            );
            let r = redact_secrets_in(&e, &text);
            assert!(!r.contains(leaked), "{r}");
            assert!(r.contains(REDACTED), "{r}");
            assert!(r.contains("line 6"), "the position stays: {r}");
            // `goalpost run` reports config errors through from_toml: redacted too.
            let e = RunConfig::from_toml(&text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(!e.contains(leaked) && e.contains(REDACTED), "{e}");
        }
        let inline = "kafka = { bootstrap_servers = \"b:1\", properties = { \"sasl.password\" = \"inline-pw\" } }";
        assert_eq!(
            redact_secrets_in("at `inline-pw` here", inline),
            "at `<redacted>` here"
        );
    }

    #[test]
    fn http_defaults_to_loopback_and_needs_a_token_elsewhere() {
        let c = RunConfig::from_toml(MIN, Path::new("c.toml")).unwrap();
        assert!(c.http.enabled);
        assert_eq!(c.http.listen, "127.0.0.1:8080");
        let open = format!("{MIN}\n[http]\nlisten = \"0.0.0.0:8080\"\n");
        let e = RunConfig::from_toml(&open, Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("0.0.0.0:8080"), "{e}");
        assert!(e.to_string().contains("token"), "{e}");
        let with_token = format!("{open}token_env = \"GOALPOST_HTTP_TOKEN\"\n");
        RunConfig::from_toml(&with_token, Path::new("c.toml")).unwrap();
        let opted_out = format!("{open}allow_unauthenticated = true\n");
        RunConfig::from_toml(&opted_out, Path::new("c.toml")).unwrap();
        let bad = format!("{MIN}\n[http]\nlisten = \"localhost\"\n");
        let e = RunConfig::from_toml(&bad, Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("`localhost`"), "{e}");
    }

    #[test]
    fn input_max_future_defaults_to_an_hour_and_can_be_off() {
        let read = |line: &str| {
            RunConfig::from_toml(&format!("{MIN}{line}\n"), Path::new("c.toml"))
                .map(|c| c.input.max_future)
                .map_err(|e| e.to_string())
        };
        assert_eq!(read(""), Ok(MaxFuture(Some(Duration::from_secs(3_600)))));
        assert_eq!(
            read("max_future = \"15m\""),
            Ok(MaxFuture(Some(Duration::from_secs(900))))
        );
        assert_eq!(read("max_future = \"off\""), Ok(MaxFuture(None)));
        let e = read("max_future = \"later\"").unwrap_err();
        assert!(e.contains("`later` is not a max_future"), "{e}");
    }

    #[test]
    fn http_peer_trust_and_caps_are_checked() {
        let c = RunConfig::from_toml(MIN, Path::new("c.toml")).unwrap();
        assert!(c.http.peer_hosts.is_empty());
        assert_eq!(
            (
                c.http.max_connections,
                c.http.max_requests,
                c.http.max_streams
            ),
            (256, 64, 32)
        );
        let http = |lines: &str| {
            RunConfig::from_toml(&format!("{MIN}\n[http]\n{lines}\n"), Path::new("c.toml"))
        };
        http("peer_hosts = [\"*.goalpost-headless\", \"10.0.0.5\", \"::1\", \"loopback\"]\npeer_token_env = \"S\"")
            .unwrap();
        for (lines, says) in [
            (
                "peer_token_env = \"A\"\npeer_token_file = \"f\"",
                "choose one",
            ),
            ("max_streams = 0", "http.max_streams is 0"),
            ("peer_hosts = [\"http://x:80\"]", "`http://x:80`"),
            ("peer_hosts = [\"*.\"]", "`*.`"),
            ("peer_secret = \"x\"", "peer_secret"),
        ] {
            let e = http(lines).unwrap_err().to_string();
            assert!(e.contains(says), "{lines}: {e}");
        }
    }
}
