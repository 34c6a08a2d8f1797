//! The size limits on input: one definition, passed to the codec (records, event ids) and to the
//! router (group-by and `count_distinct` values).

/// Size limits on input, in bytes.
///
/// `record_bytes` may differ between runtimes (on Kafka it is `input.max_record_bytes`); the id and
/// value limits are the same everywhere, so that replay and Kafka agree on every event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input record. Longer records are rejected as `oversized`.
    pub record_bytes: usize,
    /// Longest accepted `event_id`. The id travels into every attainment it triggers
    /// (`triggered_by`) and into the dedupe changelog, so a longer one could make records the
    /// Kafka producer refuses; it is rejected as `oversized` instead.
    pub event_id_bytes: usize,
    /// Longest group-by or `count_distinct` value. Such values travel into attainment events,
    /// window state and changelog keys, where a huge one could make a record the Kafka producer
    /// refuses; an event with a longer one is skipped for that goal (and counted), as if the value
    /// were absent.
    pub value_bytes: usize,
}

impl Limits {
    /// The defaults: records up to 1 MiB, ids and values up to 1 KiB.
    pub const DEFAULT: Limits = Limits {
        record_bytes: 1 << 20,
        event_id_bytes: 1024,
        value_bytes: 1024,
    };

    /// The default limits with records up to `record_bytes`.
    pub const fn with_record_bytes(record_bytes: usize) -> Limits {
        Limits {
            record_bytes,
            ..Limits::DEFAULT
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
