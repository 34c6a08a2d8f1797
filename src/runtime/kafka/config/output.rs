//! `[output]`: where attainment events and dead letters go.

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
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            topic: "goal-attainments".into(),
            format: Format::Json,
            dead_letter_topic: None,
        }
    }
}
