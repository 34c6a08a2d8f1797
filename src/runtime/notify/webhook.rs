//! The webhook sink's HTTP side: signed POSTs with retries, for one `[[notify.webhooks]]`.

use std::time::Duration;

use super::error::NotifyError;
use super::retry::with_retries;
use super::sink::{Delivery, GivenUp, Sink};
use super::telemetry::SinkMetrics;
use crate::notify::retry::{classify_status, Failure, RetryPolicy};
use crate::notify::webhook::{
    body, idempotency_key, sign, wants, Secret, WebhookConfig, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

/// A webhook sink.
pub struct WebhookSink {
    cfg: WebhookConfig,
    name: String,
    policy: RetryPolicy,
    secret: Option<Secret>,
    agent: ureq::Agent,
    metrics: SinkMetrics,
}

/// Reads a webhook's secret from its file or environment variable (`None`: unsigned).
pub fn load_secret(cfg: &WebhookConfig) -> Result<Option<Secret>, NotifyError> {
    let err = |source_name: String, cause: String| NotifyError::Secret {
        webhook: cfg.name.clone(),
        source_name,
        cause,
    };
    let text = if let Some(path) = &cfg.secret_file {
        let shown = format!("file `{}`", path.display());
        std::fs::read_to_string(path).map_err(|e| err(shown, e.to_string()))?
    } else if let Some(var) = &cfg.secret_env {
        let shown = format!("environment variable `{var}`");
        std::env::var(var).map_err(|e| err(shown, e.to_string()))?
    } else {
        return Ok(None);
    };
    let key = text.trim_end();
    if key.is_empty() {
        return Err(err("its source".into(), "the secret is empty".into()));
    }
    Ok(Some(Secret::new(key.as_bytes().to_vec())))
}

impl WebhookSink {
    /// The sink of `cfg`, its secret read.
    pub fn new(cfg: WebhookConfig) -> Result<WebhookSink, NotifyError> {
        let secret = load_secret(&cfg)?;
        let timeout = Duration::from_nanos(cfg.timeout.as_nanos().max(0) as u64);
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .redirects(0)
            .user_agent(concat!("goalpost/", env!("CARGO_PKG_VERSION")))
            .build();
        let name = cfg.sink_name();
        Ok(WebhookSink {
            policy: cfg.retry_policy(),
            metrics: SinkMetrics::new(&name),
            name,
            secret,
            agent,
            cfg,
        })
    }

    /// One attempt: `Ok` once delivered, else the failure and its description.
    fn attempt(&self, body: &[u8], key: &str) -> Result<(), (Failure, String)> {
        let now = chrono::Utc::now().timestamp();
        let mut req = self
            .agent
            .post(&self.cfg.url)
            .set("Content-Type", "application/json")
            .set("Idempotency-Key", key)
            .set(TIMESTAMP_HEADER, &now.to_string());
        if let Some(secret) = &self.secret {
            req = req.set(SIGNATURE_HEADER, &sign(secret, now, body));
        }
        for (k, v) in &self.cfg.headers {
            req = req.set(k, v);
        }
        let (status, retry_after) = match req.send_bytes(body) {
            Ok(resp) => (resp.status(), None),
            Err(ureq::Error::Status(code, resp)) => {
                (code, resp.header("Retry-After").map(str::to_string))
            }
            Err(ureq::Error::Transport(t)) => return Err((Failure::Transient, describe(&t))),
        };
        match classify_status(status, retry_after.as_deref(), now) {
            None => Ok(()),
            Some(f) => Err((f, format!("HTTP {status}"))),
        }
    }

    /// Sends one request until it is delivered or given up: `Err((attempts, last error))`.
    fn send(&self, events: &[&Delivery]) -> Result<(), (u32, String)> {
        let jsons: Vec<&[u8]> = events.iter().map(|d| &d.json[..]).collect();
        let ids: Vec<&str> = events
            .iter()
            .map(|d| d.attainment.attainment_id.as_str())
            .collect();
        let body = body(&jsons, self.cfg.batch_max);
        let key = idempotency_key(&ids, self.cfg.batch_max);
        with_retries(&self.policy, &self.metrics, &self.name, &key, || {
            let result = self.attempt(&body, &key);
            if result.is_err() {
                self.metrics.failures.increment(1);
            }
            result
        })
    }
}

/// A transport error without its URL (which may carry credentials): its kind and message.
fn describe(t: &ureq::Transport) -> String {
    let kind = t.kind().to_string();
    let detail = std::error::Error::source(t)
        .map(ToString::to_string)
        .or_else(|| t.message().map(str::to_string));
    match detail {
        Some(d) if d.starts_with(&kind) => d,
        Some(d) => format!("{kind}: {d}"),
        None => kind,
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver(&mut self, batch: &[Delivery]) -> Vec<GivenUp> {
        let wanted: Vec<&Delivery> = batch
            .iter()
            .filter(|d| wants(&self.cfg, &d.attainment))
            .collect();
        let mut given_up = Vec::new();
        for chunk in wanted.chunks(self.cfg.batch_max) {
            match self.send(chunk) {
                Ok(()) => self.metrics.delivered.increment(chunk.len() as u64),
                Err((attempts, last_error)) => {
                    for d in chunk {
                        tracing::warn!(sink = %self.name, attainment_id = %d.attainment.attainment_id, attempts, error = %last_error, "gave up on an event: dead-lettered");
                        given_up.push(GivenUp {
                            delivery: (*d).clone(),
                            attempts,
                            last_error: last_error.clone(),
                        });
                    }
                }
            }
        }
        given_up
    }
}
