//! `[[notify.webhooks]]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::model::{AttainmentKind, Duration};
use crate::notify::retry::RetryPolicy;

/// One `[[notify.webhooks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in logs, metrics (`sink="webhook:NAME"`) and dead letters: letters,
    /// digits, `-` and `_`.
    pub name: String,
    /// Where events are POSTed (`http` or `https`).
    pub url: String,
    /// Only events of these goal ids; empty (default): every goal.
    #[serde(default)]
    pub goals: Vec<String>,
    /// Only events of these kinds (`milestone`, `breached`, `final`, `at_risk`, `on_track`).
    /// Default: every kind.
    #[serde(default = "all_kinds", deserialize_with = "kinds")]
    pub kinds: Vec<AttainmentKind>,
    /// Events per request: 1 (default) sends one JSON object per request; N > 1 sends a JSON
    /// array of up to N events.
    #[serde(default = "one")]
    pub batch_max: usize,
    /// How long one request may take, connecting included. Default `10s`.
    #[serde(default = "ten_seconds")]
    pub timeout: Duration,
    /// Attempts per request before its events are dead-lettered. Default 10.
    #[serde(default = "ten")]
    pub max_attempts: u32,
    /// Dead-letter a request's events once retrying it would go on longer than this. Default
    /// `1h`.
    #[serde(default = "one_hour")]
    pub max_age: Duration,
    /// The first retry's longest wait; each further retry doubles it. Default `500ms`.
    #[serde(default = "half_second")]
    pub backoff_initial: Duration,
    /// The longest wait between two attempts (a `Retry-After` may ask for more). Default `60s`.
    #[serde(default = "one_minute")]
    pub backoff_max: Duration,
    /// A file holding the HMAC key of the signature (trailing whitespace ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the HMAC key of the signature.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Extra headers sent with every request (e.g. an `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn all_kinds() -> Vec<AttainmentKind> {
    AttainmentKind::ALL.to_vec()
}

fn one() -> usize {
    1
}

fn ten() -> u32 {
    10
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

fn one_hour() -> Duration {
    Duration::from_secs(3600)
}

fn half_second() -> Duration {
    Duration::from_millis(500)
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

fn kinds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AttainmentKind>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|n| {
            AttainmentKind::from_name(n).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{n}` is not a kind; allowed: milestone, breached, final, at_risk, on_track"
                ))
            })
        })
        .collect()
}

/// Headers goalpost sets itself on every request.
const OWNED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "idempotency-key",
    "x-goalpost-timestamp",
    "x-goalpost-signature",
];

impl WebhookConfig {
    /// The sink's name: `webhook:NAME`.
    pub fn sink_name(&self) -> String {
        format!("webhook:{}", self.name)
    }

    /// The retry schedule.
    pub fn retry_policy(&self) -> RetryPolicy {
        let std = |d: Duration| std::time::Duration::from_nanos(d.as_nanos().max(0) as u64);
        RetryPolicy {
            max_attempts: self.max_attempts,
            max_age: std(self.max_age),
            backoff_initial: std(self.backoff_initial),
            backoff_max: std(self.backoff_max),
        }
    }

    /// Checks the rules parsing alone does not.
    pub fn validate(&self) -> Result<(), String> {
        let at = format!("notify.webhooks `{}`", self.name);
        let name_ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!(
                "notify.webhooks: name `{}` is not allowed; use letters, digits, `-` and `_`",
                self.name
            ));
        }
        self.check_url(&at)?;
        self.check_numbers(&at)?;
        if self.secret_file.is_some() && self.secret_env.is_some() {
            return Err(format!("{at}: give secret_file or secret_env, not both"));
        }
        self.check_headers(&at)
    }

    fn check_url(&self, at: &str) -> Result<(), String> {
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
            _ => Err(format!(
                "{at}: url `{}` is not an http:// or https:// URL",
                self.url
            )),
        }
    }

    fn check_numbers(&self, at: &str) -> Result<(), String> {
        if self.batch_max == 0 {
            return Err(format!("{at}: batch_max is 0; give 1 or more"));
        }
        if self.max_attempts == 0 {
            return Err(format!("{at}: max_attempts is 0; give 1 or more"));
        }
        if self.timeout.is_zero() {
            return Err(format!("{at}: timeout is 0s; give a positive duration"));
        }
        if self.backoff_initial.is_zero() || self.backoff_initial > self.backoff_max {
            return Err(format!(
                "{at}: backoff_initial {} must be positive and at most backoff_max {}",
                self.backoff_initial, self.backoff_max
            ));
        }
        Ok(())
    }

    fn check_headers(&self, at: &str) -> Result<(), String> {
        for (name, value) in &self.headers {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(format!("{at}: `{name}` is not a valid header name"));
            }
            if OWNED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "{at}: header `{name}` is set by goalpost; remove it from headers"
                ));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(format!(
                    "{at}: header `{name}` has a line break in its value"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<WebhookConfig, String> {
        let text = format!("name = \"crm\"\nurl = \"https://crm.example.com/hook\"\n{extra}");
        let cfg: WebhookConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        cfg.validate().map(|()| cfg)
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.batch_max, 1);
        assert_eq!(c.max_attempts, 10);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.max_age, Duration::from_secs(3600));
        assert_eq!(c.backoff_initial, Duration::from_millis(500));
        assert_eq!(c.backoff_max, Duration::from_secs(60));
        assert_eq!(c.kinds.len(), AttainmentKind::COUNT);
        assert_eq!(c.sink_name(), "webhook:crm");
    }

    #[test]
    fn rejects_what_is_not_allowed() {
        let err = |extra: &str| parse(extra).unwrap_err();
        assert!(err("kinds = [\"won\"]").contains("`won` is not a kind"));
        assert!(err("batch_max = 0").contains("batch_max is 0"));
        assert!(err("timeout = \"soon\"").contains("`soon` is not a duration"));
        assert!(err("secret_env = \"A\"\nsecret_file = \"b\"").contains("not both"));
        assert!(err("headers = { Idempotency-Key = \"x\" }").contains("set by goalpost"));
        assert!(err("backoff_initial = \"2m\"").contains("at most backoff_max"));
        assert!(err("colour = \"red\"").contains("unknown field"));
        let bad_url: WebhookConfig = toml::from_str("name = \"x\"\nurl = \"ftp://h/\"").unwrap();
        assert!(bad_url.validate().unwrap_err().contains("`ftp://h/`"));
    }
}
