//! `[input]`: the topics of sales events and how their records are read.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::de::{format, max_future};
use crate::codec::future::MaxFuture;
use crate::codec::Format;
use crate::limits::Limits;

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
    /// Records larger than this are dead-lettered as `oversized`. Default 1048576 (1 MiB); at
    /// most what the consumer fetches (see [`consumer_fetch_max_bytes`]).
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// Events whose `occurred_at` lies more than this ahead of the wall clock are dead-lettered as
    /// `future_timestamp`: a duration, or `"off"`. Default `1h`, as Kafka 4 brokers' default for
    /// record timestamps.
    #[serde(default, deserialize_with = "max_future")]
    pub max_future: MaxFuture,
}

fn default_max_record_bytes() -> usize {
    Limits::DEFAULT.record_bytes
}

impl InputConfig {
    /// The size limits on input records: `max_record_bytes`, and the id and value limits every
    /// runtime shares.
    pub fn limits(&self) -> Limits {
        Limits::with_record_bytes(self.max_record_bytes)
    }

    /// `max_record_bytes` must not exceed what the consumer fetches: a larger limit could not be
    /// reached.
    pub(super) fn check_max_record_bytes(
        &self,
        properties: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let (allowed, from) = consumer_fetch_max_bytes(properties);
        if self.max_record_bytes <= allowed {
            return Ok(());
        }
        Err(format!(
            "input.max_record_bytes = {} exceeds the consumer's fetch.max.bytes = {allowed} \
             ({from}); allowed up to {allowed}: lower input.max_record_bytes, or raise \
             \"fetch.max.bytes\" (and the topic's max.message.bytes) in [kafka.properties]",
            self.max_record_bytes
        ))
    }
}

/// librdkafka's default `fetch.max.bytes` (50 MiB).
const DEFAULT_FETCH_MAX_BYTES: usize = 50 * 1024 * 1024;
/// librdkafka's default `queued.max.messages.kbytes` (64 MiB).
const DEFAULT_QUEUED_MAX_KBYTES: usize = 65_536;
/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The consumer's `fetch.max.bytes` as librdkafka resolves it from `properties`, and where the
/// value comes from: the property if set, else its default capped at
/// `queued.max.messages.kbytes` and raised to at least `message.max.bytes`. A value that is not
/// a number counts as unset here; librdkafka refuses it when the clients are created.
pub(super) fn consumer_fetch_max_bytes(
    properties: &BTreeMap<String, String>,
) -> (usize, &'static str) {
    let get = |key: &str| {
        properties
            .get(key)
            .and_then(|v| v.trim().parse::<usize>().ok())
    };
    if let Some(set) = get("fetch.max.bytes") {
        return (set, "set in kafka.properties");
    }
    let queued = get("queued.max.messages.kbytes").unwrap_or(DEFAULT_QUEUED_MAX_KBYTES);
    let message = get("message.max.bytes").unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
    let resolved = DEFAULT_FETCH_MAX_BYTES
        .min(queued.saturating_mul(1024))
        .max(message);
    (resolved, "librdkafka's default for these kafka.properties")
}
