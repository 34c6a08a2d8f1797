//! Deserializers of the notify values written as strings.

use serde::{Deserialize, Deserializer};

use crate::model::Duration;

/// A duration such as `"1m"` (see [`Duration`]'s `FromStr`).
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}
