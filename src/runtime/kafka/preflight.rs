//! The first thing `goalpost run` does on Kafka: connect and ask for metadata in short attempts,
//! while watching librdkafka's error callbacks.
//!
//! librdkafka retries a refused SASL login or a failed TLS handshake like any broken connection,
//! so without this check wrong credentials would only show as a metadata timeout after 30 s. The
//! callback (`ClientContext::error`) receives `KafkaError::Global(RDKafkaErrorCode::Authentication)`
//! with the broker's reason ("SASL authentication error: Authentication failed: Invalid username or
//! password", "Unsupported SASL mechanism", ...), or `RDKafkaErrorCode::SSL` for a TLS handshake
//! that failed (certificate not trusted, client certificate required). Either ends the run at once
//! with a [`RunError::Authentication`] naming the bootstrap servers and the security settings, never
//! a secret. A cluster that simply does not answer is waited for as long as before.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::config::{is_secret_key, RunConfig, REDACTED};
use super::{RunError, SetupError};

/// How long one metadata request may take before the error callbacks are looked at.
const ATTEMPT: Duration = Duration::from_millis(500);
/// How long queued events (where the callbacks run) are served after each attempt.
const SERVE: Duration = Duration::from_millis(50);

/// Whether a librdkafka error code means the cluster refused who we are, rather than being
/// unreachable: a refused or impossible SASL login, or a TLS handshake failure.
pub fn is_auth_failure(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Authentication
            | RDKafkaErrorCode::SSL
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::UnsupportedSASLMechanism
            | RDKafkaErrorCode::IllegalSASLState
    )
}

#[derive(Default)]
struct Seen {
    /// The first authentication or TLS failure and its reason.
    auth: Option<String>,
    /// The last other error's reason (not the "n/n brokers are down" summary).
    last: Option<String>,
}

/// A client context that records the errors librdkafka reports.
#[derive(Default)]
struct Watch {
    seen: Mutex<Seen>,
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        // The reason is reported later, scrubbed of secrets; only the code is logged here.
        tracing::debug!(error = %error, "librdkafka error while checking the connection");
        let mut seen = self.seen.lock().expect("preflight lock");
        match error.rdkafka_error_code() {
            Some(code) if is_auth_failure(code) => {
                seen.auth.get_or_insert_with(|| reason.to_string());
            }
            Some(RDKafkaErrorCode::AllBrokersDown) => {}
            _ => seen.last = Some(reason.to_string()),
        }
    }
}

impl ConsumerContext for Watch {}

/// The security settings of `properties` for messages: `security.protocol` (default PLAINTEXT),
/// and `sasl.mechanism` and `sasl.username` when set. Never a secret.
pub fn security_summary(properties: &BTreeMap<String, String>) -> String {
    let mut parts = vec![format!(
        "security.protocol={}",
        properties
            .get("security.protocol")
            .map(String::as_str)
            .unwrap_or("PLAINTEXT")
    )];
    for key in ["sasl.mechanism", "sasl.mechanisms", "sasl.username"] {
        if let Some(v) = properties.get(key) {
            let v = if is_secret_key(key) { REDACTED } else { v };
            parts.push(format!("{key}={v}"));
        }
    }
    parts.join(", ")
}

/// `text` with every secret property value in it replaced by `<redacted>`, in case a broker or
/// library ever echoes one. Values shorter than 4 characters are left alone: replacing them would
/// garble the text without hiding anything.
pub fn scrub(text: &str, properties: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (key, value) in properties {
        if is_secret_key(key) && value.chars().count() >= 4 {
            out = out.replace(value.as_str(), REDACTED);
        }
    }
    out
}

/// Connects with `client` and fetches metadata in short attempts until it succeeds (`Ok`), the
/// brokers refuse the credentials or the TLS handshake ([`RunError::Authentication`], at once), or
/// `timeout` passes without any broker answering ([`SetupError::NoBroker`] naming the last error).
pub fn check_connection(
    cfg: &RunConfig,
    client: &ClientConfig,
    timeout: Duration,
) -> Result<(), RunError> {
    let props = &cfg.kafka.properties;
    let bootstrap = &cfg.kafka.bootstrap_servers;
    // No group.id: the consumer's queue is librdkafka's main queue, where error events arrive.
    let consumer: BaseConsumer<Watch> = client
        .create_with_context(Watch::default())
        .map_err(|e| RunError::kafka("create a client to check the connection", e))?;
    let start = Instant::now();
    loop {
        let attempt = ATTEMPT.min(timeout.saturating_sub(start.elapsed()));
        let fetched = consumer.fetch_metadata(None, attempt);
        // Error callbacks run while events are served; `poll` returns at each error event, so
        // serve until the queue is quiet.
        let serve_until = Instant::now() + SERVE;
        while let Some(_event) =
            consumer.poll(serve_until.saturating_duration_since(Instant::now()))
        {
            if Instant::now() >= serve_until {
                break;
            }
        }
        let Err(e) = fetched else {
            tracing::debug!(
                bootstrap = %bootstrap,
                elapsed_ms = start.elapsed().as_millis() as u64,
                "connected to Kafka"
            );
            return Ok(());
        };
        let seen = consumer.context().seen.lock().expect("preflight lock");
        if let Some(reason) = &seen.auth {
            return Err(RunError::Authentication {
                bootstrap: bootstrap.clone(),
                settings: security_summary(props),
                reason: scrub(reason, props),
            });
        }
        if start.elapsed() >= timeout {
            let last = seen.last.clone().unwrap_or_else(|| e.to_string());
            return Err(SetupError::NoBroker {
                bootstrap: bootstrap.clone(),
                seconds: timeout.as_secs(),
                settings: security_summary(props),
                last: scrub(&last, props),
            }
            .into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_summary_names_the_settings_but_no_secret() {
        let p = props(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "svc"),
            ("sasl.password", "pw-1234"),
        ]);
        let s = security_summary(&p);
        assert_eq!(
            s,
            "security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512, sasl.username=svc"
        );
        assert_eq!(
            security_summary(&BTreeMap::new()),
            "security.protocol=PLAINTEXT"
        );
    }

    #[test]
    fn scrub_removes_secret_values_only() {
        let p = props(&[("sasl.username", "svc-user"), ("sasl.password", "pw-1234")]);
        assert_eq!(
            scrub("user svc-user sent pw-1234 twice: pw-1234", &p),
            "user svc-user sent <redacted> twice: <redacted>"
        );
        let short = props(&[("sasl.password", "pw")]);
        assert_eq!(scrub("pwd ok", &short), "pwd ok");
    }

    #[test]
    fn auth_codes_are_told_apart_from_outages() {
        assert!(is_auth_failure(RDKafkaErrorCode::Authentication));
        assert!(is_auth_failure(RDKafkaErrorCode::SSL));
        assert!(is_auth_failure(RDKafkaErrorCode::SaslAuthenticationFailed));
        assert!(!is_auth_failure(RDKafkaErrorCode::BrokerTransportFailure));
        assert!(!is_auth_failure(RDKafkaErrorCode::AllBrokersDown));
        assert!(!is_auth_failure(RDKafkaErrorCode::OperationTimedOut));
    }
}
