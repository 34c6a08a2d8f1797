//! Active alerts as records of the compacted state topic: key = the alert's identity (goal,
//! group, window start, kind) as JSON, value = the alert as JSON, a tombstone once it is
//! resolved or has ended.

use thiserror::Error;

use super::alert::{Alert, AlertKey};

/// A state-topic record: (key, value or `None` for a tombstone).
pub type Record = (Vec<u8>, Option<Vec<u8>>);

/// A state record that cannot be read back.
#[derive(Debug, Error)]
pub enum StateError {
    /// The key is not an alert key.
    #[error("alert state key `{key}` is not an alert key: {cause}")]
    Key {
        /// The key, lossily as text.
        key: String,
        /// What serde said.
        cause: serde_json::Error,
    },
    /// The value is not an alert, or not the key's alert.
    #[error("alert state value of key `{key}` is not an alert of that key{}", cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Value {
        /// The key, lossily as text.
        key: String,
        /// What serde said; `None` when the alert's own key differs.
        cause: Option<serde_json::Error>,
    },
}

/// What a state record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The alert is active.
    Active(Alert),
    /// The alert of this key is no longer active.
    Gone(AlertKey),
}

/// The key of `key`'s records.
pub fn key_bytes(key: &AlertKey) -> Vec<u8> {
    serde_json::to_vec(key).expect("alert keys serialise")
}

/// The record of an active alert.
pub fn active_record(alert: &Alert) -> Record {
    let value = serde_json::to_vec(alert).expect("alerts serialise");
    (key_bytes(&alert.key), Some(value))
}

/// The tombstone of an alert no longer active.
pub fn gone_record(key: &AlertKey) -> Record {
    (key_bytes(key), None)
}

/// Reads a record back.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Stored, StateError> {
    let text = || String::from_utf8_lossy(key).into_owned();
    let parsed: AlertKey =
        serde_json::from_slice(key).map_err(|cause| StateError::Key { key: text(), cause })?;
    let Some(value) = value else {
        return Ok(Stored::Gone(parsed));
    };
    let alert: Alert = serde_json::from_slice(value).map_err(|cause| StateError::Value {
        key: text(),
        cause: Some(cause),
    })?;
    if alert.key != parsed {
        return Err(StateError::Value {
            key: text(),
            cause: None,
        });
    }
    Ok(Stored::Active(alert))
}
