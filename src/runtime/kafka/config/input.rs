//! `[input]`: the topics of sales events and how their records are read.

use serde::Deserialize;

use super::de::{format, max_future};
use crate::codec::future::MaxFuture;
use crate::codec::Format;

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

fn default_max_record_bytes() -> usize {
    crate::codec::MAX_RECORD_BYTES
}
