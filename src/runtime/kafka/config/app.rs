//! `[app]`: the application's identity, timing, topics and dedupe memory.

use serde::Deserialize;

use crate::model::Duration;

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
    pub commit_interval: Duration,
    /// An input partition without records for this long stops holding back the watermark.
    /// Default `30s`.
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
