//! The metrics of `goalpost notify` (names in [`crate::serve::metrics`]), one handle set per
//! sink, registered once.

use metrics::{counter, gauge, Counter, Gauge};

use crate::serve::metrics as m;

/// A sink's metrics (label `sink`).
#[derive(Clone)]
pub struct SinkMetrics {
    /// Events delivered.
    pub delivered: Counter,
    /// Attempts retried.
    pub retries: Counter,
    /// Failed attempts (errors, timeouts, refusals).
    pub failures: Counter,
    /// Events given up and dead-lettered.
    pub dead_letters: Counter,
    /// Now minus the record time of the last event finished (seconds).
    pub lag: Gauge,
}

impl SinkMetrics {
    /// The handles of the sink named `sink`.
    pub fn new(sink: &str) -> SinkMetrics {
        let label = [("sink", sink.to_string())];
        SinkMetrics {
            delivered: counter!(m::NOTIFY_DELIVERIES, &label),
            retries: counter!(m::NOTIFY_RETRIES, &label),
            failures: counter!(m::NOTIFY_FAILURES, &label),
            dead_letters: counter!(m::NOTIFY_DEAD_LETTERS, &label),
            lag: gauge!(m::NOTIFY_DELIVERY_LAG, &label),
        }
    }

    /// Sets the lag from the record time (ms since the epoch) of the last event finished.
    pub fn finished_at(&self, record_ms: Option<i64>) {
        if let Some(ms) = record_ms {
            let now_ms = chrono::Utc::now().timestamp_millis();
            self.lag.set((now_ms - ms).max(0) as f64 / 1000.0);
        }
    }
}

/// Attainment records read (counter).
pub fn events_read() -> Counter {
    counter!(m::NOTIFY_EVENTS)
}
