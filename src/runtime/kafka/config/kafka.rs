//! `[kafka]`: how to reach the cluster, and how its secret properties are kept out of output.

use std::collections::BTreeMap;

use serde::Deserialize;

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
