//! `[output]`: where attainment events, dead letters and progress records go.

use serde::Deserialize;

use super::de::format;
use crate::codec::Format;

/// `[output]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Topic of attainment events. Default `goal-attainments`.
    pub topic: String,
    /// Format of attainment records, `json` (default) or `proto`.
    #[serde(deserialize_with = "format")]
    pub format: Format,
    /// Topic of rejected records. Default `{application_id}-dead-letters`.
    pub dead_letter_topic: Option<String>,
    /// Compacted topic of progress records (one per goal, group and window, its current state,
    /// in `format`), written in the transactions of the attainment events. Absent: none.
    pub progress_topic: Option<String>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            topic: "goal-attainments".into(),
            format: Format::Json,
            dead_letter_topic: None,
            progress_topic: None,
        }
    }
}
