//! `[notify.alertmanager]`.

use serde::Deserialize;

/// `[notify.alertmanager]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Base URLs of Alertmanager (an HA pair: all of them), e.g. `http://alertmanager:9093`.
    pub urls: Vec<String>,
}
