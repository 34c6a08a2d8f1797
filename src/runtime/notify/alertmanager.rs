//! The Alertmanager sink: applies attainment events to the alert books (one per attainment
//! partition), posts what changed to every Alertmanager, re-sends the active alerts, and keeps
//! them in its compacted state topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::retry::with_retries;
use super::sink::{Delivery, GivenUp, Sink, StateRecord};
use super::telemetry::SinkMetrics;
use crate::model::Timestamp;
use crate::notify::alertmanager::{
    postable_json, state, Alert, AlertBook, AlertmanagerConfig, AlertmanagerConfigError, Change,
    Rules,
};
use crate::notify::retry::{Failure, RetryPolicy};
use crate::serve::metrics as names;

/// Its name in logs, metrics and dead letters.
pub const SINK_NAME: &str = "alertmanager";
/// Posting changes while no Alertmanager takes them: 8 attempts, waits drawn up to 0.5 s,
/// doubling to at most 8 s (full jitter; about 15 s in all on average), then they are given up.
pub const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 8,
    max_age: StdDuration::from_secs(60),
    backoff_initial: StdDuration::from_millis(500),
    backoff_max: StdDuration::from_secs(8),
};
/// Most alerts per request.
const CHUNK: usize = 500;

/// The state topic of `application_id`.
pub fn state_topic_name(application_id: &str) -> String {
    format!("{application_id}-notify-alerts")
}

/// Delivers attainment events as alerts to Prometheus Alertmanager (API v2).
pub struct AlertmanagerSink {
    rules: Arc<Rules>,
    endpoints: Vec<String>,
    agent: ureq::Agent,
    state_topic: String,
    books: BTreeMap<i32, AlertBook>,
    pending: Vec<(i32, StateRecord)>,
    metrics: SinkMetrics,
}

impl AlertmanagerSink {
    /// A sink for `config`, with the state topic of `application_id`.
    pub fn new(
        config: &AlertmanagerConfig,
        application_id: &str,
    ) -> Result<Self, AlertmanagerConfigError> {
        let timeout = StdDuration::from_nanos(config.timeout.as_nanos().unsigned_abs());
        Ok(AlertmanagerSink {
            rules: Arc::new(Rules::new(config)?),
            endpoints: config
                .urls
                .iter()
                .map(|u| format!("{}/api/v2/alerts", u.trim_end_matches('/')))
                .collect(),
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
            state_topic: state_topic_name(application_id),
            books: BTreeMap::new(),
            pending: Vec::new(),
            metrics: SinkMetrics::new(SINK_NAME),
        })
    }

    /// The alerts active now, over all assigned partitions.
    pub fn active(&self) -> Vec<&Alert> {
        self.books.values().flat_map(AlertBook::active).collect()
    }

    fn book(&mut self, partition: i32) -> &mut AlertBook {
        let rules = &self.rules;
        self.books
            .entry(partition)
            .or_insert_with(|| AlertBook::new(rules.clone()))
    }

    fn record(&mut self, partition: i32, changes: &[Change]) {
        self.pending
            .extend(changes.iter().map(|c| (partition, c.state_record())));
    }

    fn update_gauge(&self) {
        let active: usize = self.books.values().map(AlertBook::len).sum();
        metrics::gauge!(names::NOTIFY_ACTIVE_ALERTS).set(active as f64);
    }

    /// Posts `body` to every Alertmanager once: `Ok` when at least one took it.
    fn post_once(&self, body: &[u8]) -> Result<(), String> {
        let mut last_error = None;
        let mut taken = false;
        for url in &self.endpoints {
            match self.post(url, body) {
                Ok(()) => taken = true,
                Err(e) => {
                    self.metrics.failures.increment(1);
                    tracing::warn!(sink = SINK_NAME, error = %e, "alertmanager did not take alerts");
                    last_error = Some(e);
                }
            }
        }
        match (taken, last_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    fn post(&self, url: &str, body: &[u8]) -> Result<(), String> {
        let response = self
            .agent
            .post(url)
            .set("Content-Type", "application/json")
            .send_bytes(body);
        match response {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                let text: String = text.trim().chars().take(300).collect();
                Err(format!("POST {url}: HTTP {code}: {text}"))
            }
            Err(ureq::Error::Transport(t)) => Err(format!("POST {url}: {t}")),
        }
    }

    /// Posts `body` until an Alertmanager takes it, on the [`RETRY`] schedule (every failure
    /// is retried: a refusal by one Alertmanager may be taken by another); `Err` has the
    /// attempts made and the last error.
    fn post_with_retry(&self, body: &[u8]) -> Result<(), (u32, String)> {
        with_retries(
            &RETRY,
            &self.metrics,
            SINK_NAME,
            "POST /api/v2/alerts",
            || self.post_once(body).map_err(|e| (Failure::Transient, e)),
        )
    }
}

impl Sink for AlertmanagerSink {
    fn name(&self) -> &str {
        SINK_NAME
    }

    /// Applies the batch to its partition's book and posts the alerts that fired or resolved to
    /// every Alertmanager, [`CHUNK`] per request. The batch is delivered once one of them took
    /// each request (counted in `goalpost_notify_deliveries_total`: the events that changed an
    /// alert); if none does within [`RETRY`], the events that changed an alert are given up
    /// (a firing alert stays active and is sent again by [`Sink::tick`]; a resolved one then ends
    /// in Alertmanager by its `resolve_timeout`).
    fn deliver(&mut self, batch: &[Delivery]) -> Vec<GivenUp> {
        let now = Timestamp::now();
        let mut posted: Vec<Alert> = Vec::new();
        let mut causes: Vec<&Delivery> = Vec::new();
        for d in batch {
            let changes = self.book(d.partition).apply(&d.attainment, now);
            self.record(d.partition, &changes);
            let before = posted.len();
            posted.extend(changes.iter().filter_map(Change::to_post).cloned());
            if posted.len() > before {
                causes.push(d);
            }
        }
        self.update_gauge();
        if posted.is_empty() {
            return Vec::new();
        }
        let outcome = posted
            .chunks(CHUNK)
            .try_for_each(|chunk| self.post_with_retry(&postable_json(chunk)));
        match outcome {
            Ok(()) => {
                self.metrics.delivered.increment(causes.len() as u64);
                Vec::new()
            }
            Err((attempts, last_error)) => causes
                .into_iter()
                .map(|d| GivenUp {
                    delivery: d.clone(),
                    attempts,
                    last_error: last_error.clone(),
                })
                .collect(),
        }
    }

    fn state_topic(&self) -> Option<&str> {
        Some(&self.state_topic)
    }

    /// Sends the active alerts due again (once to every Alertmanager: the next round retries),
    /// and forgets alerts that ended on their own.
    fn tick(&mut self) {
        let now = Timestamp::now();
        let mut due = Vec::new();
        let mut expired = Vec::new();
        for (&partition, book) in &mut self.books {
            let (d, e) = book.take_due(now);
            due.extend(d);
            expired.extend(e.into_iter().map(|c| (partition, c.state_record())));
        }
        self.pending.extend(expired);
        self.update_gauge();
        for chunk in due.chunks(CHUNK) {
            if let Err(e) = self.post_once(&postable_json(chunk)) {
                tracing::warn!(sink = SINK_NAME, alerts = chunk.len(), error = %e, "cannot send active alerts again");
            }
        }
    }

    fn take_state(&mut self) -> Vec<(i32, StateRecord)> {
        std::mem::take(&mut self.pending)
    }

    fn restore(&mut self, partition: i32, (key, value): StateRecord) {
        match state::decode(&key, value.as_deref()) {
            Ok(stored) => self.book(partition).restore(stored),
            Err(e) => {
                tracing::warn!(sink = SINK_NAME, partition, error = %e, "alert state record ignored")
            }
        }
        self.update_gauge();
    }

    fn assigned(&mut self, partitions: &[i32]) {
        for &p in partitions {
            self.book(p);
        }
    }

    fn revoked(&mut self, partitions: &[i32]) {
        self.books.retain(|p, _| !partitions.contains(p));
        self.pending.retain(|(p, _)| !partitions.contains(p));
        self.update_gauge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_its_state_topic_after_the_application() {
        let config = AlertmanagerConfig::with_urls(vec!["http://127.0.0.1:9093/".into()]);
        let sink = AlertmanagerSink::new(&config, "sales").unwrap();
        assert_eq!(sink.state_topic(), Some("sales-notify-alerts"));
        assert_eq!(sink.endpoints, ["http://127.0.0.1:9093/api/v2/alerts"]);
        assert!(AlertmanagerSink::new(&AlertmanagerConfig::with_urls(vec![]), "sales").is_err());
    }
}
